-- Indexes on a column that the migration rebuilds beside the old one (alter_column with a type or
-- nullability change, create_constraint), and the unique and primary key constraints they back:
-- built again on the new column by the worker with CREATE INDEX CONCURRENTLY, enforced from then on,
-- dropped by rollback, and after complete the same indexes and constraints, under the same names, as
-- the same change made offline with ALTER TABLE gives.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Background work waits for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
-- What a table's indexes and constraints are, its schema left out: to compare a migrated table with
-- its twin changed offline (in another schema, so that the names can be the same).
CREATE FUNCTION ec_test.cx_catalog(t regclass) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('constraint %s %s: %s%s%s comment %s', conname, contype, pg_get_constraintdef(oid),
                CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END,
                CASE WHEN condeferrable THEN ' deferrable' ELSE '' END,
                obj_description(oid, 'pg_constraint'))
    FROM pg_constraint WHERE conrelid = t
  UNION ALL
  SELECT format('index %s: %s%s%s%s%s comment %s', c.relname,
                replace(pg_get_indexdef(i.indexrelid), ' ON ' || t::text || ' ', ' ON _ '),
                CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END,
                CASE WHEN i.indimmediate THEN '' ELSE ' deferred' END,
                CASE WHEN i.indisreplident THEN ' replica identity' ELSE '' END,
                CASE WHEN i.indisclustered THEN ' clustered' ELSE '' END,
                obj_description(i.indexrelid, 'pg_class'))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = t
  UNION ALL
  SELECT format('column %s %s%s statistics %s options %s', attname, format_type(atttypid, atttypmod),
                CASE WHEN attnotnull THEN ' not null' ELSE '' END, attstattarget,
                array(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg\_%'))
    FROM pg_attribute WHERE attrelid = t AND attnum > 0 AND NOT attisdropped
  UNION ALL
  SELECT format('table replica identity %s', relreplident) FROM pg_class WHERE oid = t
$$;
-- Lines of one table's catalog that its twin does not have, and the other way round.
CREATE FUNCTION ec_test.cx_twin_diff(a regclass, b regclass) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT '- ' || x FROM ec_test.cx_catalog(a) x EXCEPT SELECT '- ' || y FROM ec_test.cx_catalog(b) y)
  UNION ALL
  (SELECT '+ ' || y FROM ec_test.cx_catalog(b) y EXCEPT SELECT '+ ' || x FROM ec_test.cx_catalog(a) x)
  ORDER BY 1
$$;

-- One table with an index of every kind on column a (int, NOT NULL), built the same way in cx and,
-- for the offline twin, in twin_cx.
CREATE FUNCTION ec_test.cx_items() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE items (id int PRIMARY KEY, a int NOT NULL, b int, note text,
                      CONSTRAINT items_a_key UNIQUE (a));
  CREATE INDEX items_partial ON items (a DESC NULLS LAST, note COLLATE "C") INCLUDE (b)
    WITH (fillfactor = 70) WHERE a > 0;
  CREATE INDEX items_expr ON items ((a + 1), lower(note));
  CREATE UNIQUE INDEX items_b_nnd ON items (b, a) NULLS NOT DISTINCT;
  CREATE INDEX items_hash ON items USING hash (a);
  CREATE INDEX items_brin ON items USING brin (a int4_minmax_ops) WITH (pages_per_range = 8);
  CREATE INDEX items_pred ON items (note) WHERE a < 1000;
  CREATE INDEX items_note ON items (note);
  ALTER TABLE items REPLICA IDENTITY USING INDEX items_a_key;
  ALTER TABLE items CLUSTER ON items_expr;
  COMMENT ON INDEX items_expr IS 'by a + 1';
  COMMENT ON CONSTRAINT items_a_key ON items IS 'one per a';
  ALTER TABLE items ALTER COLUMN a SET STATISTICS 500;
  ALTER TABLE items ALTER COLUMN a SET (n_distinct = -1);
  INSERT INTO items VALUES (1, 10, 1, 'x'), (2, 20, 2, 'y'), (3, 30, NULL, 'z');
END $$;
CREATE SCHEMA cx;
CREATE SCHEMA twin_cx;
SET search_path = cx;
SELECT ec_test.cx_items();
SET search_path = twin_cx;
SELECT ec_test.cx_items();
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cx') x \gset
SELECT array_agg(x ORDER BY x) AS before_catalog FROM ec_test.cx_catalog('cx.items') x \gset

\set type_doc '{"operations": [{"alter_column": {"table": "items", "column": "a", "type": "bigint"}}]}'
SELECT ec_start('v1', :'type_doc', 'cx');
-- Nothing is built at start; the worker's tasks in order: the unique indexes before the backfill,
-- the others after it, each built concurrently on the new column with its cleanup.
SELECT relname FROM pg_class WHERE relnamespace = 'cx'::regnamespace AND relkind = 'i' ORDER BY 1;
SELECT seq > 1000000 AS after_backfill, kind, sql, cleanup
  FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE NOT m.done ORDER BY seq;
-- The column's statistics target and options are on the new column already.
SELECT attname, attstattarget, array(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg\_%') AS options
  FROM pg_attribute
 WHERE attrelid = 'cx.items'::regclass AND attname IN ('a', '_ec_new_a') ORDER BY 1;
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT table_name, backfill_state, detail FROM ec_status('cx');
-- Built and valid, on the new column; the old indexes are all still there.
SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'cx.items'::regclass ORDER BY 1;
-- Both versions enforce the unique constraint, now also on the new column: a duplicate written
-- through either version fails with 23505 (a session's search_path says which version it uses).
SET search_path = cx_v1;
SELECT ec_test.try('INSERT INTO cx_v1.items (id, a) VALUES (4, 10)') AS new_dup;
RESET search_path;
SELECT ec_test.try('INSERT INTO cx.items (id, a) VALUES (4, 10)') AS old_dup;
SET search_path = cx_v1;
SELECT ec_test.try('INSERT INTO cx_v1.items (id, a, b) VALUES (4, 40, 1)') AS new_nnd_ok;
RESET search_path;
SET search_path = cx_v1;
SELECT ec_test.try('INSERT INTO cx_v1.items (id, a, b) VALUES (5, 50, NULL)') AS new_ok;
RESET search_path;
SELECT ec_test.try('INSERT INTO cx.items (id, a, b) VALUES (6, 60, NULL)') AS old_ok;
SELECT id, a, b FROM cx_v1.items ORDER BY id;
DELETE FROM cx.items WHERE id > 3;

-- Rollback: the catalog exactly as before.
SELECT ec_rollback('cx');
SELECT * FROM ec_test.diff(:'before', 'cx');
SELECT x AS changed FROM ec_test.cx_catalog('cx.items') x EXCEPT SELECT unnest(:'before_catalog'::text[]);
SELECT * FROM ec_test.leftovers();

-- Start again and complete: the same catalog as the twin changed offline.
SELECT ec_start('v1', :'type_doc', 'cx');
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT ec_complete('cx');
ALTER TABLE twin_cx.items ALTER COLUMN a TYPE bigint;
SELECT x AS final FROM ec_test.cx_catalog('cx.items') x ORDER BY 1;
SELECT * FROM ec_test.cx_twin_diff('cx.items', 'twin_cx.items');
SELECT * FROM ec_test.leftovers();
SELECT relname FROM pg_class WHERE relname LIKE '\_ec\_%';
-- Still enforced.
SELECT ec_test.try('INSERT INTO cx.items (id, a) VALUES (4, 10)') AS dup;

-- A primary key column, and a nullability change of a column with indexes: the offline twin
-- gets ALTER COLUMN ... TYPE and DROP NOT NULL.
CREATE FUNCTION ec_test.cx_tags() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL, CONSTRAINT tags_label_key UNIQUE (label));
  CREATE INDEX tags_label_lower ON tags (lower(label)) WHERE label <> '';
  INSERT INTO tags VALUES (1, 'a'), (2, 'b');
END $$;
SET search_path = cx;
SELECT ec_test.cx_tags();
SET search_path = twin_cx;
SELECT ec_test.cx_tags();
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cx') x \gset
\set tags_doc '{"operations": [{"alter_column": {"table": "tags", "column": "id", "type": "bigint"}}, {"alter_column": {"table": "tags", "column": "label", "nullable": true}}]}'
SELECT ec_start('v2', :'tags_doc', 'cx');
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT table_name, backfill_state, detail FROM ec_status('cx');
-- The old version keeps NOT NULL, so a null from the new version fails in the old column (its "down"
-- would have to give a value); the primary key and the unique constraint hold in both versions.
SET search_path = cx_v2;
SELECT ec_test.try('INSERT INTO cx_v2.tags (id, label) VALUES (3, NULL)') AS new_null;
RESET search_path;
SELECT ec_test.try('INSERT INTO cx.tags (id, label) VALUES (4, NULL)') AS old_null;
SET search_path = cx_v2;
SELECT ec_test.try('INSERT INTO cx_v2.tags (id, label) VALUES (1, ''c'')') AS new_pk_dup;
RESET search_path;
SELECT ec_test.try('INSERT INTO cx.tags (id, label) VALUES (5, ''a'')') AS old_unique_dup;
SET search_path = cx_v2;
SELECT ec_test.try('INSERT INTO cx_v2.tags (id, label) VALUES (5, ''a'')') AS new_unique_dup;
RESET search_path;
SET search_path = cx_v2;
SELECT ec_test.try('INSERT INTO cx_v2.tags (id, label) VALUES (6, ''f'')') AS new_ok;
RESET search_path;
DELETE FROM cx.tags WHERE id > 2;
SELECT ec_rollback('cx');
SELECT * FROM ec_test.diff(:'before', 'cx');
SELECT ec_start('v2', :'tags_doc', 'cx');
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT ec_complete('cx');
ALTER TABLE twin_cx.tags ALTER COLUMN id TYPE bigint, ALTER COLUMN label DROP NOT NULL;
SELECT x AS final FROM ec_test.cx_catalog('cx.tags') x ORDER BY 1;
SELECT * FROM ec_test.cx_twin_diff('cx.tags', 'twin_cx.tags');
SELECT * FROM ec_test.leftovers();

-- create_constraint on a column with indexes: the check is new, the indexes are carried.
CREATE FUNCTION ec_test.cx_scores() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE scores (id int PRIMARY KEY, points int, CONSTRAINT scores_points_key UNIQUE (points));
  CREATE INDEX scores_points_idx ON scores (points DESC);
  INSERT INTO scores VALUES (1, 5), (2, -3);
END $$;
SET search_path = cx;
SELECT ec_test.cx_scores();
SET search_path = twin_cx;
SELECT ec_test.cx_scores();
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cx') x \gset
\set check_doc '{"operations": [{"create_constraint": {"table": "scores", "name": "scores_points_positive", "type": "check", "columns": ["points"], "check": "points >= 0", "up": {"points": "abs(points) + 100"}, "down": {"points": "points"}}}]}'
SELECT ec_start('v3', :'check_doc', 'cx');
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT table_name, backfill_state, detail FROM ec_status('cx');
SET search_path = cx_v3;
SELECT ec_test.try('INSERT INTO cx_v3.scores VALUES (3, -1)') AS new_check;
RESET search_path;
SET search_path = cx_v3;
SELECT ec_test.try('INSERT INTO cx_v3.scores VALUES (3, 1)') AS new_ok;
RESET search_path;
SET search_path = cx_v3;
SELECT ec_test.try('INSERT INTO cx_v3.scores VALUES (4, 105)') AS new_unique_dup;
RESET search_path;
SELECT ec_test.try('INSERT INTO cx.scores VALUES (4, 5)') AS old_unique_dup;
SELECT ec_test.try('INSERT INTO cx.scores VALUES (4, -5)') AS old_dup_through_up;
SELECT * FROM cx_v3.scores ORDER BY id;
DELETE FROM cx.scores WHERE id > 2;
SELECT ec_rollback('cx');
SELECT * FROM ec_test.diff(:'before', 'cx');
SELECT ec_start('v3', :'check_doc', 'cx');
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT ec_complete('cx');
UPDATE twin_cx.scores SET points = abs(points) + 100;
ALTER TABLE twin_cx.scores ADD CONSTRAINT scores_points_positive CHECK (points >= 0);
SELECT x AS final FROM ec_test.cx_catalog('cx.scores') x ORDER BY 1;
SELECT * FROM ec_test.cx_twin_diff('cx.scores', 'twin_cx.scores');
SELECT * FROM ec_test.leftovers();

-- A deferrable unique constraint: the worker attaches one, deferrable as the old one, to the new
-- index it built, so a statement that makes a duplicate on its way (shifting positions) works in
-- both versions during the migration; complete renames it.  A duplicate is still refused.
CREATE TABLE cx.seats (id int PRIMARY KEY, pos int NOT NULL,
                       CONSTRAINT seats_pos_key UNIQUE (pos) DEFERRABLE INITIALLY IMMEDIATE,
                       CONSTRAINT seats_id_pos_key UNIQUE (id, pos) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO cx.seats VALUES (1, 1), (2, 2), (3, 3);
CREATE TABLE twin_cx.seats (id int PRIMARY KEY, pos int NOT NULL,
                       CONSTRAINT seats_pos_key UNIQUE (pos) DEFERRABLE INITIALLY IMMEDIATE,
                       CONSTRAINT seats_id_pos_key UNIQUE (id, pos) DEFERRABLE INITIALLY DEFERRED);
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "seats", "column": "pos", "type": "bigint"}}]}', 'cx');
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT conname, condeferrable, condeferred FROM pg_constraint
 WHERE conrelid = 'cx.seats'::regclass AND contype = 'u' ORDER BY 1;
SELECT ec_test.try('UPDATE cx.seats SET pos = pos + 1') AS shift_during;
SET search_path = cx_v4;
SELECT ec_test.try('UPDATE seats SET pos = pos + 1') AS shift_during_new;
SELECT ec_test.try('INSERT INTO seats VALUES (9, 3)') AS dup_during_new;
RESET search_path;
SELECT ec_complete('cx');
ALTER TABLE twin_cx.seats ALTER COLUMN pos TYPE bigint;
SELECT * FROM ec_test.cx_twin_diff('cx.seats', 'twin_cx.seats');
SELECT ec_test.try('UPDATE cx.seats SET pos = pos + 1') AS shift_after;
SELECT ec_test.try('INSERT INTO cx.seats VALUES (4, 4)') AS dup_after;

-- A carried unique index whose build fails: duplicates that "up" made in the new column before the
-- build.  ec_status() shows why, no INVALID index is left, and ec_resume() builds it once fixed.
CREATE TABLE cx.codes (id int PRIMARY KEY, code int, CONSTRAINT codes_code_key UNIQUE (code));
INSERT INTO cx.codes VALUES (1, 100), (2, 200);
SELECT ec_start('v5', '{"operations": [{"alter_column": {"table": "codes", "column": "code", "type": "bigint",
  "up": "code / 100", "down": "code * 100"}}]}', 'cx');
INSERT INTO cx.codes VALUES (3, 301), (4, 302);
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT table_name, backfill_state, detail FROM ec_status('cx');
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;
SELECT ec_test.try('SELECT ec_complete(''cx'')') AS complete;
DELETE FROM cx.codes WHERE id = 4;
SELECT ec_resume('cx');
CALL ec_wait('cx');
SELECT table_name, backfill_state, detail FROM ec_status('cx');
SELECT ec_complete('cx');
SELECT x AS final FROM ec_test.cx_catalog('cx.codes') x ORDER BY 1;
SELECT * FROM cx.codes ORDER BY id;
SELECT ec_test.try('INSERT INTO cx.codes VALUES (5, 3)') AS dup;

-- Refused at start, naming what cannot be carried, leaving nothing behind.
CREATE TABLE cx.slots (id int PRIMARY KEY, room int, during int4range, ref int,
                       EXCLUDE USING gist (during WITH &&), CONSTRAINT slots_room_key UNIQUE (room));
CREATE TABLE cx.bookings (id int, room int REFERENCES cx.slots (room));
CREATE INDEX slots_ref_multi ON cx.slots USING brin (ref int4_minmax_multi_ops);
CREATE TABLE cx.ident (id int NOT NULL, CONSTRAINT ident_id_key UNIQUE (id));
ALTER TABLE cx.ident REPLICA IDENTITY USING INDEX ident_id_key;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cx') x \gset
-- An exclusion constraint.
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "slots", "column": "during", "type": "int8range"}}]}', 'cx');
-- Another table's foreign key on the column needs the unique index: it is re-pointed at the new
-- one (sql/carry_foreign_keys.sql), so the start goes through.
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "slots", "column": "room", "type": "bigint"}}]}', 'cx');
SELECT ec_rollback('cx');
-- An explicit operator class that does not take the new type.
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "slots", "column": "ref", "type": "bigint"}}]}', 'cx');
-- Nulls in the replica identity's column, and in the primary key's, as offline DROP NOT NULL.
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "ident", "column": "id", "nullable": true}}]}', 'cx');
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "slots", "column": "id", "nullable": true}}]}', 'cx');
SELECT * FROM ec_test.diff(:'before', 'cx');
SELECT * FROM ec_test.leftovers();
