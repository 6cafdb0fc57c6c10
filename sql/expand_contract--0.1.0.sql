-- expand_contract 0.1.0: install script.
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
    started_by      name        NOT NULL DEFAULT current_user,
    started_at      timestamptz NOT NULL DEFAULT now(),
    -- Every transaction from this xid on writes through the dual-write trigger: rows whose xmin
    -- precedes it are the only ones the backfill must fill.
    trigger_xid     xid         NOT NULL,
    completed_at    timestamptz,
    done            boolean     NOT NULL DEFAULT false,
    -- What ec_complete and ec_rollback run, computed by ec_start when it knew every name.
    validate_steps  text[]      NOT NULL DEFAULT '{}',
    complete_steps  text[]      NOT NULL DEFAULT '{}',
    rollback_steps  text[]      NOT NULL DEFAULT '{}',
    -- Tables whose structure the migration changes: locked (with retries) by ec_complete and ec_rollback.
    relids          oid[]       NOT NULL DEFAULT '{}',
    UNIQUE (schema_name, name)
);
-- At most one active migration per schema.
CREATE UNIQUE INDEX migrations_one_active ON expand_contract.migrations (schema_name) WHERE NOT done;

-- Per table with data to move: what the dual-write trigger computes.  One row per table; the arrays are
-- parallel, one element per column pair.  Expressions are stored as node trees (like pg_attrdef.adbin), so
-- they do not depend on the writer's search_path or on column names.
CREATE TABLE expand_contract.dual_writes (
    migration_id        bigint NOT NULL REFERENCES expand_contract.migrations ON DELETE CASCADE,
    relid               oid    NOT NULL,
    new_version_schema  name   NOT NULL,
    new_migration       text   NOT NULL,
    old_version_schema  name,
    old_migration       text,
    old_attnums         int2[] NOT NULL,
    new_attnums         int2[] NOT NULL,
    up_exprs            text[] NOT NULL,
    down_exprs          text[] NOT NULL,
    PRIMARY KEY (relid)
);

-- Backfill work: existing rows whose new columns must be computed from "up".  The seam for the worker.
CREATE TABLE expand_contract.backfills (
    migration_id   bigint NOT NULL REFERENCES expand_contract.migrations ON DELETE CASCADE,
    relid          oid    NOT NULL,
    table_name     text   NOT NULL,
    columns        name[] NOT NULL,
    state          text   NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'running', 'done', 'failed')),
    rows_done      bigint NOT NULL DEFAULT 0,
    rows_estimated bigint,
    last_error     text,
    started_at     timestamptz,
    finished_at    timestamptz,
    PRIMARY KEY (migration_id, relid)
);

SELECT pg_catalog.pg_extension_config_dump('expand_contract.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('expand_contract.dual_writes', '');
SELECT pg_catalog.pg_extension_config_dump('expand_contract.backfills', '');

-- Every writing session's trigger reads its table's row (once per relation, then cached).
GRANT USAGE ON SCHEMA expand_contract TO PUBLIC;
GRANT SELECT ON expand_contract.dual_writes TO PUBLIC;

CREATE FUNCTION expand_contract.dual_write() RETURNS trigger
    AS 'MODULE_PATHNAME', 'ec_dual_write' LANGUAGE C;

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

CREATE FUNCTION pg_catalog.ec_status(schema text DEFAULT NULL)
    RETURNS TABLE (schema_name name, migration text, parent text, version_schema name, phase text,
                   backfill_state text, rows_done bigint, rows_estimated bigint,
                   started_at timestamptz, completed_at timestamptz)
    LANGUAGE sql STABLE
    AS $$
    SELECT m.schema_name, m.name, m.parent, m.version_schema,
           CASE WHEN m.done THEN 'complete' ELSE 'active' END,
           CASE WHEN b.n IS NULL THEN 'none'
                WHEN b.failed > 0 THEN 'failed'
                WHEN b.pending = 0 THEN 'done'
                ELSE 'pending' END,
           b.rows_done, b.rows_estimated, m.started_at, m.completed_at
      FROM (SELECT DISTINCT ON (schema_name) *
              FROM expand_contract.migrations
             WHERE $1 IS NULL OR schema_name = $1
             ORDER BY schema_name, id DESC) m
      LEFT JOIN LATERAL (
            SELECT count(*) AS n,
                   count(*) FILTER (WHERE state IN ('pending', 'running')) AS pending,
                   count(*) FILTER (WHERE state = 'failed') AS failed,
                   sum(rows_done)::bigint AS rows_done,
                   sum(rows_estimated)::bigint AS rows_estimated
              FROM expand_contract.backfills f WHERE f.migration_id = m.id
            HAVING count(*) > 0) b ON true
     ORDER BY m.schema_name
    $$;
COMMENT ON FUNCTION pg_catalog.ec_status(text) IS
    'state of the latest migration of each schema under migration control';
