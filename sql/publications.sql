-- publications: a table in a publication keeps replicating while a migration is active.  A
-- publication that lists the table gets a column list without the helper columns at start (in
-- start's transaction), rollback puts its entry back exactly, complete puts it back under the
-- final column names (no list if it had none); where a publication takes no column list (FOR ALL
-- TABLES, FOR TABLES IN SCHEMA) start refuses, unless expand_contract.publications = 'ignore'.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE SCHEMA pubs;
CREATE TABLE pubs.items (id int PRIMARY KEY, qty int NOT NULL, note text, extra int);
CREATE TABLE pubs.other (id int PRIMARY KEY, v int);
INSERT INTO pubs.items VALUES (1, 10, 'one', 100);
-- CREATE PUBLICATION warns that wal_level is not logical here.
SET client_min_messages = error;
CREATE PUBLICATION pub_whole FOR TABLE pubs.items, pubs.other;
CREATE PUBLICATION pub_list FOR TABLE pubs.items (id, qty, note) WHERE (id > 0);
CREATE PUBLICATION pub_other FOR TABLE pubs.other;
SET client_min_messages = warning;
-- Each entry: its column list as stored (NULL: none, every column published) and its row filter.
CREATE FUNCTION ec_test.entries() RETURNS TABLE (pub name, rel regclass, column_list text[], row_filter text)
  LANGUAGE sql AS $$
  SELECT p.pubname, r.prrelid::regclass,
         (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
           WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs::int2[])),
         pg_get_expr(r.prqual, r.prrelid)
    FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid ORDER BY 1, 2 $$;
SELECT * FROM ec_test.entries();
SELECT array_agg(x::text ORDER BY x::text) AS before FROM ec_test.entries() x \gset

-- alter_column (rebuilt as _ec_new_qty, renamed) and add_column: while active, the entries of
-- items list the columns it had; pg_publication_tables, what the walsender publishes, shows no
-- helper column.  "other" is not touched.
SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "name": "quantity", "type": "bigint"}},
  {"add_column": {"table": "items", "column": {"name": "added", "type": "int", "nullable": true}}}]}', 'pubs');
SELECT * FROM ec_test.entries();
SELECT pubname, tablename, attnames, rowfilter FROM pg_publication_tables
 WHERE schemaname = 'pubs' ORDER BY 1, 2;
-- Both versions write.
INSERT INTO pubs.items (id, qty, note) VALUES (2, 20, 'two');
SET search_path = pubs_v1;
INSERT INTO items (id, quantity, note, added) VALUES (3, 30, 'three', 3);
RESET search_path;
SELECT ec_rollback('pubs');
-- Exactly as before.
SELECT array_agg(x::text ORDER BY x::text) = :'before'::text[] AS restored FROM ec_test.entries() x;
SELECT * FROM ec_test.leftovers();

-- Again, and complete: pub_whole publishes every column again (no list), pub_list the final
-- names of the columns it named, with its row filter.
SELECT ec_start('v2', '{"operations": [
  {"alter_column": {"table": "items", "column": "qty", "name": "quantity", "type": "bigint"}},
  {"add_column": {"table": "items", "column": {"name": "added", "type": "int", "nullable": true}}}]}', 'pubs');
SELECT * FROM ec_test.entries();
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs');
SELECT * FROM ec_test.entries();
SELECT * FROM pubs.items ORDER BY id;

-- drop_column of a column that pub_list names: complete drops the entry before the column (its
-- column list depends on it) and adds it back without it.  Nothing to change while active.
SELECT ec_start('v3', '{"operations": [{"drop_column": {"table": "items", "column": "note"}}]}', 'pubs');
SELECT * FROM ec_test.entries();
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs');
SELECT * FROM ec_test.entries();

-- A publication dropped while the migration is active is not brought back, and complete and
-- rollback still work.
SET client_min_messages = error;
CREATE PUBLICATION pub_gone FOR TABLE pubs.items;
SET client_min_messages = warning;
SELECT ec_start('v3b', '{"operations": [{"alter_column": {"table": "items", "column": "quantity", "type": "numeric"}}]}', 'pubs');
SELECT * FROM ec_test.entries() WHERE pub = 'pub_gone';
DROP PUBLICATION pub_gone;
SELECT ec_rollback('pubs');
SET client_min_messages = error;
CREATE PUBLICATION pub_gone FOR TABLE pubs.items;
SET client_min_messages = warning;
SELECT ec_start('v3c', '{"operations": [{"alter_column": {"table": "items", "column": "quantity", "type": "numeric"}}]}', 'pubs');
DROP PUBLICATION pub_gone;
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs');
SELECT * FROM ec_test.entries();

-- A row filter on a column that the migration rebuilds: refused, naming the publication.
SELECT ec_start('v4', '{"operations": [
  {"alter_column": {"table": "items", "column": "id", "type": "bigint"}}]}', 'pubs');
-- REPLICA IDENTITY FULL: a column list cannot leave the helper columns out of the identity.
ALTER TABLE pubs.other REPLICA IDENTITY FULL;
SELECT ec_start('v4', '{"operations": [
  {"add_column": {"table": "other", "column": {"name": "w", "type": "int", "nullable": true}}}]}', 'pubs');
ALTER TABLE pubs.other REPLICA IDENTITY DEFAULT;

-- FOR TABLES IN SCHEMA and FOR ALL TABLES take no column list: refused ...
SET client_min_messages = error;
CREATE PUBLICATION pub_schema FOR TABLES IN SCHEMA pubs;
SET client_min_messages = warning;
SELECT ec_start('v4', '{"operations": [
  {"add_column": {"table": "other", "column": {"name": "w", "type": "int", "nullable": true}}}]}', 'pubs');
DROP PUBLICATION pub_schema;
-- (nor, in 15, a publication that lists the table but has a FOR TABLES IN SCHEMA element too)
CREATE SCHEMA pubs_elsewhere;
SET client_min_messages = error;
CREATE PUBLICATION pub_mixed FOR TABLE pubs.other, TABLES IN SCHEMA pubs_elsewhere;
SET client_min_messages = warning;
SELECT ec_start('v4', '{"operations": [
  {"add_column": {"table": "other", "column": {"name": "w", "type": "int", "nullable": true}}}]}', 'pubs');
DROP PUBLICATION pub_mixed;
SET client_min_messages = error;
CREATE PUBLICATION pub_all FOR ALL TABLES;
SET client_min_messages = warning;
SELECT ec_start('v4', '{"operations": [
  {"add_column": {"table": "other", "column": {"name": "w", "type": "int", "nullable": true}}}]}', 'pubs');
-- ... but not a migration that adds no column to a published table ...
SELECT ec_start('v4', '{"operations": [
  {"create_index": {"name": "other_v_idx", "table": "other", "columns": [{"column": "v"}]}}]}', 'pubs');
SELECT ec_rollback('pubs');
-- ... and not when the DBA takes care of the subscribers: then publications are left alone.
SET expand_contract.publications = 'ignore';
SELECT array_agg(x::text ORDER BY x::text) AS before FROM ec_test.entries() x \gset
SELECT ec_start('v4', '{"operations": [
  {"add_column": {"table": "other", "column": {"name": "w", "type": "int", "nullable": true}}}]}', 'pubs');
SELECT array_agg(x::text ORDER BY x::text) = :'before'::text[] AS untouched FROM ec_test.entries() x;
SELECT ec_rollback('pubs');
RESET expand_contract.publications;
SHOW expand_contract.publications;
SET expand_contract.publications = 'sometimes';
DROP PUBLICATION pub_all, pub_whole, pub_list, pub_other;

-- A partitioned table: a column list only with publish_via_partition_root (else its partitions are
-- published as themselves, and take none).
CREATE TABLE pubs.parted (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE pubs.parted_1 PARTITION OF pubs.parted FOR VALUES FROM (0) TO (100);
SET client_min_messages = error;
CREATE PUBLICATION pub_leaves FOR TABLE pubs.parted;
CREATE PUBLICATION pub_root FOR TABLE pubs.parted WITH (publish_via_partition_root);
SET client_min_messages = warning;
SELECT ec_start('v5', '{"operations": [{"alter_column": {"table": "parted", "column": "v", "type": "bigint"}}]}', 'pubs');
DROP PUBLICATION pub_leaves;
SELECT ec_start('v5', '{"operations": [{"alter_column": {"table": "parted", "column": "v", "type": "bigint"}}]}', 'pubs');
SELECT * FROM ec_test.entries();
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs');
SELECT * FROM ec_test.entries();
-- A revert window: what it keeps aside is not published meanwhile (the subscribers lack it).  An
-- entry of a table with kept-aside columns gets a column list without them (pub_plain had none;
-- pub_plain_list's loses its dropped columns at complete anyway), a kept-aside table's entries go;
-- ec_revert puts every entry back exactly, the cleanup leaves the entries a plain complete leaves.
-- The tables come from a migration, so that its version schema (the window's old one) shows them.
SELECT ec_start('v5p', '{"operations": [
  {"create_table": {"name": "plain", "columns": [{"name": "id", "type": "int", "pk": true},
     {"name": "v", "type": "int", "nullable": true}, {"name": "w", "type": "int", "nullable": true}]}},
  {"create_table": {"name": "doomed", "columns": [{"name": "id", "type": "int", "pk": true}]}}]}', 'pubs');
SELECT ec_complete('pubs');
INSERT INTO pubs.plain VALUES (1, 10, 100);
SET client_min_messages = error;
CREATE PUBLICATION pub_plain FOR TABLE pubs.plain, pubs.doomed;
CREATE PUBLICATION pub_plain_list FOR TABLE pubs.plain (id, v, w) WHERE (id > 0);
RESET client_min_messages;
SELECT array_agg(x::text ORDER BY x::text) AS before FROM ec_test.entries() x \gset
SELECT array_agg(x ORDER BY x) AS before_shape FROM ec_test.snapshot('pubs') x \gset
\set window_doc '{"operations": [{"drop_column": {"table": "plain", "column": "v", "down": "0"}}, {"alter_column": {"table": "plain", "column": "w", "type": "bigint"}}, {"drop_table": {"name": "doomed"}}]}'
SELECT ec_start('v6', :'window_doc', 'pubs');
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs', revert_window => '1 hour');
SELECT * FROM ec_test.entries() WHERE rel::text ~ '(plain|doomed)';
SELECT pubname, tablename, attnames, rowfilter FROM pg_publication_tables
 WHERE schemaname = 'pubs' AND tablename ~ '(plain|doomed)' ORDER BY 1, 2;
-- Both versions write: the new one through the base table, the old one through pubs_v5p.
INSERT INTO pubs.plain (id, w) VALUES (2, 20);
SET search_path = pubs_v5p;
INSERT INTO plain (id, v, w) VALUES (3, 30, 300);
RESET search_path;
-- A publication made during the window is the DBA's: ec_revert and the cleanup leave it be.  One
-- that lists a column of the new version which ec_revert drops stops it, with nothing changed (as
-- it stops ec_rollback); listing only columns both versions have, it goes through.
SET client_min_messages = error;
CREATE PUBLICATION pub_late FOR TABLE pubs.plain (id, w);
RESET client_min_messages;
SELECT ec_revert('pubs');
SELECT phase FROM ec_status('pubs');
ALTER PUBLICATION pub_late SET TABLE pubs.plain (id);
SELECT ec_revert('pubs');
SELECT array_agg(x::text ORDER BY x::text) = :'before'::text[] AS entries_restored
  FROM ec_test.entries() x WHERE pub <> 'pub_late';
SELECT * FROM ec_test.entries() WHERE pub = 'pub_late';
DROP PUBLICATION pub_late;
SELECT * FROM ec_test.diff(:'before_shape', 'pubs');
SELECT * FROM pubs.plain ORDER BY id;
-- Again, then the cleanup: the entries of a plain complete (pub_plain without a list again).
SELECT ec_start('v6', :'window_doc', 'pubs');
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs', revert_window => '1 hour');
SET client_min_messages = error;
CREATE PUBLICATION pub_late FOR TABLE pubs.plain (id);
RESET client_min_messages;
SELECT ec_cleanup('pubs');
SELECT * FROM ec_test.entries() WHERE rel::text ~ '(plain|doomed)';
DROP PUBLICATION pub_late;
SELECT * FROM ec_test.leftovers();
-- Refused, with nothing changed: a FOR TABLES IN SCHEMA publication takes no column list, and a
-- list without the kept-aside column does not cover a REPLICA IDENTITY FULL.
ALTER TABLE pubs.plain REPLICA IDENTITY FULL;
SET client_min_messages = error;
CREATE PUBLICATION pub_schema FOR TABLES IN SCHEMA pubs;
RESET client_min_messages;
SELECT ec_start('v6b', '{"operations": [{"drop_column": {"table": "plain", "column": "w", "down": "0"}}]}', 'pubs');
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs', revert_window => '1 hour');
DROP PUBLICATION pub_schema;
SET client_min_messages = error;
CREATE PUBLICATION pub_mixed FOR TABLE pubs.plain, TABLES IN SCHEMA pubs_elsewhere;
RESET client_min_messages;
SELECT ec_complete('pubs', revert_window => '1 hour');
DROP PUBLICATION pub_mixed;
SELECT ec_complete('pubs', revert_window => '1 hour');
SELECT phase FROM ec_status('pubs');
SELECT ec_complete('pubs');
-- An onComplete "sql" operation has no "down": no window, whatever its statement looks like.
SELECT ec_start('v6c', $m${"operations": [{"sql": {"up": "DO 'BEGIN IF EXISTS (SELECT FROM pg_catalog.pg_publication WHERE false) THEN NULL; END IF; END'", "onComplete": true}}]}$m$, 'pubs');
SELECT ec_complete('pubs', revert_window => '1 hour');
SELECT ec_complete('pubs');
-- A partitioned table keeps a window too: its entry (publish_via_partition_root) and a partition's
-- own entry list their columns without the kept-aside one, and ec_revert puts both back.  An entry
-- that publishes the partitions as themselves takes no list: a window is refused there.
SET client_min_messages = error;
CREATE PUBLICATION pub_leaf FOR TABLE pubs.parted_1;
RESET client_min_messages;
INSERT INTO pubs.parted VALUES (1, 1), (50, 2);
SELECT array_agg(x::text ORDER BY x::text) AS before FROM ec_test.entries() x \gset
SELECT ec_start('v8', '{"operations": [{"alter_column": {"table": "parted", "column": "v", "type": "numeric"}}]}', 'pubs');
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
SELECT ec_complete('pubs', revert_window => '1 hour');
SELECT * FROM ec_test.entries() WHERE rel::text ~ 'parted';
SELECT pubname, tablename, attnames FROM pg_publication_tables WHERE tablename ~ 'parted' ORDER BY 1, 2;
-- (the base table still has the kept-aside column at its old place: an INSERT without a column
-- list would put its values there, and is refused)
INSERT INTO pubs.parted VALUES (60, 3.5);
INSERT INTO pubs.parted (id, v) VALUES (60, 3.5);
SELECT ec_revert('pubs');
SELECT array_agg(x::text ORDER BY x::text) = :'before'::text[] AS entries_restored FROM ec_test.entries() x;
SELECT * FROM pubs.parted ORDER BY id;
SET client_min_messages = error;
CREATE PUBLICATION pub_leaves FOR TABLE pubs.parted;
RESET client_min_messages;
SELECT ec_start('v8', '{"operations": [{"drop_column": {"table": "parted", "column": "v", "down": "0"}}]}', 'pubs');
SELECT ec_complete('pubs', revert_window => '1 hour');
SELECT ec_rollback('pubs');
DROP PUBLICATION pub_leaves, pub_leaf;
-- Names are quoted as literals in the steps, whatever they contain.
SET client_min_messages = error;
CREATE TABLE pubs."odd$ec_publication$name" (id int PRIMARY KEY, v int);
CREATE PUBLICATION "pub$ec_publication$" FOR TABLE pubs."odd$ec_publication$name";
RESET client_min_messages;
SELECT ec_start('v7', '{"operations": [{"alter_column": {"table": "odd$ec_publication$name", "column": "v", "type": "bigint"}}]}', 'pubs');
SELECT ec_rollback('pubs');
SELECT ec_start('v7', '{"operations": [{"alter_column": {"table": "odd$ec_publication$name", "column": "v", "type": "bigint"}}]}', 'pubs');
SELECT ec_resume('pubs');
CALL ec_wait('pubs');
-- With a window too (its entry steps are DO blocks quoted the same way): a list for the window,
-- none again after the cleanup.
SELECT ec_complete('pubs', revert_window => '1 hour');
SELECT * FROM ec_test.entries() WHERE pub = 'pub$ec_publication$';
SELECT ec_cleanup('pubs');
SELECT * FROM ec_test.entries() WHERE pub = 'pub$ec_publication$';
SELECT pubname, attnames FROM pg_publication_tables WHERE tablename = 'odd$ec_publication$name';
SET client_min_messages = warning;
DROP PUBLICATION pub_root, pub_plain, pub_plain_list, "pub$ec_publication$";
DROP SCHEMA pubs, pubs_elsewhere CASCADE;
