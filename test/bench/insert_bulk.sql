-- test/bench/insert_bulk.sql: one INSERT ... SELECT of :rows rows into public.t, as an old-version write.
\set ON_ERROR_STOP 1
SET search_path = public;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO t (id, cents, payload)
SELECT i, ((i * 7919) % 100000)::int, md5(i::text) FROM generate_series(1::bigint, :rows) AS i;
SELECT 'insert_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
VACUUM (ANALYZE) t;
CHECKPOINT;
