-- test/bench/rebuild_start.sql: ec_start of the int -> bigint migration, as session "bench_ec_start"
-- (bench.watch_locks follows its locks from another session).  Variables: doc (the migration),
-- configure (true: ec_configure with the jsonb settings in ec_start's transaction), settings.
-- ec_start runs in an explicit transaction that also reads, from pg_locks, the strongest table lock
-- the call took.  Prints key=value tokens: start_t0, start_t1 (epoch seconds: before BEGIN, after
-- COMMIT), start_call_ms (BEGIN until ec_start returned, its lock waits included), start_ms (BEGIN to
-- COMMIT), start_lock (MODE:table,table).
\set ON_ERROR_STOP 1
SET application_name = 'bench_ec_start';
SET search_path = public;
SELECT extract(epoch FROM clock_timestamp()) AS start_t0 \gset
BEGIN;
SELECT ec_start('v1', :'doc') AS vschema \gset
SELECT extract(epoch FROM clock_timestamp()) AS start_called \gset
\if :configure
SELECT ec_configure('public', :'settings'::jsonb) AS cfg \gset
\endif
SELECT bench.strongest_lock() AS start_lock \gset
COMMIT;
SELECT extract(epoch FROM clock_timestamp()) AS start_t1 \gset
SELECT 'version_schema=' || :'vschema', 'start_call_ms=' || round(1000 * (:start_called - :start_t0), 1),
       'start_ms=' || round(1000 * (:start_t1 - :start_t0), 1), 'start_lock=' || :'start_lock',
       'start_t0=' || :start_t0, 'start_t1=' || :start_t1;
