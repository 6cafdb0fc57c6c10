-- Revert after complete: ec_complete(revert_window => ...) keeps the old structure aside, ec_revert
-- puts the schema back exactly as before ec_start (the catalog snapshot, as for rollback), with
-- every row written since through either version; ec_cleanup (or the window's end) contracts for
-- real, leaving what a plain ec_complete leaves (compared with a twin schema).
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
CREATE FUNCTION ec_test.views(nsp text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('view %s: %s', c.relname, pg_get_viewdef(c.oid))
    FROM pg_class c WHERE c.relnamespace = nsp::regnamespace AND c.relkind = 'v'
$$;
CREATE FUNCTION ec_test.same_as_twin(nsp text, rvtwin text) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT 'window only: ' || x FROM ec_test.snapshot(nsp) x
   EXCEPT SELECT 'window only: ' || replace(y, rvtwin, nsp) FROM ec_test.snapshot(rvtwin) y)
  UNION ALL
  (SELECT 'plain only: ' || replace(y, rvtwin, nsp) FROM ec_test.snapshot(rvtwin) y
   EXCEPT SELECT 'plain only: ' || x FROM ec_test.snapshot(nsp) x)
  ORDER BY 1
$$;
-- Until the worker has run a window's prepare steps (a rebuilt primary key's), ec_revert waits.
-- A procedure that commits as it waits: the worker's CREATE INDEX CONCURRENTLY waits for older
-- transactions.
CREATE PROCEDURE ec_test.wait_prepared() LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 300 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM expand_contract.revert_windows WHERE prepare_steps <> '{}');
    COMMIT;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RAISE NOTICE 'prepared: %', NOT EXISTS (SELECT FROM expand_contract.revert_windows WHERE prepare_steps <> '{}');
END $$;
CREATE FUNCTION ec_test.make(nsp text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', nsp);
  EXECUTE format('CREATE TABLE %I.orders (id int PRIMARY KEY, cents int, customer text,'
                 ' note text, flag int, legacy text)', nsp);
  EXECUTE format('CREATE TABLE %I.audit (id int PRIMARY KEY, what text)', nsp);
  EXECUTE format('CREATE TABLE %I.tags (id int PRIMARY KEY, tag text CONSTRAINT tag_len CHECK (length(tag) < 20))', nsp);
  EXECUTE format('INSERT INTO %I.orders VALUES (1, 150, ''ann'', ''n1'', NULL, ''l1''), (2, 250, ''bob'', NULL, 3, ''l2'')', nsp);
  EXECUTE format('INSERT INTO %I.audit VALUES (1, ''x'')', nsp);
  EXECUTE format('INSERT INTO %I.tags VALUES (1, ''red'')', nsp);
  -- A first migration, so that the one under test has a previous version schema (<nsp>_v1).
  PERFORM ec_start('v1', '{"operations": [{"rename_column": {"table": "orders", "from": "note", "to": "remark"}}]}', nsp);
  PERFORM ec_complete(nsp);
END $$;
-- Every column family on orders: a type change with a new name, a rename, an added NOT NULL
-- column with a default, NOT NULL on an existing column, a dropped column; and table families.
\set columns '{"operations": [{"alter_column": {"table": "orders", "column": "cents", "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}, {"rename_column": {"table": "orders", "from": "customer", "to": "client"}}, {"add_column": {"table": "orders", "column": {"name": "code", "type": "text", "nullable": false, "default": "''x''", "comment": "the code"}, "up": "''c'' || id"}}, {"alter_column": {"table": "orders", "column": "flag", "nullable": false, "up": "coalesce(flag, 0)", "down": "flag"}}, {"drop_column": {"table": "orders", "column": "legacy", "down": "''restored '' || id"}}, {"alter_column": {"table": "orders", "column": "remark", "default": "''none''"}}]}'
\set tables '{"operations": [{"drop_table": {"name": "audit"}}, {"create_table": {"name": "fresh", "columns": [{"name": "id", "type": "int", "pk": true}, {"name": "v", "type": "text"}]}}, {"rename_constraint": {"table": "tags", "from": "tag_len", "to": "tag_short"}}, {"create_index": {"table": "tags", "name": "tags_tag_idx", "columns": [{"column": "tag"}]}}, {"set_replica_identity": {"table": "tags", "identity": {"type": "full"}}}, {"rename_table": {"from": "tags", "to": "labels"}}]}'

SELECT ec_test.make('rv');
SELECT ec_test.make('rvtwin');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rv') x \gset
SELECT array_agg(x ORDER BY x) AS before_views FROM ec_test.views('rv_v1') x \gset

-- Column families: complete with a window, then revert.
SELECT ec_start('v2', :'columns', 'rv');
CALL ec_wait('rv');
SELECT ec_complete('rv', revert_window => '1 day');
SELECT schema_name, migration, phase, revert_window_ends > now() + interval '23 hours' AS window_open
  FROM ec_status('rv');
-- The tables are the new version, the old columns kept aside under _ec_ names.
SELECT * FROM rv.orders ORDER BY id;
-- Writes through the new version (the base tables or rv_v2) and through the old one (rv_v1).
INSERT INTO rv.orders (id, amount, client, flag) VALUES (3, 7.5, 'cat', 1);
SET search_path TO rv_v2;
INSERT INTO orders (id, amount, client, flag, code) VALUES (4, 1.25, 'dan', 2, 'd');
RESET search_path;
UPDATE rv.orders SET amount = 9.99 WHERE id = 1;
-- The old version's code has its version schema on its search_path (the trigger goes by it).
SET search_path TO rv_v1;
INSERT INTO orders (id, cents, customer, remark, flag, legacy) VALUES (5, 990, 'eve', 'r5', 5, 'l5');
UPDATE orders SET cents = 333, flag = 7 WHERE id = 2;
RESET search_path;
SELECT * FROM rv.orders ORDER BY id;
SELECT * FROM rv_v1.orders ORDER BY id;
-- No new migration, and no rollback, during the window.
SELECT ec_test.try($$SELECT ec_start('v3', '{"operations": [{"rename_column": {"table": "orders", "from": "client", "to": "c"}}]}', 'rv')$$);
SELECT ec_test.try($$SELECT ec_rollback('rv')$$);
SELECT ec_revert('rv');
SELECT * FROM ec_test.diff(:'before', 'rv');
SELECT x FROM ec_test.views('rv_v1') x EXCEPT SELECT unnest(:'before_views'::text[]);
SELECT * FROM ec_test.leftovers();
-- Every row, with its old-version values, whichever version wrote it.
SELECT * FROM rv.orders ORDER BY id;
SELECT name FROM expand_contract.migrations WHERE schema_name = 'rv' ORDER BY id;
SELECT ec_test.try($$SELECT ec_revert('rv')$$);

-- The same again, then cleanup: the shape a plain complete leaves (the rvtwin), no helper left.
SELECT ec_start('v2', :'columns', 'rv');
SELECT ec_start('v2', :'columns', 'rvtwin');
CALL ec_wait('rv');
CALL ec_wait('rvtwin');
SELECT ec_complete('rv', revert_window => '1 day');
SELECT ec_complete('rvtwin');
INSERT INTO rv.orders (id, amount, client, flag) VALUES (6, 7.5, 'fay', 1);
INSERT INTO rvtwin.orders (id, amount, client, flag) VALUES (6, 7.5, 'fay', 1);
SELECT ec_cleanup('rv');
SELECT * FROM ec_test.same_as_twin('rv', 'rvtwin');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rv.orders ORDER BY id;
SELECT schema_name, migration, phase, revert_window_ends IS NULL AS no_window FROM ec_status('rv');
SELECT ec_test.try($$SELECT ec_revert('rv')$$);
SELECT ec_test.try($$SELECT ec_cleanup('rv')$$);

-- Table families: a dropped table is kept aside, a renamed one renamed back, a created one dropped.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rv') x \gset
SELECT ec_start('v3', :'tables', 'rv');
SELECT ec_start('v3', :'tables', 'rvtwin');
CALL ec_wait('rv');
CALL ec_wait('rvtwin');
SET expand_contract.revert_window = '1h';
SELECT ec_complete('rv');
RESET expand_contract.revert_window;
SELECT ec_complete('rvtwin');
SELECT relname FROM pg_class WHERE relnamespace = 'rv'::regnamespace AND relkind = 'r' ORDER BY 1;
INSERT INTO rv.labels VALUES (2, 'blue');
INSERT INTO rv.fresh VALUES (1, 'new');
SET search_path TO rv_v2;
INSERT INTO audit VALUES (2, 'y');
RESET search_path;
SELECT ec_revert('rv');
SELECT * FROM ec_test.diff(:'before', 'rv');
SELECT * FROM rv.tags ORDER BY id;
SELECT * FROM rv.audit ORDER BY id;
SELECT ec_start('v3', :'tables', 'rv');
CALL ec_wait('rv');
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_cleanup('rv');
SELECT * FROM ec_test.same_as_twin('rv', 'rvtwin');

-- Rebuilt columns with indexes and CHECK constraints (carried: complete gives the carried ones
-- the old names), create_constraint and drop_constraint: the old ones go aside with their column.
DO $$
BEGIN
  FOR nsp IN 0 .. 1 LOOP
    EXECUTE format('CREATE TABLE %I.items (id int PRIMARY KEY, a int CONSTRAINT a_pos CHECK (a > 0), b int,'
                   ' d int CONSTRAINT d_pos CHECK (d > 0))', (ARRAY['rv', 'rvtwin'])[nsp + 1]);
    EXECUTE format('CREATE INDEX items_a_idx ON %I.items (a, b)', (ARRAY['rv', 'rvtwin'])[nsp + 1]);
    EXECUTE format('CREATE UNIQUE INDEX items_b_key ON %I.items (b)', (ARRAY['rv', 'rvtwin'])[nsp + 1]);
    EXECUTE format('INSERT INTO %I.items VALUES (1, 1, 1, 1), (2, 2, 2, 2)', (ARRAY['rv', 'rvtwin'])[nsp + 1]);
  END LOOP;
END $$;
\set carried '{"operations": [{"alter_column": {"table": "items", "column": "a", "type": "bigint", "up": "a", "down": "a"}}, {"create_constraint": {"table": "items", "name": "b_pos", "type": "check", "columns": ["b"], "check": "b > 0", "up": {"b": "greatest(b, 1)"}, "down": {"b": "b"}}}, {"drop_constraint": {"table": "items", "name": "d_pos", "up": "d", "down": "greatest(d, 1)"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rv') x \gset
SELECT ec_start('c1', :'carried', 'rv');
SELECT ec_start('c1', :'carried', 'rvtwin');
CALL ec_wait('rv');
CALL ec_wait('rvtwin');
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_complete('rvtwin');
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indrelid = 'rv.items'::regclass ORDER BY indexrelid::regclass::text COLLATE "C";
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'rv.items'::regclass AND contype = 'c' ORDER BY 1;
-- The new version may break the dropped constraint: down keeps the old column within it.
INSERT INTO rv.items (id, a, b, d) VALUES (3, 3, 3, -5);
SELECT ec_test.try($$INSERT INTO rv.items (id, a, b, d) VALUES (4, 4, 3, 4)$$);
SELECT ec_revert('rv');
SELECT * FROM ec_test.diff(:'before', 'rv');
SELECT * FROM rv.items ORDER BY id;
SELECT ec_start('c1', :'carried', 'rv');
CALL ec_wait('rv');
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_cleanup('rv');
SELECT * FROM ec_test.same_as_twin('rv', 'rvtwin');
SELECT * FROM ec_test.leftovers();

-- Keys: a rebuilt column with a unique constraint that other tables' foreign keys reference, and a
-- rebuilt column with a foreign key of its own.  The old constraints are kept aside in force on the
-- old columns (as during the migration), so ec_revert only renames them back.
CREATE FUNCTION ec_test.make_keys(nsp text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', nsp);
  EXECUTE format('CREATE TABLE %I.accounts (id int PRIMARY KEY, code int CONSTRAINT accounts_code_key UNIQUE, name text)', nsp);
  EXECUTE format('CREATE TABLE %I.payments (id int PRIMARY KEY, code int CONSTRAINT payments_code_fkey'
                 ' REFERENCES %I.accounts (code) ON DELETE CASCADE, cents int)', nsp, nsp);
  EXECUTE format('CREATE TABLE %I.notes (id int PRIMARY KEY, pid int CONSTRAINT notes_pid_fkey REFERENCES %I.payments, txt text)', nsp, nsp);
  EXECUTE format('INSERT INTO %I.accounts VALUES (1, 10, ''ann''), (2, 20, ''bob''), (6, 60, ''fay'')', nsp);
  EXECUTE format('INSERT INTO %I.payments VALUES (1, 10, 100), (2, 10, 200), (6, 60, 600)', nsp);
  EXECUTE format('INSERT INTO %I.notes VALUES (1, 6, ''n1'')', nsp);
  PERFORM ec_start('k0', '{"operations": [{"rename_column": {"table": "accounts", "from": "name", "to": "label"}}]}', nsp);
  PERFORM ec_complete(nsp);
END $$;
SELECT ec_test.make_keys('rk');
SELECT ec_test.make_keys('rktwin');
-- down folds codes into int, so the new version can write a code whose old value is taken.
\set keys '{"operations": [{"alter_column": {"table": "accounts", "column": "code", "type": "bigint", "up": "code", "down": "(code % 1000000)::int"}}, {"alter_column": {"table": "notes", "column": "pid", "type": "bigint", "up": "pid", "down": "pid::int"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rk') x \gset
SELECT ec_start('k1', :'keys', 'rk');
CALL ec_wait('rk');
SELECT ec_complete('rk', revert_window => '1h');
SELECT conrelid::regclass AS table, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'rk'::regnamespace AND contype IN ('u', 'f') ORDER BY 1, 2;
-- Writes through the new version and the old one, to the key table and the referencing ones.
INSERT INTO rk.accounts (id, code, label) VALUES (3, 30, 'cat');
INSERT INTO rk.payments (id, code, cents) VALUES (3, 30, 300);
INSERT INTO rk.notes (id, pid, txt) VALUES (2, 3, 'n2');
UPDATE rk.accounts SET code = 21 WHERE id = 2;
SET search_path TO rk_k0;
INSERT INTO accounts (id, code, label) VALUES (4, 40, 'dan');
INSERT INTO payments (id, code, cents) VALUES (4, 40, 400);
INSERT INTO notes (id, pid, txt) VALUES (3, 4, 'n3');
UPDATE accounts SET code = 22 WHERE id = 2;
SELECT ec_test.try($$INSERT INTO payments (id, code, cents) VALUES (9, 99, 0)$$);
SELECT ec_test.try($$INSERT INTO notes (id, pid, txt) VALUES (9, 99, 'x')$$);
RESET search_path;
-- Both versions' foreign keys hold; the kept-aside unique constraint refuses a new code whose old
-- value (down) is taken, as the old constraint did during the migration.
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (9, 99, 0)$$);
SELECT ec_test.try($$INSERT INTO rk.notes (id, pid, txt) VALUES (9, 99, 'x')$$);
SELECT ec_test.try($$INSERT INTO rk.accounts (id, code, label) VALUES (9, 1000030, 'x')$$);
-- ON DELETE CASCADE runs for both foreign keys.
DELETE FROM rk.accounts WHERE id = 1;
SELECT ec_test.try($$DELETE FROM rk.payments WHERE id = 3$$);
SELECT ec_revert('rk');
SELECT * FROM ec_test.diff(:'before', 'rk');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rk.accounts ORDER BY id;
SELECT * FROM rk.payments ORDER BY id;
SELECT * FROM rk.notes ORDER BY id;
-- The restored foreign keys are in force.
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (9, 99, 0)$$);
SELECT ec_test.try($$INSERT INTO rk.notes (id, pid, txt) VALUES (9, 99, 'x')$$);
SELECT ec_test.try($$UPDATE rk.accounts SET code = 31 WHERE id = 3$$);
-- Again, then cleanup: what a plain complete leaves.
SELECT ec_start('k1', :'keys', 'rk');
SELECT ec_start('k1', :'keys', 'rktwin');
CALL ec_wait('rk');
CALL ec_wait('rktwin');
SELECT ec_complete('rk', revert_window => '1h');
SELECT ec_complete('rktwin');
INSERT INTO rk.accounts (id, code, label) VALUES (5, 50, 'eve');
INSERT INTO rk.payments (id, code, cents) VALUES (5, 50, 500);
SELECT ec_cleanup('rk');
SELECT * FROM ec_test.same_as_twin('rk', 'rktwin');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rk.accounts ORDER BY id;
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (9, 99, 0)$$);
SELECT ec_test.try($$INSERT INTO rk.notes (id, pid, txt) VALUES (9, 99, 'x')$$);
-- Rebuilt primary keys, int to bigint, one with another table's foreign key to it: a table has one
-- primary key, so the old one goes, and the migration's worker builds a copy of its index on the
-- kept-aside column at the window's start (concurrently) and adds the foreign key to it again (NOT
-- VALID, then validated); ec_revert waits for that, then attaches the index as the primary key and
-- renames the foreign key back: no scan under its locks.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rk') x \gset
\set pk '{"operations": [{"alter_column": {"table": "payments", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}, {"alter_column": {"table": "accounts", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}'
SELECT ec_start('k2', :'pk', 'rk');
CALL ec_wait('rk');
SELECT ec_complete('rk', revert_window => '1h');
CALL ec_test.wait_prepared();
SELECT conrelid::regclass AS table, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE connamespace = 'rk'::regnamespace AND contype IN ('p', 'f') ORDER BY 1, 2;
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid), indisvalid FROM pg_index
 WHERE indrelid IN ('rk.payments'::regclass, 'rk.accounts'::regclass) ORDER BY indexrelid::regclass::text COLLATE "C";
INSERT INTO rk.payments (id, code, cents) VALUES (10, 30, 1000);
INSERT INTO rk.notes (id, pid, txt) VALUES (10, 10, 'n10');
SET search_path TO rk_k1;
INSERT INTO payments (id, code, cents) VALUES (11, 30, 1100);
INSERT INTO notes (id, pid, txt) VALUES (11, 11, 'n11');
UPDATE payments SET cents = 1 WHERE id = 4;
SELECT ec_test.try($$INSERT INTO payments (id, code, cents) VALUES (11, 30, 0)$$);
SELECT ec_test.try($$INSERT INTO notes (id, pid, txt) VALUES (12, 99, 'x')$$);
RESET search_path;
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (10, 30, 0)$$);
-- down cannot map a key beyond int: refused, as during the migration.
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (3000000000, 30, 0)$$);
SELECT ec_test.try($$DELETE FROM rk.payments WHERE id = 10$$);
DELETE FROM rk.notes WHERE id = 10;
DELETE FROM rk.payments WHERE id = 10;
SELECT ec_revert('rk');
SELECT * FROM ec_test.diff(:'before', 'rk');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rk.payments ORDER BY id;
SELECT * FROM rk.notes ORDER BY id;
SELECT ec_test.try($$INSERT INTO rk.notes (id, pid, txt) VALUES (12, 99, 'x')$$);
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (11, 30, 0)$$);
SELECT ec_test.try($$DELETE FROM rk.payments WHERE id = 11$$);
-- Again, then cleanup (at once, the worker's copy of the key perhaps not built): a plain complete's shape.
SELECT ec_start('k2', :'pk', 'rk');
SELECT ec_start('k2', :'pk', 'rktwin');
CALL ec_wait('rk');
CALL ec_wait('rktwin');
SELECT ec_complete('rk', revert_window => '1h');
SELECT ec_complete('rktwin');
INSERT INTO rk.payments (id, code, cents) VALUES (12, 30, 1200);
SELECT ec_cleanup('rk');
SELECT * FROM ec_test.same_as_twin('rk', 'rktwin');
SELECT * FROM ec_test.leftovers();
SELECT ec_test.try($$INSERT INTO rk.notes (id, pid, txt) VALUES (12, 99, 'x')$$);
SELECT ec_test.try($$INSERT INTO rk.payments (id, code, cents) VALUES (12, 30, 0)$$);
-- A rebuilt primary key in a migration that also renames its table and the referencing one: the
-- worker's steps (the copy of the key's index, the foreign key to it added again), queued before
-- the renames, run under the tables' new names.
CREATE TABLE rk.tags (id int PRIMARY KEY, note_id int CONSTRAINT tags_note_id_fkey REFERENCES rk.notes, label text);
CREATE TABLE rktwin.tags (id int PRIMARY KEY, note_id int CONSTRAINT tags_note_id_fkey REFERENCES rktwin.notes, label text);
INSERT INTO rk.tags SELECT id, id, 't' || id FROM rk.notes;
INSERT INTO rktwin.tags SELECT id, id, 't' || id FROM rktwin.notes;
\set renamed '{"operations": [{"alter_column": {"table": "notes", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}, {"rename_table": {"from": "notes", "to": "memos"}}, {"rename_table": {"from": "tags", "to": "labels"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rk') x \gset
SELECT ec_start('k3', :'renamed', 'rk');
CALL ec_wait('rk');
SELECT ec_complete('rk', revert_window => '1h');
CALL ec_test.wait_prepared();
SELECT conrelid::regclass AS table, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid IN ('rk.memos'::regclass, 'rk.labels'::regclass) AND contype IN ('p', 'f') ORDER BY 1, 2;
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid), indisvalid FROM pg_index
 WHERE indrelid = 'rk.memos'::regclass ORDER BY indexrelid::regclass::text COLLATE "C";
INSERT INTO rk.memos (id, pid, txt) VALUES (20, 3, 'n20');
INSERT INTO rk.labels (id, note_id, label) VALUES (20, 20, 't20');
SET search_path TO rk_k2;
INSERT INTO notes (id, pid, txt) VALUES (21, 3, 'n21');
SELECT ec_test.try($$INSERT INTO notes (id, pid, txt) VALUES (20, 3, 'x')$$);
RESET search_path;
INSERT INTO rk.labels (id, note_id, label) VALUES (21, 21, 't21');
SELECT ec_test.try($$INSERT INTO rk.labels (id, note_id, label) VALUES (22, 99, 'x')$$);
SELECT ec_revert('rk');
SELECT * FROM ec_test.diff(:'before', 'rk');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rk.notes ORDER BY id;
SELECT * FROM rk.tags ORDER BY id;
SELECT ec_test.try($$INSERT INTO rk.tags (id, note_id, label) VALUES (22, 99, 'x')$$);
SELECT ec_test.try($$INSERT INTO rk.notes (id, pid, txt) VALUES (20, 3, 'x')$$);
-- Again, then cleanup: what a plain complete leaves.
SELECT ec_start('k3', :'renamed', 'rk');
SELECT ec_start('k3', :'renamed', 'rktwin');
CALL ec_wait('rk');
CALL ec_wait('rktwin');
SELECT ec_complete('rk', revert_window => '1h');
SELECT ec_complete('rktwin');
CALL ec_test.wait_prepared();
SELECT ec_cleanup('rk');
SELECT * FROM ec_test.same_as_twin('rk', 'rktwin');
SELECT * FROM ec_test.leftovers();
SELECT ec_test.try($$INSERT INTO rk.labels (id, note_id, label) VALUES (22, 99, 'x')$$);
DROP SCHEMA rk, rk_k3, rktwin, rktwin_k3 CASCADE;

-- Both sides rebuilt: a unique column, the other table's referencing column and a self-reference.
CREATE SCHEMA rb;
CREATE TABLE rb.parent (id int PRIMARY KEY, u int CONSTRAINT parent_u_key UNIQUE, up int CONSTRAINT parent_up_fkey REFERENCES rb.parent (u));
CREATE TABLE rb.child (id int PRIMARY KEY, pu int CONSTRAINT child_pu_fkey REFERENCES rb.parent (u) ON DELETE CASCADE);
INSERT INTO rb.parent VALUES (1, 10, NULL), (2, 20, 10);
INSERT INTO rb.child VALUES (1, 10), (2, 20);
SELECT ec_start('b0', '{"operations": [{"rename_column": {"table": "child", "from": "id", "to": "cid"}}]}', 'rb');
SELECT ec_complete('rb');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rb') x \gset
\set both '{"operations": [{"alter_column": {"table": "parent", "column": "u", "type": "bigint", "up": "u", "down": "u::int"}}, {"alter_column": {"table": "child", "column": "pu", "type": "bigint", "up": "pu", "down": "pu::int"}}, {"alter_column": {"table": "parent", "column": "up", "type": "bigint", "up": "up", "down": "up::int"}}]}'
SELECT ec_start('b1', :'both', 'rb');
CALL ec_wait('rb');
SELECT ec_complete('rb', revert_window => '1h');
SELECT conrelid::regclass AS table, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'rb'::regnamespace AND contype IN ('u', 'f') ORDER BY 1, 2;
INSERT INTO rb.parent (id, u, up) VALUES (3, 30, 20);
INSERT INTO rb.child (cid, pu) VALUES (3, 30);
SET search_path TO rb_b0;
INSERT INTO parent (id, u, up) VALUES (4, 40, 30);
INSERT INTO child (cid, pu) VALUES (4, 40);
SELECT ec_test.try($$INSERT INTO parent (id, u, up) VALUES (5, 50, 99)$$);
RESET search_path;
DELETE FROM rb.parent WHERE id = 4;
SELECT ec_revert('rb');
SELECT * FROM ec_test.diff(:'before', 'rb');
SELECT * FROM rb.parent ORDER BY id;
SELECT * FROM rb.child ORDER BY cid;
SELECT ec_test.try($$INSERT INTO rb.child VALUES (9, 99)$$);
SELECT ec_start('b1', :'both', 'rb');
CALL ec_wait('rb');
SELECT ec_complete('rb', revert_window => '1h');
SELECT ec_cleanup('rb');
SELECT * FROM ec_test.leftovers();
SELECT conrelid::regclass AS table, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'rb'::regnamespace AND contype IN ('u', 'f') ORDER BY 1, 2;
-- A dropped unique constraint stays in force on the kept-aside column during the window, as during
-- the migration: down copies a duplicate there, so the new version still cannot write one.
CREATE TABLE rb.tags (id int PRIMARY KEY, tag text CONSTRAINT tags_tag_key UNIQUE);
INSERT INTO rb.tags VALUES (1, 'red');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rb') x \gset
SELECT ec_start('b2', '{"operations": [{"drop_constraint": {"table": "tags", "name": "tags_tag_key", "up": "tag", "down": "tag"}}]}', 'rb');
CALL ec_wait('rb');
SELECT ec_complete('rb', revert_window => '1h');
SELECT ec_test.try($$INSERT INTO rb.tags (id, tag) VALUES (2, 'red')$$);
INSERT INTO rb.tags (id, tag) VALUES (3, 'blue');
SELECT ec_revert('rb');
SELECT * FROM ec_test.diff(:'before', 'rb');
SELECT * FROM rb.tags ORDER BY id;
DROP SCHEMA rb, rb_b1 CASCADE;

-- The window's end: the worker contracts by itself.
SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "orders", "column": "client", "type": "varchar(20)", "up": "client", "down": "client"}}]}', 'rv');
CALL ec_wait('rv');
SELECT ec_complete('rv', revert_window => '1 second');
DO $$
BEGIN
  FOR i IN 1 .. 300 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM expand_contract.revert_windows);
    PERFORM pg_sleep(0.1);
    PERFORM pg_stat_clear_snapshot();
  END LOOP;
END $$;
SELECT count(*) AS windows_left FROM expand_contract.revert_windows;
SELECT * FROM ec_test.leftovers();
SELECT phase FROM ec_status('rv');

-- A rebuilt column with an index and a foreign key of its own keeps a window: both go aside with it.
CREATE INDEX orders_client_idx ON rv.orders (client);
CREATE TABLE rv.clients (name text PRIMARY KEY);
INSERT INTO rv.clients SELECT DISTINCT client FROM rv.orders;
ALTER TABLE rv.orders ADD FOREIGN KEY (client) REFERENCES rv.clients;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rv') x \gset
SELECT ec_start('v5', '{"operations": [{"alter_column": {"table": "orders", "column": "client", "type": "text", "up": "client", "down": "client"}}]}', 'rv');
CALL ec_wait('rv');
SELECT ec_complete('rv', revert_window => '1h');
SELECT phase FROM ec_status('rv');
SELECT ec_revert('rv');
SELECT * FROM ec_test.diff(:'before', 'rv');
SELECT ec_test.try($$INSERT INTO rv.orders (id, client, flag) VALUES (99, 'nobody', 0)$$);
-- drop_index keeps a window: the index stays as it is, in force, until the window's end.  A "sql"
-- operation whose "up" ran at start has no complete step: the revert runs its "down", as rollback does.
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rv') x \gset
SELECT ec_start('v5', '{"operations": [{"sql": {"up": "CREATE TABLE rv.side (i int)", "down": "DROP TABLE rv.side"}}, {"drop_index": {"name": "orders_client_idx"}}]}', 'rv');
SELECT ec_complete('rv', revert_window => '1h');
SELECT phase FROM ec_status('rv');
SELECT count(*) AS index_kept FROM pg_indexes WHERE schemaname = 'rv' AND indexname = 'orders_client_idx';
SELECT ec_revert('rv');
SELECT * FROM ec_test.diff(:'before', 'rv');
SELECT ec_start('v5', '{"operations": [{"sql": {"up": "CREATE TABLE rv.side (i int)", "down": "DROP TABLE rv.side"}}, {"drop_index": {"name": "orders_client_idx"}}]}', 'rv');
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_cleanup('rv');
SELECT count(*) AS index_left FROM pg_indexes WHERE schemaname = 'rv' AND indexname = 'orders_client_idx';
SELECT to_regclass('rv.side') IS NOT NULL AS side_table_kept;
SELECT * FROM ec_test.leftovers();
-- A migration whose complete steps cannot be kept aside is refused a window, with nothing done;
-- a plain complete still works.
SELECT ec_start('v5b', '{"operations": [{"sql": {"up": "CREATE TABLE rv.side2 (i int)", "onComplete": true}}]}', 'rv');
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_complete('rv', revert_window => '0');
-- A trigger of the user's on a dropped column stops complete's DROP COLUMN with a window or
-- without: both say so (not "complete without a window"), with nothing done.  Once the trigger is
-- dropped the migration completes with a window.
CREATE TABLE rv.trigged (id int PRIMARY KEY, gone text);
CREATE FUNCTION rv.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END $$;
CREATE TRIGGER trigged_gone BEFORE UPDATE OF gone ON rv.trigged FOR EACH ROW EXECUTE FUNCTION rv.touch();
SELECT ec_start('v5c', '{"operations": [{"drop_column": {"table": "trigged", "column": "gone"}}]}', 'rv');
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '1h')$$);
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '0')$$);
SELECT migration, phase FROM ec_status('rv');
DROP TRIGGER trigged_gone ON rv.trigged;
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_revert('rv');
DROP TABLE rv.trigged;
-- The same with the trigger on one partition only: the DROP COLUMN recurses to it.
CREATE TABLE rv.ptrig (id int, k int, gone text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE rv.ptrig1 PARTITION OF rv.ptrig FOR VALUES IN (1);
CREATE TABLE rv.ptrig2 PARTITION OF rv.ptrig FOR VALUES IN (2);
CREATE TRIGGER ptrig1_gone BEFORE UPDATE OF gone ON rv.ptrig1 FOR EACH ROW EXECUTE FUNCTION rv.touch();
SELECT ec_start('v5d', '{"operations": [{"drop_column": {"table": "ptrig", "column": "gone", "down": "''g''"}}]}', 'rv');
CALL ec_wait('rv');
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '1h')$$);
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '0')$$);
DROP TRIGGER ptrig1_gone ON rv.ptrig1;
SELECT ec_complete('rv', revert_window => '1h');
SELECT ec_revert('rv');
DROP TABLE rv.ptrig;
DROP FUNCTION rv.touch();
-- Anything else of the user's that stops a plain complete's DROP COLUMN (a generated column, a
-- policy) stops a windowed one: complete rehearses the window's end and raises its error, with
-- nothing done, rather than keep a window that could never end.
CREATE TABLE rv.gen (id int PRIMARY KEY, gone text, g text GENERATED ALWAYS AS (gone || 'x') STORED);
CREATE TABLE rv.pol (id int PRIMARY KEY, gone text);
ALTER TABLE rv.pol ENABLE ROW LEVEL SECURITY;
CREATE POLICY pol_gone ON rv.pol USING (gone IS NULL);
SELECT ec_start('v5e', '{"operations": [{"drop_column": {"table": "gen", "column": "gone", "down": "''g''"}}]}', 'rv');
CALL ec_wait('rv');
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '1h')$$);
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '0')$$);
SELECT migration, phase FROM ec_status('rv');
SELECT ec_rollback('rv');
SELECT ec_start('v5f', '{"operations": [{"drop_column": {"table": "pol", "column": "gone", "down": "''p''"}}]}', 'rv');
CALL ec_wait('rv');
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '1h')$$);
SELECT ec_rollback('rv');
DROP TABLE rv.gen, rv.pol;
-- A referenced primary key column: complete re-points the foreign key and attaches the new key;
-- the window keeps the old ones (as above).
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rv') x \gset
SELECT ec_start('v6', '{"operations": [{"alter_column": {"table": "clients", "column": "name", "type": "varchar(50)", "up": "name", "down": "name"}}]}', 'rv');
CALL ec_wait('rv');
SELECT ec_complete('rv', revert_window => '1h');
CALL ec_test.wait_prepared();
SELECT ec_revert('rv');
SELECT * FROM ec_test.diff(:'before', 'rv');
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '-1 hour')$$);
SELECT ec_test.try($$SELECT ec_complete('rv', revert_window => '1000 years')$$);
-- After the window's end, before its cleanup ran: no revert, no new migration; ec_cleanup finishes it.
-- The end is moved into the past by hand, in the transaction (the window's worker cannot see it
-- before ec_cleanup has run), rather than waited for.
SELECT ec_start('v7', '{"operations": [{"rename_column": {"table": "clients", "from": "name", "to": "label"}}]}', 'rv');
BEGIN;
SELECT ec_complete('rv', revert_window => '1 hour');
UPDATE expand_contract.revert_windows SET ends_at = now() - interval '1 second';
SELECT ec_test.try($$SELECT ec_revert('rv')$$);
SELECT ec_test.try($$SELECT ec_start('v8', '{"operations": [{"rename_column": {"table": "clients", "from": "label", "to": "name"}}]}', 'rv')$$);
SELECT ec_cleanup('rv');
COMMIT;
SELECT phase FROM ec_status('rv');

DROP SCHEMA rv, rv_v7, rvtwin, rvtwin_c1 CASCADE;

-- Partitioned tables: the parent and its partitions as one table (a range partition, one
-- sub-partitioned by hash, a default partition).
DO $$
DECLARE
  nsp text;
BEGIN
  FOREACH nsp IN ARRAY ARRAY['rvp', 'rvptwin'] LOOP
    EXECUTE format('CREATE SCHEMA %I', nsp);
    EXECUTE format('CREATE TABLE %I.events (id int, day date, cents int, who text, note text,'
                   ' PRIMARY KEY (id, day)) PARTITION BY RANGE (day)', nsp);
    EXECUTE format('CREATE TABLE %I.events_2025 PARTITION OF %I.events'
                   ' FOR VALUES FROM (''2025-01-01'') TO (''2026-01-01'')', nsp, nsp);
    EXECUTE format('CREATE TABLE %I.events_2026 PARTITION OF %I.events'
                   ' FOR VALUES FROM (''2026-01-01'') TO (''2027-01-01'') PARTITION BY HASH (id)', nsp, nsp);
    EXECUTE format('CREATE TABLE %I.events_2026_a PARTITION OF %I.events_2026 FOR VALUES WITH (MODULUS 2, REMAINDER 0)', nsp, nsp);
    EXECUTE format('CREATE TABLE %I.events_2026_b PARTITION OF %I.events_2026 FOR VALUES WITH (MODULUS 2, REMAINDER 1)', nsp, nsp);
    EXECUTE format('CREATE TABLE %I.events_other PARTITION OF %I.events DEFAULT', nsp, nsp);
    EXECUTE format('CREATE INDEX events_who ON %I.events (who)', nsp);
    EXECUTE format('INSERT INTO %I.events SELECT g, date ''2025-03-01'' + g * 60, g * 10, ''w'' || g, ''n'' || g'
                   ' FROM generate_series(1, 12) g', nsp);
    -- A first migration, so that the one under test has a previous version schema (<nsp>_v1).
    PERFORM ec_start('v1', '{"operations": [{"rename_column": {"table": "events", "from": "note", "to": "remark"}}]}', nsp);
    PERFORM ec_complete(nsp);
  END LOOP;
END $$;
\set parted '{"operations": [{"alter_column": {"table": "events", "column": "cents", "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}, {"rename_column": {"table": "events", "from": "who", "to": "client"}}, {"add_column": {"table": "events", "column": {"name": "code", "type": "text", "nullable": false, "default": "''x''"}, "up": "''c'' || id"}}, {"drop_column": {"table": "events", "column": "remark", "down": "''restored '' || id"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvp') x \gset
SELECT ec_start('v2', :'parted', 'rvp');
CALL ec_wait('rvp');
SELECT ec_complete('rvp', revert_window => '1 day');
SELECT phase FROM ec_status('rvp') LIMIT 1;
SELECT tableoid::regclass AS part, * FROM rvp.events ORDER BY id;
-- Writes through the new version, into several partitions, and through the old one.
INSERT INTO rvp.events (id, day, amount, client) VALUES (13, '2025-02-01', 7.5, 'new13'), (14, '2026-07-01', 1.25, 'new14'), (15, '2030-01-01', 2, 'new15');
UPDATE rvp.events SET amount = 9.99 WHERE id = 1;
SET search_path TO rvp_v1;
INSERT INTO events (id, day, cents, who, remark) VALUES (16, '2026-03-01', 990, 'old16', 'r16');
UPDATE events SET cents = 333 WHERE id = 2;
RESET search_path;
SELECT tableoid::regclass AS part, * FROM rvp.events ORDER BY id;
SELECT * FROM rvp_v1.events ORDER BY id;
-- Partitions cannot come or go during the window.
SELECT ec_test.try($$CREATE TABLE rvp.events_2031 PARTITION OF rvp.events FOR VALUES FROM ('2031-01-01') TO ('2032-01-01')$$);
SELECT ec_test.try($$ALTER TABLE rvp.events DETACH PARTITION rvp.events_2025$$);
SELECT ec_revert('rvp');
SELECT * FROM ec_test.diff(:'before', 'rvp');
SELECT * FROM ec_test.leftovers();
SELECT tableoid::regclass AS part, * FROM rvp.events ORDER BY id;
-- Again, then cleanup: the shape a plain complete leaves.
SELECT ec_start('v2', :'parted', 'rvp');
SELECT ec_start('v2', :'parted', 'rvptwin');
CALL ec_wait('rvp');
CALL ec_wait('rvptwin');
SELECT ec_complete('rvp', revert_window => '1 day');
SELECT ec_complete('rvptwin');
SELECT ec_cleanup('rvp');
SELECT * FROM ec_test.same_as_twin('rvp', 'rvptwin');
SELECT * FROM ec_test.leftovers();
SELECT tableoid::regclass AS part, * FROM rvp.events ORDER BY id;
DROP SCHEMA rvp, rvp_v2, rvptwin, rvptwin_v2 CASCADE;
-- A rebuilt primary key of a partitioned table (two levels: a default partition hashed in two):
-- complete drops the old key, the worker builds a copy of each leaf's index concurrently
-- (_ec_old_<name>), and ec_revert makes each copy its leaf's key again and the partitioned table's
-- over them, which attaches rather than builds.  A rebuilt unique constraint is still refused.
CREATE SCHEMA rvk;
CREATE TABLE rvk.keyed (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE rvk.keyed_2026 PARTITION OF rvk.keyed FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE rvk.keyed_rest PARTITION OF rvk.keyed DEFAULT PARTITION BY HASH (day);
CREATE TABLE rvk.keyed_rest_0 PARTITION OF rvk.keyed_rest FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE rvk.keyed_rest_1 PARTITION OF rvk.keyed_rest FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE rvk.other (id int PRIMARY KEY, x text);
INSERT INTO rvk.keyed VALUES (1, '2026-01-01'), (2, '2030-01-01'), (3, '2031-01-01');
-- A first migration, for a previous version schema (rvk_v1).
SELECT ec_start('v1', '{"operations": [{"rename_column": {"table": "other", "from": "x", "to": "y"}}]}', 'rvk');
SELECT ec_complete('rvk');
CREATE FUNCTION ec_test.keyed_indexes() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('%s: %s', c.relname, pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE i.indrelid IN (SELECT relid FROM pg_partition_tree('rvk.keyed')) ORDER BY 1
$$;
\set keyed '{"operations": [{"alter_column": {"table": "keyed", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvk') x \gset
SELECT array_agg(x ORDER BY x) AS before_indexes FROM ec_test.keyed_indexes() x \gset
SELECT ec_start('v2', :'keyed', 'rvk');
CALL ec_wait('rvk');
SELECT ec_complete('rvk', revert_window => '1 day');
CALL ec_test.wait_prepared();
SELECT * FROM ec_test.keyed_indexes();
-- Writes through both versions; the new key refuses a duplicate from either.
INSERT INTO rvk.keyed (id, day) VALUES (4, '2026-05-01'), (5, '2032-01-01');
SET search_path TO rvk_v1;
INSERT INTO keyed (id, day) VALUES (6, '2026-06-01'), (7, '2033-01-01');
SELECT ec_test.try($$INSERT INTO keyed (id, day) VALUES (4, '2026-05-01')$$);
RESET search_path;
SELECT ec_test.try($$INSERT INTO rvk.keyed (id, day) VALUES (7, '2033-01-01')$$);
SELECT ec_revert('rvk');
SELECT * FROM ec_test.diff(:'before', 'rvk');
SELECT x AS changed FROM ec_test.keyed_indexes() x EXCEPT SELECT unnest(:'before_indexes'::text[]);
SELECT x AS lost FROM unnest(:'before_indexes'::text[]) x EXCEPT SELECT ec_test.keyed_indexes();
SELECT tableoid::regclass AS part, * FROM rvk.keyed ORDER BY id;
SELECT ec_test.try($$INSERT INTO rvk.keyed (id, day) VALUES (6, '2026-06-01')$$);
-- Again, then cleanup: the new key alone, under the old names.
SELECT ec_start('v2', :'keyed', 'rvk');
CALL ec_wait('rvk');
SELECT ec_complete('rvk', revert_window => '1 day');
SELECT ec_cleanup('rvk');
SELECT * FROM ec_test.keyed_indexes();
SELECT * FROM ec_test.leftovers();
SELECT ec_test.try($$INSERT INTO rvk.keyed (id, day) VALUES (6, '2026-06-01')$$);
-- A rebuilt unique constraint of a partitioned table: the old one stays in force on every partition
-- during the window, renamed aside with its indexes (_ec_old_<name>); ec_revert renames them back.
CREATE TABLE rvk.uniq (id int, day date, code int, UNIQUE (code, day)) PARTITION BY RANGE (day);
CREATE TABLE rvk.uniq_2026 PARTITION OF rvk.uniq FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE rvk.uniq_rest PARTITION OF rvk.uniq DEFAULT PARTITION BY HASH (day);
CREATE TABLE rvk.uniq_rest_0 PARTITION OF rvk.uniq_rest FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE rvk.uniq_rest_1 PARTITION OF rvk.uniq_rest FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO rvk.uniq VALUES (1, '2026-01-01', 10), (2, '2030-01-01', 20);
SELECT ec_start('v3', '{"operations": [{"rename_column": {"table": "other", "from": "y", "to": "z"}}]}', 'rvk');
SELECT ec_complete('rvk');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvk') x \gset
\set uniq '{"operations": [{"alter_column": {"table": "uniq", "column": "code", "type": "bigint", "up": "code", "down": "code::int"}}]}'
SELECT ec_start('v4', :'uniq', 'rvk');
CALL ec_wait('rvk');
SELECT ec_complete('rvk', revert_window => '1 day');
SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid IN (SELECT relid FROM pg_partition_tree('rvk.uniq')) AND c.relname ~ 'code' ORDER BY 1;
INSERT INTO rvk.uniq (id, day, code) VALUES (3, '2026-02-01', 30);
SET search_path TO rvk_v3;
INSERT INTO uniq (id, day, code) VALUES (4, '2031-01-01', 40);
SELECT ec_test.try($$INSERT INTO uniq (id, day, code) VALUES (5, '2026-02-01', 30)$$);
RESET search_path;
SELECT ec_revert('rvk');
SELECT * FROM ec_test.diff(:'before', 'rvk');
SELECT * FROM rvk.uniq ORDER BY id;
SELECT ec_start('v4', :'uniq', 'rvk');
CALL ec_wait('rvk');
SELECT ec_complete('rvk', revert_window => '1 day');
SELECT ec_cleanup('rvk');
SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid IN (SELECT relid FROM pg_partition_tree('rvk.uniq')) ORDER BY 1;
SELECT * FROM ec_test.leftovers();
DROP FUNCTION ec_test.keyed_indexes();
DROP SCHEMA rvk, rvk_v4 CASCADE;
-- Carried views (a view on a view, with options, a comment, a column comment and default, grants and
-- a column grant): complete renames the old ones aside (_ec_old_<name>, still reading the kept-aside
-- column) and creates them again over the new one; ec_revert drops the new ones and renames the old
-- ones back; the cleanup drops the old ones.
CREATE ROLE regress_rv_viewer;
DO $$
DECLARE
  nsp text;
BEGIN
  FOREACH nsp IN ARRAY ARRAY['rvv', 'rvvtwin'] LOOP
    EXECUTE format('CREATE SCHEMA %I', nsp);
    EXECUTE format('CREATE TABLE %I.t (id int PRIMARY KEY, a int, b text)', nsp);
    EXECUTE format('INSERT INTO %I.t VALUES (1, 10, ''x''), (2, 20, ''y'')', nsp);
    EXECUTE format('CREATE VIEW %I.v WITH (security_barrier) AS SELECT id, a + 1 AS a1, b FROM %I.t', nsp, nsp);
    EXECUTE format('COMMENT ON VIEW %I.v IS ''the v''', nsp);
    EXECUTE format('COMMENT ON COLUMN %I.v.a1 IS ''a plus one''', nsp);
    EXECUTE format('ALTER VIEW %I.v ALTER COLUMN b SET DEFAULT ''dflt''', nsp);
    EXECUTE format('CREATE VIEW %I.w AS SELECT * FROM %I.v WHERE a1 > 0', nsp, nsp);
    EXECUTE format('GRANT SELECT ON %I.v TO regress_rv_viewer', nsp);
    EXECUTE format('GRANT SELECT (id) ON %I.w TO regress_rv_viewer', nsp);
    PERFORM ec_start('v1', '{"operations": [{"rename_column": {"table": "t", "from": "b", "to": "bb"}}]}', nsp);
    PERFORM ec_complete(nsp);
  END LOOP;
END $$;
\set widen '{"operations": [{"alter_column": {"table": "t", "column": "a", "type": "bigint", "up": "a", "down": "a::int"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvv') x \gset
SELECT array_agg(x ORDER BY x) AS before_views FROM ec_test.views('rvv') x \gset
SELECT ec_start('v2', :'widen', 'rvv');
CALL ec_wait('rvv');
SELECT ec_complete('rvv', revert_window => '1 day');
SELECT relname FROM pg_class WHERE relnamespace = 'rvv'::regnamespace AND relkind = 'v' ORDER BY 1;
SELECT * FROM ec_test.views('rvv') ORDER BY 1;
INSERT INTO rvv.t (id, a, bb) VALUES (3, 30, 'z');
SET search_path TO rvv_v1;
INSERT INTO t (id, a, bb) VALUES (4, 40, 'old');
RESET search_path;
SELECT * FROM rvv.w ORDER BY id;
SELECT * FROM rvv._ec_old_w ORDER BY id;
SELECT ec_revert('rvv');
SELECT * FROM ec_test.diff(:'before', 'rvv');
SELECT x FROM ec_test.views('rvv') x EXCEPT SELECT unnest(:'before_views'::text[]);
SELECT c.relname, c.relacl, c.reloptions, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c WHERE c.relnamespace = 'rvv'::regnamespace AND c.relkind = 'v' ORDER BY 1;
SELECT * FROM rvv.w ORDER BY id;
SELECT ec_start('v2', :'widen', 'rvv');
SELECT ec_start('v2', :'widen', 'rvvtwin');
CALL ec_wait('rvv');
CALL ec_wait('rvvtwin');
SELECT ec_complete('rvv', revert_window => '1 day');
SELECT ec_complete('rvvtwin');
SELECT ec_cleanup('rvv');
SELECT * FROM ec_test.same_as_twin('rvv', 'rvvtwin');
SELECT * FROM ec_test.leftovers();
SELECT c.relname, c.relacl, c.reloptions, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c WHERE c.relnamespace = 'rvv'::regnamespace AND c.relkind = 'v' ORDER BY 1;
SELECT * FROM rvv.w ORDER BY id;
DROP SCHEMA rvv, rvv_v2, rvvtwin, rvvtwin_v2 CASCADE;
DROP ROLE regress_rv_viewer;
-- A serial primary key referenced by a foreign key, int to bigint: complete moves the sequence to
-- the new column (OWNED BY), ec_revert moves it back to the old one (the same attribute), the
-- cleanup leaves it on the new one.
CREATE SCHEMA rvs;
CREATE TABLE rvs.t (id serial PRIMARY KEY, b text);
CREATE TABLE rvs.r (id int PRIMARY KEY, tid int REFERENCES rvs.t);
INSERT INTO rvs.t (b) VALUES ('x'), ('y');
INSERT INTO rvs.r VALUES (1, 1);
SELECT ec_start('v1', '{"operations": [{"rename_column": {"table": "t", "from": "b", "to": "bb"}}]}', 'rvs');
SELECT ec_complete('rvs');
CREATE FUNCTION ec_test.sequence_owner(seq regclass) RETURNS text LANGUAGE sql AS $$
  SELECT a.attrelid::regclass || '.' || a.attname || ' (attribute ' || a.attnum || ')'
    FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
   WHERE d.classid = 'pg_class'::regclass AND d.objid = seq AND d.deptype = 'a'
$$;
SELECT ec_test.sequence_owner('rvs.t_id_seq');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvs') x \gset
\set serial '{"operations": [{"alter_column": {"table": "t", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}'
SELECT ec_start('v2', :'serial', 'rvs');
CALL ec_wait('rvs');
SELECT ec_complete('rvs', revert_window => '1 day');
SELECT regexp_replace(ec_test.sequence_owner('rvs.t_id_seq'), '\d+\)$', 'N)') AS owner;
INSERT INTO rvs.t (bb) VALUES ('new');
SET search_path TO rvs_v1;
INSERT INTO t (bb) VALUES ('old');
RESET search_path;
CALL ec_test.wait_prepared();
SELECT ec_revert('rvs');
SELECT * FROM ec_test.diff(:'before', 'rvs');
SELECT ec_test.sequence_owner('rvs.t_id_seq');
SELECT count(*), count(DISTINCT id) FROM rvs.t;
-- One value of the sequence per insert: the kept-aside column drew none of its own.
SELECT id, bb FROM rvs.t ORDER BY id;
INSERT INTO rvs.t (bb) VALUES ('after');
SELECT ec_start('v2', :'serial', 'rvs');
CALL ec_wait('rvs');
SELECT ec_complete('rvs', revert_window => '1 day');
SELECT ec_cleanup('rvs');
SELECT regexp_replace(ec_test.sequence_owner('rvs.t_id_seq'), '\d+\)$', 'N)') AS owner;
SELECT * FROM ec_test.leftovers();
SELECT bb FROM rvs.t ORDER BY id;
DROP SCHEMA rvs, rvs_v2 CASCADE;
DROP FUNCTION ec_test.sequence_owner(regclass);
-- An identity primary key referenced by a foreign key, int to bigint: complete gives the new column
-- an identity of its own (a new sequence, advanced to the old one's value), and the old column,
-- kept aside, keeps its identity, its sequence renamed aside.  Both versions draw from the new
-- sequence during the window (the previous version's views' defaults are pointed at it);
-- ec_revert points them back and advances the old sequence past every value the new one gave.
CREATE SCHEMA rvi;
CREATE TABLE rvi.t (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, b text);
CREATE TABLE rvi.r (id int PRIMARY KEY, tid int REFERENCES rvi.t);
INSERT INTO rvi.t (b) VALUES ('x'), ('y');
INSERT INTO rvi.r VALUES (1, 1);
SELECT ec_start('v1', '{"operations": [{"rename_column": {"table": "t", "from": "b", "to": "bb"}}]}', 'rvi');
SELECT ec_complete('rvi');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvi') x \gset
\set identity '{"operations": [{"alter_column": {"table": "t", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}'
SELECT ec_start('v2', :'identity', 'rvi');
CALL ec_wait('rvi');
SELECT ec_complete('rvi', revert_window => '1 day');
SELECT pg_get_serial_sequence('rvi.t', 'id') AS new_sequence,
       pg_get_serial_sequence('rvi.t', '_ec_old_id') AS old_sequence;
-- Writes through both versions, alternating: the ids never collide.
INSERT INTO rvi.t (bb) VALUES ('new1');
SET search_path TO rvi_v1;
INSERT INTO t (bb) VALUES ('old1');
RESET search_path;
INSERT INTO rvi.t (bb) VALUES ('new2');
SET search_path TO rvi_v1;
INSERT INTO t (bb) VALUES ('old2');
RESET search_path;
SELECT id, bb FROM rvi.t ORDER BY id;
CALL ec_test.wait_prepared();
SELECT ec_revert('rvi');
SELECT * FROM ec_test.diff(:'before', 'rvi');
SELECT pg_get_serial_sequence('rvi.t', 'id') AS sequence;
-- After the revert the old sequence goes on past the window's ids.
INSERT INTO rvi.t (bb) VALUES ('after');
SELECT count(*), count(DISTINCT id), max(id) = (SELECT id FROM rvi.t WHERE bb = 'after') AS after_is_last FROM rvi.t;
SELECT ec_start('v2', :'identity', 'rvi');
CALL ec_wait('rvi');
SELECT ec_complete('rvi', revert_window => '1 day');
INSERT INTO rvi.t (bb) VALUES ('window');
SELECT ec_cleanup('rvi');
SELECT pg_get_serial_sequence('rvi.t', 'id') AS sequence;
SELECT * FROM ec_test.leftovers();
INSERT INTO rvi.t (bb) VALUES ('final');
SELECT count(*), count(DISTINCT id) FROM rvi.t;
DROP SCHEMA rvi, rvi_v2 CASCADE;
-- A table dropped and created again under its name: the kept-aside table's indexes go aside with it
-- (_ec_old_<name>), so that the new table's primary key takes its name at complete.
DO $$
DECLARE
  nsp text;
BEGIN
  FOREACH nsp IN ARRAY ARRAY['rvd', 'rvdtwin'] LOOP
    EXECUTE format('CREATE SCHEMA %I', nsp);
    EXECUTE format('CREATE TABLE %I.items (id int PRIMARY KEY, v text UNIQUE)', nsp);
    EXECUTE format('INSERT INTO %I.items VALUES (1, ''a'')', nsp);
  END LOOP;
END $$;
\set replace '{"operations": [{"drop_table": {"name": "items"}}, {"create_table": {"name": "items", "columns": [{"name": "id", "type": "bigint", "pk": true}, {"name": "v", "type": "text", "unique": true}]}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvd') x \gset
SELECT ec_start('v1', :'replace', 'rvd');
SELECT ec_start('v1', :'replace', 'rvdtwin');
SELECT ec_complete('rvd', revert_window => '1 hour');
SELECT ec_complete('rvdtwin');
SELECT relname FROM pg_class WHERE relnamespace = 'rvd'::regnamespace AND relkind IN ('r', 'i') ORDER BY 1;
SELECT ec_revert('rvd');
SELECT * FROM ec_test.diff(:'before', 'rvd');
SELECT * FROM rvd.items;
SELECT ec_start('v1', :'replace', 'rvd');
SELECT ec_complete('rvd', revert_window => '1 hour');
SELECT ec_cleanup('rvd');
SELECT * FROM ec_test.same_as_twin('rvd', 'rvdtwin');
SELECT * FROM ec_test.leftovers();
DROP SCHEMA rvd, rvd_v1, rvdtwin, rvdtwin_v1 CASCADE;
-- Carried triggers and materialized views (a rebuilt column that they read): complete drops them and
-- creates them again over the new column.  With a window, ec_revert creates the old triggers again,
-- with their enabled state and comment, and renames the old materialized view back with its
-- indexes; during the window the old one is "_ec_old_totals", its rows as at complete.  An UPDATE OF
-- trigger fires for the old version's updates through its copy on the kept-aside column,
-- "_ec_old_<name>", as its stand-in "_ec_new_<name>" did for the new version's during the migration.
CREATE FUNCTION ec_test.carried(nsp text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT replace(x, nsp || '.', '_.') FROM (
    SELECT format('trigger %s enabled %s comment %s: %s', t.tgname, t.tgenabled,
                  obj_description(t.oid, 'pg_trigger'), pg_get_triggerdef(t.oid)) AS x
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = nsp::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT format('matview %s options %s comment %s: %s', c.relname, c.reloptions,
                  obj_description(c.oid, 'pg_class'), pg_get_viewdef(c.oid, true))
      FROM pg_class c WHERE c.relnamespace = nsp::regnamespace AND c.relkind = 'm'
    UNION ALL
    SELECT format('index %s: %s', i.relname, pg_get_indexdef(i.oid))
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class m ON m.oid = x.indrelid
     WHERE m.relnamespace = nsp::regnamespace AND m.relkind = 'm'
    UNION ALL
    SELECT format('view %s: %s', c.relname, pg_get_viewdef(c.oid, true))
      FROM pg_class c WHERE c.relnamespace = nsp::regnamespace AND c.relkind = 'v'
  ) s
$$;
DO $$
DECLARE
  nsp text;
BEGIN
  FOREACH nsp IN ARRAY ARRAY['rvt', 'rvttwin'] LOOP
    EXECUTE format('CREATE SCHEMA %I', nsp);
    PERFORM set_config('search_path', nsp, true);
    CREATE TABLE accounts (id int PRIMARY KEY, branch int, amount int NOT NULL, note text);
    CREATE TABLE other (id int PRIMARY KEY, x text);
    CREATE TABLE log (seq serial, what text, val text);
    CREATE FUNCTION log_amount() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
      EXECUTE format('INSERT INTO %I.log (what, val) VALUES (%L, %L)', TG_TABLE_SCHEMA, TG_NAME,
                     TG_OP || ' ' || coalesce(OLD.amount::text || ' -> ', '') || NEW.amount);
      RETURN NEW;
    END $f$;
    CREATE FUNCTION flag_big() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
      NEW.note := 'big';
      RETURN NEW;
    END $f$;
    CREATE TRIGGER amount_changed AFTER INSERT OR UPDATE OF amount ON accounts
      FOR EACH ROW EXECUTE FUNCTION log_amount();
    CREATE TRIGGER amount_big BEFORE INSERT OR UPDATE ON accounts
      FOR EACH ROW WHEN (NEW.amount > 100) EXECUTE FUNCTION flag_big();
    CREATE TRIGGER amount_off AFTER UPDATE OF amount ON accounts
      FOR EACH ROW EXECUTE FUNCTION log_amount();
    ALTER TABLE accounts DISABLE TRIGGER amount_off;
    COMMENT ON TRIGGER amount_changed ON accounts IS 'logs amounts';
    INSERT INTO accounts SELECT g, g % 3, g * 10, 'n' FROM generate_series(1, 6) g;
    CREATE MATERIALIZED VIEW totals WITH (fillfactor = 90) AS
      SELECT branch, sum(amount) AS total FROM accounts GROUP BY branch;
    CREATE UNIQUE INDEX totals_branch ON totals (branch);
    COMMENT ON MATERIALIZED VIEW totals IS 'per branch';
    CREATE VIEW big_branches AS SELECT branch FROM totals WHERE total > 50;
    -- A first migration, for a previous version schema (<nsp>_v1).
    PERFORM ec_start('v1', '{"operations": [{"rename_column": {"table": "other", "from": "x", "to": "y"}}]}', nsp);
    PERFORM ec_complete(nsp);
  END LOOP;
END $$;
\set widen_amount '{"operations": [{"alter_column": {"table": "accounts", "column": "amount", "type": "bigint", "up": "amount", "down": "amount::int"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvt') x \gset
SELECT array_agg(x ORDER BY x) AS before_carried FROM ec_test.carried('rvt') x \gset
SELECT ec_start('v2', :'widen_amount', 'rvt');
CALL ec_wait('rvt');
SELECT ec_complete('rvt', revert_window => '1 day');
SELECT * FROM ec_test.carried('rvt') ORDER BY 1;
-- Writes through both versions fire each trigger once: amount_changed (and amount_big) for the new
-- version's, the copy for the old version's updates; both versions' inserts fire amount_changed.
TRUNCATE rvt.log;
UPDATE rvt.accounts SET amount = 500 WHERE id = 1;
INSERT INTO rvt.accounts (id, branch, amount, note) VALUES (7, 1, 1000, 'n');
SET search_path TO rvt_v1;
UPDATE accounts SET amount = 600 WHERE id = 2;
INSERT INTO accounts VALUES (8, 2, 700, 'n');
UPDATE accounts SET note = 'untouched amount' WHERE id = 3;
RESET search_path;
SELECT what, val FROM rvt.log ORDER BY seq;
SELECT id, amount, _ec_old_amount, note FROM rvt.accounts ORDER BY id;
SELECT * FROM rvt.totals ORDER BY branch;
SELECT * FROM rvt._ec_old_totals ORDER BY branch;
DELETE FROM rvt.accounts WHERE id = 7;
SELECT ec_revert('rvt');
SELECT * FROM ec_test.diff(:'before', 'rvt');
SELECT x AS changed FROM ec_test.carried('rvt') x EXCEPT SELECT unnest(:'before_carried'::text[]);
SELECT x AS lost FROM unnest(:'before_carried'::text[]) x EXCEPT SELECT ec_test.carried('rvt');
-- The old triggers fire again, on the old column; the old materialized view is back, with its rows.
TRUNCATE rvt.log;
UPDATE rvt.accounts SET amount = 900 WHERE id = 8;
SELECT what, val FROM rvt.log ORDER BY seq;
SELECT * FROM rvt.totals ORDER BY branch;
REFRESH MATERIALIZED VIEW CONCURRENTLY rvt.totals;
SELECT * FROM rvt.big_branches ORDER BY branch;
-- The window's end leaves what a plain complete leaves.
SELECT ec_start('v2', :'widen_amount', 'rvt');
SELECT ec_start('v2', :'widen_amount', 'rvttwin');
CALL ec_wait('rvt');
CALL ec_wait('rvttwin');
SELECT ec_complete('rvt', revert_window => '1 day');
SELECT ec_complete('rvttwin');
SELECT ec_cleanup('rvt');
SELECT * FROM ec_test.same_as_twin('rvt', 'rvttwin');
(SELECT ec_test.carried('rvt') EXCEPT SELECT ec_test.carried('rvttwin'))
UNION ALL (SELECT ec_test.carried('rvttwin') EXCEPT SELECT ec_test.carried('rvt'));
SELECT * FROM ec_test.leftovers();
TRUNCATE rvt.log;
UPDATE rvt.accounts SET amount = 950 WHERE id = 8;
SELECT what, val FROM rvt.log ORDER BY seq;
SET client_min_messages = warning;
DROP SCHEMA rvt, rvt_v2, rvttwin, rvttwin_v2 CASCADE;
RESET client_min_messages;
DROP FUNCTION ec_test.carried(text);
-- A dropped column with an exclusion constraint: kept aside with the column, in force on it (down
-- keeps it filled, empty ranges overlap nothing), as during the migration.
CREATE FUNCTION ec_test.make_bookings(nsp text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', nsp);
  EXECUTE format('CREATE TABLE %I.bookings (id int PRIMARY KEY, room int, during tsrange,'
                 ' CONSTRAINT bookings_no_overlap EXCLUDE USING gist (during WITH &&))', nsp);
  EXECUTE format('INSERT INTO %I.bookings VALUES (1, 7, ''[2026-01-01 10:00, 2026-01-01 11:00)''),'
                 ' (2, 8, ''[2026-01-01 11:00, 2026-01-01 12:00)'')', nsp);
  PERFORM ec_start('x0', '{"operations": [{"rename_column": {"table": "bookings", "from": "room", "to": "room_no"}}]}', nsp);
  PERFORM ec_complete(nsp);
END $$;
SELECT ec_test.make_bookings('rx');
SELECT ec_test.make_bookings('rxtwin');
\set drop_during '{"operations": [{"drop_column": {"table": "bookings", "column": "during", "down": "''empty''::tsrange"}}]}'
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rx') x \gset
SELECT ec_start('x1', :'drop_during', 'rx');
CALL ec_wait('rx');
SELECT ec_complete('rx', revert_window => '1h');
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'rx.bookings'::regclass AND contype = 'x';
INSERT INTO rx.bookings (id, room_no) VALUES (3, 9);
SET search_path TO rx_x0;
SELECT ec_test.try($$INSERT INTO bookings VALUES (4, 7, '[2026-01-01 10:30, 2026-01-01 10:45)')$$);
INSERT INTO bookings VALUES (5, 7, '[2026-01-01 12:00, 2026-01-01 13:00)');
SELECT id, room_no, during FROM bookings ORDER BY id;
RESET search_path;
SELECT ec_revert('rx');
SELECT * FROM ec_test.diff(:'before', 'rx');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rx.bookings ORDER BY id;
SELECT ec_test.try($$INSERT INTO rx.bookings VALUES (6, 7, '[2026-01-01 12:30, 2026-01-01 12:40)')$$);
-- Again, then cleanup: what a plain complete leaves.
SELECT ec_start('x1', :'drop_during', 'rx');
SELECT ec_start('x1', :'drop_during', 'rxtwin');
CALL ec_wait('rx');
CALL ec_wait('rxtwin');
SELECT ec_complete('rx', revert_window => '1h');
SELECT ec_complete('rxtwin');
SELECT ec_cleanup('rx');
SELECT * FROM ec_test.same_as_twin('rx', 'rxtwin');
SELECT * FROM ec_test.leftovers();
SELECT * FROM rx.bookings ORDER BY id;
SET client_min_messages = warning;
DROP SCHEMA rx, rx_x1, rxtwin, rxtwin_x1 CASCADE;
RESET client_min_messages;
DROP FUNCTION ec_test.make_bookings(text);
-- Kept-aside columns with defaults.  One that "down" fills loses its default for the window, so
-- that a new-version INSERT into the base table without a column list, whose values land at the
-- kept-aside columns' places, is refused instead of stored misplaced; a view that showed the
-- default through a column without one of its own gets it (old-version inserts leaving the column
-- out still get it).  A dropped column without "down" keeps its default: it is how new-version
-- rows get a value there.  ec_revert puts every default back.
CREATE SCHEMA rvdf;
CREATE TABLE rvdf.items (id int PRIMARY KEY, cents int NOT NULL DEFAULT 7, note text DEFAULT 'n',
                         legacy text DEFAULT 'old', spare text DEFAULT 'kept');
INSERT INTO rvdf.items (id, cents) VALUES (1, 150), (2, 250);
SELECT ec_start('d1', '{"operations": [{"rename_column": {"table": "items", "from": "note", "to": "remark"}}]}', 'rvdf');
SELECT ec_complete('rvdf');
-- As if an older release had made the view without copying the table's defaults.
ALTER VIEW rvdf_d1.items ALTER COLUMN cents DROP DEFAULT;
CREATE FUNCTION ec_test.defaults(nsp text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('%s.%s %s', c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = nsp::regnamespace AND c.relkind IN ('r', 'p', 'v') ORDER BY c.relname, a.attnum
$$;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvdf') x \gset
SELECT array_agg(x) AS before_view_defaults FROM ec_test.defaults('rvdf_d1') x \gset
SELECT ec_start('d2', '{"operations": [{"alter_column": {"table": "items", "column": "cents", "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}, {"drop_column": {"table": "items", "column": "legacy", "down": "''restored '' || id"}}, {"drop_column": {"table": "items", "column": "spare"}}]}', 'rvdf');
CALL ec_wait('rvdf');
SELECT ec_complete('rvdf', revert_window => '1 day');
SELECT * FROM ec_test.defaults('rvdf');
SELECT * FROM ec_test.defaults('rvdf_d1');
-- Positional: the second value would land in _ec_old_cents.
SELECT ec_test.try($$INSERT INTO rvdf.items VALUES (3, 5, 'r3')$$);
SELECT ec_test.try($$COPY rvdf.items FROM PROGRAM 'echo 3,5,r3,x,y,0.05' WITH (FORMAT csv)$$);
-- Named columns: the kept-aside ones come from "down", or from their default without one.
INSERT INTO rvdf.items (id, amount, remark) VALUES (3, 0.05, 'r3');
INSERT INTO rvdf.items (id) VALUES (4);
-- The previous version leaves its columns out: the view's defaults.
SET search_path TO rvdf_d1;
INSERT INTO items (id) VALUES (5);
RESET search_path;
SELECT * FROM rvdf.items ORDER BY id;
SELECT ec_revert('rvdf');
SELECT * FROM ec_test.diff(:'before', 'rvdf');
SELECT x FROM ec_test.defaults('rvdf_d1') x EXCEPT SELECT unnest(:'before_view_defaults'::text[]);
SELECT * FROM ec_test.leftovers();
SELECT * FROM rvdf.items ORDER BY id;
SET client_min_messages = warning;
DROP SCHEMA rvdf, rvdf_d1 CASCADE;
RESET client_min_messages;
DROP FUNCTION ec_test.defaults(text);
-- During a window, an object made to read a kept-aside column (a view with SELECT *, which shows
-- the _ec_old_ columns; a function's SQL body) would stop the window's end: refused, and one naming
-- its columns passes.  With the override it is made, with a WARNING, and the window's end stops on
-- it (with the hint to drop it) until it goes.
CREATE SCHEMA rvw;
CREATE TABLE rvw.t (id int PRIMARY KEY, gone text, keep text);
SELECT ec_start('w1', '{"operations": [{"drop_column": {"table": "t", "column": "gone", "down": "''g''"}}]}', 'rvw');
CALL ec_wait('rvw');
SELECT ec_complete('rvw', revert_window => '1 day');
SELECT ec_test.try($$CREATE VIEW rvw.everything AS SELECT * FROM rvw.t$$);
SELECT ec_test.try($$CREATE FUNCTION rvw.f() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT _ec_old_gone FROM rvw.t LIMIT 1; END$$);
CREATE VIEW rvw.named AS SELECT id, keep FROM rvw.t;
SET expand_contract.allow_ddl = on;
CREATE VIEW rvw.everything AS SELECT * FROM rvw.t;
RESET expand_contract.allow_ddl;
SELECT ec_test.try($$SELECT ec_cleanup('rvw')$$);
DROP VIEW rvw.everything;
SELECT ec_cleanup('rvw');
SELECT * FROM rvw.named ORDER BY id;
SET client_min_messages = warning;
DROP SCHEMA rvw, rvw_w1 CASCADE;
RESET client_min_messages;
-- A primary key and the column that references it, both int to bigint: the worker adds the foreign
-- key again on the kept-aside referencing column (by attribute number: complete gives its name to
-- the new column), so that ec_revert leaves it on the old column, in force.
CREATE SCHEMA rvf;
CREATE TABLE rvf.accounts (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);
CREATE TABLE rvf.transfers (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES rvf.accounts (id));
INSERT INTO rvf.accounts (email) VALUES ('a'), ('b');
INSERT INTO rvf.transfers (account_id) VALUES (1), (2);
SELECT ec_start('f0', '{"operations": [{"rename_column": {"table": "accounts", "from": "email", "to": "mail"}}]}', 'rvf');
SELECT ec_complete('rvf');
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvf') x \gset
SELECT ec_start('f1', '{"operations": [{"alter_column": {"table": "accounts", "column": "id", "type": "bigint", "up": "id", "down": "id"}}, {"alter_column": {"table": "transfers", "column": "account_id", "type": "bigint", "up": "account_id", "down": "account_id"}}]}', 'rvf');
CALL ec_wait('rvf');
SELECT ec_complete('rvf', revert_window => '1 day');
SELECT regexp_replace(s, 'rvf\.', '', 'g') AS prepare_step
  FROM expand_contract.revert_windows, unnest(prepare_steps) s WHERE s LIKE '%FOREIGN KEY%';
CALL ec_test.wait_prepared();
SELECT ec_revert('rvf');
SELECT * FROM ec_test.diff(:'before', 'rvf');
SELECT ec_test.try($$INSERT INTO rvf.transfers (account_id) VALUES (999)$$);
SET client_min_messages = warning;
DROP SCHEMA rvf, rvf_f0 CASCADE;
RESET client_min_messages;
-- A partitioned table's plain index on a rebuilt column, two levels: kept aside with its partitions'
-- indexes; complete attaches the carried leaves' indexes (no DETACH undoes that: the revert drops the
-- carried tree, as the rollback steps would), ec_revert leaves the schema as before, ec_cleanup the
-- carried indexes under the old names, valid.
CREATE SCHEMA rvpi;
CREATE TABLE rvpi.m (id int, k int, cents int) PARTITION BY RANGE (k);
CREATE TABLE rvpi.m1 PARTITION OF rvpi.m FOR VALUES FROM (0) TO (10);
CREATE TABLE rvpi.m2 PARTITION OF rvpi.m FOR VALUES FROM (10) TO (20) PARTITION BY RANGE (k);
CREATE TABLE rvpi.m2a PARTITION OF rvpi.m2 FOR VALUES FROM (10) TO (15);
CREATE INDEX ON rvpi.m (cents);
INSERT INTO rvpi.m VALUES (1, 1, 100), (2, 12, 200);
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('rvpi') x \gset
\set widen '{"operations": [{"alter_column": {"table": "m", "column": "cents", "type": "bigint", "up": "cents", "down": "cents::int"}}]}'
SELECT ec_start('p1', :'widen', 'rvpi');
CALL ec_wait('rvpi');
SELECT ec_complete('rvpi', revert_window => '1 day');
SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'rvpi'::regnamespace ORDER BY 1;
SET search_path TO rvpi_p1;
INSERT INTO m (id, k, cents) VALUES (3, 2, 300);
RESET search_path;
SELECT ec_revert('rvpi');
SELECT * FROM ec_test.diff(:'before', 'rvpi');
SELECT * FROM rvpi.m ORDER BY id;
SELECT ec_start('p1', :'widen', 'rvpi');
CALL ec_wait('rvpi');
SELECT ec_complete('rvpi', revert_window => '1 day');
SELECT ec_cleanup('rvpi');
SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'rvpi'::regnamespace ORDER BY 1;
SELECT * FROM ec_test.leftovers();
SET client_min_messages = warning;
DROP SCHEMA rvpi, rvpi_p1 CASCADE;
RESET client_min_messages;
DELETE FROM expand_contract.migrations;
