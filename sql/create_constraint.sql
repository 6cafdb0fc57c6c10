-- create_constraint: check, unique, foreign key and primary key on columns of existing tables.
-- During the migration the new version's copies of the columns carry the constraint and the old
-- version keeps its old rules; rollback leaves the catalog exactly as before; after complete the
-- constraint is what the same constraint added offline gives.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
-- A table's constraints and indexes, table names left out: to compare a migrated table with its
-- twin built offline.
CREATE FUNCTION ec_test.cc_catalog(t regclass) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('constraint %s %s: %s%s', conname, contype, pg_get_constraintdef(oid),
                CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END)
    FROM pg_constraint WHERE conrelid = t
  UNION ALL
  SELECT format('index %s', replace(pg_get_indexdef(indexrelid), ' ON ' || t::text || ' ', ' ON _ '))
    FROM pg_index WHERE indrelid = t
  UNION ALL
  SELECT format('column %s %s%s', attname, format_type(atttypid, atttypmod),
                CASE WHEN attnotnull THEN ' not null' ELSE '' END)
    FROM pg_attribute WHERE attrelid = t AND attnum > 0 AND NOT attisdropped
  UNION ALL
  SELECT format('replica identity %s', relreplident) FROM pg_class WHERE oid = t
$$;
CREATE FUNCTION ec_test.cc_same(a regclass, b regclass) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT a::text || ' only: ' || x FROM ec_test.cc_catalog(a) x
   EXCEPT SELECT a::text || ' only: ' || y FROM ec_test.cc_catalog(b) y)
  UNION ALL
  (SELECT b::text || ' only: ' || y FROM ec_test.cc_catalog(b) y
   EXCEPT SELECT b::text || ' only: ' || x FROM ec_test.cc_catalog(a) x)
  ORDER BY 1
$$;

CREATE SCHEMA app;
-- Twins of the migrated tables, built offline, to compare the final catalog with.
CREATE SCHEMA twin;
CREATE TABLE app.sellers (name text, zip int, PRIMARY KEY (name, zip));
INSERT INTO app.sellers VALUES ('alice', 1), ('bob', 2), ('carl', 3);
CREATE TABLE app.tickets (id int NOT NULL, sellers_name text DEFAULT 'alice', sellers_zip int,
                          note text);
COMMENT ON COLUMN app.tickets.sellers_name IS 'who sells';
INSERT INTO app.tickets VALUES (1, 'alice', 1, 'a'), (2, 'bob', 2, 'b'), (3, 'zed', -5, 'c');
CREATE TABLE app.orders (id int NOT NULL, sellers_name text, sellers_zip int);
INSERT INTO app.orders VALUES (1, 'alice', 1), (2, 'bob', 2), (3, 'zed', -1);
CREATE TABLE app.tasks (id int, title text);
INSERT INTO app.tasks VALUES (1, 'one'), (2, 'two'), (NULL, 'three');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- ---- check: pgroll's example 45 (up rewrites the rows the check would refuse), and a NO INHERIT
-- check on another column whose "up" is the column itself.
\set check_doc '{"operations": [{"create_constraint": {"table": "tickets", "name": "check_zip_name", "type": "check", "columns": ["sellers_name", "sellers_zip"], "check": "sellers_name = ''alice'' OR sellers_zip > 0", "up": {"sellers_zip": "CASE WHEN sellers_name <> ''alice'' AND sellers_zip <= 0 THEN 123 ELSE sellers_zip END"}, "down": {"sellers_name": "sellers_name", "sellers_zip": "sellers_zip"}}}, {"create_constraint": {"table": "tickets", "name": "note_not_bad", "type": "check", "columns": ["note"], "check": "note <> ''bad''", "no_inherit": true}}]}'
SELECT ec_start('v1', :'check_doc', 'app');
-- Both checks are NOT VALID, on the new columns only; the copies keep default and comment.
\d app.tickets
\d app_v1.tickets
SELECT attname, col_description(attrelid, attnum) FROM pg_attribute
 WHERE attrelid = 'app.tickets'::regclass AND attname LIKE '%sellers_name' ORDER BY 1;
-- Until the backfill the new version shows the existing rows' new columns as NULL.
SELECT * FROM app_v1.tickets ORDER BY id;
SELECT ec_resume('app');
CALL ec_wait('app');
-- Row 3 breaks the check in the old version; "up" gave its new version a zip that passes.
SELECT * FROM app_v1.tickets ORDER BY id;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'app.tickets'::regclass ORDER BY 1;
-- The old version keeps its old rules: a row the check refuses is written, its new version
-- rewritten by "up" ...
SELECT ec_test.try($$INSERT INTO app.tickets VALUES (4, 'zed', -1, 'd')$$);
-- ... unless "up" (here the column itself) gives a value the new version's check refuses.
SELECT ec_test.try($$INSERT INTO app.tickets VALUES (5, 'alice', 1, 'bad')$$);
-- The new version is bound by both checks.
SET search_path = app_v1;
SELECT ec_test.try($$INSERT INTO tickets VALUES (6, 'zed', -1, 'e')$$);
SELECT ec_test.try($$INSERT INTO tickets VALUES (6, 'alice', -1, 'bad')$$);
SELECT ec_test.try($$INSERT INTO tickets VALUES (6, 'zed', 9, 'e')$$);
SELECT ec_test.try($$UPDATE tickets SET sellers_zip = 0 WHERE id = 6$$);
SELECT ec_test.try($$UPDATE tickets SET sellers_zip = 10 WHERE id = 6$$);
RESET search_path;
SELECT id, sellers_name, sellers_zip, note FROM app.tickets ORDER BY id;
SELECT * FROM app_v1.tickets ORDER BY id;

-- Rollback: the catalog exactly as before, every row kept with its old-version values.
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT * FROM app.tickets ORDER BY id;

-- Again, to complete.
SELECT ec_start('v1', :'check_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM app.tickets ORDER BY id;
SET search_path = app_v1;
SELECT ec_test.try($$INSERT INTO tickets VALUES (7, 'zed', -1, 'f')$$);
SELECT ec_test.try($$INSERT INTO tickets VALUES (7, 'zed', 1, 'bad')$$);
RESET search_path;
-- The same as adding the checks offline.
CREATE TABLE twin.tickets (id int NOT NULL, note text, sellers_name text DEFAULT 'alice',
                           sellers_zip int);
ALTER TABLE twin.tickets ADD CONSTRAINT check_zip_name CHECK (sellers_name = 'alice' OR sellers_zip > 0);
ALTER TABLE twin.tickets ADD CONSTRAINT note_not_bad CHECK (note <> 'bad') NO INHERIT;
SELECT * FROM ec_test.cc_catalog('app.tickets') x ORDER BY x;
SELECT * FROM ec_test.cc_same('app.tickets', 'twin.tickets');
SELECT col_description('app.tickets'::regclass, attnum) FROM pg_attribute
 WHERE attrelid = 'app.tickets'::regclass AND attname = 'sellers_name';
SELECT * FROM ec_test.leftovers();

-- ---- unique and foreign key on the same two columns in one migration: the first duplicates them,
-- the second finds them new already and constrains the copies directly.  "up" turns the zip of
-- sellers that do not exist into NULL, which MATCH SIMPLE lets through.  (Actions that update the
-- referencing rows are refused on existing tables: see the errors below.)
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set fk_doc '{"operations": [{"create_constraint": {"table": "orders", "name": "orders_seller_key", "type": "unique", "columns": ["sellers_name", "sellers_zip"], "up": {"sellers_zip": "CASE WHEN sellers_zip < 0 THEN NULL ELSE sellers_zip END"}}}, {"create_constraint": {"table": "orders", "name": "orders_seller_fk", "type": "foreign_key", "columns": ["sellers_name", "sellers_zip"], "references": {"table": "sellers", "columns": ["name", "zip"], "on_delete": "CASCADE", "on_update": "RESTRICT"}, "up": {"sellers_name": "sellers_name"}, "down": {"sellers_zip": "sellers_zip"}}}]}'
SELECT ec_start('v2', :'fk_doc', 'app');
\d app.orders
-- The unique index is the worker's first task, before the backfill; the validations come last.
SELECT seq, kind, sql FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE NOT m.done ORDER BY seq;
SELECT rollback_steps FROM expand_contract.migrations WHERE NOT done;
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT * FROM app_v2.orders ORDER BY id;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'app.orders'::regclass ORDER BY 1;
-- The old version writes a seller that does not exist (its new version gets NULL from "up") ...
SELECT ec_test.try($$INSERT INTO app.orders VALUES (4, 'nobody', -7)$$);
-- ... but not one whose new version the foreign key or the unique index refuses.
SELECT ec_test.try($$INSERT INTO app.orders VALUES (5, 'nobody', 7)$$);
SELECT ec_test.try($$INSERT INTO app.orders VALUES (5, 'alice', 1)$$);
SET search_path = app_v2;
SELECT ec_test.try($$INSERT INTO orders VALUES (6, 'alice', 1)$$);
SELECT ec_test.try($$INSERT INTO orders VALUES (6, 'nobody', 7)$$);
SELECT ec_test.try($$INSERT INTO orders VALUES (6, 'carl', 3)$$);
RESET search_path;
-- The new version's rules act on the referenced table: ON UPDATE RESTRICT and ON DELETE CASCADE.
SELECT ec_test.try($$UPDATE app.sellers SET zip = 22 WHERE name = 'bob'$$);
DELETE FROM app.sellers WHERE name = 'carl';
SELECT * FROM app_v2.orders ORDER BY id;
INSERT INTO app.sellers VALUES ('carl', 3);
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT * FROM app.orders ORDER BY id;

SELECT ec_start('v2', :'fk_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM app.orders ORDER BY id;
SET search_path = app_v2;
SELECT ec_test.try($$INSERT INTO orders VALUES (7, 'alice', 1)$$);
SELECT ec_test.try($$INSERT INTO orders VALUES (7, 'nobody', 7)$$);
RESET search_path;
CREATE TABLE twin.orders (id int NOT NULL, sellers_name text, sellers_zip int);
ALTER TABLE twin.orders ADD CONSTRAINT orders_seller_key UNIQUE (sellers_name, sellers_zip);
ALTER TABLE twin.orders ADD CONSTRAINT orders_seller_fk FOREIGN KEY (sellers_name, sellers_zip)
  REFERENCES app.sellers (name, zip) ON DELETE CASCADE ON UPDATE RESTRICT;
SELECT * FROM ec_test.cc_catalog('app.orders') x ORDER BY x;
SELECT * FROM ec_test.cc_same('app.orders', 'twin.orders');
SELECT * FROM ec_test.leftovers();

-- ---- primary key, with index parameters, on a table without one.  "up" gives the row without an
-- id one; the new columns are NOT NULL through a NOT VALID check until complete.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set pk_doc '{"operations": [{"create_constraint": {"table": "tasks", "name": "tasks_pkey", "type": "primary_key", "columns": ["id"], "index_parameters": {"tablespace": "pg_default", "storage_parameters": "fillfactor = 80, deduplicate_items = off", "include_columns": ["title"]}, "up": {"id": "coalesce(id, -length(title))"}, "down": {"id": "id"}}}]}'
SELECT ec_start('v3', :'pk_doc', 'app');
\d app.tasks
SELECT seq, kind, sql FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE NOT m.done ORDER BY seq;
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT * FROM app_v3.tasks ORDER BY id;
-- The old version has no key: it writes NULL and duplicate ids, as long as "up" keeps its new
-- version a key.
SELECT ec_test.try($$INSERT INTO app.tasks VALUES (NULL, 'four')$$);
SELECT ec_test.try($$INSERT INTO app.tasks VALUES (1, 'five')$$);
SELECT ec_test.try($$INSERT INTO app.tasks VALUES (5, 'five')$$);
SET search_path = app_v3;
SELECT ec_test.try($$INSERT INTO tasks VALUES (NULL, 'six')$$);
SELECT ec_test.try($$INSERT INTO tasks VALUES (5, 'six')$$);
SELECT ec_test.try($$INSERT INTO tasks VALUES (6, 'six')$$);
RESET search_path;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();

SELECT ec_start('v3', :'pk_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT complete_steps FROM expand_contract.migrations WHERE NOT done;
SELECT ec_complete('app');
SELECT * FROM app.tasks ORDER BY id;
SET search_path = app_v3;
SELECT ec_test.try($$INSERT INTO tasks VALUES (NULL, 'seven')$$);
SELECT ec_test.try($$INSERT INTO tasks VALUES (6, 'seven')$$);
RESET search_path;
CREATE TABLE twin.tasks (title text, id int);
ALTER TABLE twin.tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY (id) INCLUDE (title)
  WITH (fillfactor = 80, deduplicate_items = off) USING INDEX TABLESPACE pg_default;
SELECT * FROM ec_test.cc_catalog('app.tasks') x ORDER BY x;
SELECT * FROM ec_test.cc_same('app.tasks', 'twin.tasks');
SELECT * FROM ec_test.leftovers();
-- A second primary key is refused.
SELECT ec_start('v4', '{"operations": [{"create_constraint": {"table": "tasks", "name": "tasks_pk2", "type": "primary_key", "columns": ["title"]}}]}', 'app');

-- ---- columns new in this migration get the constraint directly: a table created by it (pgroll's
-- example 55, whose "up" and "down" name the column itself; any foreign key action works there,
-- nothing writes it through the old version) and a column added by it.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set new_doc '{"operations": [{"create_table": {"name": "jobs", "columns": [{"name": "id", "type": "int"}]}}, {"create_constraint": {"table": "jobs", "name": "jobs_pkey", "type": "primary_key", "columns": ["id"]}}, {"add_column": {"table": "tasks", "up": "upper(title)", "column": {"name": "code", "type": "text", "nullable": true}}}, {"create_constraint": {"table": "tasks", "name": "tasks_code_key", "type": "unique", "columns": ["code"]}}]}'
SELECT ec_start('v4', :'new_doc', 'app');
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('v4', '{"operations": [
  {"create_table": {"name": "jobs", "columns": [{"name": "id", "type": "int"}, {"name": "title", "type": "text", "nullable": true},
                                                {"name": "seller", "type": "text", "nullable": true}, {"name": "zip", "type": "int", "nullable": true}]}},
  {"create_constraint": {"table": "jobs", "name": "jobs_pkey", "type": "primary_key", "columns": ["id"], "up": {"id": "id"}, "down": {"id": "id"}}},
  {"create_constraint": {"table": "jobs", "name": "jobs_title_key", "type": "unique", "columns": ["title"], "index_parameters": {"storage_parameters": "fillfactor=60"}}},
  {"create_constraint": {"table": "jobs", "name": "jobs_seller_fk", "type": "foreign_key", "columns": ["seller", "zip"],
                         "references": {"table": "sellers", "columns": ["name", "zip"], "match_type": "simple", "on_delete": "SET NULL", "on_delete_set_columns": ["zip"], "on_update": "CASCADE"}}},
  {"add_column": {"table": "tasks", "up": "upper(title)", "column": {"name": "code", "type": "text", "nullable": true}}},
  {"create_constraint": {"table": "tasks", "name": "tasks_code_key", "type": "unique", "columns": ["code"], "up": {"code": "code"}}},
  {"create_constraint": {"table": "tasks", "name": "tasks_code_check", "type": "check", "columns": ["code"], "check": "code <> ''BAD''"}}]}', 'app');
SELECT conname, convalidated, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid IN ('app.jobs'::regclass, 'app.tasks'::regclass) ORDER BY 1;
SELECT attname FROM pg_attribute WHERE attrelid = 'app.tasks'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT * FROM app_v4.tasks ORDER BY id;
-- The added column's "up" must give values its constraints accept.
SELECT ec_test.try($$INSERT INTO app.tasks (id, title) VALUES (7, 'bad')$$);
SELECT ec_test.try($$INSERT INTO app.tasks (id, title) VALUES (7, 'one')$$);
SELECT ec_test.try($$INSERT INTO app.tasks (id, title) VALUES (7, 'seven')$$);
SET search_path = app_v4;
SELECT ec_test.try($$INSERT INTO tasks (id, title, code) VALUES (8, 'eight', 'BAD')$$);
SELECT ec_test.try($$INSERT INTO tasks (id, title, code) VALUES (8, 'eight', 'SEVEN')$$);
INSERT INTO jobs VALUES (1, 'j', 'bob', 2), (2, 'k', 'carl', 3);
SELECT ec_test.try($$INSERT INTO jobs VALUES (3, 'j', 'carl', 3)$$);
SELECT ec_test.try($$INSERT INTO jobs VALUES (3, 'l', 'dora', 4)$$);
RESET search_path;
-- ON DELETE SET NULL (zip) of the new table's foreign key.
DELETE FROM app.sellers WHERE name = 'carl';
SELECT * FROM app_v4.jobs ORDER BY id;
SELECT ec_complete('app');
SELECT * FROM ec_test.cc_catalog('app.jobs') x ORDER BY x;
SELECT * FROM ec_test.cc_catalog('app.tasks') x ORDER BY x;
SELECT * FROM ec_test.leftovers();

-- ---- renames before and after it: names are the new version's as the operations before leave
-- them, and a primary key is attached before its table takes its new name.  The rebuilt id is
-- NOT NULL like the old one, through a NOT VALID check until complete.
CREATE TABLE app.notes (id int, body text);
INSERT INTO app.notes VALUES (1, 'x'), (2, 'y');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set rename_doc '{"operations": [{"rename_table": {"from": "tickets", "to": "tix"}}, {"rename_column": {"table": "tix", "from": "id", "to": "ticket_id"}}, {"create_constraint": {"table": "tix", "name": "tix_ticket_id_key", "type": "unique", "columns": ["ticket_id"]}}, {"create_constraint": {"table": "notes", "name": "notes_pkey", "type": "primary_key", "columns": ["id"]}}, {"rename_table": {"from": "notes", "to": "memos"}}]}'
SELECT ec_start('v5', :'rename_doc', 'app');
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid IN ('app.tickets'::regclass, 'app.notes'::regclass) AND conname LIKE '\_ec%' ORDER BY 1;
SELECT ec_resume('app');
CALL ec_wait('app');
SET search_path = app_v5;
SELECT ec_test.try($$INSERT INTO tix (ticket_id, sellers_name, sellers_zip) VALUES (1, 'alice', 1)$$);
SELECT ec_test.try($$INSERT INTO tix (ticket_id, sellers_name, sellers_zip) VALUES (NULL, 'alice', 1)$$);
SELECT ec_test.try($$INSERT INTO memos VALUES (2, 'z')$$);
SELECT ec_test.try($$INSERT INTO memos VALUES (3, 'z')$$);
RESET search_path;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('v5', :'rename_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.cc_catalog('app.tix') x ORDER BY x;
SELECT * FROM ec_test.cc_catalog('app.memos') x ORDER BY x;
SELECT * FROM app.memos ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- ---- refused at start, with nothing left behind.
CREATE TABLE app.docs (id int PRIMARY KEY, body json, tag text, ref int);
CREATE INDEX docs_tag_idx ON app.docs (tag);
CREATE POLICY docs_tags ON app.docs USING (tag <> 'secret');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
-- unknown table, unknown column, a name the table uses, or an index would need
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "nope", "name": "c", "type": "unique", "columns": ["id"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["nope"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "docs_pkey", "type": "check", "columns": ["ref"], "check": "ref > 0"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "docs_tag_idx", "type": "unique", "columns": ["ref"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"]}}, {"create_constraint": {"table": "docs", "name": "c", "type": "check", "columns": ["tag"], "check": "tag <> ''''"}}]}', 'app');
-- fields the type needs, or does not take
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "check", "columns": ["ref"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": []}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "check": "ref > 0"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "no_inherit": true}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "check", "columns": ["ref"], "check": "ref > 0", "index_parameters": {}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "exclude", "columns": ["ref"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref", "ref"]}}]}', 'app');
-- "up" and "down" map the constraint's columns only, with strings
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "up": {"tag": "tag"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "down": {"ref": 1}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "up": "ref"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "up": {"ref": "ref); DROP TABLE app.docs; --"}}}]}', 'app');
-- a check must read one of its columns
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "check", "columns": ["ref"], "check": "id > 0"}}]}', 'app');
-- foreign keys: the referenced table and columns must exist; MATCH PARTIAL; SET columns
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "nope", "columns": ["id"]}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["nope"]}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["id"], "match_type": "PARTIAL"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["id"], "on_delete_set_columns": ["ref"]}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["id"], "on_delete": "SET NULL", "on_delete_set_columns": ["tag"]}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["title"]}}}]}', 'app');
-- actions that update the referencing rows, on an existing table (the dual-write trigger would
-- undo them for sessions on the old version)
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["id"], "on_delete": "SET NULL"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "foreign_key", "columns": ["ref"], "references": {"table": "tasks", "columns": ["id"], "on_update": "cascade"}}}]}', 'app');
-- index parameters are checked now, not by the worker later; the text is never pasted
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "index_parameters": {"storage_parameters": "fillfactor = 5"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "index_parameters": {"storage_parameters": "colour = blue"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "index_parameters": {"storage_parameters": "fillfactor=70) WHERE (true"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "index_parameters": {"storage_parameters": "fillfactor = ''70''; DROP TABLE app.docs"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "index_parameters": {"tablespace": "nope"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"], "index_parameters": {"include_columns": ["ref"]}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["body"]}}]}', 'app');
-- a column a policy reads (its indexes and constraints are carried, see sql/carry_indexes.sql); one
-- already changed;
-- "up" and "down" of a column new in this migration
SELECT ec_start('e1', '{"operations": [{"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["tag"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_column": {"table": "docs", "column": "ref"}}, {"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["ref"]}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"add_column": {"table": "docs", "column": {"name": "n", "type": "int", "nullable": true}}}, {"create_constraint": {"table": "docs", "name": "c", "type": "unique", "columns": ["n"], "up": {"n": "ref"}}}]}', 'app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS migrations_left FROM expand_contract.migrations WHERE NOT done;

DROP SCHEMA app, app_v5, twin CASCADE;
DROP FUNCTION ec_test.try(text), ec_test.cc_same(regclass, regclass), ec_test.cc_catalog(regclass);
DELETE FROM expand_contract.migrations;
