\set aid random(1, :accounts)
\set amount random(1, 1000)
INSERT INTO transfers (id, account_id, amount, ref)
SELECT n, :aid, :amount, 'p' || n FROM nextval('bench.ins_seq') AS n;
