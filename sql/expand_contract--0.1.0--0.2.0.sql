-- expand_contract 0.1.0 -> 0.2.0: upgrade script.
--
-- 0.1.0's install script is frozen as released; everything 0.2.0 adds or changes is here, and a fresh
-- CREATE EXTENSION runs 0.1.0's script and then this one.  The 0.2.0 library also runs against a
-- 0.1.0 catalog (between a package upgrade and ALTER EXTENSION ... UPDATE): migrations started
-- under 0.1.0 continue, back-fill and complete; features that need this script's objects say so.
--
-- Rules for what goes here: CREATE OR REPLACE where a signature stays; DROP and CREATE (with its
-- GRANTs and COMMENT again) where it changes; ALTER TABLE ... ADD COLUMN with a default for the state
-- tables, never a rewrite of existing rows' meaning.

\echo Use "ALTER EXTENSION expand_contract UPDATE TO '0.2.0'" to load this file. \quit

-- ec_wait in C: the same wait as ec_complete's (src/wait.c), committing between polls when called
-- with CALL outside a transaction block, and waiting in the caller's transaction inside one.
CREATE OR REPLACE PROCEDURE pg_catalog.ec_wait(schema text DEFAULT 'public', timeout interval DEFAULT NULL)
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'ec_wait';
DROP FUNCTION expand_contract.wait_state(text);

-- A dry run of ec_start (dryrun.c): its steps and those of the worker, ec_complete and ec_rollback.
CREATE FUNCTION pg_catalog.ec_plan(name text, migration jsonb, schema text DEFAULT 'public')
    RETURNS TABLE (phase text, step integer, relation text, lock text, sql text, rows bigint,
                   estimate interval, note text)
    AS 'MODULE_PATHNAME', 'ec_plan' LANGUAGE C VOLATILE ROWS 20;
COMMENT ON FUNCTION pg_catalog.ec_plan(text, jsonb, text) IS
    'dry-run a migration: the steps, locks, rows and estimated times of its start, worker, complete and rollback, changing nothing';
