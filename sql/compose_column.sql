-- Two or more operations that change one column in one migration compose into one rebuild: one
-- new column, one backfill, the later operation's "up" reading the column as the earlier ones left
-- it and the earlier "down" reading the later operation's column through its "down".  A later type
-- change gets a new column of its own (the earlier one is dropped at start, before any row is
-- filled).  Through both versions after start, rollback to the same catalog, complete to the same
-- catalog as the changes made offline.
\set ECHO none
\i test/regress_helpers.sql
\i test/regress_catalog.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE SCHEMA comp;
CREATE TABLE comp.items (
  id int PRIMARY KEY,
  qty int CONSTRAINT qty_positive CHECK (qty > 0),
  code text,
  note text);
CREATE INDEX items_qty_idx ON comp.items (qty);
CREATE INDEX items_code_idx ON comp.items (code) WHERE code IS NOT NULL;
INSERT INTO comp.items VALUES (1, 5, 'a', 'x'), (2, NULL, NULL, 'y'), (3, 7, 'c', NULL);
CREATE SCHEMA twin_comp;
CREATE TABLE twin_comp.items (LIKE comp.items INCLUDING ALL);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('comp') x \gset

-- type, then nullable, then a check, on qty; nullable, then type and name, on code.
SELECT ec_start('m1', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint",
                    "up": "qty * 10", "down": "qty / 10"}},
  {"alter_column": {"table": "items", "column": "qty", "nullable": false,
                    "up": "coalesce(qty, 10)", "down": "qty"}},
  {"alter_column": {"table": "items", "column": "qty",
                    "check": {"name": "qty_small", "constraint": "qty < 100000"}}},
  {"alter_column": {"table": "items", "column": "code", "nullable": false,
                    "up": "coalesce(code, ''none'')", "down": "code"}},
  {"alter_column": {"table": "items", "column": "code", "type": "varchar(10)", "name": "label",
                    "up": "upper(code)", "down": "lower(label)"}}]}', 'comp');
-- One new column per changed column, nothing left of the replaced one; the chained expressions.
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'comp.items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT old_columns, new_columns, up_sources, down_sources FROM expand_contract.dual_writes d
  JOIN expand_contract.migrations m ON m.id = d.migration_id WHERE NOT m.done;
SELECT ec_resume('comp');
CALL ec_wait('comp');
SELECT * FROM comp_m1.items ORDER BY id;
-- Old version: the new columns follow up(up(...)).
INSERT INTO comp.items (id, qty, code) VALUES (10, NULL, NULL), (11, 3, 'k');
-- New version: the old columns follow down(down(...)); the composed rules hold there only.
SET search_path = comp_m1;
INSERT INTO items (id, qty, label) VALUES (20, 40, 'ZED');
SELECT ec_test.try($$INSERT INTO items (id, qty, label) VALUES (21, NULL, 'A')$$);
SELECT ec_test.try($$INSERT INTO items (id, qty, label) VALUES (21, 200000, 'A')$$);
SELECT ec_test.try($$INSERT INTO items (id, qty, label) VALUES (21, 0, 'A')$$);
SELECT ec_test.try($$INSERT INTO items (id, qty, label) VALUES (21, 1, NULL)$$);
SELECT ec_test.try($$INSERT INTO items (id, qty, label) VALUES (21, 1, 'ABCDEFGHIJK')$$);
UPDATE items SET qty = 90 WHERE id = 1;
RESET search_path;
SELECT i.id, i.qty, i.code, n.qty AS new_qty, n.label FROM comp.items i JOIN comp_m1.items n USING (id)
 ORDER BY id;
SELECT ec_rollback('comp');
SELECT * FROM ec_test.diff(:'before', 'comp');
SELECT * FROM ec_test.leftovers();

-- Again, and complete: the catalog of the same changes made offline.
DELETE FROM comp.items WHERE id >= 10;
SELECT ec_start('m1', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}},
  {"alter_column": {"table": "items", "column": "qty", "nullable": false, "up": "coalesce(qty, 1)"}},
  {"alter_column": {"table": "items", "column": "qty",
                    "check": {"name": "qty_small", "constraint": "qty < 100000"}}},
  {"alter_column": {"table": "items", "column": "code", "nullable": false,
                    "up": "coalesce(code, ''none'')"}},
  {"alter_column": {"table": "items", "column": "code", "type": "varchar(10)"}}]}', 'comp');
SELECT ec_resume('comp');
CALL ec_wait('comp');
SELECT ec_complete('comp');
UPDATE twin_comp.items SET qty = coalesce(qty, 1), code = coalesce(code, 'none');
ALTER TABLE twin_comp.items ALTER COLUMN qty TYPE bigint, ALTER COLUMN qty SET NOT NULL,
  ADD CONSTRAINT qty_small CHECK (qty < 100000),
  ALTER COLUMN code SET NOT NULL, ALTER COLUMN code TYPE varchar(10);
SELECT * FROM ec_test.carry_same('comp.items', 'twin_comp.items');
SELECT * FROM comp.items ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- create_constraint and drop_constraint after an alter_column of the same column compose too.
SELECT ec_start('m2', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "type": "numeric(12,2)",
                    "up": "qty + 0.5", "down": "floor(qty)::bigint"}},
  {"create_constraint": {"table": "items", "name": "qty_unique", "type": "unique", "columns": ["qty"],
                         "up": {"qty": "qty * 2"}, "down": {"qty": "qty / 2"}}},
  {"drop_constraint": {"table": "items", "name": "qty_positive", "up": "qty", "down": "greatest(qty, 2)"}}]}',
  'comp');
SELECT up_sources, down_sources FROM expand_contract.dual_writes d
  JOIN expand_contract.migrations m ON m.id = d.migration_id WHERE NOT m.done;
SELECT ec_resume('comp');
CALL ec_wait('comp');
SET search_path = comp_m2;
INSERT INTO items (id, qty, code) VALUES (30, -3, 'n');
SELECT ec_test.try($$INSERT INTO items (id, qty, code) VALUES (31, 19, 'n')$$);
INSERT INTO items (id, qty, code) VALUES (31, 11, 'n');
RESET search_path;
SELECT i.id, i.qty, n.qty AS new_qty FROM comp.items i JOIN comp_m2.items n USING (id) ORDER BY id;
SELECT ec_complete('comp');
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'comp.items'::regclass ORDER BY 1;

-- A type change after an earlier operation put a constraint on the new column is refused, and
-- leaves nothing behind.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('comp') x \gset
SELECT ec_test.try($$SELECT ec_start('m3', '{"operations": [
  {"alter_column": {"table": "items", "column": "code", "check": {"name": "code_len", "constraint": "length(code) > 0"}}},
  {"alter_column": {"table": "items", "column": "code", "type": "text"}}]}', 'comp')$$);
SELECT * FROM ec_test.diff(:'before', 'comp');
SELECT * FROM ec_test.leftovers();
-- A type changed twice while another column's "down" reads it: that "down" reads the final column
-- through the later "down"; a subquery in a later "up" reads the column as the earlier one left it.
CREATE TABLE comp.pairs (id int PRIMARY KEY, a int, b text);
CREATE TABLE comp.lookup (k int, v int);
INSERT INTO comp.lookup VALUES (1010, 7);
INSERT INTO comp.pairs VALUES (1, 10, 'x');
SELECT ec_start('m4', '{"operations": [
  {"alter_column": {"table": "pairs", "column": "a", "type": "bigint", "up": "a + 1000", "down": "a - 1000"}},
  {"alter_column": {"table": "pairs", "column": "b", "type": "varchar(50)", "down": "b || '':'' || a"}},
  {"alter_column": {"table": "pairs", "column": "a", "type": "numeric",
                    "up": "coalesce((SELECT l.v FROM comp.lookup l WHERE l.k = a), a)", "down": "a"}}]}', 'comp');
SELECT up_sources, down_sources FROM expand_contract.dual_writes d
  JOIN expand_contract.migrations m ON m.id = d.migration_id WHERE NOT m.done;
SELECT ec_resume('comp');
CALL ec_wait('comp');
INSERT INTO comp.pairs VALUES (2, 20, 'y');
SET search_path = comp_m4;
INSERT INTO pairs VALUES (3, 1030, 'z');
RESET search_path;
SELECT p.id, p.a, p.b, n.a AS new_a, n.b AS new_b FROM comp.pairs p JOIN comp_m4.pairs n USING (id) ORDER BY id;
SELECT ec_rollback('comp');
DROP TABLE comp.pairs, comp.lookup;
SELECT * FROM ec_test.diff(:'before', 'comp');
-- A column added by the migration gets its definition in its add_column.
SELECT ec_test.try($$SELECT ec_start('m3', '{"operations": [
  {"add_column": {"table": "items", "column": {"name": "extra", "type": "int", "nullable": true}}},
  {"alter_column": {"table": "items", "column": "extra", "type": "bigint"}}]}', 'comp')$$);
SELECT * FROM ec_test.diff(:'before', 'comp');

\set VERBOSITY terse
SET client_min_messages = warning;
DROP SCHEMA comp, twin_comp, comp_m1, comp_m2 CASCADE;
RESET client_min_messages;
DELETE FROM expand_contract.migrations;
