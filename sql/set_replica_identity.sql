-- set_replica_identity: applied to the table at start (both versions share it, as in pgroll);
-- rollback restores the previous identity exactly, USING INDEX of the previous index included.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.fruits (id int PRIMARY KEY, name text NOT NULL, code int NOT NULL);
CREATE UNIQUE INDEX fruits_code_idx ON app.fruits (code);
CREATE UNIQUE INDEX fruits_name_idx ON app.fruits (name);
CREATE INDEX fruits_plain_idx ON app.fruits (name, code);
ALTER TABLE app.fruits REPLICA IDENTITY USING INDEX fruits_code_idx;
INSERT INTO app.fruits VALUES (1, 'apple', 10);
-- The table's identity and the index that carries it, if any.
CREATE FUNCTION ec_test.identity() RETURNS TABLE (relname name, relreplident "char", replident_index text)
  LANGUAGE sql AS $$
  SELECT c.relname, c.relreplident,
         (SELECT string_agg(i.indexrelid::regclass::text, ', ') FROM pg_index i
           WHERE i.indrelid = c.oid AND i.indisreplident)
    FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind = 'r' ORDER BY 1 $$;
SELECT * FROM ec_test.identity();
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- Each type, then rollback: back to USING INDEX fruits_code_idx each time.  The type is taken in
-- any case, as pgroll does.
SELECT ec_start('v1', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "full", "index": ""}}}]}', 'app');
SELECT * FROM ec_test.identity();
-- Both versions keep working.
INSERT INTO app.fruits VALUES (2, 'banana', 20);
SET search_path = app_v1;
UPDATE fruits SET name = 'cherry' WHERE id = 2 RETURNING *;
RESET search_path;
SELECT ec_rollback('app');
SELECT * FROM ec_test.identity();
SELECT ec_start('v1', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "NOTHING"}}}]}', 'app');
SELECT * FROM ec_test.identity();
SELECT ec_rollback('app');
SELECT * FROM ec_test.identity();
SELECT ec_start('v1', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "Default"}}}]}', 'app');
SELECT * FROM ec_test.identity();
SELECT ec_rollback('app');
SELECT * FROM ec_test.identity();
SELECT ec_start('v1', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index", "index": "fruits_name_idx"}}}]}', 'app');
SELECT * FROM ec_test.identity();
-- What rollback will run.
SELECT rollback_steps FROM expand_contract.migrations WHERE NOT done;
SELECT ec_rollback('app');
SELECT * FROM ec_test.identity();
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();

-- ALTER TABLE ... REPLICA IDENTITY needs ACCESS EXCLUSIVE: ec_start takes it up front, with retries.
BEGIN;
SELECT ec_start('v1', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "full"}}}]}', 'app');
SELECT mode FROM pg_locks WHERE locktype = 'relation' AND relation = 'app.fruits'::regclass
   AND pid = pg_backend_pid() ORDER BY 1;
ROLLBACK;

-- Start again and complete: the identity stays; then back to the default, also kept by complete.
SELECT ec_start('v1', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index", "index": "fruits_name_idx"}}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.identity();
SELECT ec_start('v2', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "default"}}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.identity();
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'app.fruits'::regclass ORDER BY 1;
SELECT * FROM ec_test.leftovers();

-- A table created by the same migration: set at start; rollback drops the table, nothing to restore.
SELECT ec_start('v3', '{"operations": [
  {"create_table": {"name": "basket", "columns": [{"name": "id", "type": "int", "pk": true}]}},
  {"set_replica_identity": {"table": "basket", "identity": {"type": "full"}}}]}', 'app');
SELECT * FROM ec_test.identity();
SELECT rollback_steps FROM expand_contract.migrations WHERE NOT done;
SELECT ec_rollback('app');
SELECT * FROM ec_test.identity();

-- Refused, with nothing left: an unknown type, type index without an index, an index with another
-- type, an index that does not exist, is not unique, or is not the table's; no table; no identity.
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "invalid_identity"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index", "index": ""}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "full", "index": "fruits_name_idx"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index", "index": "invalid_index"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index", "index": "fruits_plain_idx"}}}]}', 'app');
CREATE TABLE app.other (id int PRIMARY KEY);
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "index", "index": "other_pkey"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "doesntexist", "identity": {"type": "full"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits"}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": "full"}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "full", "bogus": 1}}}]}', 'app');

-- An identity that would make published UPDATE and DELETE fail breaks every running version at
-- once (pgroll sets it anyway): refused.  One that keeps rows identifiable is fine.
SET client_min_messages = error;
CREATE PUBLICATION ec_test_pub FOR TABLE app.fruits, app.other;
RESET client_min_messages;
ALTER TABLE app.other REPLICA IDENTITY FULL;
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "fruits", "identity": {"type": "nothing"}}}]}', 'app');
CREATE TABLE app.nokey (id int);
ALTER PUBLICATION ec_test_pub ADD TABLE app.nokey;
ALTER TABLE app.nokey REPLICA IDENTITY FULL;
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "nokey", "identity": {"type": "default"}}}]}', 'app');
SELECT ec_start('v3', '{"operations": [{"set_replica_identity": {"table": "other", "identity": {"type": "default"}}}]}', 'app');
SELECT ec_rollback('app');
SELECT * FROM ec_test.identity();
SELECT * FROM ec_test.leftovers();

DROP PUBLICATION ec_test_pub;
DROP FUNCTION ec_test.identity();
DROP SCHEMA app, app_v2 CASCADE;
DELETE FROM expand_contract.migrations;
