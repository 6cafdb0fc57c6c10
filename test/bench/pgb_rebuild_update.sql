\set aid random(1, :accounts)
UPDATE accounts SET balance = balance + 1 WHERE id = :aid;
