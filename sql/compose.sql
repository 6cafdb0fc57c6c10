-- Several operations on one table compose: rename, type change, add, drop, table rename.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, name text NOT NULL, age text, legacy int DEFAULT 0);
INSERT INTO app.users VALUES (1, 'ann', '31', 5), (2, 'bob', NULL, 6);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "users", "from": "name", "to": "full_name"}},
  {"alter_column": {"table": "users", "column": "age", "type": "int", "up": "age::int", "down": "age::text"}},
  {"add_column": {"table": "users", "up": "upper(full_name)", "column": {"name": "name_upper", "type": "text", "nullable": true}}},
  {"drop_column": {"table": "users", "column": "legacy", "down": "length(full_name)"}},
  {"rename_table": {"from": "users", "to": "members"}}]}', 'app');
\d app_v1.members
-- The type change and the added column move data on the same table: one backfill pass fills both.
SELECT seq, kind, table_name, columns FROM expand_contract.tasks ORDER BY seq;
INSERT INTO app.users (id, name, age) VALUES (3, 'cat', '40');
SET search_path = app_v1;
INSERT INTO app_v1.members (id, full_name, age) VALUES (4, 'dave', 50);
RESET search_path;
SELECT * FROM app.users ORDER BY id;
SELECT * FROM app_v1.members ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM app.users ORDER BY id;
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "users", "from": "name", "to": "full_name"}},
  {"alter_column": {"table": "users", "column": "age", "type": "int", "up": "age::int", "down": "age::text"}},
  {"add_column": {"table": "users", "up": "upper(full_name)", "column": {"name": "name_upper", "type": "text", "nullable": true}}},
  {"drop_column": {"table": "users", "column": "legacy", "down": "length(full_name)"}},
  {"rename_table": {"from": "users", "to": "members"}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
\d app.members
SELECT * FROM app.members ORDER BY id;
SELECT * FROM ec_test.leftovers();
-- Two data-moving changes of one column compose into one rebuild (more in compose_column.sql).
SELECT ec_start('v2', '{"operations": [
  {"alter_column": {"table": "members", "column": "age", "type": "bigint"}},
  {"alter_column": {"table": "members", "column": "age", "nullable": false, "up": "coalesce(age, 0)"}}]}', 'app');
SELECT table_name, columns FROM expand_contract.tasks WHERE kind = 'backfill' AND state <> 'done';
SELECT ec_rollback('app');
DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
