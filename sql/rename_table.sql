-- rename_table: the new version's view has the new name at start; the table is renamed at complete.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.clients (id int PRIMARY KEY, name text);
INSERT INTO app.clients VALUES (1, 'ann');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
SELECT ec_start('v1', '{"operations": [{"rename_table": {"from": "clients", "to": "customers"}}]}', 'app');
SELECT table_name FROM information_schema.tables WHERE table_schema = 'app_v1';
INSERT INTO app_v1.customers VALUES (2, 'bob');
INSERT INTO app.clients VALUES (3, 'cat');
SELECT * FROM app_v1.customers ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
-- Renaming onto an existing relation is refused.
CREATE SEQUENCE app.customers;
SELECT ec_start('v1', '{"operations": [{"rename_table": {"from": "clients", "to": "customers"}}]}', 'app');
DROP SEQUENCE app.customers;
SELECT ec_start('v1', '{"operations": [{"rename_table": {"from": "clients", "to": "customers"}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind = 'r';
SELECT * FROM app_v1.customers ORDER BY id;
SELECT * FROM ec_test.leftovers();
DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
