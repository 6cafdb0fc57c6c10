-- drop_constraint and drop_multicolumn_constraint: the new version is free of a check, foreign key
-- or unique constraint from ec_start on, the old version keeps it until complete ("down" gives its
-- columns values that satisfy it); rollback leaves the catalog exactly as before; after complete
-- the constraint is gone, and the columns keep their type, default, NOT NULL, comment and grants.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
-- What a table's columns are, and the constraints and indexes on it.
CREATE FUNCTION ec_test.dc_catalog(t regclass) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('column %s %s%s default %s comment %s acl %s', a.attname,
                format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum), a.attacl)
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('constraint %s: %s', conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE conrelid = t
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index WHERE indrelid = t
  UNION ALL
  SELECT format('sequence %s', pg_get_serial_sequence(t::text, attname))
    FROM pg_attribute WHERE attrelid = t AND attnum > 0 AND NOT attisdropped
     AND pg_get_serial_sequence(t::text, attname) IS NOT NULL
$$;

CREATE ROLE dc_reader;
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, name text);
INSERT INTO app.users VALUES (1, 'ann'), (2, 'bob');
CREATE TABLE app.posts (id serial PRIMARY KEY,
                        title text NOT NULL DEFAULT 'untitled' CONSTRAINT title_length CHECK (length(title) > 3),
                        user_id int CONSTRAINT fk_users_id REFERENCES app.users,
                        review text CONSTRAINT reviews_review_unique UNIQUE);
COMMENT ON COLUMN app.posts.title IS 'the title';
GRANT SELECT (title) ON app.posts TO dc_reader;
INSERT INTO app.posts (title, user_id, review) VALUES ('hello', 1, 'good'), ('world', 2, 'bad');
CREATE TABLE app.tickets (id int PRIMARY KEY, sellers_name text, sellers_zip int,
                          CONSTRAINT check_zip_name CHECK (sellers_name = 'alice' OR sellers_zip > 0));
INSERT INTO app.tickets VALUES (1, 'alice', -1), (2, 'bob', 2);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- ---- drop_constraint of a check (pgroll's example 23): "down" makes new-version titles fit it.
\set check_doc '{"operations": [{"drop_constraint": {"table": "posts", "name": "title_length", "up": "title", "down": "CASE WHEN length(title) <= 3 THEN lpad(title, 4, ''-'') ELSE title END"}}]}'
SELECT ec_start('v1', :'check_doc', 'app');
-- The copy has no check; it keeps the default, the comment, the grant and (as a NOT VALID check
-- until complete) NOT NULL.
SELECT * FROM ec_test.dc_catalog('app.posts') x ORDER BY x;
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT * FROM app_v1.posts ORDER BY id;
SET search_path = app_v1;
SELECT ec_test.try($$INSERT INTO posts (title) VALUES ('a')$$);
SELECT ec_test.try($$INSERT INTO posts (user_id) VALUES (1)$$);
SELECT ec_test.try($$INSERT INTO posts (title) VALUES (NULL)$$);
SELECT ec_test.try($$UPDATE posts SET title = 'b' WHERE id = 1$$);
RESET search_path;
-- The old version keeps the check.
SELECT ec_test.try($$INSERT INTO app.posts (title) VALUES ('c')$$);
SELECT ec_test.try($$INSERT INTO app.posts (title) VALUES ('long enough')$$);
SELECT id, title, user_id, review FROM app.posts ORDER BY id;
SELECT * FROM app_v1.posts ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT * FROM app.posts ORDER BY id;

SELECT ec_start('v1', :'check_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.dc_catalog('app.posts') x ORDER BY x;
SELECT * FROM app.posts ORDER BY id;
SET search_path = app_v1;
SELECT ec_test.try($$INSERT INTO posts (title) VALUES ('d')$$);
SELECT ec_test.try($$INSERT INTO posts (title) VALUES (NULL)$$);
RESET search_path;
SELECT * FROM ec_test.leftovers();

-- ---- a foreign key (pgroll's example 24) and a unique constraint (example 27, through
-- drop_multicolumn_constraint's map form) in one migration.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set fk_doc '{"operations": [{"drop_constraint": {"table": "posts", "name": "fk_users_id", "down": "CASE WHEN user_id IN (1, 2) THEN user_id END"}}, {"drop_multicolumn_constraint": {"table": "posts", "name": "reviews_review_unique", "up": {"review": "review"}, "down": {"review": "review || ''-'' || id"}}}]}'
SELECT ec_start('v2', :'fk_doc', 'app');
SELECT * FROM ec_test.dc_catalog('app.posts') x ORDER BY x;
-- complete drops the old column, and with it the foreign key's triggers on users: it locks users too.
SELECT relids::regclass[] AS complete_locks FROM expand_contract.migrations WHERE NOT done;
SELECT ec_resume('app');
CALL ec_wait('app');
SET search_path = app_v2;
SELECT ec_test.try($$INSERT INTO posts (title, user_id, review) VALUES ('free', 99, 'good')$$);
RESET search_path;
SELECT ec_test.try($$INSERT INTO app.posts (title, user_id) VALUES ('fkey', 99)$$);
SELECT ec_test.try($$INSERT INTO app.posts (title, review) VALUES ('uniq', 'good')$$);
SELECT id, title, user_id, review FROM app.posts ORDER BY id;
SELECT * FROM app_v2.posts ORDER BY id;
-- The new version's rows do not hold users back; the old version's still do.
SELECT ec_test.try($$DELETE FROM app.users WHERE id = 2$$);
INSERT INTO app.users VALUES (3, 'cat');
SET search_path = app_v2;
SELECT ec_test.try($$INSERT INTO posts (title, user_id) VALUES ('cats', 3)$$);
RESET search_path;
SELECT ec_test.try($$DELETE FROM app.users WHERE id = 3$$);
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();

SELECT ec_start('v2', :'fk_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.dc_catalog('app.posts') x ORDER BY x;
SELECT * FROM app.posts ORDER BY id;
-- The serial's sequence is untouched (id was not rebuilt) and users is free.
INSERT INTO app.posts (title, user_id, review) VALUES ('after', 42, 'good') RETURNING id, user_id, review;
SELECT ec_test.try($$DELETE FROM app.users WHERE id = 3$$);
SELECT * FROM ec_test.leftovers();

-- ---- a multi-column check (pgroll's example 48): "down" for every column.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
\set multi_doc '{"operations": [{"drop_multicolumn_constraint": {"table": "tickets", "name": "check_zip_name", "up": {"sellers_name": "sellers_name"}, "down": {"sellers_name": "sellers_name", "sellers_zip": "CASE WHEN sellers_name <> ''alice'' AND sellers_zip <= 0 THEN 1 ELSE sellers_zip END"}}}]}'
SELECT ec_start('v3', :'multi_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SET search_path = app_v3;
SELECT ec_test.try($$INSERT INTO tickets VALUES (3, 'bob', -3)$$);
RESET search_path;
SELECT ec_test.try($$INSERT INTO app.tickets VALUES (4, 'bob', -4)$$);
SELECT id, sellers_name, sellers_zip FROM app.tickets ORDER BY id;
SELECT * FROM app_v3.tickets ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT ec_start('v3', :'multi_doc', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT * FROM ec_test.dc_catalog('app.tickets') x ORDER BY x;
SELECT * FROM app.tickets ORDER BY id;
SELECT * FROM ec_test.leftovers();

-- ---- refused at start, with nothing left behind.
CREATE TABLE app.items (id int PRIMARY KEY, code text CONSTRAINT items_code_key UNIQUE
                        CONSTRAINT items_code_check CHECK (code <> ''), a int, b int,
                        sku text CONSTRAINT items_sku_key UNIQUE,
                        CONSTRAINT items_ab_check CHECK (a < b), CONSTRAINT items_any CHECK (random() < 2));
CREATE TABLE app.parts (item_sku text CONSTRAINT parts_item_sku_fkey REFERENCES app.items (sku));
CREATE POLICY item_codes ON app.items USING (code <> 'secret');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset
-- unknown table or constraint; missing or malformed "down"
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "nope", "name": "items_code_check", "down": "code"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "nope", "down": "code"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_code_check"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_code_check", "down": ""}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_code_check", "down": {"code": "code"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "up": {"a": "a"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "down": {"a": "a"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "down": {"a": "a", "b": "b", "id": "id"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "up": {"code": "code"}, "down": {"a": "a", "b": "b"}}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "down": {"a": "a; DROP TABLE app.items", "b": "b"}}}]}', 'app');
-- more than one column for drop_constraint; none at all; kinds pgroll does not drop
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_ab_check", "down": "a"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_any", "down": "a"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_pkey", "down": "id"}}]}', 'app');
-- a policy that reads the column still refuses it (its other constraints and indexes are carried, see
-- sql/carry_indexes.sql), and so does a foreign key of another table that needs the unique constraint
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_code_check", "down": "code"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_sku_key", "down": "sku"}}]}', 'app');
-- a constraint an earlier operation of this migration made, or whose column it changed
SELECT ec_start('e1', '{"operations": [{"add_column": {"table": "items", "column": {"name": "c", "type": "int", "nullable": true, "check": {"name": "items_c_check", "constraint": "c > 0"}}}}, {"drop_constraint": {"table": "items", "name": "items_c_check", "down": "c"}}]}', 'app');
SELECT ec_start('e1', '{"operations": [{"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "down": {"a": "a", "b": "b"}}}, {"drop_multicolumn_constraint": {"table": "items", "name": "items_ab_check", "down": {"a": "a", "b": "b"}}}]}', 'app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS migrations_left FROM expand_contract.migrations WHERE NOT done;

DROP SCHEMA app, app_v3 CASCADE;
DROP ROLE dc_reader;
DROP FUNCTION ec_test.try(text), ec_test.dc_catalog(regclass);
DELETE FROM expand_contract.migrations;
