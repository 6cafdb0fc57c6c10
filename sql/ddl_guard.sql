-- The DDL guard: plain DDL that would break an active migration's version views, dual-write trigger
-- or contract steps is refused, naming the migration; harmless DDL passes; the extension's own DDL
-- (start, complete, rollback, a "sql" operation) passes; expand_contract.allow_ddl lets it through
-- with a warning; after complete the guard is off.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE SCHEMA dg;
CREATE TABLE dg.t (id int PRIMARY KEY, a int, b text DEFAULT 'x', CONSTRAINT b_len CHECK (length(b) < 100));
CREATE TABLE dg.other (id int PRIMARY KEY, c int);
INSERT INTO dg.t VALUES (1, 10, 'one');
SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "t", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}},
  {"create_table": {"name": "made", "columns": [{"name": "id", "type": "int", "pk": true}]}}]}', 'dg');
-- Refused, one kind each: on a table the migration moves data of, ...
ALTER TABLE dg.t DROP COLUMN b;
ALTER TABLE dg.t RENAME COLUMN b TO bb;
ALTER TABLE dg.t ALTER COLUMN a TYPE numeric;
ALTER TABLE dg.t ALTER COLUMN b SET DEFAULT 'y';
ALTER TABLE dg.t ALTER COLUMN b SET NOT NULL;
ALTER TABLE dg.t ADD COLUMN c int;
ALTER TABLE dg.t DROP CONSTRAINT b_len;
ALTER TABLE dg.t RENAME CONSTRAINT b_len TO b_length;
ALTER TABLE dg.t RENAME TO t2;
ALTER TABLE dg.t SET SCHEMA public;
DROP TABLE dg.t;
ALTER TABLE dg.t DISABLE TRIGGER "!ec_dual_write_first";
ALTER TABLE dg.t DISABLE TRIGGER ALL;
ALTER TABLE dg.t DISABLE TRIGGER USER;
ALTER TRIGGER "~ec_dual_write_last" ON dg.t RENAME TO x;
DROP TRIGGER "~ec_dual_write_last" ON dg.t;
-- ... on a table it leaves alone (the version views show it too), on one it created, ...
ALTER TABLE dg.other DROP COLUMN c;
DROP TABLE dg.other, dg.made;
DROP TABLE dg.made;
-- ... on the version schema and its views, and on the migrated schema.
DROP VIEW dg_v1.t;
ALTER VIEW dg_v1.t RENAME COLUMN b TO bb;
ALTER VIEW dg_v1.t ALTER COLUMN b SET DEFAULT 'z';
DROP SCHEMA dg_v1 CASCADE;
ALTER SCHEMA dg_v1 RENAME TO dg_v1b;
DROP SCHEMA dg CASCADE;
ALTER SCHEMA dg RENAME TO dg2;
-- Nothing of that happened.
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'dg.t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'dg.t'::regclass ORDER BY 1;
-- Harmless DDL passes: an index, a comment, a grant, a constraint added, storage settings,
-- TRUNCATE, DDL on a table created since ec_start (no version view reads it), and DDL elsewhere.
CREATE INDEX t_b ON dg.t (b);
DROP INDEX dg.t_b;
COMMENT ON TABLE dg.t IS 'the t table';
COMMENT ON COLUMN dg.t.b IS 'b';
GRANT SELECT ON dg.t TO PUBLIC;
REVOKE SELECT ON dg.t FROM PUBLIC;
ALTER TABLE dg.t ADD CONSTRAINT id_pos CHECK (id > 0) NOT VALID;
ALTER TABLE dg.t VALIDATE CONSTRAINT id_pos;
ALTER TABLE dg.t ALTER COLUMN b SET STATISTICS 200;
ALTER TABLE dg.t SET (fillfactor = 90);
ALTER TABLE dg.t ENABLE ALWAYS TRIGGER "!ec_dual_write_first";
CREATE TABLE dg.scratch (id int);
TRUNCATE dg.scratch;
ALTER TABLE dg.scratch ADD COLUMN x int;
DROP TABLE dg.scratch;
CREATE TABLE public.elsewhere (id int, x int);
ALTER TABLE public.elsewhere DROP COLUMN x;
DROP TABLE public.elsewhere;
-- IF EXISTS of nothing passes too.
DROP TABLE IF EXISTS dg.nothing;
ALTER TABLE IF EXISTS dg.nothing DROP COLUMN x;
-- The override: it passes, with a warning.
BEGIN;
SET LOCAL expand_contract.allow_ddl = on;
ALTER TABLE dg.other RENAME COLUMN c TO cc;
ROLLBACK;
-- The override covers neither a new partition nor pg_repack (they would leave rows unconverted).
CREATE TABLE dg.p (id int, a int) PARTITION BY RANGE (id);
CREATE TABLE dg.p1 PARTITION OF dg.p FOR VALUES FROM (0) TO (100);
SELECT ec_rollback('dg');
SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "p", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}}]}', 'dg');
BEGIN;
SET LOCAL expand_contract.allow_ddl = on;
CREATE TABLE dg.p2 PARTITION OF dg.p FOR VALUES FROM (100) TO (200);
ROLLBACK;
BEGIN;
SET LOCAL expand_contract.allow_ddl = on;
CREATE TRIGGER repack_trigger AFTER INSERT ON dg.p1 FOR EACH ROW EXECUTE FUNCTION repack.repack_trigger();
ROLLBACK;
-- A partition in another schema is covered through its parent.
SELECT ec_rollback('dg');
CREATE SCHEMA parts;
CREATE TABLE parts.p2 PARTITION OF dg.p FOR VALUES FROM (100) TO (200);
SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "p", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}}]}', 'dg');
ALTER TABLE parts.p2 RENAME TO p2b;
SELECT ec_rollback('dg');
-- The extension's own DDL passes: start, rollback (above), a "sql" operation at start, at complete
-- and at rollback, and complete.
SELECT ec_start('v1', '{"operations": [
  {"sql": {"up": "ALTER TABLE other RENAME COLUMN c TO c2", "down": "ALTER TABLE other RENAME COLUMN c2 TO c"}},
  {"alter_column": {"table": "t", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}}]}', 'dg');
ALTER TABLE dg.other RENAME COLUMN c2 TO c3;
SELECT ec_rollback('dg');
SELECT attname FROM pg_attribute WHERE attrelid = 'dg.other'::regclass AND attnum > 0 ORDER BY attnum;
SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "t", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}},
  {"sql": {"up": "ALTER TABLE other RENAME COLUMN c TO c2", "onComplete": true}}]}', 'dg');
SELECT ec_resume('dg');
SELECT ec_complete('dg');
SELECT attname FROM pg_attribute WHERE attrelid = 'dg.other'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
-- An error inside the extension's DDL, caught, leaves the guard as it was: on for the next
-- migration.
DO $$
BEGIN
  PERFORM ec_start('v3', '{"operations": [{"sql": {"up": "ALTER TABLE t RENAME COLUMN b TO b2; SELECT 1/0"}}]}', 'dg');
EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'caught: %', SQLERRM;
END $$;
-- A second migration: the previous version's schema (dg_v1) is covered too while it lasts.
SELECT ec_start('v2', '{"operations": [
  {"rename_column": {"table": "other", "from": "id", "to": "ident"}}]}', 'dg');
DROP VIEW dg_v1.t;
DROP SCHEMA dg_v2 CASCADE;
ALTER TABLE dg.t DROP COLUMN b;
SELECT ec_resume('dg');
SELECT ec_complete('dg');
-- After complete the guard is off.
ALTER TABLE dg.t RENAME COLUMN b TO bb;
ALTER TABLE dg.t ALTER COLUMN bb SET DEFAULT 'z';
ALTER TABLE dg.t ADD COLUMN d int;
-- The replica identity of a covered table is the migration's business (a publication's column list
-- must cover it): a set_replica_identity operation, not plain DDL.
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "t", "column": "d", "type": "bigint"}}]}', 'dg');
ALTER TABLE dg.t REPLICA IDENTITY FULL;
SELECT ec_rollback('dg');
-- During a revert window the guard stays on: ec_revert and the window's end need the kept-aside
-- column, the triggers and the previous version's views; after ec_cleanup it is off.
SELECT ec_start('v5', '{"operations": [{"drop_column": {"table": "t", "column": "d", "down": "0"}}]}', 'dg');
SELECT ec_complete('dg', revert_window => '1 hour');
ALTER TABLE dg.t DROP COLUMN _ec_old_d;
ALTER TABLE dg.t DISABLE TRIGGER USER;
DROP VIEW dg_v2.t;
SET expand_contract.allow_ddl = on;
ALTER TABLE dg.t ALTER COLUMN bb DROP DEFAULT;
RESET expand_contract.allow_ddl;
SELECT ec_revert('dg');
SELECT attname FROM pg_attribute WHERE attrelid = 'dg.t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT ec_start('v5', '{"operations": [{"drop_column": {"table": "t", "column": "d", "down": "0"}}]}', 'dg');
SELECT ec_complete('dg', revert_window => '1 hour');
SELECT ec_cleanup('dg');
ALTER TABLE dg.t RENAME COLUMN bb TO b3;
-- A function that "up" or "down" calls cannot be dropped while the migration needs it (every write
-- would fail): the dual-write trigger depends on it.  After rollback it can.
CREATE FUNCTION dg.twice(int) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1::bigint * 2';
CREATE FUNCTION dg.half(bigint) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT ($1 / 2)::int';
CREATE TABLE dg.f (id int PRIMARY KEY, a int);
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "f", "column": "a", "type": "bigint",
  "up": "dg.twice(a)", "down": "dg.half(a)"}}]}', 'dg');
DROP FUNCTION dg.twice(int);
DROP FUNCTION dg.half(bigint);
CREATE OR REPLACE VIEW dg_v6.f AS SELECT id, 0::bigint AS a FROM dg.f;
SELECT ec_rollback('dg');
DROP FUNCTION dg.twice(int), dg.half(bigint);
-- A view made during the migration on a column that complete drops is not the migration's to
-- carry: complete stops at it, says what to do, and changes nothing; without the view it goes on.
SELECT ec_start('v7', '{"operations": [{"drop_column": {"table": "f", "column": "a", "down": "0"}}]}', 'dg');
CREATE VIEW dg.f_a AS SELECT id, a FROM dg.f;
SELECT ec_complete('dg');
SELECT phase FROM ec_status('dg');
DROP VIEW dg.f_a;
SELECT ec_complete('dg');
SELECT * FROM ec_test.leftovers();
SET client_min_messages = warning;
DROP SCHEMA dg, dg_v2, parts CASCADE;
DELETE FROM expand_contract.migrations;
