-- test/bench/pgroll_style.sql: the comparison point, a pgroll-style migration done in plain SQL.
--
-- pgroll adds the new column as _pgroll_new_<column>, keeps it in step with a PL/pgSQL trigger that
-- looks at search_path to tell old-version writes from new-version ones, and backfills existing rows
-- by touching them in batches of 1,000 by primary key, each batch its own transaction, so that the
-- trigger computes the new column.  This file reproduces that for the benchmark's migration
-- (cents int -> amount numeric(12,2), up: cents / 100.0, down: (amount * 100)::int).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS bench;

-- The dual-write trigger: writes through the new version (search_path = public_v1) get the old
-- column from "down", every other write gets the new column from "up".
CREATE OR REPLACE FUNCTION bench.pgroll_dual_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('search_path') = 'public_v1' THEN
        NEW.cents := (NEW._pgroll_new_cents * 100)::int;
    ELSE
        NEW._pgroll_new_cents := NEW.cents / 100.0;
    END IF;
    RETURN NEW;
END
$$;

-- The same with scripts/bench.sh's MIGRATION_SUBQUERY: "up" looks the divisor up in bench.units.
CREATE OR REPLACE FUNCTION bench.pgroll_dual_write_subquery() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('search_path') = 'public_v1' THEN
        NEW.cents := (NEW._pgroll_new_cents * 100)::int;
    ELSE
        NEW._pgroll_new_cents := NEW.cents / (SELECT u.divisor FROM bench.units u
                                               WHERE u.code = NEW.cents % 1000);
    END IF;
    RETURN NEW;
END
$$;

-- Expand: the new column and the trigger (instant: no default, no rewrite).  subquery: the trigger
-- whose "up" reads bench.units.
CREATE OR REPLACE PROCEDURE bench.pgroll_start(subquery boolean DEFAULT false)
LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE public.t ADD COLUMN _pgroll_new_cents numeric(12,2);
    IF subquery THEN
        CREATE TRIGGER _pgroll_trigger_t_cents BEFORE INSERT OR UPDATE ON public.t
            FOR EACH ROW EXECUTE FUNCTION bench.pgroll_dual_write_subquery();
    ELSE
        CREATE TRIGGER _pgroll_trigger_t_cents BEFORE INSERT OR UPDATE ON public.t
            FOR EACH ROW EXECUTE FUNCTION bench.pgroll_dual_write();
    END IF;
END
$$;

-- Backfill: every existing row rewritten as an old-version write, batch_size ids at a time, one
-- transaction per batch.  Must be CALLed outside a transaction block (it commits).
CREATE OR REPLACE PROCEDURE bench.pgroll_backfill(batch_size int DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    last_id bigint;
    max_id bigint;
BEGIN
    SELECT min(id) - 1, max(id) INTO last_id, max_id FROM public.t;
    WHILE last_id < max_id LOOP
        UPDATE public.t SET cents = cents WHERE id > last_id AND id <= last_id + batch_size;
        last_id := last_id + batch_size;
        COMMIT;
    END LOOP;
END
$$;
