-- test/bench/ec_start_dry.sql: ec_start in a transaction that is rolled back (nothing is left, no worker
-- is launched), while a probe client reads the table: how long readers wait on its lock.
\set ON_ERROR_STOP 1
SET search_path = public;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
SELECT ec_start('v1', :'doc') AS vschema \gset
ROLLBACK;
SELECT 'start_dry_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
