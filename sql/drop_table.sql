-- drop_table: soft-dropped at start (gone from the new version, still served to the old one),
-- dropped at complete.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.logs (id int PRIMARY KEY, msg text);
CREATE TABLE app.keep (id int);
INSERT INTO app.logs VALUES (1, 'hello');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "logs"}}]}', 'app');
SELECT table_name FROM information_schema.tables WHERE table_schema = 'app_v1';
INSERT INTO app.logs VALUES (2, 'still writable by the old version');
SELECT count(*) FROM app.logs;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT count(*) FROM app.logs;
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "logs"}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind = 'r';
-- A table dropped in the new version can be recreated under its name in the same migration
-- (sql/create_table.sql follows that through start, rollback and complete).
SELECT ec_start('v2', '{"operations": [{"drop_table": {"name": "keep"}}, {"create_table": {"name": "keep", "columns": [{"name": "id", "type": "int"}]}}]}', 'app');
SELECT ec_rollback('app');
SELECT * FROM ec_test.leftovers();
DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
