-- test/bench/ec_complete.sql: ec_complete's wall time, commit included.  Variables: dry (true: in a
-- transaction that is rolled back), wait (false: error out rather than fill rows, i.e. the backfill
-- must already be done).
\set ON_ERROR_STOP 1
SET search_path = public;
SELECT clock_timestamp() AS t0 \gset
\if :dry
BEGIN;
SELECT ec_complete('public', :wait);
ROLLBACK;
SELECT 'complete_dry_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
\else
SELECT ec_complete('public', :wait);
SELECT 'complete_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
\endif
