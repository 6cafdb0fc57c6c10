-- rename_constraint: the constraint keeps its name while both versions run, and is renamed at
-- complete (as pgroll does); start refuses a "from" that does not exist and a "to" that is taken.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.teams (id int PRIMARY KEY);
CREATE TABLE app.users (id serial PRIMARY KEY,
                        username text NOT NULL CONSTRAINT users_check CHECK (length(username) > 2),
                        email text CONSTRAINT users_email_key UNIQUE,
                        team int CONSTRAINT users_team_fk REFERENCES app.teams);
INSERT INTO app.teams VALUES (1);
INSERT INTO app.users (username, email, team) VALUES ('ann', 'ann@example.com', 1);
CREATE FUNCTION ec_test.constraints() RETURNS TABLE (conname name, def text, convalidated boolean)
  LANGUAGE sql AS $$
  SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
   WHERE connamespace = 'app'::regnamespace ORDER BY conname COLLATE "C" $$;
-- An inherited constraint is renamed with its parent's only (PostgreSQL refuses it at complete).
CREATE TABLE app.base (n int CONSTRAINT base_n_check CHECK (n > 0));
CREATE TABLE app.derived () INHERITS (app.base);
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "derived", "from": "base_n_check", "to": "derived_n_check"}}]}', 'app');
DROP TABLE app.derived, app.base;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- Refused at start, and nothing is left: a "from" that does not exist, a "to" that is taken, a
-- "to" that an index-backed constraint cannot take (its index is renamed too), a missing table,
-- an over-long name.
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "users", "from": "doesntexist", "to": "x"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "users", "from": "users_check", "to": "users_email_key"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "users", "from": "users_check", "to": "users_check"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "users", "from": "users_email_key", "to": "teams"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "doesntexist", "from": "users_check", "to": "x"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "users", "from": "users_check", "to": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}]}', 'app');
SELECT ec_start('v1', '{"operations": [{"rename_constraint": {"table": "users", "from": "users_check"}}]}', 'app');
-- A name is the table's after the renames of the operations before: the first rename frees
-- "users_check" and takes "users_username_length".
SELECT ec_start('v1', '{"operations": [
  {"rename_constraint": {"table": "users", "from": "users_check", "to": "users_username_length"}},
  {"rename_constraint": {"table": "users", "from": "users_check", "to": "x"}}]}', 'app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();

-- A check, a unique constraint, a foreign key (through a temporary name), and the primary key of
-- a table that the same migration renames.
SELECT ec_start('v1', '{"operations": [
  {"rename_constraint": {"table": "users", "from": "users_check", "to": "users_username_length"}},
  {"rename_constraint": {"table": "users", "from": "users_email_key", "to": "users_email_unique"}},
  {"rename_constraint": {"table": "users", "from": "users_team_fk", "to": "users_team_tmp"}},
  {"rename_constraint": {"table": "users", "from": "users_team_tmp", "to": "users_team_fkey"}},
  {"rename_table": {"from": "teams", "to": "groups"}},
  {"rename_constraint": {"table": "groups", "from": "teams_pkey", "to": "groups_pkey"}}]}', 'app');
-- Until complete, both versions see the old names, and the constraints hold in both.
SELECT * FROM ec_test.constraints();
\set VERBOSITY sqlstate
SET search_path = app_v1;
INSERT INTO users (username) VALUES ('a');
INSERT INTO users (username, email) VALUES ('bob', 'ann@example.com');
INSERT INTO users (username, team) VALUES ('bob', 2);
RESET search_path;
INSERT INTO app.users (username) VALUES ('a');
\set VERBOSITY default
INSERT INTO app.users (username, email) VALUES ('bob', 'ann@example.com');
-- What complete will run: the renames first, before the table's rename.
SELECT unnest(complete_steps) FROM expand_contract.migrations WHERE NOT done;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();

SELECT ec_start('v1', '{"operations": [
  {"rename_constraint": {"table": "users", "from": "users_check", "to": "users_username_length"}},
  {"rename_constraint": {"table": "users", "from": "users_email_key", "to": "users_email_unique"}},
  {"rename_constraint": {"table": "users", "from": "users_team_fk", "to": "users_team_tmp"}},
  {"rename_constraint": {"table": "users", "from": "users_team_tmp", "to": "users_team_fkey"}},
  {"rename_table": {"from": "teams", "to": "groups"}},
  {"rename_constraint": {"table": "groups", "from": "teams_pkey", "to": "groups_pkey"}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.constraints();
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid IN ('app.users'::regclass, 'app.groups'::regclass) ORDER BY 1;
-- The constraints hold under their new names.
SET search_path = app_v1;
INSERT INTO users (username) VALUES ('a');
INSERT INTO users (username, email) VALUES ('bob', 'ann@example.com');
INSERT INTO users (username, team) VALUES ('bob', 2);
INSERT INTO users (username, email, team) VALUES ('bob', 'bob@example.com', 1) RETURNING username, email, team;
RESET search_path;
SELECT * FROM ec_test.leftovers();

-- Constraints this migration adds: a check added NOT VALID (the worker validates it under its
-- first name, complete renames it), a unique constraint whose index the worker builds (attached
-- under its new name), and a check of a table created by the migration; and a check on a column
-- that the migration drops (renamed, then dropped with its column).
ALTER TABLE app.users ADD COLUMN legacy int CONSTRAINT users_legacy_check CHECK (legacy > 0);
SELECT ec_start('v2', '{"operations": [
  {"add_column": {"table": "users", "column": {"name": "age", "type": "int", "nullable": true, "unique": true,
                                               "check": {"name": "age_check", "constraint": "age >= 0"}}}},
  {"rename_constraint": {"table": "users", "from": "age_check", "to": "users_age_check"}},
  {"rename_constraint": {"table": "users", "from": "users_age_key", "to": "users_age_unique"}},
  {"create_table": {"name": "tags", "columns": [{"name": "id", "type": "int", "pk": true},
                   {"name": "t", "type": "text", "check": {"name": "t_len", "constraint": "length(t) < 10"}}]}},
  {"rename_constraint": {"table": "tags", "from": "t_len", "to": "tags_t_length"}},
  {"drop_column": {"table": "users", "column": "legacy"}},
  {"rename_constraint": {"table": "users", "from": "users_legacy_check", "to": "users_legacy_positive"}}]}', 'app');
SELECT * FROM ec_test.constraints();
SELECT unnest(complete_steps) FROM expand_contract.migrations WHERE NOT done;
\set VERBOSITY sqlstate
SET search_path = app_v2;
INSERT INTO users (username, age) VALUES ('cat', -1);
INSERT INTO tags VALUES (1, 'far too long');
RESET search_path;
\set VERBOSITY default
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.constraints();
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'app.users'::regclass ORDER BY 1;
SELECT * FROM ec_test.leftovers();

DROP FUNCTION ec_test.constraints();
DROP SCHEMA app, app_v2 CASCADE;
DELETE FROM expand_contract.migrations;
