-- test/bench/backfill_update.sql: the baseline backfill, one plain UPDATE (only the UPDATE is timed).
\set ON_ERROR_STOP 1
SET search_path = public;
ALTER TABLE t ADD COLUMN amount numeric(12,2);
SELECT clock_timestamp() AS t0 \gset
UPDATE t SET amount = cents / 100.0;
SELECT 'update_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
SELECT 'update_mismatches=' || count(*) FROM t WHERE amount IS DISTINCT FROM cents / 100.0;
