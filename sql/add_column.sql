-- add_column: up, defaults, NOT NULL (enforced NOT VALID until complete), unique, check, references;
-- serial and identity columns without a rewrite; generated columns on new tables only.
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
-- ec_wait refuses to wait for paused work, and for work its own transaction resumed.
CALL ec_wait('app');
BEGIN;
SELECT ec_resume('app');
CALL ec_wait('app');
ROLLBACK;
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

-- Serial and identity columns on an existing table: no rewrite under the lock.  A plain column
-- numbered by a sequence (its default, for new rows; the backfill, once, for existing rows), a NOT
-- VALID check for NOT NULL; at complete SET NOT NULL, and the identity becomes one, its sequence
-- continuing from the one that numbered it.
CREATE SCHEMA num;
CREATE TABLE num.users (id int PRIMARY KEY, name text);
INSERT INTO num.users VALUES (1, 'ann'), (2, 'bob');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('num') x \gset
SELECT pg_relation_filenode('num.users') AS filenode \gset
SELECT $json${"operations": [
  {"add_column": {"table": "users", "column": {"name": "counter_smallserial", "type": "smallserial"}}},
  {"add_column": {"table": "users", "column": {"name": "counter_bigserial", "type": "bigserial", "unique": true}}},
  {"add_column": {"table": "users", "column": {"name": "ticket", "type": "int",
     "generated": {"identity": {"sequence_options": "START WITH 100 INCREMENT BY 10"}}}}}]}$json$ AS numbered \gset
SELECT ec_start('v1', :'numbered', 'num');
-- No rewrite: the table keeps its file (PostgreSQL's own ADD COLUMN of a serial would give it a
-- new one, as on the copy); existing rows are not numbered yet.
SELECT pg_relation_filenode('num.users') = :filenode AS same_file;
CREATE TABLE num.copy AS SELECT * FROM num.users;
SELECT pg_relation_filenode('num.copy') AS filenode \gset
ALTER TABLE num.copy ADD COLUMN n bigserial;
SELECT pg_relation_filenode('num.copy') = :filenode AS same_file_after_plain_add_column;
DROP TABLE num.copy;
SELECT attname, atthasdef, attnotnull FROM pg_attribute
 WHERE attrelid = 'num.users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'num.users'::regclass ORDER BY conname;
SELECT * FROM num_v1.users ORDER BY id;
-- Writes through either version get numbers from the sequences.
INSERT INTO num.users VALUES (3, 'cat');
SET search_path = num_v1;
INSERT INTO users (id, name) VALUES (4, 'dan') RETURNING *;
\set VERBOSITY sqlstate
-- NOT NULL in the new version only, as a check until complete (23514).
INSERT INTO users (id, name, counter_bigserial) VALUES (5, 'eve', NULL);
\set VERBOSITY default
-- (It used up a smallserial number, as any failed insert does.)
RESET search_path;
SELECT ec_resume('num');
CALL ec_wait('num');
SELECT * FROM num_v1.users ORDER BY id;
-- An old-version update keeps the numbers.
UPDATE num.users SET name = name || '!';
SELECT * FROM num_v1.users ORDER BY id;
SELECT ec_rollback('num');
SELECT * FROM ec_test.diff(:'before', 'num');
SELECT * FROM ec_test.leftovers();
SELECT * FROM num.users ORDER BY id;

SELECT ec_start('v1', :'numbered', 'num');
SELECT ec_resume('num');
CALL ec_wait('num');
SELECT ec_complete('num');
SELECT * FROM ec_test.leftovers();
SELECT attname, format_type(atttypid, atttypmod), attnotnull, attidentity, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'num.users'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'num.users'::regclass ORDER BY conname;
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'num.users'::regclass ORDER BY 1;
SELECT s.relname, d.refobjid::regclass, a.attname, d.deptype
  FROM pg_class s JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE s.relnamespace = 'num'::regnamespace AND s.relkind = 'S' ORDER BY 1;
SELECT sequencename, start_value, increment_by FROM pg_sequences WHERE schemaname = 'num' ORDER BY 1;
SELECT relreplident FROM pg_class WHERE oid = 'num.users'::regclass;
-- Numbering goes on where it was; the identity refuses a value now (428C9).
INSERT INTO num_v1.users (id, name) VALUES (6, 'fay') RETURNING *;
\set VERBOSITY sqlstate
INSERT INTO num_v1.users (id, name, ticket) VALUES (7, 'gus', 1);
\set VERBOSITY default
SELECT count(DISTINCT ticket) = count(*) AS tickets_unique, count(DISTINCT counter_bigserial) = count(*) AS counters_unique
  FROM num.users;

-- On a table created by the same migration there are no rows to fill: generated, identity and
-- serial columns are added as they are (the table is empty), named after their final names.
SELECT ec_start('v2', '{"operations": [
  {"create_table": {"name": "notes", "columns": [{"name": "id", "type": "int", "pk": true}, {"name": "body", "type": "text"}]}},
  {"add_column": {"table": "notes", "column": {"name": "shout", "type": "text", "generated": {"expression": "upper(body)"}}}},
  {"add_column": {"table": "notes", "column": {"name": "no", "type": "bigint", "generated": {"identity": {"user_specified_values": "BY DEFAULT", "sequence_options": "START WITH 7"}}}}},
  {"add_column": {"table": "notes", "column": {"name": "seq", "type": "serial"}}}]}', 'num');
INSERT INTO num_v2.notes (id, body) VALUES (1, 'hi') RETURNING *;
SELECT ec_resume('num');
SELECT ec_complete('num');
SELECT attname, attidentity, attgenerated, attnotnull, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'num.notes'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;
SELECT pg_get_serial_sequence('num.notes', 'no') AS no_seq, pg_get_serial_sequence('num.notes', 'seq') AS seq_seq;
INSERT INTO num_v2.notes (id, body) VALUES (2, 'there') RETURNING *;
SELECT * FROM ec_test.leftovers();

-- A stored generated column on an existing table would rewrite it under the lock: refused.  And
-- the combinations PostgreSQL refuses, named by their fields.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('num') x \gset
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "users", "column": {"name": "shout", "type": "text", "generated": {"expression": "upper(name)"}}}}]}', 'num');
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "users", "up": "1", "column": {"name": "n", "type": "int", "generated": {"identity": {}}}}}]}', 'num');
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "users", "column": {"name": "n", "type": "serial", "default": "1"}}}]}', 'num');
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "users", "column": {"name": "n", "type": "bigserial", "generated": {"identity": {}}}}}]}', 'num');
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "users", "column": {"name": "n", "type": "text", "generated": {"identity": {}}}}}]}', 'num');
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "users", "column": {"name": "n", "type": "int", "generated": {"identity": {"sequence_options": "MAXVALUE 10 MINVALUE 20"}}}}}]}', 'num');
SELECT * FROM ec_test.diff(:'before', 'num');
SELECT * FROM ec_test.leftovers();
DROP SCHEMA num, num_v2 CASCADE;
DELETE FROM expand_contract.migrations;
