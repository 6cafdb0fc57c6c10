\set id random(1, :rows)
SELECT amount, payload FROM t WHERE id = :id;
