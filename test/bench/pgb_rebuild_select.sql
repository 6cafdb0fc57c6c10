\set aid random(1, :accounts)
SELECT email, balance FROM accounts WHERE id = :aid;
