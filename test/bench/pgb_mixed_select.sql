\set id random(1, :rows)
SELECT cents, payload FROM t WHERE id = :id;
