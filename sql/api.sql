-- The SQL API: ec_start, ec_status, ec_complete, ec_rollback, history, version selection.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;

-- Callable unqualified, from pg_catalog, whatever the search_path.
SELECT p.oid::regprocedure FROM pg_proc p WHERE proname LIKE 'ec\_%' ORDER BY 1;
SELECT count(*) AS migrations FROM expand_contract.migrations;
SELECT * FROM ec_status();

CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL DEFAULT 0);
INSERT INTO accounts VALUES (1, 'ann', 10), (2, 'bob', 20);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('public') x \gset

SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "accounts", "column": "balance", "type": "bigint",
                    "up": "balance * 100", "down": "(balance / 100)::int"}}]}');
SELECT schema_name, migration, parent, version_schema, phase, backfill_state FROM ec_status();

-- At most one active migration per schema.
SELECT ec_start('v1b', '{"operations": [{"drop_table": {"name": "accounts"}}]}');

-- Which version writes: the search_path (first version schema on it)...
SET search_path = public_v1, public;
INSERT INTO accounts (id, owner, balance) VALUES (3, 'cat', 300);
RESET search_path;
INSERT INTO accounts (id, owner, balance) VALUES (4, 'dan', 4);
-- ... unless expand_contract.version says otherwise, also for one transaction only.
BEGIN;
SET LOCAL expand_contract.version = 'public_v1';
INSERT INTO public_v1.accounts (id, owner, balance) VALUES (5, 'eve', 500);
COMMIT;
BEGIN;
SET LOCAL expand_contract.version = 'v1';   -- the migration name works too
SET LOCAL search_path = public;
UPDATE public_v1.accounts SET balance = 900 WHERE id = 5;
COMMIT;
SET search_path = public_v1;
BEGIN;
SET LOCAL expand_contract.version = 'public';  -- the old version wins over the search_path
UPDATE accounts SET owner = 'Cat' WHERE id = 3;
COMMIT;
SET expand_contract.version = 'no_such_version';
INSERT INTO accounts (id, owner) VALUES (6, 'fay');
RESET expand_contract.version;
RESET search_path;
SELECT o.id, o.owner, o.balance AS old_balance, n.balance AS new_balance
  FROM public.accounts o JOIN public_v1.accounts n USING (id) ORDER BY id;

-- complete without waiting for the backfill refuses; so does waiting for a paused one.
SELECT ec_complete('public', wait => false);
SELECT ec_complete();
-- Resumed, the worker fills the rows from before the start, and complete waits for it.
SELECT ec_resume('public');
SELECT ec_complete();
SELECT * FROM accounts ORDER BY id;
SELECT schema_name, migration, parent, version_schema, phase, backfill_state, rows_done FROM ec_status();
SELECT * FROM ec_test.leftovers();
SELECT ec_complete();
SELECT ec_rollback();

-- A second migration: the previous version is now served by public_v1's views.
SELECT ec_start('v2', '{"operations": [{"rename_column": {"table": "accounts", "from": "owner", "to": "holder"}}]}');
SELECT column_name FROM information_schema.columns WHERE table_schema = 'public_v1' ORDER BY ordinal_position;
SELECT column_name FROM information_schema.columns WHERE table_schema = 'public_v2' ORDER BY ordinal_position;
SELECT schema_name, migration, parent, version_schema, phase FROM ec_status('public');
SELECT ec_resume('public');
SELECT ec_complete();
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'public\_v%' ORDER BY 1;
SELECT * FROM public_v2.accounts ORDER BY id LIMIT 2;

-- version_schema from the document; rollback removes the migration from the history.
SELECT ec_start('v3', '{"version_schema": "three", "operations": [{"drop_table": {"name": "accounts"}}]}');
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'public\_%' ORDER BY 1;
SELECT ec_rollback();
SELECT name, parent, version_schema, done FROM expand_contract.migrations ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- Migration names are unique per schema; a failed start leaves nothing behind.
SELECT ec_start('v2', '{"operations": [{"drop_table": {"name": "accounts"}}]}');
SELECT ec_start('v4', '{"operations": [{"drop_table": {"name": "accounts"}}, {"drop_table": {"name": "nope"}}]}');
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'public\_%' ORDER BY 1;
SELECT name FROM expand_contract.migrations ORDER BY id;

-- Clean up for the next test file.
DROP SCHEMA public_v2 CASCADE;
DROP TABLE accounts;
DELETE FROM expand_contract.migrations;
