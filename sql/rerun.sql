-- Re-runs: ec_start again with the same document does nothing; with another it says what differs.
-- ec_complete and ec_rollback with nothing to do say so.  And who writes through which version,
-- without shared memory (regression instances do not preload the library).
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET client_min_messages = notice;

CREATE SCHEMA rr;
CREATE TABLE rr.items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 0);
INSERT INTO rr.items VALUES (1, 'bolt', 10), (2, 'nut', 20);

SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}', 'rr');
-- The same document, whitespace and key order aside: nothing happens, the version schema comes back.
SELECT ec_start('v1', '{"operations": [{"rename_column": {"to": "title", "from": "name", "table": "items"}},
  {"alter_column": {"column": "qty", "table": "items", "type": "bigint"}}]}', 'rr');
SELECT name, done FROM expand_contract.migrations WHERE schema_name = 'rr' ORDER BY id;

-- The same name with another document: what differs, the first operation that does.
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "label"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}', 'rr');
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}},
  {"drop_column": {"table": "items", "column": "qty", "down": "0"}}]}', 'rr');
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}}]}', 'rr');
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}},
  {"drop_table": {"name": "items"}}]}', 'rr');
SELECT ec_start('v1', '{"version_schema": "w1", "operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}', 'rr');
-- Another name while v1 is active: as before, an error.
SELECT ec_start('v1b', '{"operations": [{"drop_table": {"name": "items"}}]}', 'rr');

-- Writes per version: counted only with shared_preload_libraries; here NULL, and the note says why.
INSERT INTO rr.items VALUES (3, 'washer', 30);
SELECT migration, old_version_last_write, old_version_writes, new_version_last_write,
       new_version_writes, usage_note FROM ec_status('rr');
CALL ec_wait('rr');
-- So a required quiet check cannot pass: it refuses, whether asked by the argument or the setting.
SELECT ec_complete('rr', require_quiet => true);
SET expand_contract.require_quiet = on;
SELECT ec_complete('rr');
-- The argument overrides the setting; a quiet_period of 0 turns the check off.
SET expand_contract.quiet_period = 0;
SELECT ec_complete('rr', require_quiet => true);
RESET expand_contract.quiet_period;
RESET expand_contract.require_quiet;
SELECT name, done FROM expand_contract.migrations WHERE schema_name = 'rr' ORDER BY id;

-- Run again after complete: start does nothing, and complete and rollback have nothing to do.
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}', 'rr');
SELECT ec_complete('rr');
SELECT ec_rollback('rr');
SELECT ec_complete('rr');

-- A re-run of v1's file while v2 is active: its ec_complete leaves v2 alone.
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "items", "column":
  {"name": "note", "type": "text", "nullable": true}}}]}', 'rr');
SELECT ec_start('v1', '{"operations": [
  {"rename_column": {"table": "items", "from": "name", "to": "title"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}', 'rr');
SELECT ec_complete('rr');
SELECT name, done FROM expand_contract.migrations WHERE schema_name = 'rr' ORDER BY id;
-- The session remembers that once: the next call acts as usual, this ec_rollback rolls v2 back.
SELECT ec_rollback('rr');
SELECT name, done FROM expand_contract.migrations WHERE schema_name = 'rr' ORDER BY id;
SELECT ec_rollback('rr');

-- v2's file run twice in a row (start, complete; start, complete), all in one transaction.
BEGIN;
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "items", "column":
  {"name": "note", "type": "text", "nullable": true}}}]}', 'rr');
SELECT ec_complete('rr', wait => false);
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "items", "column":
  {"name": "note", "type": "text", "nullable": true}}}]}', 'rr');
SELECT ec_complete('rr', wait => false);
COMMIT;
SELECT name, done FROM expand_contract.migrations WHERE schema_name = 'rr' ORDER BY id;
SELECT * FROM rr.items ORDER BY id;

-- A schema that never had a migration: still an error, a wrong name is something a tool must hear.
CREATE SCHEMA rr_none;
SELECT ec_complete('rr_none');
SELECT ec_rollback('rr_none');

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS rr, rr_none, rr_v1, rr_v2 CASCADE;
DELETE FROM expand_contract.migrations;
