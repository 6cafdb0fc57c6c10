-- Behaviours that pgroll's own tests (pkg/migrations/op_*_test.go) fix, where expand_contract
-- differed: each section names the pgroll test it follows.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.orders (id int PRIMARY KEY, status text DEFAULT 'new');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- 1. alter_column on a table created earlier in the same migration (TestSetNotNullInMultiOperation
-- Migrations "create table, set not null"): the table has no old version, so the column is changed
-- in place.  pgroll enforces the new NOT NULL through a check (23514); here it is the real
-- NOT NULL at once (23502).
SELECT ec_start('v1', '{"operations": [
  {"create_table": {"name": "items", "columns": [{"name": "id", "type": "int", "pk": true},
                                                 {"name": "name", "type": "varchar(255)", "nullable": true}]}},
  {"sql": {"up": "INSERT INTO items VALUES (1, NULL), (2, ''pear'')", "down": "SELECT 1"}},
  {"alter_column": {"table": "items", "column": "name", "nullable": false,
                    "up": "coalesce(name, ''unknown'')", "down": "name"}},
  {"alter_column": {"table": "items", "column": "name", "name": "title", "type": "text", "default": "''untitled''",
                    "comment": "what it is", "check": {"name": "items_title_length", "constraint": "length(title) > 2"},
                    "unique": {"name": "items_title_unique"}}}]}', 'app');
SELECT * FROM app_v1.items ORDER BY id;
\set VERBOSITY sqlstate
SET search_path = app_v1;
INSERT INTO items (id, title) VALUES (3, NULL);
INSERT INTO items (id, title) VALUES (3, 'ab');
INSERT INTO items (id, title) VALUES (3, 'pear');
RESET search_path;
\set VERBOSITY default
SET search_path = app_v1;
INSERT INTO items (id) VALUES (3) RETURNING *;
RESET search_path;
-- No dual-write trigger, no helper column, no backfill: nothing to keep in step.
SELECT * FROM ec_test.leftovers() WHERE leftovers NOT LIKE 'active migration %';
SELECT count(*) AS tasks FROM expand_contract.tasks;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT ec_start('v1', '{"operations": [
  {"create_table": {"name": "items", "columns": [{"name": "id", "type": "int", "pk": true},
                                                 {"name": "name", "type": "varchar(255)", "nullable": true}]}},
  {"alter_column": {"table": "items", "column": "name", "nullable": false, "up": "name", "down": "name"}},
  {"alter_column": {"table": "items", "column": "name", "name": "title", "type": "text", "default": "''untitled''",
                    "comment": "what it is", "check": {"name": "items_title_length", "constraint": "length(title) > 2"},
                    "unique": {"name": "items_title_unique"}}}]}', 'app');
SELECT ec_complete('app');
SELECT attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(adbin, adrelid) AS default,
       col_description(attrelid, attnum)
  FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid = 'app.items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid = 'app.items'::regclass ORDER BY conname;
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'app.items'::regclass ORDER BY 1;
SELECT * FROM ec_test.leftovers();

-- 2. alter_column "default": null drops the default (TestSetDefault, "default": null): the new
-- version inserts NULL at once, although the table keeps its default for the old version until
-- complete; UPDATE ... SET ... = DEFAULT through the new version too.
SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "orders", "column": "status", "default": null}}]}', 'app');
INSERT INTO app.orders (id) VALUES (1) RETURNING *;
SET search_path = app_v2;
INSERT INTO orders (id) VALUES (2) RETURNING *;
UPDATE orders SET status = DEFAULT WHERE id = 1 RETURNING *;
INSERT INTO orders VALUES (3, DEFAULT) RETURNING *;
RESET search_path;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT count(*) AS defaults FROM pg_attrdef WHERE adrelid = 'app.orders'::regclass;
SET search_path = app_v2;
INSERT INTO orders (id) VALUES (4) RETURNING *;
RESET search_path;
INSERT INTO app.orders (id) VALUES (5) RETURNING *;

-- 3. A table that an onComplete "sql" operation creates is in the version schema after complete,
-- which is then the current version (TestRawSQL "raw SQL with onComplete"): readable and
-- writable there.  A table created meanwhile outside the migration gets its view from the next
-- start, not from complete.
SELECT ec_start('v3', '{"operations": [
  {"sql": {"up": "CREATE TABLE audit (id int PRIMARY KEY, what text NOT NULL)", "onComplete": true}},
  {"sql": {"up": "COMMENT ON TABLE audit IS ''who did what''", "onComplete": true}}]}', 'app');
CREATE TABLE app.outside (id int);
SELECT ec_complete('app');
SELECT table_name FROM information_schema.tables WHERE table_schema = 'app_v3' ORDER BY 1;
SET search_path = app_v3;
INSERT INTO audit VALUES (1, 'created') RETURNING *;
RESET search_path;
SELECT obj_description('app_v3.audit'::regclass, 'pg_class');
-- The next migration works on it like on any table.
SELECT ec_start('v4', '{"operations": [{"rename_column": {"table": "audit", "from": "what", "to": "action"}}]}', 'app');
SELECT * FROM app_v4.audit;
SELECT table_name FROM information_schema.tables WHERE table_schema = 'app_v4' ORDER BY 1;
SELECT ec_rollback('app');
DROP TABLE app.outside;

-- 4. A NO INHERIT check on an existing table (TestSetCheckConstraint "add check constraint", with
-- no_inherit): NOT VALID at start, enforced in the new version only, validated by the worker.
CREATE TABLE app.posts (id serial PRIMARY KEY, title text NOT NULL);
SELECT array_agg(x ORDER BY x) AS before_check FROM ec_test.snapshot('app') x \gset
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "posts", "column": "title",
  "check": {"name": "check_title_length", "constraint": "length(title) > 3", "no_inherit": true},
  "up": "CASE WHEN length(title) <= 3 THEN LPAD(title, 4, ''-'') ELSE title END", "down": "title"}}]}', 'app');
SELECT conname, pg_get_constraintdef(oid), connoinherit, convalidated
  FROM pg_constraint WHERE conname = 'check_title_length';
INSERT INTO app.posts (title) VALUES ('post by alice'), ('b');
SET search_path = app_v4;
INSERT INTO posts (title) VALUES ('post by carl');
\set VERBOSITY sqlstate
INSERT INTO posts (title) VALUES ('d');
\set VERBOSITY default
RESET search_path;
SELECT * FROM app_v4.posts ORDER BY id;
SELECT id, title FROM app.posts ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before_check', 'app');
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "posts", "column": "title",
  "check": {"name": "check_title_length", "constraint": "length(title) > 3", "no_inherit": true},
  "up": "CASE WHEN length(title) <= 3 THEN LPAD(title, 4, ''-'') ELSE title END", "down": "title"}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT conname, pg_get_constraintdef(oid), connoinherit, convalidated
  FROM pg_constraint WHERE conname = 'check_title_length';
SELECT * FROM app.posts ORDER BY id;
SELECT * FROM ec_test.leftovers();
-- On a table with an inheritance child, the check stays on the parent.
CREATE TABLE app.parent (id int PRIMARY KEY, n int);
CREATE TABLE app.child () INHERITS (app.parent);
SELECT ec_start('v5', '{"operations": [{"add_column": {"table": "parent",
  "column": {"name": "m", "type": "int", "nullable": true, "check": {"name": "m_positive", "constraint": "m > 0", "no_inherit": true}}}}]}', 'app');
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT conrelid::regclass, conname, pg_get_constraintdef(oid), connoinherit, convalidated
  FROM pg_constraint WHERE conname = 'm_positive';
INSERT INTO app.child VALUES (1, 1, -1);
\set VERBOSITY sqlstate
INSERT INTO app.parent VALUES (2, 2, -2);
\set VERBOSITY default

-- 5. Names in "up" after an earlier operation renamed the column or the table
-- (TestChangeTypeInMultiOperationMigrations "rename table, rename column, change type"): "up" uses
-- the names the operations before it left, like "down" and the operation's own fields; the column
-- altered goes by its name before this operation.
CREATE TABLE app.things (id int PRIMARY KEY, name varchar(3));
INSERT INTO app.things VALUES (1, 'abc');
SELECT array_agg(x ORDER BY x) AS before_rename FROM ec_test.snapshot('app') x \gset
SELECT ec_start('v6', '{"operations": [
  {"rename_table": {"from": "things", "to": "products"}},
  {"rename_column": {"table": "products", "from": "name", "to": "item_name"}},
  {"alter_column": {"table": "products", "column": "item_name", "type": "text", "up": "item_name",
                    "down": "CASE WHEN LENGTH(item_name) > 3 THEN ''xxx'' ELSE item_name END"}},
  {"add_column": {"table": "products", "column": {"name": "shout", "type": "text", "nullable": true},
                  "up": "upper(item_name)"}}]}', 'app');
INSERT INTO app.things VALUES (2, 'abc');
SET search_path = app_v6;
INSERT INTO products (id, item_name) VALUES (3, 'apple');
RESET search_path;
SELECT * FROM app_v6.products ORDER BY id;
SELECT id, name FROM app.things ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before_rename', 'app');
-- The old name is gone for "up" once renamed; an alter_column's own "name" is applied after its
-- "up" (the column's name before the operation) and before its "down".
SELECT ec_start('v6', '{"operations": [
  {"rename_column": {"table": "things", "from": "name", "to": "item_name"}},
  {"add_column": {"table": "things", "column": {"name": "shout", "type": "text", "nullable": true}, "up": "upper(name)"}}]}', 'app');
SELECT ec_start('v6', '{"operations": [
  {"rename_column": {"table": "things", "from": "name", "to": "item_name"}},
  {"alter_column": {"table": "things", "column": "item_name", "name": "label", "type": "text",
                    "up": "item_name || ''!''", "down": "left(label, 3)"}}]}', 'app');
INSERT INTO app.things VALUES (4, 'xyz');
SELECT * FROM app_v6.things ORDER BY id;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT * FROM app.things ORDER BY id;
SELECT * FROM ec_test.leftovers();

DROP SCHEMA app, app_v6 CASCADE;
DELETE FROM expand_contract.migrations;
