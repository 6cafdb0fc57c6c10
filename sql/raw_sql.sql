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
-- Statements that cannot run inside the transaction of an ec_* call are refused when the document
-- is read, before anything runs: in "up", in "down" (rollback could never succeed) and in
-- "onComplete" (nor complete).  Transaction control, COPY with the client, what PostgreSQL
-- refuses inside a transaction block, and role changes (not allowed where complete and rollback
-- run the SQL).
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "CREATE TABLE y (id int);\n COMMIT"}}]}', 'app');
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "CREATE TABLE y (id int)", "down": "DROP TABLE y; COPY t FROM STDIN"}}]}', 'app');
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "CREATE INDEX CONCURRENTLY t_id ON t (id)"}}]}', 'app');
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "DROP INDEX CONCURRENTLY t_id_desc"}}]}', 'app');
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "VACUUM t", "onComplete": true}}]}', 'app');
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "REFRESH MATERIALIZED VIEW CONCURRENTLY mv"}}]}', 'app');
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "SELECT 1", "down": "SET ROLE NONE"}}]}', 'app');
-- A syntax error in "down" is found at start too, not at rollback.
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "CREATE TABLE y (id int)", "down": "DROP TABLE y; DROP TABEL z"}}]}', 'app');
SELECT count(*) FROM pg_class WHERE relname = 'y' AND relnamespace = 'app'::regnamespace;
SELECT * FROM ec_test.leftovers();
-- Every such statement in each place, with its SQLSTATE (never XX000), and statements that
-- PostgreSQL runs in a transaction block, which still run (each start is rolled back here).
CREATE MATERIALIZED VIEW app.mv AS SELECT id FROM app.t;
CREATE UNIQUE INDEX mv_id ON app.mv (id);
CREATE TABLE app.parted (id int) PARTITION BY RANGE (id);
CREATE TABLE app.parted_1 PARTITION OF app.parted FOR VALUES FROM (0) TO (10);
CREATE TEMP TABLE sql_outcome (n int, stmt text, place text, sqlstate text);
DO $$
DECLARE
  stmts text[] := ARRAY['BEGIN', 'START TRANSACTION', 'COMMIT', 'END', 'ROLLBACK', 'ABORT',
    'SAVEPOINT s', 'RELEASE SAVEPOINT s', 'ROLLBACK TO SAVEPOINT s', 'PREPARE TRANSACTION ''x''',
    'COMMIT PREPARED ''x''', 'ROLLBACK PREPARED ''x''', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'COPY t FROM STDIN', 'COPY t TO STDOUT', 'COPY (SELECT 1) TO STDOUT', 'VACUUM t', 'VACUUM (ANALYZE)',
    'CREATE INDEX CONCURRENTLY ON t (id)', 'CREATE UNIQUE INDEX CONCURRENTLY t_u ON t (id)',
    'DROP INDEX CONCURRENTLY t_id_desc', 'REINDEX TABLE CONCURRENTLY t', 'REINDEX (CONCURRENTLY) INDEX t_pkey',
    'REINDEX SCHEMA app', 'REINDEX DATABASE x', 'REFRESH MATERIALIZED VIEW CONCURRENTLY mv',
    'ALTER TABLE parted DETACH PARTITION parted_1 CONCURRENTLY',
    'CREATE SCHEMA s CREATE INDEX CONCURRENTLY ON t (id)', 'CLUSTER', 'DISCARD ALL',
    'CREATE DATABASE x', 'DROP DATABASE x', 'CREATE TABLESPACE x LOCATION ''/nonexistent''',
    'DROP TABLESPACE x', 'ALTER SYSTEM SET work_mem = ''1MB''', 'SET ROLE NONE', 'RESET ROLE',
    'SET SESSION AUTHORIZATION DEFAULT', 'SELECT 1; COMMIT; SELECT 2',
    -- refused by PostgreSQL when it runs them: at start for "up"; a "down" or "onComplete" of these
    -- would fail at rollback or complete (PL/pgSQL bodies and procedures are not looked into)
    'DO $x$ BEGIN COMMIT; END $x$', 'SELEC 1',
    -- allowed
    'ANALYZE t', 'REINDEX TABLE t', 'REINDEX (CONCURRENTLY false) TABLE t',
    'REFRESH MATERIALIZED VIEW mv', 'CREATE INDEX t_id2 ON t (id)',
    'ALTER TABLE parted DETACH PARTITION parted_1', 'SET work_mem = ''2MB'''];
  places text[] := ARRAY['up', 'down', 'onComplete'];
  place text;
  op jsonb;
BEGIN
  FOR i IN 1..array_length(stmts, 1) LOOP
    FOREACH place IN ARRAY places LOOP
      op := CASE place WHEN 'up' THEN jsonb_build_object('up', stmts[i])
                       WHEN 'down' THEN jsonb_build_object('up', 'SELECT 1', 'down', stmts[i])
                       ELSE jsonb_build_object('up', stmts[i], 'onComplete', true) END;
      BEGIN
        PERFORM ec_start('v2', jsonb_build_object('operations', jsonb_build_array(jsonb_build_object('sql', op))), 'app');
        RAISE EXCEPTION USING ERRCODE = 'EC000', MESSAGE = 'accepted';   -- roll it back
      EXCEPTION WHEN OTHERS THEN
        INSERT INTO sql_outcome VALUES (i, stmts[i], place, CASE WHEN SQLSTATE = 'EC000' THEN 'accepted' ELSE SQLSTATE END);
      END;
    END LOOP;
  END LOOP;
END $$;
SELECT stmt, string_agg(place || ' ' || sqlstate, ', ' ORDER BY place DESC) AS outcome
  FROM sql_outcome GROUP BY n, stmt ORDER BY n;
SELECT count(*) AS internal_errors FROM sql_outcome WHERE sqlstate LIKE 'XX%';
SELECT * FROM ec_test.leftovers();
DROP SCHEMA app, app_v1 CASCADE;
DELETE FROM expand_contract.migrations;
