-- expand_contract 0.1.0: install script (frozen as released; 0.2.0 and later changes go in the upgrade scripts).
--
-- The SQL API lives in pg_catalog (the control file's schema) so that it is callable unqualified with
-- any search_path and cannot be shadowed by objects a user creates in public.  The extension's own
-- state lives in the schema "expand_contract", which is never mirrored into version schemas.

\echo Use "CREATE EXTENSION expand_contract" to load this file. \quit

CREATE SCHEMA expand_contract;
COMMENT ON SCHEMA expand_contract IS 'state of expand_contract migrations';

-- One row per migration ever started and not rolled back: the history.
CREATE TABLE expand_contract.migrations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name     name        NOT NULL,
    name            text        NOT NULL,
    parent          text,
    version_schema  name        NOT NULL,
    migration       jsonb       NOT NULL,
    -- Roles and relations are stored as regrole/regclass: they dump as names and restore as the
    -- restored database's objects (raw OIDs would point at nothing after pg_dump/pg_restore).
    started_by      regrole     NOT NULL,
    -- The worker connects as the session user (started_by may be a role that cannot log in, used
    -- through SET ROLE) and then acts as started_by.
    login_role      regrole     NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    -- Every transaction from this xid on writes through the dual-write trigger: rows whose xmin
    -- precedes it are the only ones the backfill must fill.
    trigger_xid     xid         NOT NULL,
    -- Where trigger_xid, in_progress_xids and the node trees of dual_writes mean something: the
    -- cluster's system identifier, the database's OID and the catalog version they were taken in
    -- (see restore.c).  A restored database, another cluster or another major version differs.
    origin          text        NOT NULL,
    -- Transactions in progress at trigger_xid (and their subtransactions): they had not written the
    -- tables, and whatever they write later goes through the trigger, so the backfill skips their rows.
    in_progress_xids xid[]      NOT NULL DEFAULT '{}',
    completed_at    timestamptz,
    done            boolean     NOT NULL DEFAULT false,
    -- What ec_complete and ec_rollback run, computed by ec_start when it knew every name.
    validate_steps  text[]      NOT NULL DEFAULT '{}',
    complete_steps  text[]      NOT NULL DEFAULT '{}',
    rollback_steps  text[]      NOT NULL DEFAULT '{}',
    -- Tables whose structure the migration changes: locked (with retries) by ec_complete and ec_rollback.
    relids          regclass[]  NOT NULL DEFAULT '{}',
    -- Per-migration overrides of the expand_contract.batch_* settings (ec_configure), and pause.
    settings        jsonb       NOT NULL DEFAULT '{}',
    paused          boolean     NOT NULL DEFAULT false,
    UNIQUE (schema_name, name)
);
-- At most one active migration per schema.
CREATE UNIQUE INDEX migrations_one_active ON expand_contract.migrations (schema_name) WHERE NOT done;

-- Per table with data to move: what the dual-write trigger computes.  One row per table; the arrays are
-- parallel, one element per column pair.  Expressions are stored as node trees (like pg_attrdef.adbin), so
-- they do not depend on the writer's search_path or on column names; beside them, the same expressions
-- as SQL text over the physical column names with every object outside pg_catalog schema-qualified
-- (like pg_get_expr), and the columns by name: what a restored database or another major version
-- re-analyses, since node trees hold OIDs and attribute numbers that do not travel.
CREATE TABLE expand_contract.dual_writes (
    migration_id        bigint NOT NULL REFERENCES expand_contract.migrations ON DELETE CASCADE,
    relid               regclass NOT NULL,
    new_version_schema  name   NOT NULL,
    new_migration       text   NOT NULL,
    old_version_schema  name,
    old_migration       text,
    old_attnums         int2[] NOT NULL,
    new_attnums         int2[] NOT NULL,
    up_exprs            text[] NOT NULL,
    down_exprs          text[] NOT NULL,
    old_columns         name[] NOT NULL,
    new_columns         name[] NOT NULL,
    up_sources          text[] NOT NULL,
    down_sources        text[] NOT NULL,
    PRIMARY KEY (relid)
);

-- The migration's asynchronous work, done by its background worker in seq order, each step in its own
-- transaction: first a "backfill" per table (existing rows get their new columns from "up", in batches
-- of blocks), then "sql" tasks that must run outside a transaction block or outside the caller's
-- transaction (VALIDATE CONSTRAINT, CREATE INDEX CONCURRENTLY).  Progress is committed with each batch,
-- so the work resumes where it stopped after a crash or restart.  An "sql" task's cleanup undoes what a
-- failed attempt leaves behind (the INVALID index of a failed CREATE INDEX CONCURRENTLY): the worker
-- runs it after the task failed, and before it tries a task again that it tried before.
CREATE TABLE expand_contract.tasks (
    migration_id   bigint NOT NULL REFERENCES expand_contract.migrations ON DELETE CASCADE,
    seq            int    NOT NULL,
    -- A big table's backfill is split into parts, block ranges [first_block, total_blocks) that
    -- several workers can fill at once (worker.c); part 0 is the task as queued.
    part           int    NOT NULL DEFAULT 0,
    kind           text   NOT NULL CHECK (kind IN ('backfill', 'sql', 'compact')),
    relid          regclass,
    table_name     text,
    columns        name[],
    sql            text,
    cleanup        text,
    state          text   NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'running', 'paused', 'throttled', 'failed', 'done')),
    detail         text,
    rows_done      bigint NOT NULL DEFAULT 0,
    rows_estimated bigint,
    batches        bigint NOT NULL DEFAULT 0,
    first_block    bigint NOT NULL DEFAULT 0,
    next_block     bigint NOT NULL DEFAULT 0,
    total_blocks   bigint,
    last_error     text,
    error_row      text,
    started_at     timestamptz,
    updated_at     timestamptz,
    finished_at    timestamptz,
    PRIMARY KEY (migration_id, seq, part)
);

SELECT pg_catalog.pg_extension_config_dump('expand_contract.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('expand_contract.dual_writes', '');
SELECT pg_catalog.pg_extension_config_dump('expand_contract.tasks', '');
-- Without its sequence, a restored history would hand out ids it already has.
SELECT pg_catalog.pg_extension_config_dump('expand_contract.migrations_id_seq', '');

-- Privileges.  Only the extension's C functions change these tables, as the tables' owner, after
-- checking that the calling role owns what it migrates (ec_start) or has the privileges of the role
-- that started the migration (everything else): a grant of INSERT or UPDATE here would let a role
-- plant expressions that other roles' writes evaluate.  Reading is open, like the system catalogs:
-- every writing session's trigger reads its table's dual_writes row, and ec_status() and ec_wait()
-- read the rest as the caller.
GRANT USAGE ON SCHEMA expand_contract TO PUBLIC;
GRANT SELECT ON expand_contract.migrations, expand_contract.dual_writes, expand_contract.tasks TO PUBLIC;

CREATE FUNCTION expand_contract.dual_write() RETURNS trigger
    AS 'MODULE_PATHNAME', 'ec_dual_write' LANGUAGE C;

-- Whether the current write to the table comes from the new version of its active migration, as the
-- dual-write trigger decides it (never for the backfill): the WHEN of the stand-ins that fire a
-- user's UPDATE OF trigger for new-version updates of a rebuilt column (carry_views.c).
CREATE FUNCTION expand_contract.writes_new_version(rel regclass) RETURNS boolean
    AS 'MODULE_PATHNAME', 'ec_writes_new_version' LANGUAGE C STABLE STRICT;

-- The backfill worker's test of a row version to fill, the filter of its batches (it checks the
-- table's ownership; it reads the version's header from the page).
CREATE FUNCTION expand_contract.unfilled(rel oid, row_ctid tid, horizon xid, in_progress xid[])
    RETURNS boolean AS 'MODULE_PATHNAME', 'ec_unfilled' LANGUAGE C VOLATILE STRICT;

-- pg_repack's table repack is refused on a table whose data a migration moves (src/compact.c).
CREATE FUNCTION expand_contract.repack_guard() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'ec_repack_guard' LANGUAGE C;
CREATE EVENT TRIGGER expand_contract_repack_guard ON ddl_command_start
    WHEN TAG IN ('CREATE TRIGGER')
    EXECUTE FUNCTION expand_contract.repack_guard();

CREATE FUNCTION pg_catalog.ec_start(name text, migration jsonb, schema text DEFAULT 'public')
    RETURNS text AS 'MODULE_PATHNAME', 'ec_start' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_start(text, jsonb, text) IS
    'start a migration: expand the schema and create its version schema of views';

CREATE FUNCTION pg_catalog.ec_complete(schema text DEFAULT 'public', wait boolean DEFAULT true)
    RETURNS void AS 'MODULE_PATHNAME', 'ec_complete' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_complete(text, boolean) IS
    'complete the active migration: drop the old structure and the previous version schema';

CREATE FUNCTION pg_catalog.ec_rollback(schema text DEFAULT 'public')
    RETURNS void AS 'MODULE_PATHNAME', 'ec_rollback' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_rollback(text) IS
    'roll back the active migration, leaving the schema as it was before ec_start';

CREATE FUNCTION pg_catalog.ec_ensure_workers() RETURNS void
    AS 'MODULE_PATHNAME', 'ec_ensure_workers' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_ensure_workers() IS
    'start the background worker of every active migration in this database whose work is unfinished and has none';

CREATE FUNCTION pg_catalog.ec_pause(schema text DEFAULT 'public') RETURNS void
    AS 'MODULE_PATHNAME', 'ec_pause' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_pause(text) IS 'pause the backfill of the active migration after its current batch';

CREATE FUNCTION pg_catalog.ec_resume(schema text DEFAULT 'public') RETURNS void
    AS 'MODULE_PATHNAME', 'ec_resume' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_resume(text) IS
    'resume a paused backfill, or retry a failed one from the batch that failed';

CREATE FUNCTION pg_catalog.ec_configure(schema text, settings jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'ec_configure' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pg_catalog.ec_configure(text, jsonb) IS
    'set batch_size, batch_delay_ms or max_replication_lag_ms for the active migration (null resets to the server setting)';

CREATE FUNCTION pg_catalog.ec_status(schema text DEFAULT NULL)
    RETURNS TABLE (schema_name name, migration text, parent text, version_schema name, phase text,
                   table_name text, backfill_state text, rows_done bigint, rows_estimated bigint,
                   batches bigint, rows_per_second numeric, eta interval, detail text,
                   started_at timestamptz, completed_at timestamptz, tasks text)
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT pg_catalog.ec_ensure_workers();
    SELECT m.schema_name, m.name, m.parent, m.version_schema,
           CASE WHEN m.done THEN 'complete' ELSE 'active' END,
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
           coalesce(t.detail, CASE WHEN t.last_error IS NOT NULL THEN t.last_error
                                   || coalesce(' (row ' || t.error_row || ')', '') END),
           m.started_at, m.completed_at,
           -- The worker's other unfinished work on the table, index builds with their progress,
           -- constraints added and validated; tables without a backfill have theirs shown on the
           -- first row.
           (SELECT string_agg(pg_catalog.concat_ws(' ',
                       coalesce((SELECT CASE WHEN x[1] LIKE 'CREATE%' THEN 'index ' || x[2]
                                             WHEN x[1] LIKE 'VALIDATE%' THEN 'validate ' || x[2]
                                             WHEN x[1] LIKE 'REINDEX%' THEN 'reindex ' || x[2]
                                             ELSE 'add ' || x[2] END
                                   FROM regexp_match(o.sql,
                                          '(CREATE (?:UNIQUE )?INDEX CONCURRENTLY|VALIDATE CONSTRAINT|ADD CONSTRAINT|REINDEX INDEX CONCURRENTLY) (\S+)') x),
                                left(o.sql, 60)),
                       CASE WHEN m.paused AND o.state IN ('pending', 'running', 'throttled') THEN 'paused'
                            WHEN o.state = 'pending' THEN 'queued'
                            ELSE o.state END,
                       (SELECT '(' || lower(p.phase)
                               || coalesce(', ' || round(100.0 * p.blocks_done / nullif(p.blocks_total, 0))
                                  || '% of blocks', '') || ')'
                          FROM pg_catalog.pg_stat_progress_create_index p
                         WHERE o.state = 'running' AND p.relid = o.relid
                           AND p.command IN ('CREATE INDEX CONCURRENTLY', 'REINDEX CONCURRENTLY') LIMIT 1)), '; ' ORDER BY o.seq)
              FROM expand_contract.tasks o
             WHERE o.migration_id = m.id AND o.kind <> 'backfill' AND o.state <> 'done'
               AND o.seq IS DISTINCT FROM t.seq
               AND (t.seq IS NULL OR o.relid = t.relid
                    OR (t.seq = (SELECT min(b.seq) FROM expand_contract.tasks b
                                  WHERE b.migration_id = m.id AND b.kind = 'backfill')
                        AND NOT EXISTS (SELECT FROM expand_contract.tasks b
                                         WHERE b.migration_id = m.id AND b.kind = 'backfill'
                                           AND b.relid = o.relid))))
      FROM (SELECT DISTINCT ON (schema_name) *
              FROM expand_contract.migrations
             WHERE $1 IS NULL OR schema_name = $1
             ORDER BY schema_name, id DESC) m
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
    'state of the latest migration of each schema, one row per table being backfilled and per failed background task, with the worker''s other unfinished tasks';

-- What ec_wait polls: the active migration's unfinished tasks, its first failure, and whether it is
-- paused.  A function of its own so that its search_path is pinned; ec_wait, a procedure that
-- commits, cannot have a SET clause.
CREATE FUNCTION expand_contract.wait_state(schema text, OUT unfinished bigint, OUT failure text,
                                           OUT paused boolean)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT count(*) FILTER (WHERE t.state <> 'done'),
           min(t.table_name || ': ' || t.last_error || coalesce(' (row ' || t.error_row || ')', ''))
               FILTER (WHERE t.state = 'failed'),
           bool_or(m.paused)
      FROM expand_contract.migrations m
      LEFT JOIN expand_contract.tasks t ON t.migration_id = m.id
     WHERE m.schema_name = $1 AND NOT m.done
    $$;

-- Waits for the active migration's background work, committing between polls so that it holds no
-- snapshot: CREATE INDEX CONCURRENTLY, which the worker may be running, waits for every transaction
-- that does.  Run it with CALL outside a transaction block, then ec_complete().  Every operator is
-- spelled with its schema: the caller's search_path may put other schemas before pg_catalog.
CREATE PROCEDURE pg_catalog.ec_wait(schema text DEFAULT 'public', timeout interval DEFAULT NULL)
    LANGUAGE plpgsql
    AS $$
DECLARE
    deadline timestamptz := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) timeout;
    state record;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot execute ec_wait() during recovery'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'The background work runs on the primary; wait there.';
    END IF;
    LOOP
        PERFORM pg_catalog.ec_ensure_workers();
        state := expand_contract.wait_state(schema);
        IF state.failure IS NOT NULL THEN
            RAISE EXCEPTION 'background work of the migration of schema "%" failed', schema
                USING DETAIL = state.failure, ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Fix the cause, then call ec_resume(), or ec_rollback().';
        END IF;
        EXIT WHEN state.unfinished IS NULL OR state.unfinished OPERATOR(pg_catalog.=) 0;
        IF state.paused THEN
            RAISE EXCEPTION 'background work of the migration of schema "%" is paused', schema
                USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Resume it with ec_resume().';
        END IF;
        IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>) deadline THEN
            RAISE EXCEPTION 'background work of the migration of schema "%" did not finish within %',
                schema, timeout USING ERRCODE = 'query_canceled';
        END IF;
        COMMIT;
        PERFORM pg_catalog.pg_sleep(0.1);
    END LOOP;
END
$$;
COMMENT ON PROCEDURE pg_catalog.ec_wait(text, interval) IS
    'wait for the active migration''s background work, holding no snapshot';

-- Partitions created, attached, detached or dropped while a migration moves the data of their partitioned
-- table are refused (src/partitions.c): they would miss the dual-write plans and the backfill.
CREATE FUNCTION expand_contract.partition_ddl() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'ec_partition_ddl' LANGUAGE C;
CREATE EVENT TRIGGER expand_contract_partition_ddl ON ddl_command_start
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'DROP TABLE')
    EXECUTE FUNCTION expand_contract.partition_ddl();
