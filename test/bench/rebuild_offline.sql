-- test/bench/rebuild_offline.sql: the downtime the migration replaces: both columns retyped offline, in
-- one transaction (ACCESS EXCLUSIVE on both tables throughout), commit included.
\set ON_ERROR_STOP 1
SET search_path = public;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
ALTER TABLE accounts ALTER COLUMN id TYPE bigint;
ALTER TABLE transfers ALTER COLUMN account_id TYPE bigint;
COMMIT;
SELECT 'offline_ms=' || round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1);
SELECT 'offline_types=' || format_type(a.atttypid, NULL) || ',' || format_type(t.atttypid, NULL)
  FROM pg_attribute a, pg_attribute t
 WHERE a.attrelid = 'accounts'::regclass AND a.attname = 'id'
   AND t.attrelid = 'transfers'::regclass AND t.attname = 'account_id';
