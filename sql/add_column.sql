-- add_column: up, defaults, NOT NULL (enforced NOT VALID until complete), unique, check, references.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.teams (id int PRIMARY KEY);
INSERT INTO app.teams VALUES (1), (2);
INSERT INTO app.users VALUES (1, 'ann'), (2, 'bob');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

SELECT ec_start('v1', '{"operations": [
  {"add_column": {"table": "users", "up": "upper(name)",
                  "column": {"name": "shout", "type": "text", "nullable": true, "comment": "loud name"}}},
  {"add_column": {"table": "users",
                  "column": {"name": "status", "type": "text", "default": "''active''",
                             "check": {"name": "users_status_check", "constraint": "status IN (''active'', ''gone'')"}}}},
  {"add_column": {"table": "users",
                  "column": {"name": "team_id", "type": "int", "nullable": true,
                             "references": {"name": "users_team_fk", "table": "teams", "column": "id"}}}},
  {"add_column": {"table": "users",
                  "column": {"name": "email", "type": "text", "nullable": true, "unique": true}}}]}', 'app');

-- The old version (base table) does not show the new columns under their names; the new one does;
-- existing rows get "up" from the background worker, which also builds the unique index.
SELECT * FROM app_v1.users ORDER BY id;
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT * FROM app_v1.users ORDER BY id;
\d app_v1.users
-- Old-version writes get "up" and the defaults; NOT NULL is already enforced for them.
INSERT INTO app.users (id, name) VALUES (3, 'cat');
UPDATE app.users SET name = 'bobby' WHERE id = 2;
-- New-version writes: checks, references and unique enforced.
SET search_path = app_v1;
INSERT INTO users (id, name, shout, status, team_id, email) VALUES (4, 'dan', 'DAN!', 'active', 1, 'd@x');
INSERT INTO users (id, name, shout) VALUES (5, 'eve', NULL);
INSERT INTO users (id, name, status) VALUES (6, 'fay', 'weird');
INSERT INTO users (id, name, team_id) VALUES (7, 'gus', 99);
INSERT INTO users (id, name, email) VALUES (8, 'hal', 'd@x');
UPDATE users SET email = 'e@x' WHERE id = 5 RETURNING id, name, shout, email;
RESET search_path;
SELECT * FROM app_v1.users ORDER BY id;
SELECT id, name FROM app.users ORDER BY id;

-- Rollback: schema exactly as before, rows written through either version kept.
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM app.users ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- NOT NULL without a default needs "up"; with it, existing rows are filled at complete.
SELECT ec_start('v1', '{"operations": [{"add_column": {"table": "users", "column": {"name": "slug", "type": "text"}}}]}', 'app');
SELECT ec_start('v1', '{"operations": [
  {"add_column": {"table": "users", "up": "lower(name) || ''-'' || id", "column": {"name": "slug", "type": "text", "unique": true}}},
  {"add_column": {"table": "users", "column": {"name": "created", "type": "timestamptz", "default": "now()"}}}]}', 'app');
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'app.users'::regclass AND contype = 'c';
-- The writer's version comes from its search_path (or expand_contract.version), not from the view.
SELECT ec_resume('app');
CALL ec_wait('app');
SET search_path = app_v1;
\set VERBOSITY terse
INSERT INTO users (id, name, slug) VALUES (10, 'ivy', NULL);
\set VERBOSITY default
INSERT INTO users (id, name, slug) VALUES (10, 'ivy', 'ivy');
INSERT INTO users (id, name, slug) VALUES (12, 'kim', 'ivy');
RESET search_path;
INSERT INTO app.users (id, name) VALUES (11, 'jon');
SELECT ec_resume('app');
SELECT ec_complete('app');
\d app.users
SELECT id, name, slug, created IS NOT NULL AS has_created FROM app.users ORDER BY id;
SELECT * FROM ec_test.leftovers();

DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
