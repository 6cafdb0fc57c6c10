-- rename_column: new name in the new version at start, renamed in the table at complete.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.people (id int PRIMARY KEY, fname text, lname text DEFAULT 'doe');
INSERT INTO app.people VALUES (1, 'ann', 'lee');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "people", "from": "fname", "to": "first_name"}},
  {"rename_column": {"table": "people", "from": "lname", "to": "last_name"}}]}', 'app');
SELECT * FROM app_v1.people;
-- Writes through either version are visible through the other; defaults follow the view.
INSERT INTO app_v1.people (id, first_name) VALUES (2, 'bob') RETURNING *;
INSERT INTO app.people (id, fname, lname) VALUES (3, 'cat', 'kim');
UPDATE app_v1.people SET last_name = 'ray' WHERE id = 1;
SELECT * FROM app.people ORDER BY id;
SELECT * FROM app_v1.people ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');

-- Swapping two names composes, through temporary names at complete.
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "people", "from": "fname", "to": "tmp"}},
  {"rename_column": {"table": "people", "from": "lname", "to": "fname"}},
  {"rename_column": {"table": "people", "from": "tmp", "to": "lname"}}]}', 'app');
SELECT * FROM app_v1.people ORDER BY id;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT * FROM app.people ORDER BY id;
SELECT * FROM app_v1.people ORDER BY id;
SELECT * FROM ec_test.leftovers();

DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
