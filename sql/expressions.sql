-- up and down as pgroll users write them: a leading SELECT (pgroll pastes the text into its
-- PL/pgSQL trigger as NEW.col = (<text>), a scalar subquery), subqueries over other tables,
-- EXISTS.  Without FROM, WHERE or the like the SELECT form is the plain expression (compiled);
-- with them it runs through SPI in the trigger and as the same subquery in the backfill's UPDATE.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, code text UNIQUE NOT NULL, tier text);
INSERT INTO shop.customers VALUES (1, 'acme', 'gold'), (2, 'bolt', NULL), (3, 'cog', 'silver');
CREATE TABLE shop.orders (id int PRIMARY KEY, customer text, amount int, status text);
INSERT INTO shop.orders VALUES (1, 'acme', 100, 'new'), (2, 'bolt', 2000, NULL),
                               (3, 'nobody', 300, 'x'), (4, 'cog', 50, 'shipped');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('shop') x \gset
-- The migration: vip is EXISTS over customers; the customer's code becomes its id, a foreign key,
-- looked up in customers (the SELECT form with FROM/WHERE: no customer gives NULL), and back (a
-- scalar subquery); status gets pgroll's "SELECT CASE" and a check.
\set doc '{"operations": [{"add_column": {"table": "orders", "column": {"name": "vip", "type": "boolean", "nullable": true}, "up": "EXISTS (SELECT 1 FROM customers c WHERE c.code = lower(customer) AND c.tier = ''gold'')"}}, {"alter_column": {"table": "orders", "column": "customer", "name": "customer_id", "type": "int", "references": {"name": "orders_customer_fk", "table": "customers", "column": "id"}, "up": "SELECT c.id FROM customers c WHERE c.code = customer", "down": "(SELECT c.code FROM customers c WHERE c.id = customer_id)"}}, {"alter_column": {"table": "orders", "column": "status", "type": "varchar(10)", "nullable": false, "check": {"name": "orders_status_known", "constraint": "length(status) >= 3"}, "up": "SELECT CASE WHEN status IS NULL OR length(status) < 3 THEN ''unknown'' ELSE status END", "down": "status"}}]}'
SELECT ec_start('v1', :'doc', 'shop');
-- What the trigger and the backfill run: the SELECT CASE is its expression, the others subqueries,
-- over the physical columns, everything outside pg_catalog qualified.
SELECT unnest(new_columns) AS column_name, unnest(up_sources) AS up, unnest(down_sources) AS down
  FROM expand_contract.dual_writes WHERE relid = 'shop.orders'::regclass ORDER BY 1;

-- After start: old-version writes get the new columns from up, through SPI for the subqueries.
INSERT INTO shop.orders VALUES (5, 'cog', 10, NULL), (6, 'nobody', 20, 'paid'), (7, 'ACME', 30, 'ok');
-- A writer whose search_path puts a look-alike before pg_catalog: the subquery still calls
-- pg_catalog.lower, as ec_start analysed it (the trigger runs the stored node tree, which names
-- functions by OID; nothing is looked up by name again).
CREATE FUNCTION shop.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'acme'::text $$;
SET search_path = shop, pg_catalog;
INSERT INTO orders VALUES (8, 'bolt', 40, 'held');
RESET search_path;
DROP FUNCTION shop.lower(text);
-- New-version writes get the old columns from down.
SET search_path = shop_v1;
INSERT INTO orders (id, customer_id, amount, status) VALUES (9, 3, 90, 'open'), (10, NULL, 100, 'open');
-- An update through the new version of a row the backfill has not reached fills what it does not
-- set from up of the row as it was (here vip and customer_id, by subquery).
UPDATE orders SET status = 'sent' WHERE id = 1;
RESET search_path;
SELECT id, customer, amount, status FROM shop.orders ORDER BY id;
SELECT * FROM shop_v1.orders ORDER BY id;
-- The new version's constraints hold for new-version writes only (NOT VALID until complete).
\set VERBOSITY sqlstate
SET search_path = shop_v1;
INSERT INTO orders (id, customer_id, amount, status) VALUES (11, 99, 1, 'open');
INSERT INTO orders (id, customer_id, amount, status) VALUES (11, 1, 1, 'ab');
INSERT INTO orders (id, customer_id, amount, status) VALUES (11, 1, 1, NULL);
INSERT INTO orders (id, customer_id, amount, status) VALUES (1, 1, 1, 'open');
RESET search_path;
\set VERBOSITY default
-- The old version may write what the new constraints refuse: up turns it into what they accept.
INSERT INTO shop.orders VALUES (11, 'zed', 1, 'ab') RETURNING id, customer, status;
SELECT customer_id, status FROM shop_v1.orders WHERE id = 11;

-- After rollback: the catalog is exactly as before, every row kept with its old-version values.
SELECT ec_rollback('shop');
SELECT * FROM ec_test.diff(:'before', 'shop');
SELECT * FROM ec_test.leftovers();
SELECT id, customer, amount, status FROM shop.orders ORDER BY id;

-- Start again, backfill, complete: the backfill's UPDATE computes what the trigger did.
DELETE FROM shop.orders WHERE id > 4;
SELECT ec_start('v1', :'doc', 'shop');
INSERT INTO shop.orders VALUES (5, 'cog', 10, NULL), (6, 'nobody', 20, 'paid'), (7, 'ACME', 30, 'ok');
SELECT ec_resume('shop');
CALL ec_wait('shop');
SELECT table_name, backfill_state, rows_done FROM ec_status('shop');
SELECT * FROM shop_v1.orders ORDER BY id;
-- Every row, filled by the trigger (5 to 7) or by the backfill (1 to 4), holds what the expressions
-- give when a query evaluates them over its old columns.
SELECT count(*) AS mismatches FROM shop.orders o
 WHERE _ec_new_customer IS DISTINCT FROM (SELECT c.id FROM shop.customers c WHERE c.code = o.customer)
    OR _ec_new_status IS DISTINCT FROM (CASE WHEN status IS NULL OR length(status) < 3 THEN 'unknown' ELSE status END)
    OR _ec_new_vip IS DISTINCT FROM EXISTS (SELECT 1 FROM shop.customers c WHERE c.code = lower(o.customer) AND c.tier = 'gold');
SELECT ec_complete('shop');
SELECT * FROM shop.orders ORDER BY id;
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
 WHERE attrelid = 'shop.orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'shop.orders'::regclass ORDER BY conname;
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'shop.orders'::regclass ORDER BY 1;
SELECT relreplident FROM pg_class WHERE oid = 'shop.orders'::regclass;
SELECT * FROM ec_test.leftovers();

-- More than one row: a clean error at write time, and in the backfill a failed task with the
-- row's key.  Zero rows give NULL.  The lookup below has two discounts for tier silver.
CREATE TABLE shop.tiers (tier text, discount int);
INSERT INTO shop.tiers VALUES ('gold', 20), ('silver', 10), ('silver', 5);
DELETE FROM shop.orders WHERE id = 5;   -- order 4 is then the only one of a silver customer
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "discount", "type": "int", "nullable": true}, "up": "SELECT t.discount FROM tiers t JOIN customers c ON c.tier = t.tier WHERE c.id = customer_id"}}]}', 'shop');
\set VERBOSITY sqlstate
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (20, 3, 1, 'open');
\set VERBOSITY default
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (20, 3, 1, 'open');
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (21, 1, 1, 'open'), (22, 2, 1, 'open');
SELECT id, customer_id, discount FROM shop_v2.orders WHERE id > 20 ORDER BY id;
SELECT ec_resume('shop');
CALL ec_wait('shop');
SELECT table_name, backfill_state, detail FROM ec_status('shop');
-- Fixed, resumed: the backfill finishes.
DELETE FROM shop.tiers WHERE discount = 5;
SELECT ec_resume('shop');
CALL ec_wait('shop');
SELECT id, customer_id, discount FROM shop_v2.orders ORDER BY id;
SELECT count(*) AS mismatches FROM shop.orders o
 WHERE _ec_new_discount IS DISTINCT FROM
       (SELECT t.discount FROM shop.tiers t JOIN shop.customers c ON c.tier = t.tier WHERE c.id = o.customer_id);

-- A migration restored from another database (simulated: another origin) re-analyses the stored
-- SQL text, both the subquery and the flattened SELECT CASE, in the trigger and when adopted.
SELECT ec_complete('shop');
SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "tier", "type": "text", "nullable": true}, "up": "SELECT c.tier FROM customers c WHERE c.id = customer_id"}}, {"add_column": {"table": "orders", "column": {"name": "size", "type": "text", "nullable": true}, "up": "SELECT CASE WHEN amount >= 100 THEN ''large'' ELSE ''small'' END"}}]}', 'shop');
-- In one transaction, so that the worker ec_start launched (it exits at once: paused) cannot
-- adopt the migration first.
BEGIN;
UPDATE expand_contract.migrations SET origin = 'elsewhere' WHERE schema_name = 'shop' AND NOT done;
-- Node trees that would compute nothing: until adopted, the trigger must not read them.
UPDATE expand_contract.dual_writes SET up_exprs = array_fill(''::text, ARRAY[cardinality(up_exprs)])
 WHERE relid = 'shop.orders'::regclass;
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (30, 1, 500, 'open');
-- Adopted: the node trees are rewritten from the text.
SELECT table_name, backfill_state FROM ec_status('shop');
COMMIT;
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (31, 3, 5, 'open');
-- A user BEFORE trigger that changes the column a subquery reads: the last dual-write trigger
-- computes up again from the row it left.
CREATE FUNCTION shop.default_customer() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.customer_id := coalesce(NEW.customer_id, 1); RETURN NEW; END $$;
CREATE TRIGGER orders_default_customer BEFORE INSERT ON shop.orders
  FOR EACH ROW EXECUTE FUNCTION shop.default_customer();
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (32, NULL, 5, 'open');
DROP TRIGGER orders_default_customer ON shop.orders;
SELECT id, tier, size FROM shop_v3.orders WHERE id >= 30 ORDER BY id;
SELECT ec_resume('shop');
CALL ec_wait('shop');
SELECT id, customer_id, tier, size FROM shop_v3.orders ORDER BY id;
SELECT ec_complete('shop');

-- Refused at ec_start, naming what is wrong.  A name the version does not have (pgroll's example
-- 35_alter_column_multiple has "down": "event_name", a latent bug there), in the SELECT form too:
-- customer is the name the column had before v1 completed.
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "orders", "column": "amount", "type": "bigint", "up": "SELECT CASE WHEN amount IS NULL THEN 0 ELSE amount END", "down": "order_amount"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "s2", "type": "text", "nullable": true}, "up": "SELECT c.code FROM customers c WHERE c.id = customer"}}]}', 'shop');
-- A name that is both a column of the row and of the subquery's table is ambiguous, as it is in
-- pgroll's PL/pgSQL (variable_conflict = error); qualified, it is fine.
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "t2", "type": "int", "nullable": true}, "up": "SELECT discount FROM tiers WHERE tiers.tier = tier"}}]}', 'shop');
-- Not one value: several columns, a set-returning SELECT list, an aggregate of the row, INTO,
-- row locks, several statements, a statement that writes.
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT amount, amount FROM customers"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT generate_series(1, amount)"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT max(amount)"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT id INTO scratch FROM customers"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "coalesce((SELECT c.id FROM customers c LIMIT 1 FOR UPDATE), 0)"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT 1; DROP TABLE shop.customers"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "WITH d AS (SELECT 1) DELETE FROM shop.customers"}}]}', 'shop');
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT c.id FROM customers c WHERE c.code = (WITH d AS (DELETE FROM shop.tiers RETURNING tiers.tier AS x) SELECT d.x FROM d)"}}]}', 'shop');
-- A subquery's type is checked like any expression's.
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "SELECT c.code FROM customers c WHERE c.id = customer_id"}}]}', 'shop');
-- An expression that writes to its own table would run the trigger inside itself: refused.
CREATE FUNCTION shop.sneaky(n int) RETURNS int LANGUAGE sql AS
  $$ INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (n + 1000, 1, 1, 'loop') RETURNING 1 $$;
SELECT ec_start('v4', '{"operations": [{"add_column": {"table": "orders", "column": {"name": "x", "type": "int", "nullable": true}, "up": "shop.sneaky(id)"}}]}', 'shop');
INSERT INTO shop.orders (id, customer_id, amount, status) VALUES (40, 1, 1, 'open');
SELECT ec_rollback('shop');
SELECT count(*) AS looped FROM shop.orders WHERE id > 1000;
SELECT * FROM ec_test.leftovers();

SET client_min_messages = warning;
DROP SCHEMA shop, shop_v3 CASCADE;
DELETE FROM expand_contract.migrations WHERE schema_name = 'shop';
RESET client_min_messages;
