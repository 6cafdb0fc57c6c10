-- test/bench/reset.sql: back to a clean slate between measurements: roll back an active migration,
-- drop t (and accounts and transfers of the int -> bigint phase), every version schema of public and
-- the extension's history (by recreating the extension), so that the next measurement can use
-- migration name v1 again.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DO $$
BEGIN
    IF to_regclass('expand_contract.migrations') IS NOT NULL
       AND EXISTS (SELECT 1 FROM expand_contract.migrations WHERE schema_name = 'public' AND NOT done) THEN
        PERFORM ec_rollback('public');
    END IF;
END
$$;
DO $$
DECLARE
    s name;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'public\_%' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s);
    END LOOP;
END
$$;
DROP TABLE IF EXISTS public.t CASCADE;
DROP TABLE IF EXISTS public.transfers, public.accounts CASCADE;
DROP EXTENSION IF EXISTS expand_contract CASCADE;
CREATE EXTENSION expand_contract;
