\set id random(1, :rows)
SELECT payload FROM t WHERE id = :id;
