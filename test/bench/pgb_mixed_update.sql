\set id random(1, :rows)
UPDATE t SET cents = cents + 1 WHERE id = :id;
