-- drop_column: hidden from the new version at start, filled by "down" for new-version writes,
-- dropped at complete.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.items (id int PRIMARY KEY, name text NOT NULL, legacy_code text NOT NULL);
INSERT INTO app.items VALUES (1, 'one', 'L-1');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

SELECT ec_start('v1', '{"operations": [{"drop_column": {"table": "items", "column": "legacy_code", "down": "''L-'' || id"}}]}', 'app');
SELECT * FROM app_v1.items;
SET search_path = app_v1;
INSERT INTO items (id, name) VALUES (2, 'two');
UPDATE items SET name = 'uno' WHERE id = 1;
RESET search_path;
INSERT INTO app.items VALUES (3, 'three', 'custom');
SELECT * FROM app.items ORDER BY id;
SELECT * FROM app_v1.items ORDER BY id;

SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM app.items ORDER BY id;

-- Without "down", a NOT NULL column without default makes new-version inserts fail.
SELECT ec_start('v1', '{"operations": [{"drop_column": {"table": "items", "column": "legacy_code"}}]}', 'app');
SET search_path = app_v1;
INSERT INTO items (id, name) VALUES (4, 'four');
RESET search_path;
SELECT ec_resume('app');
SELECT ec_complete('app');
\d app.items
SELECT * FROM app_v1.items ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- A column that a view depends on cannot be dropped: the view would block complete.
CREATE VIEW app.names AS SELECT name FROM app.items;
SELECT ec_start('v2', '{"operations": [{"drop_column": {"table": "items", "column": "name"}}]}', 'app');
DROP VIEW app.names;

DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
