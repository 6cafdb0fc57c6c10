-- sql: raw "up" at start (the new version sees what it created), "down" at rollback,
-- "onComplete" runs at complete instead.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.t (id int PRIMARY KEY);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
SELECT ec_start('v1', '{"operations": [
  {"sql": {"up": "CREATE TABLE audit (id int, what text); CREATE INDEX audit_id ON audit (id)", "down": "DROP TABLE audit"}},
  {"add_column": {"table": "audit", "column": {"name": "at", "type": "timestamptz", "nullable": true}}},
  {"sql": {"up": "CREATE INDEX t_id_desc ON t (id DESC)", "onComplete": true}}]}', 'app');
SELECT table_name FROM information_schema.tables WHERE table_schema = 'app_v1' ORDER BY 1;
SELECT column_name FROM information_schema.columns WHERE table_schema = 'app_v1' AND table_name = 'audit' ORDER BY ordinal_position;
SELECT count(*) AS on_complete_index_yet FROM pg_indexes WHERE indexname = 't_id_desc';
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT ec_start('v1', '{"operations": [
  {"sql": {"up": "CREATE TABLE audit (id int)"}},
  {"sql": {"up": "CREATE INDEX t_id_desc ON t (id DESC)", "onComplete": true}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT indexname FROM pg_indexes WHERE schemaname = 'app' ORDER BY 1;
-- A failing statement fails the start, and nothing is left.
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "CREATE TABLE x (id int); SELECT 1/0"}}]}', 'app');
SELECT count(*) FROM pg_class WHERE relname = 'x' AND relnamespace = 'app'::regnamespace;
SELECT * FROM ec_test.leftovers();
DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
