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

-- A failed task's error as ec_status(), ec_wait() and ec_complete() show it: the worker's message and
-- the failing row's key.  The format is the C library's (src/state_tasks.c), which ec_wait() and
-- ec_complete() use directly, also against a 0.1.0 catalog.  (0.1.0's wait_state, which only a CALL
-- ec_wait() of 0.1.0 still calls, keeps its own copy until 0.3.0 drops it.)
CREATE FUNCTION expand_contract.task_failure_text(last_error text, error_row text) RETURNS text
    AS 'MODULE_PATHNAME', 'ec_task_failure_text_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION expand_contract.task_failure_text(text, text) IS
    'a failed task''s error with the failing row''s key, as ec_status, ec_wait and ec_complete show it (NULL without an error)';

-- expand_contract.wait_state stays for this release: a CALL ec_wait() of 0.1.0 running while the update
-- runs still calls it.  0.3.0 drops it.

-- A dry run of ec_start (dryrun.c): its steps and those of the worker, ec_complete and ec_rollback.
CREATE FUNCTION pg_catalog.ec_plan(name text, migration jsonb, schema text DEFAULT 'public')
    RETURNS TABLE (phase text, step integer, relation text, lock text, sql text, rows bigint,
                   estimate interval, note text)
    AS 'MODULE_PATHNAME', 'ec_plan' LANGUAGE C VOLATILE ROWS 20;
COMMENT ON FUNCTION pg_catalog.ec_plan(text, jsonb, text) IS
    'dry-run a migration: the steps, locks, rows and estimated times of its start, worker, complete and rollback, changing nothing';

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
    cleanup_steps  text[]      NOT NULL DEFAULT '{}',
    -- Run by the migration's worker at the window's start, outside any transaction block, and
    -- emptied once done: what a revert of a rebuilt primary key needs (the old key's index built
    -- concurrently, the foreign keys to it added NOT VALID and validated).  ec_revert waits for it.
    prepare_steps  text[]      NOT NULL DEFAULT '{}',
    -- The window's worker's last failure (of its prepare steps or of the final cleanup, each tried
    -- again every 10 seconds), cleared once the prepare steps are done; ec_status shows it.
    last_error     text
);
SELECT pg_catalog.pg_extension_config_dump('expand_contract.revert_windows', '');
GRANT SELECT ON expand_contract.revert_windows TO PUBLIC;

-- ec_complete: revert_window (NULL: the setting expand_contract.revert_window) and require_quiet
-- (NULL: the setting expand_contract.require_quiet).
DROP FUNCTION pg_catalog.ec_complete(text, boolean);
CREATE FUNCTION pg_catalog.ec_complete(schema text DEFAULT 'public', wait boolean DEFAULT true,
                                       revert_window interval DEFAULT NULL,
                                       require_quiet boolean DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'ec_complete' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_complete(text, boolean, interval, boolean) IS
    'complete the active migration: drop the old structure and the previous version schema, or keep them aside for a revert window';

CREATE FUNCTION pg_catalog.ec_revert(schema text DEFAULT 'public')
    RETURNS void AS 'MODULE_PATHNAME', 'ec_revert' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_revert(text) IS
    'during its revert window, put the schema back as it was before the latest migration started';

CREATE FUNCTION pg_catalog.ec_cleanup(schema text DEFAULT 'public')
    RETURNS void AS 'MODULE_PATHNAME', 'ec_cleanup' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_cleanup(text) IS
    'end the revert window of the latest migration now: drop the old structure it kept aside';


-- Writes per version, counted by the dual-write trigger in shared memory when the library is
-- preloaded (usage.c): for ec_status.
CREATE FUNCTION expand_contract.version_usage(migration_id bigint, started_at timestamptz,
    OUT old_last_write timestamptz, OUT old_writes bigint,
    OUT new_last_write timestamptz, OUT new_writes bigint, OUT note text)
    AS 'MODULE_PATHNAME', 'ec_version_usage' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION expand_contract.version_usage(bigint, timestamptz) IS
    'per version of a migration: the last write and the writes of the last 15 minutes since the server started';

-- ec_status: phase 'revert window' and the column revert_window_ends; then per version the last
-- write and the recent writes.
DROP FUNCTION pg_catalog.ec_status(text);
CREATE FUNCTION pg_catalog.ec_status(schema text DEFAULT NULL)
    RETURNS TABLE (schema_name name, migration text, parent text, version_schema name, phase text,
                   table_name text, backfill_state text, rows_done bigint, rows_estimated bigint,
                   batches bigint, rows_per_second numeric, eta interval, detail text,
                   started_at timestamptz, completed_at timestamptz, tasks text,
                   revert_window_ends timestamptz,
                   old_version_last_write timestamptz, old_version_writes bigint,
                   new_version_last_write timestamptz, new_version_writes bigint, usage_note text)
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT pg_catalog.ec_ensure_workers();
    SELECT m.schema_name, m.name, m.parent, m.version_schema,
           CASE WHEN w.migration_id IS NOT NULL THEN 'revert window'
                WHEN m.done THEN 'complete' ELSE 'active' END,
           t.table_name,
           CASE WHEN t.seq IS NULL THEN 'none'
                WHEN m.paused AND t.state IN ('pending', 'running', 'throttled') THEN 'paused'
                WHEN t.state = 'pending' THEN 'queued'
                -- why: "throttled: load", "throttled: replication lag"
                WHEN t.state = 'throttled' THEN 'throttled: ' || coalesce(substring(t.detail FROM '^([a-z ]+):'), 'waiting')
                ELSE t.state END,
           t.rows_done, t.rows_estimated, t.batches,
           round(t.rows_done / nullif(extract(epoch FROM coalesce(t.finished_at, t.updated_at) - t.started_at), 0), 1),
           CASE WHEN t.state = 'done' THEN interval '0'
                WHEN t.rows_done > 0 AND t.blocks_total > 0 AND t.blocks_done > 0 THEN
                     (coalesce(t.updated_at, now()) - t.started_at)
                     * ((t.blocks_total - t.blocks_done)::float8 / t.blocks_done) END,
           coalesce(t.detail
                    -- the compaction's VACUUM of the filled blocks, with its progress
                    || CASE WHEN t.detail LIKE 'vacuuming%' THEN
                            coalesce((SELECT ': ' || v.phase || coalesce(', ' || round(100.0 * v.heap_blks_scanned
                                             / nullif(v.heap_blks_total, 0)) || '% of blocks', '')
                                        FROM pg_catalog.pg_stat_progress_vacuum v
                                       WHERE v.relid = t.relid LIMIT 1), '')
                            ELSE '' END,
                    expand_contract.task_failure_text(t.last_error, t.error_row)),
           m.started_at, m.completed_at,
           -- The worker's other unfinished work on the table, index builds with their progress,
           -- constraints added and validated; tables without a backfill have theirs shown on the
           -- first row.
           nullif(pg_catalog.concat_ws('; ',
           (SELECT string_agg(pg_catalog.concat_ws(' ',
                       coalesce((SELECT CASE WHEN x[1] LIKE 'CREATE%' THEN 'index ' || x[2]
                                             WHEN x[1] LIKE 'VALIDATE%' THEN 'validate ' || x[2]
                                             WHEN x[1] LIKE 'REINDEX%' THEN 'reindex ' || x[2]
                                             WHEN x[1] LIKE 'VACUUM%' THEN 'vacuum ' || x[2]
                                             ELSE 'add ' || x[2] END
                                   FROM regexp_match(o.sql,
                                          '(CREATE (?:UNIQUE )?INDEX CONCURRENTLY|VALIDATE CONSTRAINT|ADD CONSTRAINT|REINDEX INDEX CONCURRENTLY|VACUUM \([^)]*\)) (\S+)') x),
                                left(o.sql, 60)),
                       CASE WHEN m.paused AND o.state IN ('pending', 'running', 'throttled') THEN 'paused'
                            WHEN o.state = 'pending' THEN 'queued'
                            ELSE o.state END,
                       (SELECT '(' || lower(p.phase)
                               || coalesce(', ' || round(100.0 * p.blocks_done / nullif(p.blocks_total, 0))
                                  || '% of blocks', '') || ')'
                          FROM pg_catalog.pg_stat_progress_create_index p
                         WHERE o.state = 'running' AND p.relid = o.relid
                           AND p.command IN ('CREATE INDEX CONCURRENTLY', 'REINDEX CONCURRENTLY') LIMIT 1),
                       -- the compaction's VACUUM (compact.c): its progress
                       (SELECT '(' || v.phase || coalesce(', ' || round(100.0 * v.heap_blks_scanned
                                             / nullif(v.heap_blks_total, 0)) || '% of blocks', '') || ')'
                          FROM pg_catalog.pg_stat_progress_vacuum v
                         WHERE o.state = 'running' AND o.kind = 'compact' AND o.sql LIKE 'VACUUM%'
                           AND v.relid = o.relid LIMIT 1)), '; ' ORDER BY o.seq)
              FROM expand_contract.tasks o
             WHERE o.migration_id = m.id AND o.kind <> 'backfill' AND o.state <> 'done'
               AND o.seq IS DISTINCT FROM t.seq
               AND (t.seq IS NULL OR o.relid = t.relid
                    OR (t.seq = (SELECT min(b.seq) FROM expand_contract.tasks b
                                  WHERE b.migration_id = m.id AND b.kind = 'backfill')
                        AND NOT EXISTS (SELECT FROM expand_contract.tasks b
                                         WHERE b.migration_id = m.id AND b.kind = 'backfill'
                                           AND b.relid = o.relid)))),
           -- A revert window's prepare steps (revert.c): until they are done, ec_revert refuses.
           CASE WHEN cardinality(w.prepare_steps) > 0 THEN
                'preparing ec_revert: ' || cardinality(w.prepare_steps)
                || ' step(s) left (the old key''s index built again, its foreign keys added)'
                || coalesce('; ' || w.last_error || ' (tried again every 10 seconds)', '')
                WHEN w.last_error IS NOT NULL THEN w.last_error || ' (tried again every 10 seconds)' END), ''),
           w.ends_at,
           u.old_last_write, u.old_writes, u.new_last_write, u.new_writes, u.note
      FROM (SELECT DISTINCT ON (schema_name) *
              FROM expand_contract.migrations
             WHERE $1 IS NULL OR schema_name = $1
             ORDER BY schema_name, id DESC) m
      -- Who writes through which version, from shared memory (NULL and a note without it).
      CROSS JOIN LATERAL expand_contract.version_usage(m.id, m.started_at) u
      -- Complete with a revert window (ec_complete(revert_window => ...)): until when ec_revert works.
      LEFT JOIN expand_contract.revert_windows w ON w.migration_id = m.id
      -- Other tasks (index builds, validations) once they failed: the worker stopped at them.
      -- A backfill split into parts shows as one row: the parts' sums, its most telling state.
      LEFT JOIN (SELECT p.migration_id, p.seq, min(p.kind) AS kind, min(p.relid::oid)::regclass AS relid,
                        min(p.table_name) AS table_name,
                        CASE WHEN bool_or(p.state = 'failed') THEN 'failed'
                             WHEN bool_and(p.state = 'done') THEN 'done'
                             WHEN bool_or(p.state = 'running') THEN 'running'
                             WHEN bool_or(p.state = 'throttled') THEN 'throttled'
                             WHEN bool_or(p.state = 'paused') THEN 'paused'
                             WHEN bool_or(p.state = 'done') THEN 'running'
                             ELSE 'pending' END AS state,
                        sum(p.rows_done)::bigint AS rows_done, sum(p.rows_estimated)::bigint AS rows_estimated,
                        sum(p.batches)::bigint AS batches,
                        sum(p.next_block - p.first_block)::bigint AS blocks_done,
                        sum(p.total_blocks - p.first_block)::bigint AS blocks_total,
                        min(p.started_at) AS started_at, max(p.updated_at) AS updated_at,
                        CASE WHEN bool_and(p.state = 'done') THEN max(p.finished_at) END AS finished_at,
                        CASE WHEN NOT bool_or(p.state = 'failed') THEN
                             (array_agg(p.detail ORDER BY p.state = 'throttled' DESC, p.part)
                                 FILTER (WHERE p.detail IS NOT NULL))[1] END AS detail,
                        (array_agg(p.last_error ORDER BY p.part) FILTER (WHERE p.state = 'failed'))[1] AS last_error,
                        (array_agg(p.error_row ORDER BY p.part) FILTER (WHERE p.state = 'failed'))[1] AS error_row
                   FROM expand_contract.tasks p
                  GROUP BY p.migration_id, p.seq) t
             ON t.migration_id = m.id AND (t.kind = 'backfill' OR t.state = 'failed')
     ORDER BY m.schema_name, t.seq
    $$;
COMMENT ON FUNCTION pg_catalog.ec_status(text) IS
    'state of the latest migration of each schema (and its revert window), one row per table being backfilled and per failed background task, with the worker''s other unfinished tasks';

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
                 'ALTER SCHEMA', 'DROP SCHEMA', 'CREATE VIEW')
    EXECUTE FUNCTION expand_contract.ddl_guard();
-- Its second half, at the command's end: during a revert window, an object made to read a kept-aside
-- column or table (a view with SELECT *, a trigger, a policy, a function's SQL body) would stop the
-- window's end; refused.
CREATE FUNCTION expand_contract.ddl_guard_end() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'ec_ddl_guard_end' LANGUAGE C;
CREATE EVENT TRIGGER expand_contract_ddl_guard_end ON ddl_command_end
    WHEN TAG IN ('CREATE VIEW', 'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'CREATE TRIGGER',
                 'CREATE POLICY', 'ALTER POLICY', 'CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE RULE',
                 'CREATE SCHEMA')
    EXECUTE FUNCTION expand_contract.ddl_guard_end();
