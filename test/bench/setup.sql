-- test/bench/setup.sql: once per benchmark cluster (database "bench"), run by scripts/bench.sh.
-- Helpers in schema "bench", which no migration touches (migrations run on "public").
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS expand_contract;
CREATE SCHEMA IF NOT EXISTS bench;

-- Ids for pgbench's single-row inserts, above any loaded id.
CREATE SEQUENCE IF NOT EXISTS bench.ins_seq START 1000000000;

-- The lookup table that MIGRATION_SUBQUERY's "up" reads by key (scripts/bench.sh): 1,000 codes, each
-- divisor 100.0, so that its values are those of "cents / 100.0" and the mismatch check holds.
CREATE TABLE IF NOT EXISTS bench.units (code int PRIMARY KEY, divisor numeric NOT NULL);
INSERT INTO bench.units SELECT g, 100.0 FROM generate_series(0, 999) g ON CONFLICT DO NOTHING;
ANALYZE bench.units;

-- Waits, polling every 50 ms, until every task of KINDS of migration MIG (on schema public) is done.
-- status: done | failed | timeout (not done after TIMEOUT_S) | stalled (no progress at all, neither a
-- batch nor a state change, for STALL_S: worker not launched, paused, stuck or dead) | none (no such
-- task) | no_tasks_table (this build of the extension has no background worker).
-- done_at: when that was seen, for the caller to subtract its own start time.  states: the tasks'
-- states then, comma-separated.  Each poll is its own transaction (COMMIT), so no snapshot is held
-- across the wait.
CREATE OR REPLACE PROCEDURE bench.wait_tasks(mig text, kinds text[], timeout_s float8, stall_s float8,
                                             INOUT status text DEFAULT NULL,
                                             INOUT done_at timestamptz DEFAULT NULL,
                                             INOUT states text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    changed timestamptz := clock_timestamp();
    n_total int;
    n_done int;
    n_failed int;
    progress text;
    last_progress text;
BEGIN
    IF to_regclass('expand_contract.tasks') IS NULL THEN
        status := 'no_tasks_table';
        done_at := clock_timestamp();
        RETURN;
    END IF;
    LOOP
        EXECUTE $q$
            SELECT count(*)::int,
                   count(*) FILTER (WHERE k.state = 'done')::int,
                   count(*) FILTER (WHERE k.state = 'failed')::int,
                   coalesce(string_agg(k.state, ',' ORDER BY k.seq), ''),
                   coalesce(string_agg(k.state || ':' || k.batches || ':' || k.rows_done, ',' ORDER BY k.seq), '')
              FROM expand_contract.tasks k
              JOIN expand_contract.migrations m ON m.id = k.migration_id
             WHERE m.schema_name = 'public' AND m.name = $1 AND k.kind = ANY ($2)$q$
           INTO n_total, n_done, n_failed, states, progress
          USING mig, kinds;
        IF progress IS DISTINCT FROM last_progress THEN
            last_progress := progress;
            changed := clock_timestamp();
        END IF;
        IF n_total = 0 THEN
            status := 'none';
        ELSIF n_failed > 0 THEN
            status := 'failed';
        ELSIF n_done = n_total THEN
            status := 'done';
        ELSIF clock_timestamp() - changed > make_interval(secs => stall_s) THEN
            status := 'stalled';
        ELSIF clock_timestamp() - t0 > make_interval(secs => timeout_s) THEN
            status := 'timeout';
        END IF;
        IF status IS NOT NULL THEN
            done_at := clock_timestamp();
            RETURN;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

-- The migration's tasks as one line per task, for diagnostics.
CREATE OR REPLACE FUNCTION bench.task_report(mig text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('expand_contract.tasks') IS NULL THEN
        RETURN NEXT 'expand_contract.tasks does not exist (no background worker in this build)';
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
        SELECT format('task %s %s %s: state=%s rows_done=%s/%s batches=%s blocks=%s/%s started=%s finished=%s detail=%s error=%s',
                      k.seq, k.kind, coalesce(k.table_name, ''), k.state, k.rows_done, k.rows_estimated,
                      k.batches, k.next_block, k.total_blocks, k.started_at, k.finished_at, k.detail,
                      k.last_error)
          FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id
         WHERE m.schema_name = 'public' AND m.name = $1 ORDER BY k.seq$q$ USING mig;
END
$$;

-- Rows of public.t whose new column (the one migration v1's alter_column added, named _ec_new_*)
-- is not cents / 100.0; NULL when there is no such column.
CREATE OR REPLACE FUNCTION bench.ec_mismatches() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    col name;
    n bigint;
BEGIN
    SELECT attname INTO col FROM pg_attribute
     WHERE attrelid = 'public.t'::regclass AND attnum > 0 AND NOT attisdropped
       AND attname LIKE '\_ec\_new\_%' ORDER BY attnum LIMIT 1;
    IF col IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM public.t WHERE %I IS DISTINCT FROM cents / 100.0', col) INTO n;
    RETURN n;
END
$$;

-- Background workers of expand_contract still connected to this database.
CREATE OR REPLACE FUNCTION bench.ec_workers() RETURNS bigint
LANGUAGE sql AS $$
    SELECT count(*) FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND backend_type NOT IN ('client backend', 'autovacuum worker', 'parallel worker', 'walsender')
       AND backend_type ILIKE '%expand%';
$$;

-- The backfill task's own timing, as key=value tokens: worker_ms (finished_at - started_at),
-- launch_ms (started_at - T_COMMIT, ec_start's commit), rows_done, batches.
CREATE OR REPLACE FUNCTION bench.task_times(mig text, t_commit timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF to_regclass('expand_contract.tasks') IS NULL THEN
        RETURN 'worker_ms=null launch_ms=null';
    END IF;
    EXECUTE $q$
        SELECT round(1000 * extract(epoch FROM max(k.finished_at) - min(k.started_at)), 1) AS worker_ms,
               round(1000 * extract(epoch FROM min(k.started_at) - $2), 1) AS launch_ms,
               sum(k.rows_done) AS rows_done, sum(k.batches) AS batches
          FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id
         WHERE m.schema_name = 'public' AND m.name = $1 AND k.kind = 'backfill'$q$
      INTO r USING mig, t_commit;
    RETURN format('worker_ms=%s launch_ms=%s rows_done=%s batches=%s',
                  coalesce(r.worker_ms::text, 'null'), coalesce(r.launch_ms::text, 'null'),
                  coalesce(r.rows_done::text, 'null'), coalesce(r.batches::text, 'null'));
END
$$;
