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
-- is not EXPECTED, an expression over public.t's columns (cents / 100.0 for load.sql's table,
-- CAST(a AS bigint) for load_text.sql's); NULL when there is no such column.
DROP FUNCTION IF EXISTS bench.ec_mismatches();
CREATE OR REPLACE FUNCTION bench.ec_mismatches(expected text DEFAULT 'cents / 100.0') RETURNS bigint
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
    EXECUTE format('SELECT count(*) FROM public.t WHERE %I IS DISTINCT FROM %s', col, expected) INTO n;
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

-- For the int -> bigint phase (rebuild_*.sql).

-- The strongest lock this transaction holds on a table of schema public, and on which tables, as
-- MODE:table,table (or none).
CREATE OR REPLACE FUNCTION bench.strongest_lock() RETURNS text
LANGUAGE sql AS $$
    WITH held AS (
        SELECT l.mode, c.relname,
               array_position(ARRAY['AccessShareLock', 'RowShareLock', 'RowExclusiveLock',
                                    'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
                                    'ExclusiveLock', 'AccessExclusiveLock'], l.mode) AS strength
          FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
           AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p'))
    SELECT coalesce((SELECT mode || ':' || string_agg(relname, ',' ORDER BY relname)
                       FROM held WHERE strength = (SELECT max(strength) FROM held) GROUP BY mode), 'none');
$$;

-- The worker's tasks of migration MIG grouped by what they do, as key=value tokens (milliseconds,
-- finished_at - started_at, summed): backfill_<table>_ms, index_builds_ms (CREATE INDEX
-- CONCURRENTLY), fk_add_ms (the new foreign key, NOT VALID), validations_ms (VALIDATE CONSTRAINT:
-- NOT NULL checks and the foreign key), other_ms; tasks (how many), worker_busy_ms (all of them).
CREATE OR REPLACE FUNCTION bench.rebuild_task_times(mig text) RETURNS text
LANGUAGE sql AS $$
    WITH t AS (
        SELECT CASE WHEN k.kind = 'backfill' THEN 'backfill_' || k.table_name
                    WHEN k.sql ~* '^\s*CREATE\s+(UNIQUE\s+)?INDEX' THEN 'index_builds'
                    WHEN k.sql ~* 'FOREIGN\s+KEY' THEN 'fk_add'
                    WHEN k.sql ~* 'VALIDATE\s+CONSTRAINT' THEN 'validations'
                    ELSE 'other' END AS what,
               1000 * extract(epoch FROM k.finished_at - k.started_at) AS ms
          FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id
         WHERE m.schema_name = 'public' AND m.name = mig)
    SELECT coalesce(string_agg(format('%s_ms=%s', what, coalesce(round(ms)::text, 'null')), ' ' ORDER BY what), '')
           || format(' tasks=%s worker_busy_ms=%s', (SELECT count(*) FROM t),
                     coalesce((SELECT round(sum(ms))::text FROM t), 'null'))
      FROM (SELECT what, sum(ms) AS ms FROM t GROUP BY what) g;
$$;

-- What ALTER TABLE ... TYPE leaves (and what ec_complete must leave the same): schema public's
-- constraints, indexes (definitions and validity), table columns (type, NOT NULL, default; not
-- their order: ec_complete moves a rebuilt column to the end), relations and user triggers.
CREATE OR REPLACE FUNCTION bench.rebuild_shape() RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT format('constraint %s on %s: %s%s%s', conname, conrelid::regclass, pg_get_constraintdef(oid),
                  CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END,
                  CASE WHEN condeferrable THEN ' DEFERRABLE' ELSE '' END)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('index %s: %s%s', c.relname, pg_get_indexdef(i.indexrelid),
                  CASE WHEN i.indisvalid AND i.indisready THEN '' ELSE ' INVALID' END)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('column %s.%s %s%s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                  CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END, pg_get_expr(d.adbin, d.adrelid))
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
    UNION ALL
    SELECT format('relation %s %s', relname, relkind) FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('trigger %s on %s', tgname, tgrelid::regclass)
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal;
$$;

-- The rows of the two tables as key=value tokens, to compare before and after the migration:
-- accounts (count, sum of ids, sum of balances), transfers (count, highest id, sum of account_id
-- over the transfers with id <= UPTO, i.e. those loaded before the migration), orphans (transfers
-- whose account does not exist).
-- (PL/pgSQL: the tables do not exist yet when this is created.)
CREATE OR REPLACE FUNCTION bench.rebuild_fingerprint(upto bigint) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT format('accounts=%s account_ids=%s balances=%s', count(*), sum(a.id), sum(a.balance))
      FROM public.accounts a
    UNION ALL
    SELECT format('transfers=%s transfer_max=%s transfer_accounts=%s', count(*), max(t.id),
                  sum(t.account_id) FILTER (WHERE t.id <= upto))
      FROM public.transfers t
    UNION ALL
    SELECT format('orphans=%s', count(*)) FROM public.transfers t
     WHERE NOT EXISTS (SELECT FROM public.accounts a WHERE a.id = t.account_id);
END
$$;

-- Follows, from outside, the table locks of the session whose application_name is APP: polls
-- pg_locks every 2 ms (each poll its own transaction, so it holds back no concurrent index build)
-- from before that session connects until it has disconnected, or for MAX_S seconds.  Returns:
-- hold_ms, the longest span during which it held ACCESS EXCLUSIVE on a table of schema public (what
-- a query of that table may have waited), holds (how many such spans: more than one when a lock
-- attempt timed out and was retried), hold_total_ms, polls, and seen (whether the session appeared).
-- Its resolution is one poll, 2-3 ms.
CREATE OR REPLACE PROCEDURE bench.watch_locks(app text, max_s float8,
                                              INOUT hold_ms float8 DEFAULT NULL, INOUT holds int DEFAULT NULL,
                                              INOUT hold_total_ms float8 DEFAULT NULL,
                                              INOUT polls int DEFAULT NULL, INOUT seen boolean DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    now_ts timestamptz;
    span_start timestamptz;
    present boolean;
    held boolean;
    d float8;
BEGIN
    hold_ms := 0; holds := 0; hold_total_ms := 0; polls := 0; seen := false;
    LOOP
        SELECT EXISTS (SELECT FROM pg_stat_activity a WHERE a.application_name = app),
               EXISTS (SELECT FROM pg_locks l
                         JOIN pg_stat_activity a ON a.pid = l.pid
                         JOIN pg_class c ON c.oid = l.relation
                        WHERE a.application_name = app AND l.locktype = 'relation' AND l.granted
                          AND l.mode = 'AccessExclusiveLock'
                          AND c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p'))
          INTO present, held;
        now_ts := clock_timestamp();
        polls := polls + 1;
        seen := seen OR present;
        IF held AND span_start IS NULL THEN
            span_start := now_ts;
            holds := holds + 1;
        ELSIF NOT held AND span_start IS NOT NULL THEN
            d := 1000 * extract(epoch FROM now_ts - span_start);
            hold_total_ms := hold_total_ms + d;
            hold_ms := greatest(hold_ms, d);
            span_start := NULL;
        END IF;
        EXIT WHEN (seen AND NOT present) OR now_ts - t0 > make_interval(secs => max_s);
        COMMIT;
        PERFORM pg_sleep(0.002);
    END LOOP;
    IF span_start IS NOT NULL THEN
        d := 1000 * extract(epoch FROM now_ts - span_start);
        hold_total_ms := hold_total_ms + d;
        hold_ms := greatest(hold_ms, d);
    END IF;
    hold_ms := round(hold_ms::numeric, 1);
    hold_total_ms := round(hold_total_ms::numeric, 1);
END
$$;
