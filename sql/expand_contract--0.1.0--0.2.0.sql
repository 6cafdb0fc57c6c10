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

-- One event trigger decides which DDL may run during a migration (src/ddl_guard.c): it refuses plain
-- DDL that would break an active migration's version views, dual-write trigger or contract steps, and
-- runs 0.1.0's two checks (partitions created, attached, detached or dropped while a migration moves
-- their table's data; pg_repack's table repack), which it replaces.
DROP EVENT TRIGGER expand_contract_partition_ddl;
DROP FUNCTION expand_contract.partition_ddl();
DROP EVENT TRIGGER expand_contract_repack_guard;
DROP FUNCTION expand_contract.repack_guard();
CREATE FUNCTION expand_contract.ddl_guard() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'ec_ddl_guard' LANGUAGE C;
CREATE EVENT TRIGGER expand_contract_ddl_guard ON ddl_command_start
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'DROP TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER',
                 'DROP TRIGGER', 'ALTER VIEW', 'DROP VIEW', 'ALTER FOREIGN TABLE', 'DROP FOREIGN TABLE',
                 'ALTER SCHEMA', 'DROP SCHEMA')
    EXECUTE FUNCTION expand_contract.ddl_guard();
