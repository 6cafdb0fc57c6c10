-- drop_index: the index stays until complete (code of the old version may rely on it), which drops
-- it under its up-front table locks; rollback has nothing to undo.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE SCHEMA di;
CREATE TABLE di.users (id int PRIMARY KEY, email text, name text, team int,
                        CONSTRAINT users_name_key UNIQUE (name));
CREATE UNIQUE INDEX users_email_idx ON di.users (email);
CREATE INDEX users_team_idx ON di.users (team);
CREATE INDEX "Users Mixed ""Idx""" ON di.users (name DESC);
INSERT INTO di.users VALUES (1, 'ann@x', 'ann', 1), (2, 'bob@x', 'bob', 2);
-- A unique index (not a constraint) that a foreign key references, and a replica identity index.
CREATE TABLE di.teams (id int NOT NULL, code text);
CREATE UNIQUE INDEX teams_code_idx ON di.teams (code);
CREATE UNIQUE INDEX teams_id_idx ON di.teams (id);
ALTER TABLE di.teams REPLICA IDENTITY USING INDEX teams_id_idx;
CREATE TABLE di.members (id int PRIMARY KEY, team_code text REFERENCES di.teams (code));
-- A partitioned index and its partition.
CREATE TABLE di.events (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE di.events_2024 PARTITION OF di.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE INDEX events_at_idx ON di.events (at);
CREATE MATERIALIZED VIEW di.totals AS SELECT count(*) AS n FROM di.users;
CREATE INDEX totals_n_idx ON di.totals (n);
CREATE TABLE di.logs (id int);
CREATE INDEX logs_id_idx ON di.logs (id);
CREATE SCHEMA di_other;
CREATE TABLE di_other.t (id int);
CREATE INDEX other_idx ON di_other.t (id);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('di') x \gset

SELECT ec_start('v1', '{"operations": [
  {"drop_index": {"name": "users_email_idx"}},
  {"drop_index": {"name": "Users Mixed \"Idx\""}},
  {"drop_index": {"name": "events_at_idx"}}]}', 'di');
-- At start nothing is dropped: both versions keep the index and what it guarantees.
SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname IN ('users_email_idx', 'Users Mixed "Idx"', 'events_at_idx', 'events_2024_at_idx')
 ORDER BY 1;
\set VERBOSITY sqlstate
INSERT INTO di.users VALUES (3, 'ann@x', 'cat', 3);
SET search_path = di_v1;
INSERT INTO users VALUES (4, 'bob@x', 'dan', 4);
RESET search_path;
\set VERBOSITY default
-- Complete drops them, after locking their tables (a partitioned one with its partitions).
SELECT relids, complete_steps FROM expand_contract.migrations WHERE NOT done;
SELECT count(*) AS tasks FROM expand_contract.tasks;

-- Rollback: nothing to undo; the schema is exactly as before.
SELECT ec_rollback('di');
SELECT * FROM ec_test.diff(:'before', 'di');
SELECT * FROM ec_test.leftovers();

-- Again, then complete: the indexes (and the partitioned index's partitions) are gone, nothing else.
SELECT ec_start('v1', '{"operations": [
  {"drop_index": {"name": "users_email_idx"}},
  {"drop_index": {"name": "Users Mixed \"Idx\""}},
  {"drop_index": {"name": "events_at_idx"}}]}', 'di');
SELECT ec_complete('di');
SELECT * FROM ec_test.diff(:'before', 'di');
SELECT c.relname AS table, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisreplident
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'di'::regnamespace ORDER BY 1, 2;
SELECT relname, relreplident FROM pg_class WHERE oid IN ('di.users'::regclass, 'di.teams'::regclass)
 ORDER BY 1;
SELECT conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE connamespace = 'di'::regnamespace ORDER BY 1, 2;
-- The unique index no longer holds.
INSERT INTO di.users VALUES (3, 'ann@x', 'cat', 3);
SELECT * FROM ec_test.leftovers();

-- With other operations: an index whose column or table the migration drops (complete drops the
-- index with it first), and a replacement built by create_index.
SELECT ec_start('v2', '{"operations": [
  {"drop_index": {"name": "users_team_idx"}},
  {"drop_column": {"table": "users", "column": "team"}},
  {"drop_index": {"name": "logs_id_idx"}},
  {"drop_table": {"name": "logs"}},
  {"create_index": {"table": "users", "name": "users_email_plain", "columns": [{"column": "email"}]}}]}', 'di');
SELECT ec_resume('di');
CALL ec_wait('di');
SELECT ec_complete('di');
SELECT c.relname AS table, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'di'::regnamespace ORDER BY 1, 2;
SELECT to_regclass('di.logs') AS logs;
SELECT * FROM ec_test.leftovers();

-- Errors at start: each names the index and what to do instead; nothing is left behind.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('di') x \gset
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "nope"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "other_idx"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users_pkey"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users_name_key"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "teams_id_idx"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "teams_code_idx"}}]}', 'di');
CREATE INDEX events_id_idx ON di.events (id);
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "events_2024_id_idx"}}]}', 'di');
DROP INDEX di.events_id_idx;
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "totals_n_idx"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users_email_plain"}},
                                       {"drop_index": {"name": "users_email_plain"}}]}', 'di');
-- An index that create_index builds in the same migration does not exist yet at start.
SELECT ec_start('v3', '{"operations": [
  {"create_index": {"table": "users", "name": "users_id_idx", "columns": [{"column": "id"}]}},
  {"drop_index": {"name": "users_id_idx"}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": 5}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users_email_plain", "concurrently": true}}]}', 'di');
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users_email_plain\"; DROP TABLE di.users; --"}}]}', 'di');
SELECT * FROM ec_test.diff(:'before', 'di');
SELECT * FROM ec_test.leftovers();

-- Only the owner of the index's table may drop it.
CREATE ROLE ec_idx_stranger;
GRANT USAGE, CREATE ON SCHEMA di TO ec_idx_stranger;
SET ROLE ec_idx_stranger;
SELECT ec_start('v3', '{"operations": [{"drop_index": {"name": "users_email_plain"}}]}', 'di');
RESET ROLE;
REVOKE ALL ON SCHEMA di FROM ec_idx_stranger;
DROP ROLE ec_idx_stranger;

DROP SCHEMA di, di_v2, di_other CASCADE;
DELETE FROM expand_contract.migrations;
