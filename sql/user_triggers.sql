-- User triggers on a migrating table: whichever version a write comes through, every user trigger
-- (BEFORE and AFTER, row and statement) sees a row whose old and new columns agree, and a change
-- that a user's BEFORE trigger makes to a migrated column is carried to its counterpart.  The
-- dual-write trigger is two: "!ec_dual_write_first" fires before every other BEFORE trigger,
-- "~ec_dual_write_last" after them.  The backfill's updates fire the user triggers too.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET expand_contract.start_paused = on;

-- price: cents (int) in the old version, dollars (numeric) in the new; tag: text both sides, but
-- up and down change its case, so a value that went the wrong way shows.
CREATE TABLE products (id int PRIMARY KEY, price int, tag text, note text);
-- Rows from before the migration: the backfill fills them (id 2 is above the clamp below).
INSERT INTO products VALUES (1, 2000, 'Red', 'a'), (2, 50000, ' Big ', 'b'), (3, 700, 'blue', 'c');

-- The audit log, outside the migrated schema.  log_row reads by name through jsonb, so it shows
-- the helper columns while they exist.
CREATE SCHEMA log;
CREATE TABLE log.audit (seq serial PRIMARY KEY, trig text, op text, backfill bool, id int,
                        price text, new_price text, tag text, new_tag text);
CREATE FUNCTION log.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r jsonb := to_jsonb(NEW);
BEGIN
  INSERT INTO log.audit (trig, op, backfill, id, price, new_price, tag, new_tag)
  VALUES (TG_NAME, TG_OP, current_setting('application_name') = 'expand_contract backfill',
          (r->>'id')::int, r->>'price', r->>'_ec_new_price', r->>'tag', r->>'_ec_new_tag');
  RETURN NEW;
END $$;
CREATE FUNCTION log.log_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO log.audit (trig, op, backfill, id, price, new_price, tag, new_tag)
  SELECT TG_NAME, TG_OP, current_setting('application_name') = 'expand_contract backfill',
         (r->>'id')::int, r->>'price', r->>'_ec_new_price', r->>'tag', r->>'_ec_new_tag'
    FROM (SELECT to_jsonb(n) AS r FROM changed n ORDER BY n.id) s;
  RETURN NULL;
END $$;
-- A writing trigger on the old columns (what a user trigger on the base table is written against).
CREATE FUNCTION log.clamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.price := least(NEW.price, 10000);
  NEW.tag := btrim(NEW.tag);
  RETURN NEW;
END $$;
-- BEFORE triggers fire by name: a_audit reads what the statement wrote, b_clamp then changes it.
CREATE TRIGGER a_audit BEFORE INSERT OR UPDATE ON products FOR EACH ROW EXECUTE FUNCTION log.log_row();
CREATE TRIGGER b_clamp BEFORE INSERT OR UPDATE ON products FOR EACH ROW EXECUTE FUNCTION log.clamp();
CREATE TRIGGER c_after AFTER INSERT OR UPDATE ON products FOR EACH ROW EXECUTE FUNCTION log.log_row();
CREATE TRIGGER d_stmt_ins AFTER INSERT ON products REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION log.log_statement();
CREATE TRIGGER d_stmt_upd AFTER UPDATE ON products REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION log.log_statement();

SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "products", "column": "price", "type": "numeric(10,2)",
                    "up": "price / 100.0", "down": "(price * 100)::int"}},
  {"alter_column": {"table": "products", "column": "tag", "type": "text",
                    "up": "upper(tag)", "down": "lower(tag)"}}]}');
-- Both dual-write triggers, in firing order around the user's.
SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgrelid = 'products'::regclass ORDER BY tgname;

-- Old version (the base table).  The insert: every trigger sees new = up(old).
INSERT INTO products VALUES (10, 1500, 'Green', 'x');
-- The update: a_audit sees new = up(what was written); b_clamp clamps the old columns; the
-- row and the AFTER triggers have the clamped old columns and new = up(them): 100.00 and WIDE.
UPDATE products SET price = 99900, tag = '  Wide ' WHERE id = 10;
SELECT trig, op, backfill, id, price, new_price, tag, new_tag FROM log.audit ORDER BY seq;
TRUNCATE log.audit;

-- New version.
SET search_path = public_v1, public;
-- The insert: old = down(new) for every trigger; nothing changes it, so the new columns stay as
-- written (MiXed: not upper(lower(MiXed)), which a wrong comparison in the last trigger would give).
INSERT INTO products (id, price, tag, note) VALUES (20, 7.5, 'MiXed', 'y');
-- The issue's case: a_audit must see price 4200 (down(42)), not the row's previous 750.
UPDATE products SET price = 42 WHERE id = 20;
-- And on a row the backfill has not reached (row 1): the trigger fills its new columns first,
-- so the audit sees price 4200 and tag red/RED, not 2000.
UPDATE products SET price = 42 WHERE id = 1;
-- b_clamp changes the old columns: 50000 -> 10000 and ' loud ' -> 'loud', carried to the new
-- columns by up: 100.00 and LOUD.  a_audit saw the write before the clamp, consistent.
UPDATE products SET price = 500, tag = ' Loud ' WHERE id = 20;
-- A multi-row statement: the statement trigger's transition table holds consistent rows.
UPDATE products SET note = note || '!' WHERE id IN (10, 20);
RESET search_path;
SELECT trig, op, backfill, id, price, new_price, tag, new_tag FROM log.audit ORDER BY seq;
TRUNCATE log.audit;

-- The backfill fills rows 2 and 3 (row 1 was written through the trigger): its updates fire the
-- user triggers, which see the new columns already filled by the batch; b_clamp's change to row 2
-- (50000, ' Big ') is carried: 10000/100.00, Big/BIG.
SELECT ec_resume('public');
CALL ec_wait('public');
SELECT trig, op, backfill, id, price, new_price, tag, new_tag FROM log.audit ORDER BY seq;
TRUNCATE log.audit;

-- Every row through both versions, and no row where neither direction holds.
SELECT o.id, o.price, o.tag, n.price AS new_price, n.tag AS new_tag, o.note
  FROM public.products o JOIN public_v1.products n USING (id) ORDER BY id;
SELECT id FROM products
 WHERE (_ec_new_price IS DISTINCT FROM price / 100.0 AND price IS DISTINCT FROM (_ec_new_price * 100)::int)
    OR (_ec_new_tag IS DISTINCT FROM upper(tag) AND tag IS DISTINCT FROM lower(_ec_new_tag));

SELECT ec_complete('public');
SELECT * FROM products ORDER BY id;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass AND NOT tgisinternal ORDER BY tgname;
SELECT * FROM ec_test.leftovers();

-- Rollback, on another table.  b_meddle writes the helper column, which belongs to the extension:
-- the last trigger overwrites that with up(old) through either version.
CREATE TABLE gadgets (id int PRIMARY KEY, tag text);
INSERT INTO gadgets VALUES (1, 'one'), (2, 'two');
CREATE FUNCTION log.meddle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW := jsonb_populate_record(NEW, jsonb_build_object('_ec_new_tag', 'meddled'));
  RETURN NEW;
END $$;
CREATE TRIGGER a_audit BEFORE INSERT OR UPDATE ON gadgets FOR EACH ROW EXECUTE FUNCTION log.log_row();
CREATE TRIGGER b_meddle BEFORE INSERT OR UPDATE ON gadgets FOR EACH ROW EXECUTE FUNCTION log.meddle();
CREATE TRIGGER c_after AFTER INSERT OR UPDATE ON gadgets FOR EACH ROW EXECUTE FUNCTION log.log_row();
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('public') x \gset
SELECT ec_start('v2', '{"operations": [
  {"alter_column": {"table": "gadgets", "column": "tag", "type": "text",
                    "up": "upper(tag)", "down": "lower(tag)"}}]}');
UPDATE gadgets SET tag = 'uno' WHERE id = 1;
SET search_path = public_v2, public;
UPDATE gadgets SET tag = 'Dos' WHERE id = 2;
RESET search_path;
SELECT trig, op, backfill, id, tag, new_tag FROM log.audit ORDER BY seq;
TRUNCATE log.audit;
SELECT o.id, o.tag, n.tag AS new_tag FROM public.gadgets o JOIN public_v2.gadgets n USING (id) ORDER BY id;
SELECT ec_rollback('public');
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE '%ec\_dual\_write%';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'gadgets'::regclass AND NOT tgisinternal ORDER BY tgname;
SELECT * FROM ec_test.diff(:'before', 'public');
SELECT * FROM gadgets ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- The function checks its argument.
CREATE TABLE scratch (id int);
CREATE TRIGGER bad BEFORE INSERT ON scratch FOR EACH ROW EXECUTE FUNCTION expand_contract.dual_write('middle');
INSERT INTO scratch VALUES (1);

SET client_min_messages = warning;
DROP SCHEMA public_v1 CASCADE;
DROP TABLE scratch, gadgets, products;
DROP SCHEMA log CASCADE;
DELETE FROM expand_contract.migrations;
RESET client_min_messages;
