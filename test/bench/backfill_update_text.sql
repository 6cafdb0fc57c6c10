-- test/bench/backfill_update_text.sql: the baseline of issue 11's text -> bigint backfill, one plain
-- UPDATE of load_text.sql's table (only the UPDATE is timed).
\set ON_ERROR_STOP 1
SET search_path = public;
ALTER TABLE t ADD COLUMN a2 bigint;
SELECT clock_timestamp() AS t0 \gset
UPDATE t SET a2 = CAST(a AS bigint);
SELECT 'update_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
SELECT 'update_mismatches=' || count(*) FROM t WHERE a2 IS DISTINCT FROM CAST(a AS bigint);
