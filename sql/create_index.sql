-- create_index: indexes built by the worker with CREATE INDEX CONCURRENTLY (unique ones before the
-- backfill, the others after it), on columns of the new version (a column added or renamed earlier in
-- the migration included); every option checked at ec_start; a failed build leaves no INVALID index.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Background work waits for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA ci;
CREATE TABLE ci.fruits (id bigint PRIMARY KEY, name text NOT NULL, size int, tags text[], doc tsvector,
                         picked date);
INSERT INTO ci.fruits VALUES
  (1, 'apple', 3, '{red,sweet}', to_tsvector('simple', 'red apple'), '2024-01-01'),
  (2, 'banana', 5, '{yellow}', to_tsvector('simple', 'long banana'), '2024-02-01'),
  (3, 'cherry', 1, '{red}', to_tsvector('simple', 'small cherry'), '2024-03-01');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('ci') x \gset

-- One migration: a column added (its index goes on the helper column until complete renames it),
-- a column renamed (the new version's name is used), and one index of each kind.
SELECT '{"operations": [
  {"add_column": {"table": "fruits", "up": "upper(name)", "column": {"name": "label", "type": "text", "nullable": true}}},
  {"rename_column": {"table": "fruits", "from": "size", "to": "weight"}},
  {"create_index": {"table": "fruits", "name": "fruits_label_idx", "columns": [{"column": "label"}]}},
  {"create_index": {"table": "fruits", "name": "fruits_name_weight_idx",
     "columns": [{"column": "name", "collate": "\"C\"", "sort": "DESC", "nulls": "LAST"},
                 {"column": "weight", "opclass": {"name": "int4_ops"}}]}},
  {"create_index": {"table": "fruits", "name": "fruits_name_key", "unique": true, "columns": [{"column": "name"}]}},
  {"create_index": {"table": "fruits", "name": "fruits_name_hash", "method": "hash",
     "storage_parameters": "fillfactor = 70", "columns": [{"column": "name"}]}},
  {"create_index": {"table": "fruits", "name": "fruits_heavy_idx", "predicate": "weight > 2", "columns": [{"column": "id"}]}},
  {"create_index": {"table": "fruits", "name": "fruits_doc_gist", "method": "gist",
     "columns": [{"column": "doc", "opclass": {"name": "tsvector_ops", "params": ["siglen=16"]}}]}},
  {"create_index": {"table": "fruits", "name": "fruits_tags_gin", "method": "gin",
     "storage_parameters": "fastupdate=off, gin_pending_list_limit=128", "columns": [{"column": "tags"}]}},
  {"create_index": {"table": "fruits", "name": "fruits_picked_brin", "method": "brin",
     "storage_parameters": "pages_per_range = 16, autosummarize = on", "columns": [{"column": "picked"}]}},
  {"create_index": {"table": "fruits", "name": "Fruits \"Odd\" idx; DROP TABLE ci.fruits", "method": "spgist",
     "columns": [{"column": "name"}]}}]}' AS v1 \gset
SELECT ec_start('v1', :'v1', 'ci');

-- Nothing is built at start.  The worker's tasks, in the order it runs them: the unique index before
-- the backfill (a duplicate fails early), the other indexes after it (an index that exists during the
-- backfill gets an entry for every row the backfill rewrites).  Every name is quoted and qualified,
-- the predicate is over the physical column (size), and each build has its cleanup.
SELECT relname FROM pg_class WHERE relnamespace = 'ci'::regnamespace AND relkind = 'i' ORDER BY 1;
SELECT seq > 1000000 AS after_backfill, kind, sql, cleanup
  FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE NOT m.done ORDER BY seq;
-- Both versions read as before; indexes do not change what a version shows.
SELECT * FROM ci_v1.fruits ORDER BY id;
SELECT id, name, size FROM ci.fruits ORDER BY id;

SELECT ec_resume('ci');
CALL ec_wait('ci');
-- Built and valid, on the physical columns: _ec_new_label for the added column, size for weight.
SELECT c.relname, i.indisvalid, i.indisready, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'ci.fruits'::regclass ORDER BY 1;
SELECT table_name, backfill_state, rows_done, detail FROM ec_status('ci');
SELECT * FROM ci_v1.fruits ORDER BY id;
-- The new version's queries use the index on the new column.
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id, label FROM ci_v1.fruits WHERE label = 'APPLE';
RESET enable_seqscan;
RESET enable_bitmapscan;
-- The unique index is an index of the table: from its build on, it holds for writes through either
-- version (as a pgroll unique index does), with the exact SQLSTATE.
\set VERBOSITY sqlstate
SET search_path = ci_v1;
INSERT INTO fruits (id, name, weight) VALUES (10, 'apple', 1);
RESET search_path;
INSERT INTO ci.fruits (id, name, size) VALUES (11, 'banana', 1);
\set VERBOSITY default
SET search_path = ci_v1;
INSERT INTO fruits (id, name, weight) VALUES (12, 'damson', 4) RETURNING id, name, weight, label;
RESET search_path;

-- Rollback drops every index it built: the schema is exactly as before, nothing left.
SELECT ec_rollback('ci');
SELECT * FROM ec_test.diff(:'before', 'ci');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;
SELECT * FROM ci.fruits ORDER BY id;

-- Again, then complete: the indexes stay, on the final column names.
SELECT ec_start('v1', :'v1', 'ci');
SELECT ec_resume('ci');
CALL ec_wait('ci');
SELECT ec_complete('ci');
CREATE TEMP TABLE online AS
  SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def, i.indisvalid
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE i.indrelid = 'ci.fruits'::regclass;
SELECT relname, indisvalid, def FROM online ORDER BY 1;
SELECT relreplident FROM pg_class WHERE oid = 'ci.fruits'::regclass;
SELECT conname, contype, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'ci.fruits'::regclass ORDER BY 1;
SELECT * FROM ec_test.leftovers();
SELECT relname FROM pg_class WHERE relname LIKE '\_ec\_%';
-- Exactly what an offline CREATE INDEX gives: the same definitions, built by hand.
DROP INDEX ci.fruits_label_idx, ci.fruits_name_weight_idx, ci.fruits_name_key, ci.fruits_name_hash,
  ci.fruits_heavy_idx, ci.fruits_doc_gist, ci.fruits_tags_gin, ci.fruits_picked_brin,
  ci."Fruits ""Odd"" idx; DROP TABLE ci.fruits";
CREATE INDEX fruits_label_idx ON ci.fruits (label);
CREATE INDEX fruits_name_weight_idx ON ci.fruits (name COLLATE "C" DESC NULLS LAST, weight int4_ops);
CREATE UNIQUE INDEX fruits_name_key ON ci.fruits (name);
CREATE INDEX fruits_name_hash ON ci.fruits USING hash (name) WITH (fillfactor = 70);
CREATE INDEX fruits_heavy_idx ON ci.fruits (id) WHERE weight > 2;
CREATE INDEX fruits_doc_gist ON ci.fruits USING gist (doc tsvector_ops (siglen = 16));
CREATE INDEX fruits_tags_gin ON ci.fruits USING gin (tags) WITH (fastupdate = off, gin_pending_list_limit = 128);
CREATE INDEX fruits_picked_brin ON ci.fruits USING brin (picked) WITH (pages_per_range = 16, autosummarize = on);
CREATE INDEX "Fruits ""Odd"" idx; DROP TABLE ci.fruits" ON ci.fruits USING spgist (name);
SELECT 'online only' AS side, relname, def FROM
  (SELECT relname, def FROM online EXCEPT
   SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = 'ci.fruits'::regclass) d
UNION ALL
SELECT 'offline only', relname, def FROM
  (SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = 'ci.fruits'::regclass EXCEPT SELECT relname, def FROM online) d;

-- On a table the same migration creates, the index is built at once, in ec_start's transaction (no
-- one else can see the table yet), and enforced from the start; no task for the worker.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('ci') x \gset
SELECT ec_start('v2', '{"operations": [
  {"create_table": {"name": "baskets", "columns": [{"name": "id", "type": "int", "pk": true},
                                                    {"name": "owner", "type": "text"}]}},
  {"create_index": {"table": "baskets", "name": "baskets_owner_key", "unique": true,
                    "columns": [{"column": "owner", "sort": "desc"}]}}]}', 'ci');
SELECT pg_get_indexdef('ci.baskets_owner_key'::regclass),
       (SELECT indisvalid FROM pg_index WHERE indexrelid = 'ci.baskets_owner_key'::regclass);
SELECT count(*) AS tasks FROM expand_contract.tasks t
  JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE NOT m.done;
SET search_path = ci_v2;
INSERT INTO baskets VALUES (1, 'ann');
\set VERBOSITY sqlstate
INSERT INTO baskets VALUES (2, 'ann');
\set VERBOSITY default
RESET search_path;
SELECT ec_rollback('ci');
SELECT * FROM ec_test.diff(:'before', 'ci');

-- A build that fails leaves no INVALID index behind, shows in ec_status() with the reason and makes
-- ec_wait() fail; once the cause is fixed, ec_resume() builds it.
CREATE TABLE ci.boxes (id int PRIMARY KEY, code text, qty int);
INSERT INTO ci.boxes VALUES (1, 'a', 1), (2, 'a', 2), (3, 'b', 0);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('ci') x \gset
SELECT ec_start('v3', '{"operations": [
  {"create_index": {"table": "boxes", "name": "boxes_code_key", "unique": true, "columns": [{"column": "code"}]}},
  {"create_index": {"table": "boxes", "name": "boxes_big_idx", "predicate": "100 / qty > 10",
                    "columns": [{"column": "id"}]}}]}', 'ci');
SELECT ec_resume('ci');
CALL ec_wait('ci');
SELECT table_name, backfill_state, detail FROM ec_status('ci');
SELECT to_regclass('ci.boxes_code_key') AS index, count(*) AS invalid_indexes
  FROM pg_index WHERE NOT indisvalid;
-- ec_complete refuses too, with the same reason.
SELECT ec_complete('ci');
-- Fixing the duplicate and resuming builds the unique index; then the partial index fails on a
-- row its predicate cannot be computed for (division by zero), and is cleaned up the same way.
DELETE FROM ci.boxes WHERE id = 2;
SELECT ec_resume('ci');
CALL ec_wait('ci');
SELECT table_name, backfill_state, detail FROM ec_status('ci');
SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'ci.boxes'::regclass ORDER BY 1;
UPDATE ci.boxes SET qty = 5 WHERE id = 3;
SELECT ec_resume('ci');
CALL ec_wait('ci');
SELECT table_name, backfill_state, detail FROM ec_status('ci');
\set VERBOSITY sqlstate
INSERT INTO ci.boxes VALUES (4, 'b', 1);
\set VERBOSITY default
SELECT ec_complete('ci');
SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'ci.boxes'::regclass ORDER BY 1;
SELECT * FROM ec_test.leftovers();

-- A failed build, then rollback: nothing left either.
INSERT INTO ci.boxes VALUES (5, 'c', 1);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('ci') x \gset
SELECT ec_start('v4', '{"operations": [
  {"create_index": {"table": "boxes", "name": "boxes_qty_key", "unique": true,
                    "columns": [{"column": "qty", "sort": "DESC"}]}}]}', 'ci');
SELECT ec_resume('ci');
CALL ec_wait('ci');
SELECT ec_rollback('ci');
SELECT * FROM ec_test.diff(:'before', 'ci');
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;

-- Errors at start: each names what is wrong, with its SQLSTATE, and leaves nothing behind.
CREATE TABLE ci.parts (id int, label text) PARTITION BY RANGE (id);
CREATE SEQUENCE ci.fruits_seq;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('ci') x \gset
CREATE FUNCTION ec_test.try_start(doc text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text;
  msg text;
  det text;
  hnt text;
BEGIN
  BEGIN
    PERFORM ec_start('bad', doc::jsonb, 'ci');
    RAISE EXCEPTION USING ERRCODE = 'EC000', MESSAGE = 'accepted';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT;
  END;
  RETURN st || ' ' || msg || coalesce(' DETAIL: ' || nullif(det, ''), '')
         || coalesce(' HINT: ' || nullif(hnt, ''), '');
END $$;
CREATE FUNCTION ec_test.idx(body text) RETURNS text LANGUAGE sql AS $$
  SELECT '{"operations": [{"create_index": {"table": "fruits", "name": "i1", ' || body || '}}]}'
$$;
SELECT what, ec_test.try_start(doc) AS error FROM (VALUES
  ('name of a table',     '{"operations": [{"create_index": {"table": "fruits", "name": "boxes", "columns": [{"column": "id"}]}}]}'),
  ('name of an index',    '{"operations": [{"create_index": {"table": "fruits", "name": "fruits_pkey", "columns": [{"column": "id"}]}}]}'),
  ('name of a sequence',  '{"operations": [{"create_index": {"table": "fruits", "name": "fruits_seq", "columns": [{"column": "id"}]}}]}'),
  ('name twice',          '{"operations": [{"create_index": {"table": "fruits", "name": "i1", "columns": [{"column": "id"}]}},
                                           {"create_index": {"table": "fruits", "name": "i1", "columns": [{"column": "name"}]}}]}'),
  ('name of a unique constraint to come',
                          '{"operations": [{"add_column": {"table": "fruits", "column": {"name": "sku", "type": "text", "nullable": true, "unique": true}}},
                                           {"create_index": {"table": "fruits", "name": "fruits_sku_key", "columns": [{"column": "name"}]}}]}'),
  ('unknown table',       '{"operations": [{"create_index": {"table": "nope", "name": "i1", "columns": [{"column": "id"}]}}]}'),
  ('unknown column',      ec_test.idx('"columns": [{"column": "nope"}]')),
  ('dropped column',      '{"operations": [{"drop_column": {"table": "fruits", "column": "tags"}},
                                           {"create_index": {"table": "fruits", "name": "i1", "columns": [{"column": "tags"}]}}]}'),
  ('old name of a renamed column',
                          '{"operations": [{"rename_column": {"table": "fruits", "from": "picked", "to": "harvested"}},
                                           {"create_index": {"table": "fruits", "name": "i1", "columns": [{"column": "picked"}]}}]}'),
  ('no columns',          ec_test.idx('"columns": []')),
  ('columns missing',     ec_test.idx('"unique": true')),
  ('columns as names',    ec_test.idx('"columns": ["id"]')),
  ('columns as a map',    ec_test.idx('"columns": {"id": {}}')),
  ('column not a string', ec_test.idx('"columns": [{"column": 1}]')),
  ('unknown field',       ec_test.idx('"columns": [{"column": "id", "order": "DESC"}]')),
  ('unknown op field',    ec_test.idx('"columns": [{"column": "id"}], "concurrently": false')),
  ('bad sort',            ec_test.idx('"columns": [{"column": "id", "sort": "UP"}]')),
  ('bad nulls',           ec_test.idx('"columns": [{"column": "id", "nulls": "MIDDLE"}]')),
  ('unknown method',      ec_test.idx('"method": "bitmap", "columns": [{"column": "id"}]')),
  ('unique hash',         ec_test.idx('"method": "hash", "unique": true, "columns": [{"column": "id"}]')),
  ('multicolumn hash',    ec_test.idx('"method": "hash", "columns": [{"column": "id"}, {"column": "name"}]')),
  ('sort on gin',         ec_test.idx('"method": "gin", "columns": [{"column": "tags", "sort": "DESC"}]')),
  ('no default opclass',  ec_test.idx('"method": "gin", "columns": [{"column": "id"}]')),
  ('unknown opclass',     ec_test.idx('"columns": [{"column": "id", "opclass": {"name": "no_such_ops"}}]')),
  ('opclass of another type', ec_test.idx('"columns": [{"column": "name", "opclass": {"name": "int8_ops"}}]')),
  ('opclass injection',   ec_test.idx('"columns": [{"column": "id", "opclass": {"name": "int8_ops); DROP TABLE ci.boxes; --"}}]')),
  ('opclass without options', ec_test.idx('"columns": [{"column": "id", "opclass": {"name": "int8_ops", "params": ["x=1"]}}]')),
  ('opclass option out of range', ec_test.idx('"method": "gist", "columns": [{"column": "doc", "opclass": {"name": "tsvector_ops", "params": ["siglen=0"]}}]')),
  ('opclass params without name', ec_test.idx('"columns": [{"column": "id", "opclass": {"params": ["siglen=1"]}}]')),
  ('unknown collation',   ec_test.idx('"columns": [{"column": "name", "collate": "no_such_coll"}]')),
  ('collation of an int', ec_test.idx('"columns": [{"column": "id", "collate": "\"C\""}]')),
  ('collation injection', ec_test.idx('"columns": [{"column": "name", "collate": "\"C\") WHERE (true"}]')),
  ('unknown parameter',   ec_test.idx('"storage_parameters": "foo=1", "columns": [{"column": "id"}]')),
  ('parameter out of range', ec_test.idx('"storage_parameters": "fillfactor=5", "columns": [{"column": "id"}]')),
  ('parameter of another method', ec_test.idx('"method": "hash", "storage_parameters": "deduplicate_items=off", "columns": [{"column": "id"}]')),
  ('bad parameter value', ec_test.idx('"storage_parameters": "fillfactor=high", "columns": [{"column": "id"}]')),
  ('parameters injection', ec_test.idx('"storage_parameters": "fillfactor=70) WHERE (true", "columns": [{"column": "id"}]')),
  ('parameters statement', ec_test.idx('"storage_parameters": "fillfactor=70; DROP TABLE ci.boxes", "columns": [{"column": "id"}]')),
  ('parameters unterminated', ec_test.idx('"storage_parameters": "fillfactor=''70", "columns": [{"column": "id"}]')),
  ('parameters empty item', ec_test.idx('"storage_parameters": "fillfactor=70,,deduplicate_items=on", "columns": [{"column": "id"}]')),
  ('parameter without value', ec_test.idx('"storage_parameters": "fillfactor=", "columns": [{"column": "id"}]')),
  ('predicate unknown column', ec_test.idx('"predicate": "size > 1", "columns": [{"column": "id"}]')),
  ('predicate volatile',  ec_test.idx('"predicate": "picked > now()", "columns": [{"column": "id"}]')),
  ('predicate subquery',  ec_test.idx('"predicate": "id IN (SELECT 1)", "columns": [{"column": "id"}]')),
  ('predicate not boolean', ec_test.idx('"predicate": "id + 1", "columns": [{"column": "id"}]')),
  ('predicate injection', ec_test.idx('"predicate": "true; DROP TABLE ci.boxes", "columns": [{"column": "id"}]')),
  ('predicate system column', ec_test.idx('"predicate": "xmin <> ''0''", "columns": [{"column": "id"}]')),
  ('unique without the partition key', '{"operations": [{"create_index": {"table": "parts", "name": "i1", "unique": true, "columns": [{"column": "label"}]}}]}')
) v(what, doc);
SELECT * FROM ec_test.diff(:'before', 'ci');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS migrations_of_bad FROM expand_contract.migrations WHERE name = 'bad';

DROP FUNCTION ec_test.try_start(text), ec_test.idx(text);
DROP SCHEMA ci, ci_v3 CASCADE;
DELETE FROM expand_contract.migrations;
