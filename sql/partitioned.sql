-- Partitioned tables: a migration treats the partitioned table and all its partitions (range, list,
-- hash, several levels, a default partition) as one table.  The helper columns are added on the
-- parent (PostgreSQL adds them to every partition), the dual-write triggers are created on the
-- parent (cloned to every partition), each leaf partition has a dual-write plan of its own under its
-- own attribute numbers, and the backfill is one task per leaf.
\set ECHO none
\i test/regress_helpers.sql
\i test/regress_catalog.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE SCHEMA pt;

-- Range, with a partition attached from a table with another column order and a dropped column
-- (its attribute numbers differ from the parent's), and a default partition.
CREATE TABLE pt.r (id int NOT NULL, a int, b text) PARTITION BY RANGE (id);
CREATE TABLE pt.r1 PARTITION OF pt.r FOR VALUES FROM (0) TO (100);
CREATE TABLE pt.r2 (b text, gone int, id int NOT NULL, a int);
ALTER TABLE pt.r2 DROP COLUMN gone;
ALTER TABLE pt.r ATTACH PARTITION pt.r2 FOR VALUES FROM (100) TO (200);
-- A default of its own, which its rebuilt column keeps (as ALTER COLUMN ... TYPE does).
ALTER TABLE pt.r2 ALTER COLUMN a SET DEFAULT 7;
CREATE TABLE pt.r_default PARTITION OF pt.r DEFAULT;
-- Even ids: the odd ones are free for the writes below.
INSERT INTO pt.r SELECT 2 * g, 2 * g, 'b' || 2 * g FROM generate_series(1, 150) g;
-- Its twin, changed offline at the end (outside the migrated schema).
CREATE SCHEMA pt_offline;
CREATE TABLE pt_offline.r (id int NOT NULL, a int, b text) PARTITION BY RANGE (id);
CREATE TABLE pt_offline.r1 PARTITION OF pt_offline.r FOR VALUES FROM (0) TO (100);
CREATE TABLE pt_offline.r2 (b text, gone int, id int NOT NULL, a int);
ALTER TABLE pt_offline.r2 DROP COLUMN gone;
ALTER TABLE pt_offline.r ATTACH PARTITION pt_offline.r2 FOR VALUES FROM (100) TO (200);
ALTER TABLE pt_offline.r2 ALTER COLUMN a SET DEFAULT 7;
CREATE TABLE pt_offline.r_default PARTITION OF pt_offline.r DEFAULT;

-- List, two levels: one list partition is itself hash-partitioned; a default partition.
CREATE TABLE pt.l (id int NOT NULL, region text NOT NULL, qty int) PARTITION BY LIST (region);
CREATE TABLE pt.l_eu PARTITION OF pt.l FOR VALUES IN ('eu') PARTITION BY HASH (id);
CREATE TABLE pt.l_eu0 PARTITION OF pt.l_eu FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pt.l_eu1 PARTITION OF pt.l_eu FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE pt.l_us PARTITION OF pt.l FOR VALUES IN ('us');
CREATE TABLE pt.l_other PARTITION OF pt.l DEFAULT;
INSERT INTO pt.l SELECT g, (ARRAY['eu', 'us', 'jp'])[g % 3 + 1], g FROM generate_series(1, 300) g;

-- Hash.
CREATE TABLE pt.h (id int NOT NULL, legacy text NOT NULL, v int) PARTITION BY HASH (id);
CREATE TABLE pt.h0 PARTITION OF pt.h FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE pt.h1 PARTITION OF pt.h FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE pt.h2 PARTITION OF pt.h FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO pt.h SELECT g, 'L-' || g, g FROM generate_series(1, 300) g;

SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset

-- A data-moving operation on a partition alone is refused: the hierarchy is one table.
SELECT ec_start('bad', '{"operations": [{"alter_column": {"table": "r1", "column": "a", "type": "bigint"}}]}', 'pt');

-- Only a role that owns the partitioned table and every partition may migrate it (DDL on the parent
-- recurses): checked before any lock.
CREATE ROLE regress_ec_part_owner;
CREATE ROLE regress_ec_part_other;
GRANT USAGE ON SCHEMA pt TO regress_ec_part_owner;
CREATE TABLE pt.o (id int NOT NULL, a int) PARTITION BY RANGE (id);
CREATE TABLE pt.o1 PARTITION OF pt.o FOR VALUES FROM (0) TO (100);
CREATE TABLE pt.o2 PARTITION OF pt.o DEFAULT;
ALTER TABLE pt.o OWNER TO regress_ec_part_owner;
ALTER TABLE pt.o1 OWNER TO regress_ec_part_owner;
ALTER TABLE pt.o2 OWNER TO regress_ec_part_other;
SET ROLE regress_ec_part_owner;
SELECT ec_start('bad', '{"operations": [{"alter_column": {"table": "o", "column": "a", "type": "bigint"}}]}', 'pt');
RESET ROLE;
DROP TABLE pt.o;
REVOKE USAGE ON SCHEMA pt FROM regress_ec_part_owner;
DROP ROLE regress_ec_part_owner, regress_ec_part_other;

-- Complete would drop the old column, and a partition key column (at any level) cannot be dropped.
SELECT ec_start('bad', '{"operations": [{"alter_column": {"table": "r", "column": "id", "type": "bigint"}}]}', 'pt');
SELECT ec_start('bad', '{"operations": [{"drop_column": {"table": "l", "column": "id", "down": "0"}}]}', 'pt');

-- 1. alter_column: a type change on the range-partitioned table.
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "r", "column": "a", "type": "bigint",
  "up": "a * 10", "down": "(a / 10)::int"}}]}', 'pt');
-- The helper column on every partition, the triggers cloned to each, a plan per leaf mapped to its
-- attribute numbers (r2's differ), one backfill task per leaf.
SELECT attrelid::regclass, attnum, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attname = '_ec_new_a' AND attrelid::regclass::text LIKE 'pt.%' ORDER BY attrelid::regclass::text COLLATE "C";
SELECT tgrelid::regclass, tgname, tgenabled FROM pg_trigger
 WHERE tgname LIKE '%ec_dual_write%' AND tgrelid::regclass::text LIKE 'pt.%' ORDER BY tgrelid::regclass::text COLLATE "C", tgname COLLATE "C";
SELECT relid::regclass, old_attnums, new_attnums, up_sources, down_sources
  FROM expand_contract.dual_writes ORDER BY relid::regclass::text COLLATE "C";
SELECT table_name, backfill_state FROM ec_status('pt') ORDER BY table_name COLLATE "C";
\d pt_v1.r2
-- The rows of each leaf, and whether each row's column pair agrees: the consistency check across
-- all partitions.
SET check_function_bodies = off;
CREATE FUNCTION ec_test.r_check() RETURNS TABLE (part regclass, n bigint, agree bigint, unfilled bigint)
LANGUAGE sql AS $$
  SELECT tableoid::regclass, count(*), count(*) FILTER (WHERE _ec_new_a = a * 10),
         count(*) FILTER (WHERE _ec_new_a IS NULL AND a IS NOT NULL)
    FROM pt.r GROUP BY 1 ORDER BY min(id)
$$;
RESET check_function_bodies;

-- Writes through both versions, routed to every partition (r2 too, and the default one).
INSERT INTO pt.r VALUES (51, 51, 'old'), (151, 151, 'old'), (501, 501, 'old');
SET search_path = pt_v1;
INSERT INTO r VALUES (53, 530, 'new'), (153, 1530, 'new'), (503, 5030, 'new');
-- Rows the backfill has not reached: filled from "up" first, then changed.
UPDATE r SET a = 20 WHERE id IN (2, 102, 202);
-- A row moved to another partition by an update keeps its pair.
UPDATE r SET id = 199, a = 1990 WHERE id = 53;
INSERT INTO r2 (id, a, b) VALUES (155, 1550, 'new, into the partition');
RESET search_path;
UPDATE pt.r SET a = a + 1 WHERE id IN (4, 104, 204);
SELECT tableoid::regclass, id, a, b, _ec_new_a FROM pt.r
 WHERE id % 2 = 1 OR id IN (2, 4, 102, 104, 202, 204) ORDER BY id;
SELECT id, a FROM pt_v1.r WHERE id % 2 = 1 OR id IN (2, 4, 102, 104, 202, 204) ORDER BY id;
SELECT * FROM ec_test.r_check();
-- Partitions cannot come or go meanwhile: they would miss their plans and their backfill.
CREATE TABLE pt.r3 PARTITION OF pt.r FOR VALUES FROM (2000) TO (2100);
CREATE TABLE pt.r3 (id int NOT NULL, a int, b text, _ec_new_a bigint);
ALTER TABLE pt.r ATTACH PARTITION pt.r3 FOR VALUES FROM (2000) TO (2100);
ALTER TABLE pt.r DETACH PARTITION pt.r1;
ALTER TABLE pt.r DETACH PARTITION pt.r1 CONCURRENTLY;
DROP TABLE pt.r2;
DROP TABLE pt.r3;
SELECT ec_rollback('pt');
-- Once the migration is rolled back (or complete), they can.
CREATE TABLE pt.r3 PARTITION OF pt.r FOR VALUES FROM (2000) TO (2100);
DROP TABLE pt.r3;
SELECT * FROM ec_test.diff(:'before', 'pt');
SELECT count(*), sum(a) FROM pt.r;

-- Again, with the backfill, then complete: the same catalog as the offline change of the twin.
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "r", "column": "a", "type": "bigint",
  "up": "a * 10", "down": "(a / 10)::int"}}]}', 'pt');
INSERT INTO pt.r VALUES (61, 61, 'old');
SET search_path = pt_v1;
INSERT INTO r VALUES (161, 1610, 'new');
RESET search_path;
SELECT ec_resume('pt');
CALL ec_wait('pt');
SELECT table_name, backfill_state, rows_done FROM ec_status('pt') ORDER BY table_name COLLATE "C";
SELECT * FROM ec_test.r_check();
DROP FUNCTION ec_test.r_check();
SELECT ec_complete('pt');
ALTER TABLE pt_offline.r ALTER COLUMN a TYPE bigint;
SELECT * FROM ec_test.carry_same('pt.r', 'pt_offline.r');
SELECT * FROM ec_test.carry_same('pt.r1', 'pt_offline.r1');
SELECT * FROM ec_test.carry_same('pt.r2', 'pt_offline.r2');
SELECT * FROM ec_test.carry_same('pt.r_default', 'pt_offline.r_default');
-- The held row count (150 + 6 + 2), every row converted.
SELECT count(*), count(*) FILTER (WHERE a IS NOT NULL) AS filled FROM pt.r;
SELECT tableoid::regclass, id, a FROM pt.r WHERE id % 2 = 1 OR id IN (2, 4, 102, 104) ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- 2. add_column with up on the two-level list/hash table.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "l", "up": "qty * 2",
  "column": {"name": "double_qty", "type": "bigint", "nullable": false, "default": "0"}}}]}', 'pt');
SELECT relid::regclass FROM expand_contract.dual_writes ORDER BY relid::regclass::text COLLATE "C";
SELECT table_name, backfill_state FROM ec_status('pt') ORDER BY table_name COLLATE "C";
INSERT INTO pt.l VALUES (1001, 'eu', 7), (1002, 'eu', 8), (1003, 'us', 9), (1004, 'xx', 10);
SET search_path = pt_v2;
INSERT INTO l VALUES (1005, 'eu', 1, 111);
-- Moved from the default partition into the hash-partitioned one.
UPDATE l SET region = 'eu' WHERE id = 1004;
RESET search_path;
SELECT tableoid::regclass, id, region, qty, _ec_new_double_qty FROM pt.l WHERE id > 1000 ORDER BY id;
-- At every level.
CREATE TABLE pt.l_fr PARTITION OF pt.l FOR VALUES IN ('fr');
ALTER TABLE pt.l_eu DETACH PARTITION pt.l_eu0;
SELECT ec_rollback('pt');
SELECT * FROM ec_test.diff(:'before', 'pt');
-- An "onComplete" sql operation runs once the migration no longer covers the table: it may add a
-- partition (and a "down" at rollback, after the triggers and helper columns are gone, remove one).
SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "l", "up": "qty * 2",
  "column": {"name": "double_qty", "type": "bigint", "nullable": false, "default": "0"}}},
  {"sql": {"up": "CREATE TABLE pt.l_fr PARTITION OF pt.l FOR VALUES IN (''fr'')", "onComplete": true}}]}', 'pt');
INSERT INTO pt.l VALUES (1006, 'eu', 3);
SELECT ec_resume('pt');
SELECT ec_complete('pt');
INSERT INTO pt.l VALUES (1007, 'fr', 4, 8) RETURNING tableoid::regclass, *;
\d pt.l_eu0
SELECT tableoid::regclass, count(*), count(*) FILTER (WHERE double_qty = qty * 2) AS agree
  FROM pt.l GROUP BY 1 ORDER BY tableoid::regclass::text COLLATE "C";
SELECT * FROM ec_test.leftovers();

-- 3. drop_column with down on the hash-partitioned table.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('v3', '{"operations": [{"drop_column": {"table": "h", "column": "legacy",
  "down": "''L-'' || id"}}]}', 'pt');
SET search_path = pt_v3;
INSERT INTO h (id, v) VALUES (1001, 1), (1002, 2), (1003, 3);
UPDATE h SET v = -v WHERE id IN (1, 2, 3);
RESET search_path;
SELECT tableoid::regclass, id, legacy, v FROM pt.h WHERE id > 1000 OR id < 4 ORDER BY id;
SELECT ec_rollback('pt');
SELECT * FROM ec_test.diff(:'before', 'pt');
SELECT ec_start('v3', '{"operations": [{"drop_column": {"table": "h", "column": "legacy",
  "down": "''L-'' || id"}}]}', 'pt');
SELECT ec_resume('pt');
SELECT ec_complete('pt');
\d pt.h1
SELECT count(*), count(*) FILTER (WHERE v = id) FROM pt.h;
SELECT * FROM ec_test.leftovers();
-- 4. Indexes of a rebuilt column: a primary key, a unique index and a partial index on a
-- two-level table.  Each leaf's index is built concurrently by the worker (a task per leaf); the
-- partitioned ones are created ON ONLY at start (INVALID, a catalog change) and the leaves'
-- attached to them at complete; a constraint becomes each leaf's, then the partitioned table's.
CREATE TABLE pt.k (g int NOT NULL, a int NOT NULL, note text, PRIMARY KEY (g, a)) PARTITION BY LIST (g);
CREATE TABLE pt.k1 PARTITION OF pt.k FOR VALUES IN (1);
CREATE TABLE pt.k2 PARTITION OF pt.k FOR VALUES IN (2, 3) PARTITION BY LIST (g);
CREATE TABLE pt.k2a PARTITION OF pt.k2 FOR VALUES IN (2);
CREATE TABLE pt.k2b (note text, gone int, a int NOT NULL, g int NOT NULL);
ALTER TABLE pt.k2b DROP COLUMN gone;
ALTER TABLE pt.k2 ATTACH PARTITION pt.k2b FOR VALUES IN (3);
CREATE TABLE pt.k_default PARTITION OF pt.k DEFAULT;
CREATE UNIQUE INDEX k_a_g ON pt.k (a, g);
CREATE INDEX k_partial ON pt.k (a) WHERE a > 100;
COMMENT ON INDEX pt.k_partial IS 'the big ones';
INSERT INTO pt.k SELECT g % 4 + 1, g, 'n' || g FROM generate_series(1, 400) g;
-- Its twin, changed offline.
CREATE TABLE pt_offline.k (g int NOT NULL, a int NOT NULL, note text, PRIMARY KEY (g, a)) PARTITION BY LIST (g);
CREATE TABLE pt_offline.k1 PARTITION OF pt_offline.k FOR VALUES IN (1);
CREATE TABLE pt_offline.k2 PARTITION OF pt_offline.k FOR VALUES IN (2, 3) PARTITION BY LIST (g);
CREATE TABLE pt_offline.k2a PARTITION OF pt_offline.k2 FOR VALUES IN (2);
CREATE TABLE pt_offline.k2b (note text, gone int, a int NOT NULL, g int NOT NULL);
ALTER TABLE pt_offline.k2b DROP COLUMN gone;
ALTER TABLE pt_offline.k2 ATTACH PARTITION pt_offline.k2b FOR VALUES IN (3);
CREATE TABLE pt_offline.k_default PARTITION OF pt_offline.k DEFAULT;
CREATE UNIQUE INDEX k_a_g ON pt_offline.k (a, g);
CREATE INDEX k_partial ON pt_offline.k (a) WHERE a > 100;
ALTER TABLE pt_offline.k ALTER COLUMN a TYPE bigint;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset

SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "k", "column": "a", "type": "bigint"}}]}', 'pt');
SELECT indexrelid::regclass, indrelid::regclass, indisvalid FROM pg_index
 WHERE indexrelid::regclass::text LIKE 'pt._ec_idx%' ORDER BY 1::regclass::text COLLATE "C";
SELECT table_name, left(sql, 60) AS sql FROM expand_contract.tasks t JOIN expand_contract.migrations m
    ON m.id = t.migration_id AND NOT m.done WHERE kind = 'sql' ORDER BY seq;
-- Until complete, each leaf's new index constrains its leaf, in both versions.
SELECT ec_resume('pt');
CALL ec_wait('pt');
SELECT ec_test.try($$INSERT INTO pt.k (g, a, note) VALUES (3, 1003, 'old')$$);
SET search_path = pt_v4;
SELECT ec_test.try($$INSERT INTO k (g, a, note) VALUES (3, 1003, 'new')$$);
RESET search_path;
SELECT ec_rollback('pt');
SELECT * FROM ec_test.diff(:'before', 'pt');

SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "k", "column": "a", "type": "bigint"}}]}', 'pt');
SELECT ec_resume('pt');
CALL ec_wait('pt');
SELECT ec_complete('pt');
SELECT * FROM ec_test.carry_same('pt.k', 'pt_offline.k');
SELECT * FROM ec_test.carry_same('pt.k1', 'pt_offline.k1');
SELECT * FROM ec_test.carry_same('pt.k2', 'pt_offline.k2');
SELECT * FROM ec_test.carry_same('pt.k2a', 'pt_offline.k2a');
SELECT * FROM ec_test.carry_same('pt.k2b', 'pt_offline.k2b');
SELECT * FROM ec_test.carry_same('pt.k_default', 'pt_offline.k_default');
SELECT c.relname, i.indisvalid, p.relname AS parent
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  LEFT JOIN pg_inherits h ON h.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = h.inhparent
 WHERE c.relnamespace = 'pt'::regnamespace AND c.relname LIKE 'k%' ORDER BY c.relname COLLATE "C";
SELECT conname, conrelid::regclass, conparentid <> 0 AS inherited FROM pg_constraint
 WHERE conrelid::regclass::text LIKE 'pt.k%' AND contype = 'p' ORDER BY conname COLLATE "C";
SELECT obj_description('pt.k_partial'::regclass, 'pg_class');
SELECT count(*) FROM pt.k;
SELECT ec_test.try($$INSERT INTO pt.k (g, a, note) VALUES (3, 1003, 'again')$$);
SELECT * FROM ec_test.leftovers();

-- A failure (the new column would have duplicates: the backfill of the first leaf fails on its new
-- unique index) leaves no INVALID index behind, and rollback the catalog as it was.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('v5', '{"operations": [{"alter_column": {"table": "k", "column": "a", "type": "int",
  "up": "a % 7", "down": "a"}}]}', 'pt');
SELECT ec_resume('pt');
CALL ec_wait('pt');
SELECT table_name, backfill_state FROM ec_status('pt') WHERE backfill_state = 'failed';
-- (the partitioned ones are INVALID until complete attaches the leaves' indexes)
SELECT i.indexrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE NOT i.indisvalid AND c.relnamespace = 'pt'::regnamespace AND c.relkind = 'i';
SELECT ec_rollback('pt');
SELECT * FROM ec_test.diff(:'before', 'pt');

-- 5. create_index on the two-level list/hash table: a plain and a unique index (with the
-- partition keys of both levels), built per leaf, attached at complete.
CREATE TABLE pt_offline.l (id int NOT NULL, region text NOT NULL, qty int, double_qty bigint DEFAULT 0 NOT NULL)
  PARTITION BY LIST (region);
CREATE TABLE pt_offline.l_eu PARTITION OF pt_offline.l FOR VALUES IN ('eu') PARTITION BY HASH (id);
CREATE TABLE pt_offline.l_eu0 PARTITION OF pt_offline.l_eu FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pt_offline.l_eu1 PARTITION OF pt_offline.l_eu FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE pt_offline.l_us PARTITION OF pt_offline.l FOR VALUES IN ('us');
CREATE TABLE pt_offline.l_other PARTITION OF pt_offline.l DEFAULT;
CREATE INDEX l_qty ON pt_offline.l (qty DESC);
CREATE UNIQUE INDEX l_key ON pt_offline.l (region, id);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('v6', '{"operations": [
  {"create_index": {"table": "l", "name": "l_qty", "columns": [{"column": "qty", "sort": "DESC"}]}},
  {"create_index": {"table": "l", "name": "l_key", "unique": true, "columns": [{"column": "region"}, {"column": "id"}]}}]}', 'pt');
SELECT indexrelid::regclass, indrelid::regclass, indisvalid FROM pg_index
 WHERE indexrelid::regclass::text IN ('pt.l_qty', 'pt.l_key', 'pt.l_eu_qty_idx', 'pt.l_eu_region_id_idx')
 ORDER BY 1::regclass::text COLLATE "C";
SELECT table_name, left(sql, 70) AS sql FROM expand_contract.tasks t JOIN expand_contract.migrations m
    ON m.id = t.migration_id AND NOT m.done ORDER BY seq;
SELECT ec_rollback('pt');
SELECT * FROM ec_test.diff(:'before', 'pt');
SELECT ec_start('v6', '{"operations": [
  {"create_index": {"table": "l", "name": "l_qty", "columns": [{"column": "qty", "sort": "DESC"}]}},
  {"create_index": {"table": "l", "name": "l_key", "unique": true, "columns": [{"column": "region"}, {"column": "id"}]}}]}', 'pt');
SELECT ec_resume('pt');
CALL ec_wait('pt');
SET search_path = pt_v6;
SELECT ec_test.try($$INSERT INTO l VALUES (1001, 'eu', 1, 2)$$);
RESET search_path;
SELECT ec_complete('pt');
SELECT * FROM ec_test.carry_same('pt.l', 'pt_offline.l');
SELECT * FROM ec_test.carry_same('pt.l_eu', 'pt_offline.l_eu');
SELECT * FROM ec_test.carry_same('pt.l_eu0', 'pt_offline.l_eu0');
SELECT * FROM ec_test.carry_same('pt.l_eu1', 'pt_offline.l_eu1');
SELECT * FROM ec_test.carry_same('pt.l_us', 'pt_offline.l_us');
SELECT * FROM ec_test.carry_same('pt.l_other', 'pt_offline.l_other');
SELECT count(*) AS invalid FROM pg_index WHERE NOT indisvalid;
SELECT * FROM ec_test.leftovers();

-- 6. Constraints.  Checks work as on a plain table (ADD ... NOT VALID and VALIDATE recurse to
-- every partition); a foreign key or a unique constraint on new columns cannot be added to a
-- partitioned table and is refused at start.
CREATE TABLE pt.ref (id int PRIMARY KEY);
INSERT INTO pt.ref SELECT generate_series(1, 400);
CREATE TABLE pt.c (id int NOT NULL, a int CHECK (a > 0), r int REFERENCES pt.ref, b text)
  PARTITION BY RANGE (id);
CREATE TABLE pt.c1 PARTITION OF pt.c FOR VALUES FROM (0) TO (100);
CREATE TABLE pt.c_default PARTITION OF pt.c DEFAULT;
INSERT INTO pt.c SELECT g, g, g, 'b' || g FROM generate_series(1, 300) g;
CREATE TABLE pt_offline.c (id int NOT NULL, a int CHECK (a > 0), r int, b text) PARTITION BY RANGE (id);
CREATE TABLE pt_offline.c1 PARTITION OF pt_offline.c FOR VALUES FROM (0) TO (100);
CREATE TABLE pt_offline.c_default PARTITION OF pt_offline.c DEFAULT;
ALTER TABLE pt_offline.c ALTER COLUMN a TYPE bigint;
ALTER TABLE pt_offline.c ADD CONSTRAINT b_short CHECK (length(b) < 6);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('v7', '{"operations": [
  {"alter_column": {"table": "c", "column": "a", "type": "bigint"}},
  {"create_constraint": {"table": "c", "name": "b_short", "type": "check", "columns": ["b"],
   "check": "length(b) < 6", "up": {"b": "left(b, 5)"}, "down": {"b": "b"}}}]}', 'pt');
SELECT conname, conrelid::regclass, convalidated FROM pg_constraint
 WHERE conrelid::regclass::text LIKE 'pt.c%' AND contype = 'c' ORDER BY conname COLLATE "C", conrelid::regclass::text COLLATE "C";
SET search_path = pt_v7;
SELECT ec_test.try($$INSERT INTO c VALUES (5000, 0, 1, 'x')$$);
SELECT ec_test.try($$INSERT INTO c VALUES (5000, 1, 1, 'too long')$$);
RESET search_path;
SELECT ec_rollback('pt');
SELECT * FROM ec_test.diff(:'before', 'pt');
SELECT ec_start('v7', '{"operations": [
  {"alter_column": {"table": "c", "column": "a", "type": "bigint"}},
  {"create_constraint": {"table": "c", "name": "b_short", "type": "check", "columns": ["b"],
   "check": "length(b) < 6", "up": {"b": "left(b, 5)"}, "down": {"b": "b"}}}]}', 'pt');
SELECT ec_resume('pt');
SELECT ec_complete('pt');
ALTER TABLE pt.c DROP CONSTRAINT c_r_fkey;
SELECT * FROM ec_test.carry_same('pt.c', 'pt_offline.c');
SELECT * FROM ec_test.carry_same('pt.c1', 'pt_offline.c1');
SELECT * FROM ec_test.carry_same('pt.c_default', 'pt_offline.c_default');
SELECT count(*), count(*) FILTER (WHERE length(b) < 6) FROM pt.c;
SELECT * FROM ec_test.leftovers();
ALTER TABLE pt.c ADD CONSTRAINT c_r_fkey FOREIGN KEY (r) REFERENCES pt.ref;
-- Refused, naming the constraint.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('bad', '{"operations": [{"alter_column": {"table": "c", "column": "r", "type": "bigint"}}]}', 'pt');
SELECT ec_start('bad', '{"operations": [{"create_constraint": {"table": "c", "name": "fk", "type": "foreign_key",
  "columns": ["a"], "references": {"table": "ref", "columns": ["id"]}, "up": {"a": "a"}, "down": {"a": "a"}}}]}', 'pt');
SELECT ec_start('bad', '{"operations": [{"add_column": {"table": "c", "up": "r",
  "column": {"name": "r2", "type": "int", "nullable": true, "references": {"name": "r2_fk", "table": "ref", "column": "id"}}}}]}', 'pt');
SELECT ec_start('bad', '{"operations": [{"create_constraint": {"table": "c", "name": "u", "type": "unique",
  "columns": ["a"], "up": {"a": "a"}, "down": {"a": "a"}}}]}', 'pt');
SELECT ec_start('bad', '{"operations": [{"add_column": {"table": "c", "up": "id",
  "column": {"name": "code", "type": "int", "nullable": true, "unique": true}}}]}', 'pt');
-- A rebuilt key of a partitioned table that a foreign key references: the new key has no unique
-- index on the parent before complete, so the foreign key could not follow it.
CREATE TABLE pt.pk (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE pt.pk_all PARTITION OF pt.pk DEFAULT;
CREATE TABLE pt.pk_refs (id int PRIMARY KEY, pid int, pday date, FOREIGN KEY (pid, pday) REFERENCES pt.pk);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('pt') x \gset
SELECT ec_start('bad', '{"operations": [{"alter_column": {"table": "pk", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}', 'pt');
SELECT * FROM ec_plan('bad', '{"operations": [{"alter_column": {"table": "pk", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}', 'pt');
SELECT * FROM ec_test.diff(:'before', 'pt');

DROP SCHEMA pt, pt_v7, pt_offline CASCADE;
DELETE FROM expand_contract.migrations;
