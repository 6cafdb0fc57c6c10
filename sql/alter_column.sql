-- alter_column: type, nullable, default, comment, check, unique, references, rename via "name",
-- with up/down keeping old and new columns in step.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that what each version shows before it is deterministic.
SET expand_contract.start_paused = on;
CREATE SCHEMA app;
CREATE TABLE app.orders (id serial PRIMARY KEY, amount_cents int, status text DEFAULT 'new',
                         note text);
COMMENT ON COLUMN app.orders.amount_cents IS 'money';
INSERT INTO app.orders (amount_cents, note) VALUES (1050, 'a'), (NULL, 'b');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- Type change with rename, up and down.
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "orders", "column": "amount_cents",
  "name": "amount", "type": "numeric(12,2)", "up": "amount_cents / 100.0", "down": "(amount * 100)::int"}}]}', 'app');
\d app_v1.orders
INSERT INTO app.orders (amount_cents) VALUES (299);
SET search_path = app_v1;
INSERT INTO app_v1.orders (amount) VALUES (7.5) RETURNING id, amount, status;
RESET search_path;
SET search_path = app_v1;
UPDATE app_v1.orders SET amount = amount + 1 WHERE id = 3;
RESET search_path;
UPDATE app.orders SET amount_cents = 1 WHERE id = 4;
SELECT o.id, o.amount_cents, n.amount FROM app.orders o JOIN app_v1.orders n USING (id) ORDER BY id;
SELECT ec_rollback('app');
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT id, amount_cents FROM app.orders ORDER BY id;

-- Without up/down, the value is carried by assignment cast.
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "orders", "column": "amount_cents", "type": "bigint"}}]}', 'app');
-- A value the old version cannot hold is refused, so both versions always agree.
SET search_path = app_v1;
INSERT INTO app_v1.orders (amount_cents) VALUES (5000000000);
RESET search_path;
SET search_path = app_v1;
INSERT INTO app_v1.orders (amount_cents) VALUES (42) RETURNING id, amount_cents;
RESET search_path;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT attname, format_type(atttypid, atttypmod), col_description(attrelid, attnum)
  FROM pg_attribute WHERE attrelid = 'app.orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT id, amount_cents FROM app.orders ORDER BY id;
-- The serial's sequence moved to the new column and still works.
SELECT pg_get_serial_sequence('app.orders', 'id');
INSERT INTO app.orders (amount_cents) VALUES (1) RETURNING id;

-- nullable false: NOT VALID check at start, NOT NULL at complete; "up" fills the gaps.
SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "orders", "column": "amount_cents",
  "nullable": false, "up": "coalesce(amount_cents, 0)", "down": "amount_cents"}}]}', 'app');
SET search_path = app_v2;
INSERT INTO app_v2.orders (amount_cents) VALUES (NULL);
RESET search_path;
INSERT INTO app.orders (amount_cents) VALUES (NULL) RETURNING id;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'app.orders'::regclass AND attname = 'amount_cents';
SELECT count(*) FILTER (WHERE amount_cents = 0) AS zeros FROM app.orders;
SELECT * FROM ec_test.leftovers();

-- default and comment only: the new version's view at start, the table at complete.
SELECT ec_start('v3', '{"operations": [{"alter_column": {"table": "orders", "column": "status",
  "default": "''pending''", "comment": "order state"}}]}', 'app');
INSERT INTO app.orders (amount_cents) VALUES (1) RETURNING status;
SET search_path = app_v3;
INSERT INTO app_v3.orders (amount_cents) VALUES (2) RETURNING status;
RESET search_path;
SELECT attrelid::regclass, col_description(attrelid, attnum) FROM pg_attribute
 WHERE attrelid IN ('app.orders'::regclass, 'app_v3.orders'::regclass) AND attname = 'status' ORDER BY 1;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'app.orders'::regclass AND adnum = 3;
SELECT col_description('app.orders'::regclass, 3);
-- default null drops it.
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "orders", "column": "status", "default": null}}]}', 'app');
SET search_path = app_v4;
INSERT INTO app_v4.orders (amount_cents) VALUES (3) RETURNING status;
RESET search_path;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT count(*) AS defaults FROM pg_attrdef WHERE adrelid = 'app.orders'::regclass AND adnum = 3;

-- check, unique and references on a rebuilt column: NOT VALID until complete validates them.
CREATE TABLE app.notes (code text PRIMARY KEY);
INSERT INTO app.notes VALUES ('a'), ('b');
UPDATE app.orders SET note = 'a' WHERE note IS NOT NULL;
SELECT ec_start('v5', '{"operations": [{"alter_column": {"table": "orders", "column": "note",
  "check": {"name": "orders_note_short", "constraint": "length(note) < 5"},
  "references": {"name": "orders_note_fk", "table": "notes", "column": "code"},
  "up": "note", "down": "note"}}]}', 'app');
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'app.orders'::regclass AND conname LIKE 'orders_note%' ORDER BY 1;
SET search_path = app_v5;
INSERT INTO app_v5.orders (amount_cents, note) VALUES (1, 'toolong');
RESET search_path;
SET search_path = app_v5;
INSERT INTO app_v5.orders (amount_cents, note) VALUES (1, 'zz');
RESET search_path;
SET search_path = app_v5;
INSERT INTO app_v5.orders (amount_cents, note) VALUES (1, 'b');
RESET search_path;
SELECT ec_resume('app');
SELECT ec_complete('app');
SELECT conname, convalidated, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'app.orders'::regclass AND conname LIKE 'orders_note%' ORDER BY 1;
SELECT * FROM ec_test.leftovers();

-- A column a materialized view reads is rebuilt with it: a copy of the materialized view over the new
-- column, filled by the worker (see sql/carry_views.sql).
CREATE MATERIALIZED VIEW app.orders_status AS SELECT id, status FROM app.orders;
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "orders", "column": "status", "type": "varchar(20)"}}]}', 'app');
SELECT relname, relkind FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relname LIKE '%status%' ORDER BY 1;
SELECT ec_rollback('app');
-- A type without an assignment cast needs "up".
DROP MATERIALIZED VIEW app.orders_status;
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "orders", "column": "status", "type": "int"}}]}', 'app');

DROP SCHEMA app, app_v5 CASCADE;
DELETE FROM expand_contract.migrations;
