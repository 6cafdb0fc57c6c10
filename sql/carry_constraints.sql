-- Check and foreign key constraints on columns that a migration rebuilds beside the old ones
-- (alter_column with a type or nullability change, create_constraint): carried to the new columns
-- NOT VALID under a temporary name, validated by the worker, renamed back at complete.  The final
-- catalog equals a twin table changed offline with plain ALTER TABLE.
\set ECHO none
\i test/regress_helpers.sql
\i test/regress_catalog.sql
\set ECHO all
-- A statement's outcome: ok, or its SQLSTATE and the constraint it broke (deferred ones included).
CREATE FUNCTION ec_test.carry_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  con text;
BEGIN
  EXECUTE stmt;
  SET CONSTRAINTS ALL IMMEDIATE;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS con = CONSTRAINT_NAME;
  RETURN SQLSTATE || ' ' || coalesce(con, SQLERRM);
END $$;
-- The same, SQLSTATE only: when two constraints fail, which one reports is not defined.
CREATE FUNCTION ec_test.carry_state(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  SET CONSTRAINTS ALL IMMEDIATE;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
-- The constraints of a table as they stand, for reading.
CREATE FUNCTION ec_test.carry_constraints(t regclass) RETURNS TABLE (conname name, def text, valid boolean)
LANGUAGE sql AS $$
  SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
   WHERE conrelid = t AND contype IN ('c', 'f') ORDER BY conname
$$;

CREATE SCHEMA carrycon;
CREATE TABLE carrycon.parent (id int PRIMARY KEY);
CREATE TABLE carrycon.pair (a int, b int, PRIMARY KEY (a, b));
INSERT INTO carrycon.parent VALUES (1), (2), (3);
INSERT INTO carrycon.pair VALUES (1, 1), (2, 2);
-- Every kind at once: a one-column check, a two-column NO INHERIT check of which one column is
-- rebuilt, a check left NOT VALID, a deferrable foreign key with ON DELETE CASCADE, a MATCH FULL
-- two-column foreign key of which one column is rebuilt, and a check on no rebuilt column.
CREATE TABLE carrycon.items (
  id int PRIMARY KEY,
  qty int CONSTRAINT qty_positive CHECK (qty > 0),
  lo int, hi int,
  parent_id int CONSTRAINT items_parent_fk REFERENCES carrycon.parent (id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  pa int, pb int,
  note text CONSTRAINT note_short CHECK (length(note) < 20),
  CONSTRAINT lo_le_hi CHECK (lo <= hi) NO INHERIT,
  CONSTRAINT items_pair_fk FOREIGN KEY (pa, pb) REFERENCES carrycon.pair (a, b) MATCH FULL ON UPDATE RESTRICT);
ALTER TABLE carrycon.items ADD CONSTRAINT qty_small CHECK (qty < 1000) NOT VALID;
INSERT INTO carrycon.items VALUES (1, 5, 1, 2, 1, 1, 1, 'a'), (2, 6, 3, 4, 2, NULL, NULL, 'b');
-- The twin, in its own schema (index names are per schema), changed offline with plain ALTER TABLE.
CREATE SCHEMA twin_carrycon;
CREATE TABLE twin_carrycon.items (
  id int PRIMARY KEY,
  qty int CONSTRAINT qty_positive CHECK (qty > 0),
  lo int, hi int,
  parent_id int CONSTRAINT items_parent_fk REFERENCES carrycon.parent (id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  pa int, pb int,
  note text CONSTRAINT note_short CHECK (length(note) < 20),
  CONSTRAINT lo_le_hi CHECK (lo <= hi) NO INHERIT,
  CONSTRAINT items_pair_fk FOREIGN KEY (pa, pb) REFERENCES carrycon.pair (a, b) MATCH FULL ON UPDATE RESTRICT);
ALTER TABLE twin_carrycon.items ADD CONSTRAINT qty_small CHECK (qty < 1000) NOT VALID;
SELECT * FROM ec_test.carry_same('carrycon.items', 'twin_carrycon.items');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('carrycon') x \gset

-- alter_column: qty and parent_id int -> bigint, pa -> bigint, lo NOT NULL.  "up" maps 7 to -7
-- and parent 2 to 99 so that an old-version write shows the new columns' constraints at work.
SELECT ec_start('m1', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint",
                    "up": "CASE WHEN qty = 7 THEN -7 ELSE qty END", "down": "qty"}},
  {"alter_column": {"table": "items", "column": "parent_id", "type": "bigint",
                    "up": "CASE WHEN parent_id = 3 THEN 99 ELSE parent_id END", "down": "parent_id"}},
  {"alter_column": {"table": "items", "column": "pa", "type": "bigint"}},
  {"alter_column": {"table": "items", "column": "lo", "nullable": false,
                    "up": "coalesce(lo, 0)", "down": "lo"}}]}', 'carrycon');
CALL ec_wait('carrycon');
-- The carried constraints, over the new columns, validated by the worker (qty_small stays NOT VALID
-- as ALTER COLUMN ... TYPE keeps it); the old ones unchanged.
SELECT * FROM ec_test.carry_constraints('carrycon.items');
SELECT table_name, backfill_state, rows_done FROM ec_status('carrycon') ORDER BY 1;
-- Old version: the old columns pass, the new ones (from "up") break the carried constraints.
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi) VALUES (10, 7, 1, 2)');
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi, parent_id) VALUES (10, 1, 1, 2, 3)');
-- ... the rows are fine for both.
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi, parent_id, pa, pb) VALUES (10, 8, 1, 2, 2, 2, 2)');
-- ... nullable false is the new version's rule only.
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi) VALUES (11, 8, NULL, 2)');
-- New version: every carried constraint holds for its writes.
SET search_path = carrycon_m1;
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi) VALUES (20, 0, 1, 2)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi) VALUES (20, 1, 3, 2)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi) VALUES (20, 1, NULL, 2)');
SELECT ec_test.carry_state('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (20, 1, 1, 2, 42)');
SELECT ec_test.carry_state('INSERT INTO items (id, qty, lo, hi, pa) VALUES (20, 1, 1, 2, 1)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id, pa, pb) VALUES (20, 9, 1, 2, 1, 1, 1)');
RESET search_path;
-- ON DELETE CASCADE through the carried foreign key deletes the row once.
DELETE FROM carrycon.parent WHERE id = 1 RETURNING id;
INSERT INTO carrycon.parent VALUES (1);
SELECT i.id, i.qty, n.qty AS new_qty, i.parent_id, n.parent_id AS new_parent_id, n.lo
  FROM carrycon.items i JOIN carrycon_m1.items n USING (id) ORDER BY id;
SELECT ec_rollback('carrycon');
SELECT * FROM ec_test.diff(:'before', 'carrycon');
SELECT * FROM ec_test.leftovers();

-- Again, and complete: the same catalog as the same change made offline.
SELECT ec_start('m1', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}},
  {"alter_column": {"table": "items", "column": "parent_id", "type": "bigint"}},
  {"alter_column": {"table": "items", "column": "pa", "type": "bigint"}},
  {"alter_column": {"table": "items", "column": "lo", "nullable": false, "up": "coalesce(lo, 0)", "down": "lo"}}]}',
  'carrycon');
CALL ec_wait('carrycon');
SELECT ec_complete('carrycon');
ALTER TABLE twin_carrycon.items ALTER COLUMN qty TYPE bigint, ALTER COLUMN parent_id TYPE bigint,
  ALTER COLUMN pa TYPE bigint, ALTER COLUMN lo SET NOT NULL;
SELECT * FROM ec_test.carry_same('carrycon.items', 'twin_carrycon.items');
SELECT * FROM ec_test.carry_constraints('carrycon.items');
SELECT * FROM ec_test.leftovers();
SELECT id, qty, lo, parent_id, pa FROM carrycon.items ORDER BY id;
-- The carried constraints are the table's own now.
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi) VALUES (30, 0, 1, 2)');
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi, parent_id) VALUES (30, 1, 1, 2, 42)');

-- nullable true on a column with checks (lo), nullable false on one with a foreign key (parent_id).
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('carrycon') x \gset
SELECT ec_start('m2', '{"operations": [
  {"alter_column": {"table": "items", "column": "lo", "nullable": true, "up": "lo", "down": "coalesce(lo, 0)"}},
  {"alter_column": {"table": "items", "column": "parent_id", "nullable": false,
                    "up": "coalesce(parent_id, 2)", "down": "parent_id"}}]}', 'carrycon');
CALL ec_wait('carrycon');
SELECT * FROM ec_test.carry_constraints('carrycon.items');
SET search_path = carrycon_m2;
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (40, 1, 5, 2, 2)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (40, 1, NULL, 2, NULL)');
SELECT ec_test.carry_state('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (40, 1, NULL, 2, 42)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (40, 1, NULL, 2, 2)');
RESET search_path;
SELECT ec_rollback('carrycon');
SELECT * FROM ec_test.diff(:'before', 'carrycon');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('m2', '{"operations": [
  {"alter_column": {"table": "items", "column": "lo", "nullable": true, "up": "lo", "down": "coalesce(lo, 0)"}},
  {"alter_column": {"table": "items", "column": "parent_id", "nullable": false,
                    "up": "coalesce(parent_id, 2)", "down": "parent_id"}}]}', 'carrycon');
CALL ec_wait('carrycon');
SELECT ec_complete('carrycon');
ALTER TABLE twin_carrycon.items ALTER COLUMN lo DROP NOT NULL, ALTER COLUMN parent_id SET NOT NULL;
SELECT * FROM ec_test.carry_same('carrycon.items', 'twin_carrycon.items');
SELECT * FROM ec_test.leftovers();
SELECT id, lo, parent_id FROM carrycon.items ORDER BY id;

-- create_constraint on a column with a check (qty) and on one with a foreign key (parent_id).
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('carrycon') x \gset
SELECT ec_start('m3', '{"operations": [
  {"create_constraint": {"type": "check", "table": "items", "name": "qty_even", "columns": ["qty"],
                         "check": "qty % 2 = 0", "up": {"qty": "qty + qty % 2"}, "down": {"qty": "qty"}}},
  {"create_constraint": {"type": "check", "table": "items", "name": "parent_low", "columns": ["parent_id"],
                         "check": "parent_id < 3", "up": {"parent_id": "least(parent_id, 2)"},
                         "down": {"parent_id": "parent_id"}}}]}', 'carrycon');
CALL ec_wait('carrycon');
SELECT * FROM ec_test.carry_constraints('carrycon.items');
SET search_path = carrycon_m3;
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (50, 3, 1, 2, 2)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (50, 0, 1, 2, 2)');
SELECT ec_test.carry_state('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (50, 2, 1, 2, 0)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (50, 2, 1, 2, 3)');
SELECT ec_test.carry_try('INSERT INTO items (id, qty, lo, hi, parent_id) VALUES (50, 2, 1, 2, 2)');
RESET search_path;
-- The old version keeps its rules: an odd qty is fine there.
SELECT ec_test.carry_try('INSERT INTO carrycon.items (id, qty, lo, hi, parent_id) VALUES (51, 3, 1, 2, 2)');
SELECT ec_rollback('carrycon');
SELECT * FROM ec_test.diff(:'before', 'carrycon');
SELECT * FROM ec_test.leftovers();
DELETE FROM carrycon.items WHERE id = 51;
SELECT ec_start('m3', '{"operations": [
  {"create_constraint": {"type": "check", "table": "items", "name": "qty_even", "columns": ["qty"],
                         "check": "qty % 2 = 0", "up": {"qty": "qty + qty % 2"}, "down": {"qty": "qty"}}},
  {"create_constraint": {"type": "check", "table": "items", "name": "parent_low", "columns": ["parent_id"],
                         "check": "parent_id < 3", "up": {"parent_id": "least(parent_id, 2)"},
                         "down": {"parent_id": "parent_id"}}}]}', 'carrycon');
CALL ec_wait('carrycon');
SELECT ec_complete('carrycon');
ALTER TABLE twin_carrycon.items ADD CONSTRAINT qty_even CHECK (qty % 2 = 0),
  ADD CONSTRAINT parent_low CHECK (parent_id < 3);
SELECT * FROM ec_test.carry_same('carrycon.items', 'twin_carrycon.items');
SELECT * FROM ec_test.leftovers();
SELECT id, qty, parent_id FROM carrycon.items ORDER BY id;

-- A carried constraint that the backfill breaks: "up" gives the new column values its check
-- refuses.  The backfill fails with the reason in ec_status; fixed, it resumes and completes.
SELECT ec_start('m4', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "type": "int", "up": "qty - 6", "down": "qty + 6"}}]}',
  'carrycon');
CALL ec_wait('carrycon');
SELECT table_name, backfill_state, detail FROM ec_status('carrycon') ORDER BY 1;
UPDATE carrycon.items SET qty = qty + 10 WHERE qty <= 6;
SELECT ec_resume('carrycon');
CALL ec_wait('carrycon');
SELECT table_name, backfill_state FROM ec_status('carrycon') ORDER BY 1;
SELECT ec_complete('carrycon');
SELECT * FROM ec_test.carry_constraints('carrycon.items');
SELECT id, qty FROM carrycon.items ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- rename_constraint in the same migration: the carried one takes the new name.
SELECT ec_start('m5', '{"operations": [
  {"rename_constraint": {"table": "items", "from": "qty_positive", "to": "qty_above_zero"}},
  {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}', 'carrycon');
CALL ec_wait('carrycon');
SELECT ec_complete('carrycon');
SELECT * FROM ec_test.carry_constraints('carrycon.items');
SELECT * FROM ec_test.leftovers();

-- The referenced table is locked SHARE ROW EXCLUSIVE (with ec_start's lock retries) for the
-- carried foreign key.
BEGIN;
SELECT ec_start('m6', '{"operations": [{"alter_column": {"table": "items", "column": "pa", "type": "int"}}]}',
  'carrycon');
SELECT mode FROM pg_locks WHERE relation = 'carrycon.pair'::regclass AND pid = pg_backend_pid()
   AND mode = 'ShareRowExclusiveLock';
ROLLBACK;

-- Refused, and nothing left behind: a foreign key whose action writes the referencing rows ...
CREATE TABLE carrycon.nulling (id int PRIMARY KEY,
  p int CONSTRAINT nulling_p_fk REFERENCES carrycon.parent (id) ON DELETE SET NULL (p),
  q int CONSTRAINT nulling_q_fk REFERENCES carrycon.parent (id) ON UPDATE CASCADE);
CREATE TABLE carrycon.tree (id int PRIMARY KEY, up int CONSTRAINT tree_parent_fk REFERENCES carrycon.tree (id));
CREATE TABLE carrycon.whole (id int, v int, CONSTRAINT whole_row CHECK (v > 0 AND whole IS NOT NULL));
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('carrycon') x \gset
\set VERBOSITY default
SELECT ec_start('m6', '{"operations": [{"alter_column": {"table": "nulling", "column": "p", "type": "bigint"}}]}',
  'carrycon');
SELECT ec_start('m6', '{"operations": [{"alter_column": {"table": "nulling", "column": "q", "nullable": false,
  "up": "coalesce(q, 1)", "down": "q"}}]}', 'carrycon');
-- ... an inbound foreign key whose ON DELETE SET NULL names columns (other inbound foreign keys,
-- the table's own included, are re-pointed: sql/carry_foreign_keys.sql) ...
SELECT ec_start('m6', '{"operations": [{"alter_column": {"table": "parent", "column": "id", "type": "bigint"}}]}',
  'carrycon');
-- ... a check that reads the whole row besides the column.
SELECT ec_start('m6', '{"operations": [{"alter_column": {"table": "whole", "column": "v", "type": "bigint"}}]}',
  'carrycon');
\set VERBOSITY terse
SELECT * FROM ec_test.diff(:'before', 'carrycon');
SELECT * FROM ec_test.leftovers();
-- A self-referencing foreign key from a rebuilt column is carried.
SELECT ec_start('m6', '{"operations": [{"alter_column": {"table": "tree", "column": "up", "type": "bigint"}}]}',
  'carrycon');
CALL ec_wait('carrycon');
SELECT ec_complete('carrycon');
SELECT * FROM ec_test.carry_constraints('carrycon.tree');
SELECT * FROM ec_test.leftovers();

\set VERBOSITY terse
SET client_min_messages = warning;
DROP SCHEMA carrycon, twin_carrycon, carrycon_m6 CASCADE;
RESET client_min_messages;
DROP FUNCTION ec_test.carry_try(text), ec_test.carry_state(text),
  ec_test.carry_constraints(regclass);
DELETE FROM expand_contract.migrations;
