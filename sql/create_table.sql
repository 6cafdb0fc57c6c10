-- create_table: columns with type, pk, unique, nullable, default, check, references, comment,
-- generated (stored expression, identity); constraints unique, check, primary_key, foreign_key,
-- exclude, with index_parameters; a table created under a name that a drop_table or rename_table
-- of the same migration frees.
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

-- Generated columns, identity columns, exclusion constraints, index parameters, NULLS NOT
-- DISTINCT and ON DELETE SET NULL (columns): start, rollback, start again, complete.
CREATE SCHEMA cal;
CREATE TABLE cal.members (org int, id int, name text, PRIMARY KEY (org, id));
INSERT INTO cal.members VALUES (1, 1, 'ann'), (1, 2, 'bob');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cal') x \gset
SELECT $json${"operations": [{"create_table": {"name": "bookings", "columns": [
    {"name": "id", "type": "bigint", "generated": {"identity": {"sequence_options": "START WITH 10 INCREMENT BY 5 NO CYCLE"}}},
    {"name": "ref", "type": "int", "generated": {"identity": {"user_specified_values": "BY DEFAULT"}}},
    {"name": "title", "type": "text"},
    {"name": "loud", "type": "text", "nullable": true, "generated": {"expression": "upper(title) || '!'"}},
    {"name": "room", "type": "int", "nullable": true},
    {"name": "during", "type": "int4range", "nullable": true},
    {"name": "org", "type": "int", "nullable": true},
    {"name": "member", "type": "int", "nullable": true}],
  "constraints": [
    {"name": "bookings_pk", "type": "primary_key", "columns": ["id"],
     "index_parameters": {"storage_parameters": "fillfactor = 80", "include_columns": ["title"]}},
    {"name": "no_overlap", "type": "exclude",
     "exclude": {"index_method": "gist", "elements": "during WITH &&", "predicate": "room IS NOT NULL"},
     "index_parameters": {"storage_parameters": "fillfactor=70, buffering=off", "tablespace": "pg_default"}},
    {"name": "one_per_room", "type": "unique", "columns": ["room"], "nulls_not_distinct": true,
     "index_parameters": {"storage_parameters": "deduplicate_items = off"}},
    {"name": "bookings_member_fk", "type": "foreign_key", "columns": ["org", "member"],
     "references": {"table": "members", "columns": ["org", "id"], "on_delete": "SET NULL", "on_delete_set_columns": ["member"]}}]}}]}$json$ AS bookings \gset
SELECT ec_start('v1', :'bookings', 'cal');
-- A new table: in the base schema (where the old version's code does not know it) and in the new
-- version's schema, as a view.
SELECT table_schema, table_name FROM information_schema.tables WHERE table_name = 'bookings' ORDER BY 1;
SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'cal.bookings'::regclass ORDER BY conname;
SET search_path = cal_v1;
INSERT INTO bookings (title, room, during, org, member) VALUES ('standup', 1, '[9,10)', 1, 1) RETURNING *;
INSERT INTO bookings (title, room, during) VALUES ('retro', 2, '[10,11)') RETURNING *;
INSERT INTO bookings (ref, title) VALUES (99, 'chosen ref') RETURNING id, ref, loud;
\set VERBOSITY sqlstate
-- identity ALWAYS refuses a value, a generated column any value (428C9)
INSERT INTO bookings (id, title) VALUES (1, 'mine');
INSERT INTO bookings (title, loud) VALUES ('x', 'y');
-- exclusion (23P01), NULLS NOT DISTINCT (23505), foreign key (23503), NOT NULL (23502)
INSERT INTO bookings (title, room, during) VALUES ('overlap', 3, '[9,12)');
INSERT INTO bookings (title) VALUES ('no room, as ''chosen ref''');
INSERT INTO bookings (title, room, org, member) VALUES ('stranger', 5, 1, 9);
INSERT INTO bookings (room) VALUES (7);
\set VERBOSITY default
-- ON DELETE SET NULL (member): the member goes, the organisation stays.
DELETE FROM members WHERE org = 1 AND id = 1;
SELECT title, org, member FROM bookings WHERE title = 'standup';
RESET search_path;
INSERT INTO cal.members VALUES (1, 1, 'ann');

SELECT ec_rollback('cal');
SELECT * FROM ec_test.diff(:'before', 'cal');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS sequences FROM pg_class WHERE relnamespace = 'cal'::regnamespace AND relkind = 'S';

SELECT ec_start('v1', :'bookings', 'cal');
INSERT INTO cal_v1.bookings (title, room, during) VALUES ('kept', 1, '[1,2)');
SELECT ec_resume('cal');
SELECT ec_complete('cal');
SELECT * FROM ec_test.leftovers();
-- The final catalog.
SELECT attname, attidentity, attgenerated, attnotnull, pg_get_expr(d.adbin, d.adrelid) AS generation
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'cal.bookings'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'cal.bookings'::regclass ORDER BY conname;
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'cal.bookings'::regclass ORDER BY 1;
SELECT schemaname, sequencename, start_value, increment_by, cycle FROM pg_sequences
 WHERE schemaname = 'cal' ORDER BY 2;
SELECT relreplident FROM pg_class WHERE oid = 'cal.bookings'::regclass;
INSERT INTO cal_v1.bookings (title) VALUES ('after complete') RETURNING id, ref, title, loud;
-- The next migration serves the table to both versions, identity and generated columns included
-- (pgroll's "a generated column doesn't break subsequent migrations").
SELECT ec_start('v2', '{"operations": [{"sql": {"up": "SELECT 1"}}]}', 'cal');
INSERT INTO cal_v1.bookings (title, room) VALUES ('old version', 8) RETURNING id, ref, title, loud;
INSERT INTO cal_v2.bookings (title, room) VALUES ('new version', 9) RETURNING id, ref, title, loud;
SELECT ec_rollback('cal');
DROP SCHEMA cal, cal_v1 CASCADE;
DELETE FROM expand_contract.migrations;

-- drop_table then create_table of the same name: until complete the old version still has the old
-- table under its name, so the new one is created as _ec_new_<name>, its index and sequence names
-- freed by the drop are renamed at complete, and complete renames it after dropping the old one.
CREATE SCHEMA inv;
CREATE TABLE inv.items (id serial PRIMARY KEY, name text UNIQUE);
INSERT INTO inv.items (name) VALUES ('apple'), ('pear');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('inv') x \gset
SELECT $json${"operations": [{"drop_table": {"name": "items"}}, {"create_table": {"name": "items", "columns": [
    {"name": "id", "type": "serial", "pk": true}, {"name": "name", "type": "text", "unique": true},
    {"name": "description", "type": "text", "nullable": true},
    {"name": "no", "type": "int", "generated": {"identity": {}}}],
  "constraints": [{"name": "items_description_check", "type": "check", "check": "description <> ''"}]}}]}$json$ AS recreate \gset
SELECT ec_start('v1', :'recreate', 'inv');
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'inv'::regnamespace ORDER BY 1;
-- Old version: the old table, unchanged; new version: the new one.
INSERT INTO inv.items (name) VALUES ('plum');
SELECT * FROM inv.items ORDER BY id;
SET search_path = inv_v1;
INSERT INTO items (name, description) VALUES ('apple', 'amazing') RETURNING *;
\set VERBOSITY sqlstate
INSERT INTO items (name) VALUES ('apple');
INSERT INTO items (name, description) VALUES ('fig', '');
\set VERBOSITY default
SELECT * FROM items;
RESET search_path;
SELECT ec_rollback('inv');
SELECT * FROM ec_test.diff(:'before', 'inv');
SELECT * FROM ec_test.leftovers();
SELECT * FROM inv.items ORDER BY id;

SELECT ec_start('v1', :'recreate', 'inv');
INSERT INTO inv_v1.items (name, description) VALUES ('apple', 'amazing');
SELECT ec_resume('inv');
SELECT ec_complete('inv');
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'inv'::regnamespace ORDER BY 1;
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'inv.items'::regclass ORDER BY conname;
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'inv.items'::regclass ORDER BY 1;
SELECT pg_get_serial_sequence('inv.items', 'id') AS id_seq, pg_get_serial_sequence('inv.items', 'no') AS no_seq;
INSERT INTO inv_v1.items (name, description) VALUES ('bananas', 'brilliant') RETURNING *;
SELECT * FROM ec_test.leftovers();

-- rename_table a -> b, then create_table a: the renamed table keeps its name until complete.
-- Names its indexes still hold stay taken, so the new ones are numbered, as PostgreSQL would.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('inv') x \gset
SELECT $json${"operations": [{"rename_table": {"from": "items", "to": "old_items"}},
  {"create_table": {"name": "items", "columns": [{"name": "id", "type": "serial", "pk": true},
    {"name": "old_id", "type": "int", "nullable": true,
     "references": {"name": "items_old_fk", "table": "old_items", "column": "id", "on_delete": "SET NULL"}}]}}]}$json$ AS swap \gset
SELECT ec_start('v2', :'swap', 'inv');
SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema LIKE 'inv%' ORDER BY 1, 2;
SELECT count(*) AS old_version_rows FROM inv_v1.items;
INSERT INTO inv_v2.items (old_id) VALUES (1) RETURNING *;
SELECT count(*) AS renamed_rows FROM inv_v2.old_items;
SELECT ec_rollback('inv');
SELECT * FROM ec_test.diff(:'before', 'inv');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('v2', :'swap', 'inv');
SELECT ec_resume('inv');
SELECT ec_complete('inv');
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'inv'::regnamespace ORDER BY 1;
SELECT conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE connamespace = 'inv'::regnamespace ORDER BY 1, 2;
SELECT * FROM ec_test.leftovers();
DROP SCHEMA inv, inv_v2 CASCADE;
DELETE FROM expand_contract.migrations;

-- create_table, drop_table, create_table in one migration (pgroll's test).
CREATE SCHEMA tri;
SELECT ec_start('v1', '{"operations": [
  {"create_table": {"name": "items", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "name", "type": "varchar(255)"}]}},
  {"drop_table": {"name": "items"}},
  {"create_table": {"name": "items", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "name", "type": "varchar(255)"},
                                                 {"name": "description", "type": "varchar(255)"}]}}]}', 'tri');
INSERT INTO tri_v1.items (name, description) VALUES ('apples', 'amazing') RETURNING *;
SELECT ec_resume('tri');
SELECT ec_complete('tri');
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'tri'::regnamespace ORDER BY 1;
INSERT INTO tri_v1.items (name, description) VALUES ('bananas', 'brilliant') RETURNING *;
DROP SCHEMA tri, tri_v1 CASCADE;
DELETE FROM expand_contract.migrations;

-- Bad values name their field; text that would change the SQL it is parsed in is refused; nothing
-- is left behind.
CREATE SCHEMA bad;
CREATE TABLE bad.t (id int PRIMARY KEY);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('bad') x \gset
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"sequence_options": "START WITH 1; DROP TABLE bad.t"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"sequence_options": "START WITH 1) , x int GENERATED ALWAYS AS (1"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"sequence_options": "OWNED BY bad.t.id"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"sequence_options": "AS bigint"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"sequence_options": "START WITH 1.5"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"sequence_options": "START WITH 10 START WITH 20"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"user_specified_values": "SOMETIMES"}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"identity": {"cache": 5}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {"expression": "1", "identity": {}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "generated": {}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "int", "default": "1", "generated": {"expression": "2"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "id", "type": "serial", "generated": {"identity": {}}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "generated": {"expression": "(SELECT max(id) FROM bad.t)"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "generated": {"expression": "a + 1) STORED, c int GENERATED ALWAYS AS (1"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "timestamptz"}, {"name": "b", "type": "timestamptz", "generated": {"expression": "now()"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"elements": "a WITH =) WHERE (true"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"elements": "a WITH =); DROP TABLE bad.t; --"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"elements": "a WITH =) DEFERRABLE INITIALLY DEFERRED, ADD CHECK (false"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"elements": ""}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "columns": ["a"], "exclude": {"elements": "a WITH ="}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"index_method": "no_such_am", "elements": "a WITH ="}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"elements": "a WITH =", "predicate": "a > (SELECT 1)"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "exclude", "exclude": {"elements": "a WITH =", "where": "a > 1"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "unique", "columns": ["a"], "index_parameters": {"storage_parameters": "fillfactor=70) USING INDEX TABLESPACE pg_global"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "unique", "columns": ["a"], "index_parameters": {"storage_parameters": "fillfactor = pg_catalog.int4"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "unique", "columns": ["a"], "index_parameters": {"storage_parameters": "no_such_parameter = 1"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "unique", "columns": ["a"], "index_parameters": {"tablespace": "no_such_tablespace"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "check", "check": "a > 0", "index_parameters": {"tablespace": "pg_default"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "check", "check": "a > 0", "nulls_not_distinct": true}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "unique", "columns": ["a"], "check": "a > 0"}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "foreign_key", "columns": ["a"], "references": {"table": "t", "columns": ["id"], "on_delete_set_columns": ["a"]}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}],
  "constraints": [{"name": "x", "type": "foreign_key", "columns": ["a"], "references": {"table": "t", "columns": ["id"], "on_delete": "SET NULL", "on_delete_set_columns": ["b"]}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int"}],
  "constraints": [{"name": "x", "type": "foreign_key", "columns": ["a"], "references": {"table": "t", "columns": ["id"], "match_type": "PARTIAL"}}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "n", "columns": [{"name": "a", "type": "int", "pk": true}],
  "constraints": [{"name": "x", "type": "primary_key", "columns": ["a"]}]}}]}', 'bad');
-- A table the new version still has by that name, and a name that a table renamed to it takes.
SELECT ec_start('v1', '{"operations": [{"create_table": {"name": "t", "columns": [{"name": "a", "type": "int"}]}}]}', 'bad');
SELECT ec_start('v1', '{"operations": [{"rename_table": {"from": "t", "to": "u"}}, {"create_table": {"name": "u", "columns": [{"name": "a", "type": "int"}]}}]}', 'bad');
SELECT * FROM ec_test.diff(:'before', 'bad');
SELECT * FROM ec_test.leftovers();
DROP SCHEMA bad CASCADE;
-- A table created in place of a dropped one, whose foreign key the document names after the dropped
-- table's primary key: its own primary key gets a numbered name, as PostgreSQL gives it, and
-- complete succeeds (it renamed the key to the taken name before).
CREATE SCHEMA rep;
CREATE TABLE rep.ref (id int PRIMARY KEY);
CREATE TABLE rep.items (k int PRIMARY KEY);
SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "items"}},
  {"create_table": {"name": "items", "columns": [{"name": "k", "type": "serial", "pk": true},
    {"name": "r", "type": "int", "nullable": true, "references": {"name": "items_pkey", "table": "ref", "column": "id"}}]}}]}', 'rep');
SELECT ec_complete('rep');
SELECT conname, contype FROM pg_constraint WHERE conrelid = 'rep.items'::regclass ORDER BY 1;
DROP SCHEMA rep, rep_v1 CASCADE;
DELETE FROM expand_contract.migrations;
