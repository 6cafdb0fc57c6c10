-- Privileges: who may migrate what, what the version views let each role see, what the worker may
-- do, and that nothing a role creates in public can stand in for the extension's own objects.
\i test/regress_helpers.sql
SET expand_contract.start_paused = on;

CREATE ROLE regress_ec_owner LOGIN;
CREATE ROLE regress_ec_member LOGIN IN ROLE regress_ec_owner;
CREATE ROLE regress_ec_other LOGIN;
CREATE ROLE regress_ec_reader LOGIN;
CREATE ROLE regress_ec_colreader LOGIN;
DO $$ BEGIN
  EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_ec_owner, regress_ec_other', current_database());
END $$;
CREATE SCHEMA shop AUTHORIZATION regress_ec_owner;
-- The other role may even create objects in the schema; the owner's tables stay the owner's.
GRANT USAGE, CREATE ON SCHEMA shop TO regress_ec_other;
GRANT USAGE ON SCHEMA shop TO regress_ec_reader, regress_ec_colreader;
GRANT USAGE ON SCHEMA ec_test TO PUBLIC;

SET ROLE regress_ec_owner;
CREATE TABLE shop.items (id int PRIMARY KEY, owner_name text NOT NULL, price_cents int, secret text);
INSERT INTO shop.items
  SELECT g, CASE WHEN g % 2 = 0 THEN 'regress_ec_reader' ELSE 'someone' END, g * 100, 'secret ' || g
    FROM generate_series(1, 6) g;
-- The reader sees its own rows only and may change one column; the column reader sees three columns.
GRANT SELECT, UPDATE (price_cents), INSERT (id, owner_name, price_cents) ON shop.items TO regress_ec_reader;
GRANT SELECT (id, owner_name, price_cents) ON shop.items TO regress_ec_colreader;
ALTER TABLE shop.items ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON shop.items TO regress_ec_reader
  USING (owner_name = current_user) WITH CHECK (owner_name = current_user);
CREATE POLICY all_rows ON shop.items FOR SELECT TO regress_ec_colreader USING (true);
-- Records who evaluates the migration's "up" expression, and with which rights.
CREATE TABLE shop.probe_log (who name, session name, superuser text, replication_role text, app text);
CREATE FUNCTION shop.cents_to_price(cents int) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO shop.probe_log VALUES (current_user, session_user, current_setting('is_superuser'),
                                     current_setting('session_replication_role'),
                                     current_setting('application_name'));
  RETURN cents / 100.0;
END $$;
GRANT INSERT ON shop.probe_log TO PUBLIC;
RESET ROLE;

SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('shop') x \gset

-- 1. A role that does not own a table cannot migrate it, whatever the operation; nothing changes.
SET ROLE regress_ec_other;
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "items", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'shop');
SELECT ec_start('v2', '{"operations": [{"rename_column": {"table": "items", "from": "secret", "to": "s"}}]}', 'shop');
SELECT ec_start('v2', '{"operations": [{"rename_table": {"from": "items", "to": "things"}}]}', 'shop');
SELECT ec_start('v2', '{"operations": [{"drop_table": {"name": "items"}}]}', 'shop');
-- An operation on a table it owns does not let it touch another one in the same migration.
SELECT ec_start('v2', '{"operations": [
  {"create_table": {"name": "mine", "columns": [{"name": "id", "type": "int", "pk": true}]}},
  {"drop_column": {"table": "items", "column": "secret"}}]}', 'shop');
-- Nor can it write the extension's state directly.
INSERT INTO expand_contract.migrations (schema_name, name, version_schema, migration, trigger_xid)
  VALUES ('shop', 'x', 'shop_x', '{}', '1');
UPDATE expand_contract.dual_writes SET up_exprs = '{}';
DELETE FROM expand_contract.tasks;
RESET ROLE;
SELECT * FROM ec_test.diff(:'before', 'shop');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS migrations FROM expand_contract.migrations;

-- 2. The owner may, logged in as itself.  The worker runs as the owner too: no superuser, no
-- session_replication_role (which would skip other tables' triggers and foreign-key checks).
SET SESSION AUTHORIZATION regress_ec_owner;
SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "items", "column": "price_cents",
  "name": "price", "type": "numeric(10,2)", "up": "shop.cents_to_price(price_cents)",
  "down": "(price * 100)::int"}}]}', 'shop');
SELECT started_by, login_role FROM expand_contract.migrations WHERE name = 'v2';
RESET SESSION AUTHORIZATION;

-- 3. Another role cannot steer, complete or roll back the owner's migration; nothing changes.
SET ROLE regress_ec_other;
SELECT ec_resume('shop');
SELECT ec_pause('shop');
SELECT ec_configure('shop', '{"batch_size": 1}');
SELECT ec_complete('shop');
SELECT ec_rollback('shop');
RESET ROLE;
SELECT name, done, paused, settings FROM expand_contract.migrations;

-- A member of the owner's role has its privileges.
SET SESSION AUTHORIZATION regress_ec_member;
SELECT ec_configure('shop', '{"batch_size": 2}');
SELECT ec_resume('shop');
RESET SESSION AUTHORIZATION;
CALL ec_wait('shop');
SELECT DISTINCT who, session, superuser, replication_role FROM shop.probe_log
 WHERE app = 'expand_contract backfill';
SELECT table_name, backfill_state, rows_done FROM ec_status('shop');

-- 4. The version views check the invoker's row-level security and column privileges, through the
-- old version (the table) and the new one alike.
SET ROLE regress_ec_reader;
SELECT id, owner_name, price_cents FROM shop.items ORDER BY id;
SET search_path TO shop_v2;
SELECT id, owner_name, price FROM items ORDER BY id;
UPDATE items SET price = 9.99 WHERE id IN (1, 2);    -- row 1 is not the reader's: untouched
UPDATE items SET owner_name = 'x' WHERE id = 2;
UPDATE items SET secret = 'x' WHERE id = 2;
INSERT INTO items (id, owner_name, price) VALUES (7, 'someone', 1);
INSERT INTO items (id, owner_name, price) VALUES (7, 'regress_ec_reader', 1);
RESET search_path;
-- Column privileges: a view reads all of its columns, and PostgreSQL checks them all against the
-- invoker, so a role with column-level grants cannot read through the new version at all (it never
-- reads more than the table allows it).
SET ROLE regress_ec_colreader;
SELECT id, owner_name, price_cents FROM shop.items WHERE id = 1;
SELECT secret FROM shop.items;
SELECT id FROM shop_v2.items;
RESET ROLE;
SELECT id, owner_name, price_cents, _ec_new_price_cents FROM shop.items WHERE id IN (1, 2, 7) ORDER BY id;

SET SESSION AUTHORIZATION regress_ec_owner;
SELECT ec_complete('shop');
RESET SESSION AUTHORIZATION;
SELECT id, price FROM shop.items WHERE id IN (1, 2, 7) ORDER BY id;
-- The reader's column privilege followed the column to its new name and type.
SELECT attname, attacl FROM pg_attribute WHERE attrelid = 'shop.items'::regclass AND attacl IS NOT NULL
   AND NOT attisdropped ORDER BY attnum;

-- 5. Started through SET ROLE by a superuser, the worker acts as the role: its expressions cannot read
-- what the role cannot, although the worker logs in as the superuser.
CREATE TABLE public.private_notes (note text);
INSERT INTO public.private_notes VALUES ('not for regress_ec_owner');
SET ROLE regress_ec_owner;
CREATE FUNCTION shop.peek(p numeric) RETURNS text LANGUAGE sql AS $$
  SELECT p::text || (SELECT coalesce(max(note), '') FROM public.private_notes) $$;
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "items", "column": {"name": "label",
  "type": "text", "nullable": true}, "up": "shop.peek(price)"}}]}', 'shop');
SELECT ec_resume('shop');
RESET ROLE;
CALL ec_wait('shop');
SELECT table_name, backfill_state, detail FROM ec_status('shop');
SET ROLE regress_ec_owner;
SELECT ec_rollback('shop');
RESET ROLE;
SELECT * FROM ec_test.leftovers();

-- 6. A role that may create objects in public plants look-alikes of everything our SQL calls.  A
-- superuser who puts public before pg_catalog then runs whole migrations: none of them is called.
CREATE ROLE regress_ec_mallory LOGIN;
GRANT CREATE ON SCHEMA public TO regress_ec_mallory;
CREATE TABLE public.hijacked (what text);
GRANT INSERT ON public.hijacked TO PUBLIC;
SET ROLE regress_ec_mallory;
CREATE FUNCTION public.text_eq(text, text) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('text = text'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq);
CREATE FUNCTION public.text_ne(text, text) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('text <> text'); SELECT $1 OPERATOR(pg_catalog.<>) $2 $$;
CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_ne);
CREATE FUNCTION public.int8_eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('bigint = bigint'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.int8_eq);
CREATE FUNCTION public.int84_eq(bigint, int) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('bigint = int'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = int, FUNCTION = public.int84_eq);
CREATE FUNCTION public.oid_eq(oid, oid) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('oid = oid'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.oid_eq);
CREATE FUNCTION public.text_cat(text, text) RETURNS text LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('text || text'); SELECT $1 OPERATOR(pg_catalog.||) $2 $$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_cat);
CREATE FUNCTION public.ts_gt(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('timestamptz > timestamptz'); SELECT $1 OPERATOR(pg_catalog.>) $2 $$;
CREATE OPERATOR public.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.ts_gt);
CREATE FUNCTION public.quote_ident(text) RETURNS text LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('quote_ident'); SELECT pg_catalog.quote_ident($1) $$;
CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('format'); SELECT pg_catalog.format($1, $2, $3) $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('now'); SELECT pg_catalog.now() $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('clock_timestamp'); SELECT pg_catalog.clock_timestamp() $$;
CREATE FUNCTION public.coalesce_bigint(bigint) RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO public.hijacked VALUES ('coalesce'); SELECT $1 $$;
CREATE TABLE public.migrations (id int);
CREATE TABLE public.tasks (id int);
RESET ROLE;

CREATE TABLE public.accounts (id bigint PRIMARY KEY, name text NOT NULL, cents int);
INSERT INTO public.accounts SELECT g, 'name ' || g, g FROM generate_series(1, 50) g;
SET search_path = public, pg_catalog;
SELECT ec_start('h1', '{"operations": [
  {"alter_column": {"table": "accounts", "column": "cents", "name": "amount", "type": "numeric(12,2)",
                    "up": "cents / 100.0", "down": "(amount * 100)::int"}},
  {"add_column": {"table": "accounts", "column": {"name": "tag", "type": "text", "nullable": false,
                  "default": "''none''"}, "up": "upper(name)"}},
  {"rename_column": {"table": "accounts", "from": "name", "to": "full_name"}}]}');
SELECT ec_configure('public', '{"batch_size": 10}');
SELECT ec_resume('public');
INSERT INTO public.accounts (id, name, cents) VALUES (51, 'old writer', 5100);
CALL ec_wait('public');
SELECT migration, table_name, backfill_state, rows_done FROM ec_status('public');
SELECT ec_complete('public');
SELECT ec_start('h2', '{"operations": [{"drop_column": {"table": "accounts", "column": "tag",
  "down": "''restored''"}}]}');
SELECT ec_pause('public');
SELECT ec_rollback('public');
-- With a worker running: ec_complete's wait checks what the worker waits for, and ec_rollback stops
-- it, both by reading pg_locks (found in review: under this search_path they used to call the
-- planted text = text).
CREATE TABLE public.slow (id int PRIMARY KEY, v int);
INSERT INTO public.slow SELECT g, g FROM generate_series(1, 20000) g;
BEGIN;
SET LOCAL expand_contract.start_paused = off;
SELECT ec_start('h3', '{"operations": [{"alter_column": {"table": "slow", "column": "v", "type": "bigint"}}]}');
SELECT ec_configure('public', '{"batch_size": 1, "batch_delay_ms": 1000, "batch_time_ms": 0}');
COMMIT;
SELECT pg_sleep(0.5);
SET statement_timeout = '1s';
SELECT ec_complete('public');
RESET statement_timeout;
SELECT ec_rollback('public');
RESET search_path;
SELECT count(*) AS hijacked_calls FROM public.hijacked;
SELECT count(*) FILTER (WHERE amount = id / 100.0 AND tag = upper(full_name)) AS consistent, count(*)
  FROM public.accounts WHERE id <= 50;

-- 7. The role that ran a schema's migrations is dropped (after REASSIGN OWNED): the history keeps its
-- name, later migrations start as usual, and only a superuser may finish one it left active.
CREATE ROLE regress_ec_gone LOGIN;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_ec_gone', current_database()); END $$;
CREATE SCHEMA depot AUTHORIZATION regress_ec_gone;
SET ROLE regress_ec_gone;
CREATE TABLE depot.bins (id int PRIMARY KEY, label text);
SELECT ec_start('d1', '{"operations": [{"rename_column": {"table": "bins", "from": "label", "to": "tag"}}]}', 'depot');
SELECT ec_complete('depot');
SELECT ec_start('d2', '{"operations": [{"rename_column": {"table": "bins", "from": "tag", "to": "name"}}]}', 'depot');
RESET ROLE;
REASSIGN OWNED BY regress_ec_gone TO regress_ec_owner;
DROP OWNED BY regress_ec_gone;
DROP ROLE regress_ec_gone;
SET ROLE regress_ec_owner;
SELECT ec_rollback('depot');
RESET ROLE;
SELECT ec_rollback('depot');
SET ROLE regress_ec_owner;
SELECT ec_start('d3', '{"operations": [{"rename_column": {"table": "bins", "from": "tag", "to": "name"}}]}', 'depot');
SELECT ec_complete('depot');
RESET ROLE;
-- started_by is a regrole: a dropped role's migration names no role (it would print as a bare OID).
SELECT name, (SELECT rolname FROM pg_roles WHERE oid = started_by) AS started_by, done
  FROM expand_contract.migrations WHERE schema_name = 'depot' ORDER BY id;

-- Clean up the roles (the regression database is shared by the suite).
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS shop, shop_v2, public_h1, depot, depot_d1, depot_d3 CASCADE;
DROP TABLE public.accounts, public.private_notes, public.hijacked, public.slow;
DELETE FROM expand_contract.migrations WHERE schema_name IN ('shop', 'public', 'depot');
REVOKE USAGE ON SCHEMA ec_test FROM PUBLIC;
DROP OWNED BY regress_ec_mallory, regress_ec_member, regress_ec_other, regress_ec_reader, regress_ec_colreader,
  regress_ec_owner;
DROP ROLE regress_ec_mallory, regress_ec_member, regress_ec_other, regress_ec_reader, regress_ec_colreader,
  regress_ec_owner;
RESET client_min_messages;
