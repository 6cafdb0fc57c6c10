-- test/bench/rebuild_complete.sql: ec_complete of the int -> bigint migration once the worker's tasks
-- are done, as session "bench_ec_complete" (bench.watch_locks follows its locks from another
-- session), in an explicit transaction that also reads the strongest table lock it took.  Prints
-- key=value tokens: complete_t0, complete_t1 (epoch seconds: before BEGIN, after COMMIT),
-- complete_call_ms (BEGIN until ec_complete returned, its lock waits included), complete_ms (BEGIN to
-- COMMIT; PostgreSQL removes the dropped indexes' files in COMMIT, after it released the locks),
-- complete_lock (MODE:table,table).
\set ON_ERROR_STOP 1
SET application_name = 'bench_ec_complete';
SET search_path = public;
SELECT extract(epoch FROM clock_timestamp()) AS complete_t0 \gset
BEGIN;
SELECT ec_complete('public', false);
SELECT extract(epoch FROM clock_timestamp()) AS complete_called \gset
SELECT bench.strongest_lock() AS complete_lock \gset
COMMIT;
SELECT extract(epoch FROM clock_timestamp()) AS complete_t1 \gset
SELECT 'complete_call_ms=' || round(1000 * (:complete_called - :complete_t0), 1),
       'complete_ms=' || round(1000 * (:complete_t1 - :complete_t0), 1), 'complete_lock=' || :'complete_lock',
       'complete_t0=' || :complete_t0, 'complete_t1=' || :complete_t1;
