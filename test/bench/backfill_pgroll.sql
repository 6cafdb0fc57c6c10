-- test/bench/backfill_pgroll.sql: the pgroll-style backfill (pgroll_style.sql); only the backfill is timed.
\set ON_ERROR_STOP 1
SET search_path = public;
CALL bench.pgroll_start();
SELECT clock_timestamp() AS t0 \gset
CALL bench.pgroll_backfill(1000);
SELECT 'pgroll_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
SELECT 'pgroll_mismatches=' || count(*) FROM t WHERE _pgroll_new_cents IS DISTINCT FROM cents / 100.0;
