-- Foreign keys of other tables (and of the table itself) that reference a column the migration
-- rebuilds beside the old one: the old foreign key stays in force until complete, the worker adds
-- one on the new key column NOT VALID after the backfills (a bounded lock, retried) and validates
-- it, complete drops the old one and renames the new one to the old name, rollback drops the new
-- one.  The final catalog equals twin tables changed offline with ALTER TABLE.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Background work waits for ec_resume(), so that what start leaves is shown before the worker runs.
SET expand_contract.start_paused = on;
-- A statement's outcome: ok, or its SQLSTATE.  (When two foreign keys fail, which one reports
-- depends on their triggers' names, so only the SQLSTATE is shown.)
CREATE FUNCTION ec_test.fk_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  SET CONSTRAINTS ALL IMMEDIATE;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
-- A table's constraints, indexes, columns and replica identity, schema names left out: a migrated
-- table against its twin changed offline.
CREATE FUNCTION ec_test.fk_catalog(t regclass) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('constraint %s %s: %s%s%s', conname, contype,
                regexp_replace(pg_get_constraintdef(oid), '(twin_)?cfk[0-9]?\.', '', 'g'),
                CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END,
                CASE WHEN condeferrable THEN ' deferrable' ELSE '' END)
    FROM pg_constraint WHERE conrelid = t
  UNION ALL
  SELECT format('index %s: %s%s', c.relname,
                regexp_replace(pg_get_indexdef(i.indexrelid), '(twin_)?cfk[0-9]?\.', '', 'g'),
                CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = t
  UNION ALL
  SELECT format('column %s %s%s', attname, format_type(atttypid, atttypmod),
                CASE WHEN attnotnull THEN ' not null' ELSE '' END)
    FROM pg_attribute WHERE attrelid = t AND attnum > 0 AND NOT attisdropped
  UNION ALL
  SELECT format('table replica identity %s', relreplident) FROM pg_class WHERE oid = t
$$;
CREATE FUNCTION ec_test.fk_twin_diff(a regclass, b regclass) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT '- ' || x FROM ec_test.fk_catalog(a) x EXCEPT SELECT '- ' || y FROM ec_test.fk_catalog(b) y)
  UNION ALL
  (SELECT '+ ' || y FROM ec_test.fk_catalog(b) y EXCEPT SELECT '+ ' || x FROM ec_test.fk_catalog(a) x)
  ORDER BY 1
$$;
-- The foreign keys of a table as they stand.
CREATE FUNCTION ec_test.fk_list(t regclass) RETURNS TABLE (conname name, def text, valid boolean)
LANGUAGE sql AS $$
  SELECT conname, regexp_replace(pg_get_constraintdef(oid), '(twin_)?cfk[0-9]?\.', '', 'g'),
         convalidated
    FROM pg_constraint WHERE conrelid = t AND contype = 'f' ORDER BY conname
$$;
-- The tasks of the active migration.
CREATE FUNCTION ec_test.fk_tasks() RETURNS TABLE (kind text, sql text) LANGUAGE sql AS $$
  SELECT t.kind, regexp_replace(t.sql, '(twin_)?cfk[0-9]?\.', '', 'g')
    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
   WHERE NOT m.done ORDER BY t.seq
$$;

-- The headline: accounts.id integer, the primary key, referenced by transfers.account_id, both
-- with secondary and unique indexes; widened to bigint.
CREATE FUNCTION ec_test.fk_bank() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, CONSTRAINT accounts_name_key UNIQUE (name));
  CREATE INDEX accounts_name_id ON accounts (name, id);
  CREATE TABLE transfers (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts (id),
                          amount int NOT NULL, CONSTRAINT transfers_account_amount_key UNIQUE (account_id, id));
  CREATE INDEX transfers_account_id ON transfers (account_id);
  INSERT INTO accounts VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');
  INSERT INTO transfers VALUES (1, 1, 10), (2, 2, 20), (3, 1, 30);
END $$;
CREATE SCHEMA cfk;
CREATE SCHEMA twin_cfk;
SET search_path = cfk;
SELECT ec_test.fk_bank();
SET search_path = twin_cfk;
SELECT ec_test.fk_bank();
ALTER TABLE twin_cfk.accounts ALTER COLUMN id TYPE bigint;
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cfk') x \gset

\set widen_doc '{"operations": [{"alter_column": {"table": "accounts", "column": "id", "type": "bigint"}}]}'
SELECT ec_start('v1', :'widen_doc', 'cfk');
-- Nothing is added on transfers at start: its foreign key still references the old column.  The
-- worker's tasks: the new key's unique index before the backfill, then the new foreign key NOT
-- VALID and its validation after every backfill.
SELECT * FROM ec_test.fk_list('cfk.transfers');
SELECT * FROM ec_test.fk_tasks();
SELECT ec_resume('cfk');
CALL ec_wait('cfk');
SELECT table_name, backfill_state, detail FROM ec_status('cfk');
-- Both foreign keys now, both validated: the old one on the old key, the new one on the new key.
SELECT * FROM ec_test.fk_list('cfk.transfers');
-- A transfer of an unknown account fails with 23503 through either version; a known one works.
SELECT ec_test.fk_try('INSERT INTO cfk.transfers VALUES (10, 99, 1)') AS old_unknown;
SET search_path = cfk_v1;
SELECT ec_test.fk_try('INSERT INTO cfk_v1.transfers VALUES (11, 99, 1)') AS new_unknown;
SELECT ec_test.fk_try('INSERT INTO cfk_v1.transfers VALUES (12, 3, 1)') AS new_known;
SELECT ec_test.fk_try('UPDATE cfk_v1.transfers SET account_id = 98 WHERE id = 12') AS new_repoint;
RESET search_path;
SELECT ec_test.fk_try('INSERT INTO cfk.transfers VALUES (13, 3, 1)') AS old_known;
-- An account created through the new version can be referenced through the old one at once.
SET search_path = cfk_v1;
SELECT ec_test.fk_try('INSERT INTO cfk_v1.accounts VALUES (4, ''dave'')') AS new_account;
RESET search_path;
SELECT ec_test.fk_try('INSERT INTO cfk.transfers VALUES (14, 4, 1)') AS old_ref_new_account;
-- Deleting or re-keying a referenced account fails through either version; an unreferenced one goes.
SELECT ec_test.fk_try('DELETE FROM cfk.accounts WHERE id = 1') AS old_delete;
SET search_path = cfk_v1;
SELECT ec_test.fk_try('DELETE FROM cfk_v1.accounts WHERE id = 2') AS new_delete;
SELECT ec_test.fk_try('UPDATE cfk_v1.accounts SET id = 20 WHERE id = 2') AS new_rekey;
SELECT ec_test.fk_try('INSERT INTO cfk_v1.accounts VALUES (5, ''erin'')') AS new_account2;
SELECT ec_test.fk_try('DELETE FROM cfk_v1.accounts WHERE id = 5') AS new_delete_unreferenced;
RESET search_path;
SELECT ec_test.fk_try('UPDATE cfk.accounts SET id = 30 WHERE id = 3') AS old_rekey;
SELECT t.id, t.account_id, a.name FROM cfk_v1.transfers t JOIN cfk_v1.accounts a ON a.id = t.account_id ORDER BY t.id;
DELETE FROM cfk.transfers WHERE id > 3;
DELETE FROM cfk.accounts WHERE id > 3;

-- Rollback: both tables exactly as before, nothing of the migration left.
SELECT ec_rollback('cfk');
SELECT * FROM ec_test.diff(:'before', 'cfk');
SELECT * FROM ec_test.leftovers();
SELECT ec_test.fk_try('INSERT INTO cfk.transfers VALUES (10, 99, 1)') AS after_rollback_unknown;

-- Start again and complete: both tables as the offline twins, the foreign key validated under its
-- own name on the bigint key.
SELECT ec_start('v1', :'widen_doc', 'cfk');
SELECT ec_resume('cfk');
CALL ec_wait('cfk');
SELECT ec_complete('cfk');
SELECT * FROM ec_test.fk_twin_diff('cfk.accounts', 'twin_cfk.accounts');
SELECT * FROM ec_test.fk_twin_diff('cfk.transfers', 'twin_cfk.transfers');
SELECT * FROM ec_test.fk_list('cfk.transfers');
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'cfk.accounts'::regclass ORDER BY 1;
SELECT * FROM ec_test.leftovers();
SELECT ec_test.fk_try('INSERT INTO cfk.transfers (id, account_id, amount) VALUES (10, 99, 1)') AS after_complete_unknown;
SELECT ec_test.fk_try('INSERT INTO cfk.transfers (id, account_id, amount) VALUES (10, 3, 1)') AS after_complete_known;
SELECT ec_test.fk_try('DELETE FROM cfk.accounts WHERE id = 1') AS after_complete_delete;

-- Both columns widened in one migration: exactly one new foreign key, from the new referencing
-- column to the new key column (transfers' own carrying leaves it alone).
CREATE SCHEMA cfk2;
CREATE SCHEMA twin_cfk2;
SET search_path = cfk2;
SELECT ec_test.fk_bank();
SET search_path = twin_cfk2;
SELECT ec_test.fk_bank();
ALTER TABLE twin_cfk2.accounts ALTER COLUMN id TYPE bigint;
ALTER TABLE twin_cfk2.transfers ALTER COLUMN account_id TYPE bigint;
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before2 FROM ec_test.snapshot('cfk2') x \gset
\set both_doc '{"operations": [{"alter_column": {"table": "transfers", "column": "account_id", "type": "bigint"}}, {"alter_column": {"table": "accounts", "column": "id", "type": "bigint"}}]}'
SELECT ec_start('v1', :'both_doc', 'cfk2');
SELECT * FROM ec_test.fk_tasks() WHERE sql LIKE '%FOREIGN KEY%' OR sql LIKE '%VALIDATE%';
SELECT ec_resume('cfk2');
CALL ec_wait('cfk2');
SELECT * FROM ec_test.fk_list('cfk2.transfers');
SELECT ec_test.fk_try('INSERT INTO cfk2.transfers VALUES (10, 99, 1)') AS old_unknown;
SET search_path = cfk2_v1;
SELECT ec_test.fk_try('INSERT INTO cfk2_v1.transfers VALUES (11, 99, 1)') AS new_unknown;
SELECT ec_test.fk_try('INSERT INTO cfk2_v1.transfers VALUES (12, 3, 1)') AS new_known;
SELECT ec_test.fk_try('DELETE FROM cfk2_v1.accounts WHERE id = 3') AS new_delete;
RESET search_path;
SELECT ec_test.fk_try('DELETE FROM cfk2.accounts WHERE id = 1') AS old_delete;
DELETE FROM cfk2.transfers WHERE id > 3;
SELECT ec_rollback('cfk2');
SELECT * FROM ec_test.diff(:'before2', 'cfk2');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('v1', :'both_doc', 'cfk2');
SELECT ec_resume('cfk2');
CALL ec_wait('cfk2');
SELECT ec_complete('cfk2');
SELECT * FROM ec_test.fk_twin_diff('cfk2.accounts', 'twin_cfk2.accounts');
SELECT * FROM ec_test.fk_twin_diff('cfk2.transfers', 'twin_cfk2.transfers');
SELECT * FROM ec_test.fk_list('cfk2.transfers');
SELECT * FROM ec_test.leftovers();
SELECT ec_test.fk_try('INSERT INTO cfk2.transfers (id, account_id, amount) VALUES (10, 99, 1)') AS after_complete_unknown;
SELECT ec_test.fk_try('INSERT INTO cfk2.transfers (id, account_id, amount) VALUES (10, 3, 1)') AS after_complete_known;
SELECT ec_test.fk_try('DELETE FROM cfk2.accounts WHERE id = 3') AS after_complete_delete;

-- With both sides rebuilt, an action that writes the referencing column is refused at start.
CREATE SCHEMA cfk3;
CREATE TABLE cfk3.accounts (id int PRIMARY KEY);
CREATE TABLE cfk3.transfers (id int PRIMARY KEY,
  account_id int CONSTRAINT transfers_account_fk REFERENCES cfk3.accounts (id) ON UPDATE CASCADE);
SELECT array_agg(x ORDER BY x) AS before3 FROM ec_test.snapshot('cfk3') x \gset
\set VERBOSITY sqlstate
SELECT ec_start('v1', :'both_doc', 'cfk3');
\set VERBOSITY default
SELECT ec_start('v1', :'both_doc', 'cfk3');
-- A key type the referencing column cannot be compared with is refused at start, as offline
-- ALTER COLUMN ... TYPE refuses it (42804), rather than failing the worker's task later.
\set text_doc '{"operations": [{"alter_column": {"table": "accounts", "column": "id", "type": "text", "up": "id::text", "down": "id::int"}}]}'
\set VERBOSITY sqlstate
SELECT ec_start('v1', :'text_doc', 'cfk3');
\set VERBOSITY default
SELECT ec_start('v1', :'text_doc', 'cfk3');
SELECT * FROM ec_test.diff(:'before3', 'cfk3');
SELECT * FROM ec_test.leftovers();
-- Only the key rebuilt: the same action is kept (both foreign keys write the one referencing
-- column, to the same value), and it cascades through either version.
SELECT ec_start('v1', :'widen_doc', 'cfk3');
SELECT ec_resume('cfk3');
CALL ec_wait('cfk3');
INSERT INTO cfk3.accounts VALUES (1), (2);
INSERT INTO cfk3.transfers VALUES (1, 1), (2, 2);
SET search_path = cfk3_v1;
UPDATE cfk3_v1.accounts SET id = 10 WHERE id = 1;
RESET search_path;
UPDATE cfk3.accounts SET id = 20 WHERE id = 2;
SELECT id, account_id FROM cfk3_v1.transfers ORDER BY id;
SELECT ec_complete('cfk3');
SELECT * FROM ec_test.fk_list('cfk3.transfers');
SELECT * FROM ec_test.leftovers();
-- The key rebuilt again while a drop_constraint of the same migration drops the foreign key: no
-- new one; the old one holds until complete (so a new-version write whose "down" breaks it fails,
-- as for any drop_constraint), and complete drops it before the old key column.
SELECT ec_start('v2', '{"operations": [{"drop_constraint": {"table": "transfers", "name": "transfers_account_fk", "up": "account_id", "down": "account_id"}}, {"alter_column": {"table": "accounts", "column": "id", "type": "integer", "up": "id::integer", "down": "id"}}]}', 'cfk3');
SELECT ec_resume('cfk3');
CALL ec_wait('cfk3');
SELECT * FROM ec_test.fk_list('cfk3.transfers');
SELECT ec_test.fk_try('INSERT INTO cfk3.transfers (id, account_id) VALUES (3, 99)') AS old_unknown;
SET search_path = cfk3_v2;
SELECT ec_test.fk_try('INSERT INTO cfk3_v2.transfers (id, account_id) VALUES (4, 99)') AS new_unknown;
RESET search_path;
DELETE FROM cfk3.transfers WHERE id = 4;
CALL ec_wait('cfk3');
SELECT ec_complete('cfk3');
SELECT * FROM ec_test.fk_list('cfk3.transfers');
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'cfk3.accounts'::regclass AND attname = 'id';
SELECT * FROM ec_test.leftovers();

-- A self-reference: nodes.parent_id references nodes.id, ON DELETE CASCADE; id widened.
CREATE FUNCTION ec_test.fk_tree() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE nodes (id int PRIMARY KEY, parent_id int REFERENCES nodes (id) ON DELETE CASCADE,
                      label text);
  CREATE INDEX nodes_parent ON nodes (parent_id);
  INSERT INTO nodes VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 2, 'b'), (4, 1, 'c');
END $$;
CREATE SCHEMA cfk4;
CREATE SCHEMA twin_cfk4;
SET search_path = cfk4;
SELECT ec_test.fk_tree();
SET search_path = twin_cfk4;
SELECT ec_test.fk_tree();
ALTER TABLE twin_cfk4.nodes ALTER COLUMN id TYPE bigint;
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before4 FROM ec_test.snapshot('cfk4') x \gset
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "nodes", "column": "id", "type": "bigint"}}]}', 'cfk4');
SELECT ec_resume('cfk4');
CALL ec_wait('cfk4');
SELECT * FROM ec_test.fk_list('cfk4.nodes');
SELECT ec_test.fk_try('INSERT INTO cfk4.nodes VALUES (10, 99, ''x'')') AS old_unknown;
SET search_path = cfk4_v1;
SELECT ec_test.fk_try('INSERT INTO cfk4_v1.nodes VALUES (11, 99, ''x'')') AS new_unknown;
SELECT ec_test.fk_try('INSERT INTO cfk4_v1.nodes VALUES (12, 4, ''d'')') AS new_known;
-- The cascade removes the subtree once, through the new version.
SELECT ec_test.fk_try('DELETE FROM cfk4_v1.nodes WHERE id = 2') AS new_delete_subtree;
RESET search_path;
SELECT id, parent_id, label FROM cfk4_v1.nodes ORDER BY id;
SELECT ec_rollback('cfk4');
SELECT * FROM ec_test.diff(:'before4', 'cfk4');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "nodes", "column": "id", "type": "bigint"}}]}', 'cfk4');
SELECT ec_resume('cfk4');
CALL ec_wait('cfk4');
SELECT ec_complete('cfk4');
SELECT * FROM ec_test.fk_twin_diff('cfk4.nodes', 'twin_cfk4.nodes');
SELECT * FROM ec_test.fk_list('cfk4.nodes');
SELECT * FROM ec_test.leftovers();
SELECT ec_test.fk_try('INSERT INTO cfk4.nodes (id, parent_id, label) VALUES (10, 99, ''x'')') AS after_complete_unknown;
SELECT ec_test.fk_try('DELETE FROM cfk4.nodes WHERE id = 1') AS after_complete_cascade;
SELECT count(*) FROM cfk4.nodes;

-- The self-reference with both of its columns widened: one new foreign key, between the new columns.
CREATE SCHEMA cfk5;
CREATE SCHEMA twin_cfk5;
SET search_path = cfk5;
SELECT ec_test.fk_tree();
SET search_path = twin_cfk5;
SELECT ec_test.fk_tree();
ALTER TABLE twin_cfk5.nodes ALTER COLUMN id TYPE bigint, ALTER COLUMN parent_id TYPE bigint;
RESET search_path;
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "nodes", "column": "parent_id", "type": "bigint"}}, {"alter_column": {"table": "nodes", "column": "id", "type": "bigint"}}]}', 'cfk5');
SELECT ec_resume('cfk5');
CALL ec_wait('cfk5');
SELECT * FROM ec_test.fk_list('cfk5.nodes');
SELECT ec_test.fk_try('INSERT INTO cfk5.nodes VALUES (10, 99, ''x'')') AS old_unknown;
SET search_path = cfk5_v1;
SELECT ec_test.fk_try('INSERT INTO cfk5_v1.nodes VALUES (11, 99, ''x'')') AS new_unknown;
SELECT ec_test.fk_try('DELETE FROM cfk5_v1.nodes WHERE id = 2') AS new_delete_subtree;
RESET search_path;
SELECT id, parent_id FROM cfk5_v1.nodes ORDER BY id;
SELECT ec_complete('cfk5');
SELECT * FROM ec_test.fk_twin_diff('cfk5.nodes', 'twin_cfk5.nodes');
SELECT * FROM ec_test.fk_list('cfk5.nodes');
SELECT * FROM ec_test.leftovers();

-- A referencing table in another schema: complete and rollback lock it up front too (relids).
CREATE SCHEMA cfk6;
CREATE SCHEMA cfk6_other;
CREATE TABLE cfk6.accounts (id int PRIMARY KEY);
CREATE TABLE cfk6_other.refs (id int PRIMARY KEY, account_id int CONSTRAINT refs_account_fk REFERENCES cfk6.accounts (id));
INSERT INTO cfk6.accounts VALUES (1);
INSERT INTO cfk6_other.refs VALUES (1, 1);
SELECT ec_start('v1', :'widen_doc', 'cfk6');
SELECT relids FROM expand_contract.migrations WHERE NOT done;
SELECT ec_resume('cfk6');
CALL ec_wait('cfk6');
SELECT * FROM ec_test.fk_list('cfk6_other.refs');
-- A crash after the worker's ADD CONSTRAINT committed but before its task was marked done: taken up
-- again, the task finds its constraint and goes on, instead of failing on the name.
UPDATE expand_contract.tasks t SET state = 'pending' FROM expand_contract.migrations m
 WHERE m.id = t.migration_id AND NOT m.done AND t.sql LIKE '%_ec_con_refs_account_fk%';
SELECT ec_resume('cfk6');
CALL ec_wait('cfk6');
SELECT t.state, t.last_error FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE NOT m.done AND t.sql LIKE '%refs_account_fk%' ORDER BY t.seq;
SELECT ec_test.fk_try('INSERT INTO cfk6_other.refs VALUES (2, 99)') AS unknown;
SELECT ec_complete('cfk6');
SELECT * FROM ec_test.fk_list('cfk6_other.refs');
SELECT * FROM ec_test.leftovers();

-- Dropping the unique constraint that another table's foreign key needs is refused, as offline.
CREATE SCHEMA cfk7;
CREATE TABLE cfk7.items (id int PRIMARY KEY, sku text CONSTRAINT items_sku_key UNIQUE);
CREATE TABLE cfk7.parts (id int PRIMARY KEY, item_sku text CONSTRAINT parts_item_sku_fkey REFERENCES cfk7.items (sku));
SELECT ec_start('v1', '{"operations": [{"drop_constraint": {"table": "items", "name": "items_sku_key", "up": "sku", "down": "sku"}}]}', 'cfk7');
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "items", "column": "sku", "type": "varchar(20)"}}, {"drop_constraint": {"table": "items", "name": "items_sku_key", "up": "sku", "down": "sku"}}]}', 'cfk7');
SELECT * FROM ec_test.leftovers();

-- Dropping a referenced column is still refused, naming the foreign key.
SELECT ec_start('v2', '{"operations": [{"drop_column": {"table": "accounts", "column": "id"}}]}', 'cfk');

SET client_min_messages = warning;
DROP SCHEMA cfk, twin_cfk, cfk2, twin_cfk2, cfk3, cfk4, twin_cfk4, cfk5, twin_cfk5, cfk6, cfk6_other, cfk7 CASCADE;
RESET client_min_messages;
