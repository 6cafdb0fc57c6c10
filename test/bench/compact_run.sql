-- test/bench/compact_run.sql: the compaction phase (8).  Variables: mode (offline | ec), settings
-- (jsonb for ec_configure in ec_start's transaction).  The table is bench's public.t; the change is
-- cents int -> bigint.  Prints key=value tokens:
--   change_ms     offline: the ALTER TABLE; ec: ec_start's commit until CALL ec_wait() returns
--                 (backfill and the worker's compaction tasks)
--   complete_ms   ec only: ec_complete
--   vacuum_ms     the VACUUM afterwards (both)
--   heap_bytes, index_bytes   public.t's heap and indexes after it
\set ON_ERROR_STOP 1
SET search_path = public;
SET client_min_messages = warning;
SELECT clock_timestamp() AS t0 \gset
\if :{?settings}
\else
\set settings '{}'
\endif
SELECT :'mode' = 'offline' AS offline \gset
\if :offline
ALTER TABLE t ALTER COLUMN cents TYPE bigint;
SELECT clock_timestamp() AS t1 \gset
SELECT 'complete_ms=0';
\else
BEGIN;
SELECT ec_start('v1', '{"operations":[{"alter_column":{"table":"t","column":"cents","type":"bigint","up":"cents","down":"cents::int"}}]}') AS vschema \gset
SELECT ec_configure('public', :'settings'::jsonb) AS cfg \gset
COMMIT;
SELECT clock_timestamp() AS t0 \gset
CALL ec_wait();
SELECT clock_timestamp() AS t1 \gset
SELECT ec_complete();
SELECT 'complete_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t1'::timestamptz), 1);
\endif
SELECT 'change_ms=' || round(1000 * extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz), 1);
SELECT clock_timestamp() AS t2 \gset
VACUUM t;
SELECT 'vacuum_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t2'::timestamptz), 1);
SELECT 'heap_bytes=' || pg_relation_size('t'), 'index_bytes=' || pg_indexes_size('t');
SELECT 'mismatches=' || count(*) FROM t WHERE cents IS DISTINCT FROM ((id * 7919) % 100000);
