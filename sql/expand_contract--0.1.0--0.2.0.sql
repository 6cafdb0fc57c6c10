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

-- Revert after complete (src/revert.c).  A migration completed with a revert window keeps its old
-- structure until the window ends: its row here says until when, what ec_revert runs to undo what
-- complete did (before the migration's rollback_steps), and what the final contract still has to
-- drop (the dual-write triggers, the old columns and dropped tables kept aside under _ec_ names,
-- the previous version's schema).  The migration's dual_writes rows stay meanwhile: the trigger
-- keeps the old columns in step.
CREATE TABLE expand_contract.revert_windows (
    migration_id   bigint      PRIMARY KEY REFERENCES expand_contract.migrations ON DELETE CASCADE,
    ends_at        timestamptz NOT NULL,
    revert_steps   text[]      NOT NULL DEFAULT '{}',
    cleanup_steps  text[]      NOT NULL DEFAULT '{}'
);
SELECT pg_catalog.pg_extension_config_dump('expand_contract.revert_windows', '');
GRANT SELECT ON expand_contract.revert_windows TO PUBLIC;

DROP FUNCTION pg_catalog.ec_complete(text, boolean);
CREATE FUNCTION pg_catalog.ec_complete(schema text DEFAULT 'public', wait boolean DEFAULT true,
                                       revert_window interval DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'ec_complete' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_complete(text, boolean, interval) IS
    'complete the active migration: drop the old structure and the previous version schema, or keep them aside for a revert window';

CREATE FUNCTION pg_catalog.ec_revert(schema text DEFAULT 'public')
    RETURNS void AS 'MODULE_PATHNAME', 'ec_revert' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_revert(text) IS
    'during its revert window, put the schema back as it was before the latest migration started';

CREATE FUNCTION pg_catalog.ec_cleanup(schema text DEFAULT 'public')
    RETURNS void AS 'MODULE_PATHNAME', 'ec_cleanup' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_cleanup(text) IS
    'end the revert window of the latest migration now: drop the old structure it kept aside';
