-- create_table: columns with type, pk, unique, nullable, default, check, references, comment.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, name text);
INSERT INTO shop.customers VALUES (1, 'ann');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('shop') x \gset

SELECT ec_start('v1', '{"operations": [{"create_table": {
  "name": "orders", "comment": "customer orders",
  "columns": [
    {"name": "id", "type": "bigserial", "pk": true},
    {"name": "customer_id", "type": "int", "references": {"name": "orders_customer_fk", "table": "customers", "column": "id", "on_delete": "CASCADE"}},
    {"name": "code", "type": "varchar(10)", "unique": true, "comment": "external code"},
    {"name": "total", "type": "numeric(10,2)", "default": "0", "check": {"name": "orders_total_check", "constraint": "total >= 0"}},
    {"name": "note", "type": "text", "nullable": true}
  ],
  "constraints": [{"name": "orders_code_note_key", "type": "unique", "columns": ["code", "note"]}]}}]}', 'shop');

SELECT * FROM ec_test.diff(:'before', 'shop');
-- The new version sees the table; the old version (the base schema) has no version schema yet.
SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop_v1' ORDER BY 1;
SET search_path = shop_v1;
INSERT INTO orders (customer_id, code) VALUES (1, 'A1') RETURNING id, customer_id, code, total, note;
INSERT INTO orders (customer_id, code, total) VALUES (1, 'A2', -1);
INSERT INTO orders (customer_id, code) VALUES (2, 'A3');
INSERT INTO orders (customer_id, code) VALUES (1, 'A1');
INSERT INTO orders (customer_id) VALUES (1);
INSERT INTO orders (customer_id, code) VALUES (1, 'A1') ON CONFLICT (code) DO NOTHING;
RESET search_path;

-- Rollback drops it, and the schema is exactly as before.
SELECT ec_rollback('shop');
SELECT * FROM ec_test.diff(:'before', 'shop');
SELECT * FROM ec_test.leftovers();

-- Complete keeps it, validated, with its comments.
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "orders", "comment": "customer orders", "columns": [
    {"name": "id", "type": "serial", "pk": true},
    {"name": "customer_id", "type": "int", "references": {"name": "orders_customer_fk", "table": "customers", "column": "id"}},
    {"name": "code", "type": "text", "comment": "external code", "nullable": true}]}}]}', 'shop');
INSERT INTO shop_v1.orders (customer_id, code) VALUES (1, 'x');
SELECT ec_resume('shop');
SELECT ec_complete('shop');
SELECT * FROM ec_test.diff(:'before', 'shop');
SELECT * FROM ec_test.leftovers();
SELECT obj_description('shop.orders'::regclass, 'pg_class') AS table_comment,
       col_description('shop.orders'::regclass, 3) AS code_comment;
SELECT * FROM shop_v1.orders;

DROP SCHEMA shop, shop_v1 CASCADE;
DELETE FROM expand_contract.migrations;
