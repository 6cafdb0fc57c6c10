-- Bad input: a clear error with the right SQLSTATE, and nothing left behind.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
\set VERBOSITY default
CREATE SCHEMA app;
CREATE TABLE app.t (id int PRIMARY KEY, name text);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set ON_ERROR_STOP 0
\pset null '(null)'
-- Arguments.
SELECT ec_start(NULL, '{"operations": []}', 'app');
SELECT ec_start('v1', NULL, 'app');
SELECT ec_start('', '{"operations": [{"drop_table": {"name": "t"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'nosuchschema');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'pg_catalog');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'expand_contract');
SELECT ec_start(repeat('x', 70), '{"operations": [{"drop_table": {"name": "t"}}]}', 'app');
SELECT ec_complete('app');
SELECT ec_rollback('app');
-- Document shape.
SELECT ec_start('v1', '[]', 'app');
SELECT ec_start('v1', '"text"', 'app');
SELECT ec_start('v1', '{}', 'app');
SELECT ec_start('v1', '{"operations": []}', 'app');
SELECT ec_start('v1', '{"operations": {}}', 'app');
SELECT ec_start('v1', '{"operations": [1]}', 'app');
SELECT ec_start('v1', '{"operations": [{}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t"}, "sql": {"up": "select"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"frobnicate": {}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"create_index": {"name": "i", "table": "t", "columns": ["id"]}}]}', 'app');
SELECT ec_start('v1', '{"operatoins": [], "operations": [{"drop_table": {"name": "t"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t", "cascade": true}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_table": {}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": 5}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": ""}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": "yes"}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "generated": {"expression": "1"}}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "t", "column": "name"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"sql": {"up": "select 1", "down": "select 2", "onComplete": true}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": true,
  "references": {"name": "fk", "table": "t", "column": "id", "on_delete": "EXPLODE"}}}}]}', 'app');
-- Unknown objects, collisions.
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "nope"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"drop_column": {"table": "t", "column": "nope"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_column": {"table": "t", "from": "name", "to": "id"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "name", "type": "text"}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "t", "columns": [{"name": "a", "type": "int"}]}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_table": {"from": "t", "to": "t"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "no_such_type", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int; drop table app.t", "nullable": true}}}]}', 'app');
CREATE SCHEMA app_v1;
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'app');
DROP SCHEMA app_v1;
-- Expressions: parsed as one expression, checked at start, never executed as SQL text.
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "name; DROP TABLE app.t", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "1) FROM app.t; DROP TABLE app.t; --", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "name FROM app.t", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "(SELECT 1, 2)", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "count(*)", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "no_such_column", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "name", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "ctid::text", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "up": "1 AS x", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "default": "id"}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": true, "check": {"name": "c", "constraint": "x > (SELECT 0)"}}}}]}', 'app');
-- The down expression sees the new version's names: the old name is gone there.
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "t", "column": "name", "name": "label", "type": "varchar(10)", "up": "name", "down": "name"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int"}}}]}', 'app');
-- Nothing of all that is left.
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT count(*) FROM expand_contract.migrations;
\set ON_ERROR_STOP 1

-- A column retyped behind the migration's back: writes fail cleanly, rollback still works.
CREATE TABLE app.r (id int PRIMARY KEY, cents int NOT NULL);
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "r", "column": "cents", "name": "amount",
  "type": "numeric", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}', 'app');
INSERT INTO app.r VALUES (1, 100);
-- (The DDL guard refuses it unless told otherwise: sql/ddl_guard.sql.)
SET expand_contract.allow_ddl = on;
ALTER TABLE app.r ALTER COLUMN cents TYPE text;
RESET expand_contract.allow_ddl;
\set ON_ERROR_STOP 0
INSERT INTO app.r VALUES (2, '200');
\set ON_ERROR_STOP 1
SELECT ec_rollback('app');
SELECT * FROM app.r;
DROP TABLE app.r;
DELETE FROM expand_contract.migrations;

-- Hostile identifiers work as plain names and are never executed.
CREATE TABLE app."Robert'); DROP TABLE app.t; --" ("a""b" int);
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "Robert''); DROP TABLE app.t; --", "from": "a\"b", "to": "x\"; DROP TABLE app.t; --"}},
  {"add_column": {"table": "Robert''); DROP TABLE app.t; --", "up": "\"x\"\"; DROP TABLE app.t; --\" * 2",
                  "column": {"name": "select", "type": "int", "nullable": true, "comment": "it''s"}}}]}', 'app');
INSERT INTO app."Robert'); DROP TABLE app.t; --" VALUES (21);
SELECT * FROM app_v1."Robert'); DROP TABLE app.t; --";
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT attname FROM pg_attribute WHERE attrelid = 'app."Robert''); DROP TABLE app.t; --"'::regclass AND attnum > 0 ORDER BY attnum;
SELECT count(*) AS t_still_there FROM app.t;
DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
