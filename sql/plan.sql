-- ec_plan: a dry run of ec_start.  It changes nothing, holds no lock above ACCESS SHARE on the
-- migrated relations once it returns, lists the steps of start, the worker, complete and rollback
-- (the same that ec_start then saves and queues), and raises every error ec_start would.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
-- Backfills wait for ec_resume(), so that the tasks compared below stay as queued.
SET expand_contract.start_paused = on;
\pset null '(null)'
CREATE SCHEMA app;
CREATE TABLE app.accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL DEFAULT 0);
INSERT INTO app.accounts SELECT g, 'o' || g, g FROM generate_series(1, 500) g;
CREATE INDEX accounts_balance ON app.accounts (balance);
CREATE TABLE app.transfers (id int PRIMARY KEY, account_id int REFERENCES app.accounts, amount int,
                            CONSTRAINT amount_positive CHECK (amount > 0),
                            CONSTRAINT account_amount UNIQUE (account_id, amount));
INSERT INTO app.transfers SELECT g, g % 500 + 1, g FROM generate_series(1, 200) g;
CREATE TABLE app.logs (id int PRIMARY KEY, line text);
CREATE INDEX logs_line ON app.logs (line);
CREATE TABLE app.parts (id int, region text, qty int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE app.parts_eu PARTITION OF app.parts FOR VALUES IN ('eu');
CREATE TABLE app.parts_us PARTITION OF app.parts FOR VALUES IN ('us');
INSERT INTO app.parts SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 100) g;
ANALYZE app.accounts, app.transfers, app.logs, app.parts, app.parts_eu, app.parts_us;
-- Big enough (over 1024 blocks) for the worker to compact it after its backfill.
CREATE TABLE app.big (id int PRIMARY KEY, v int, pad text);
INSERT INTO app.big SELECT g, g, repeat('x', 200) FROM generate_series(1, 40000) g;
VACUUM app.big;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('app') x \gset

-- One migration's whole plan.  The locks each phase takes up front (relation, mode, no statement),
-- then its statements, each with the lock it takes itself.  Rows from the table's statistics; no
-- earlier backfill or index build in this database yet, so no estimate, and the note says why.
BEGIN;
SELECT phase, step, relation, lock, sql, rows, estimate, note
  FROM ec_plan('v1', '{"operations": [
    {"alter_column": {"table": "accounts", "column": "balance", "type": "bigint",
                      "up": "balance * 100", "down": "(balance / 100)::int"}},
    {"add_column": {"table": "accounts", "column": {"name": "note", "type": "text", "nullable": true}}}]}', 'app');
-- Inside the same transaction, after ec_plan: no lock above ACCESS SHARE (relation, advisory or
-- any other, but the transaction's own ids) except on the identity sequence of
-- expand_contract.migrations (nextval keeps its lock to the transaction's end).
SELECT l.locktype, l.relation::regclass, l.mode FROM pg_locks l
 WHERE l.pid = pg_backend_pid() AND l.locktype NOT IN ('virtualxid', 'transactionid')
   AND l.mode <> 'AccessShareLock';
COMMIT;
-- Nothing changed: no catalog change, no history row, no task.
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS migrations FROM expand_contract.migrations;
SELECT count(*) AS tasks FROM expand_contract.tasks;

-- Per operation kind: ec_plan, then ec_start, then what ec_start saved and queued against the
-- plan: the worker's steps (relation and statement, in order), complete's and rollback's steps and
-- the relations they lock.  Then a snapshot after rollback equals the one before the plan.
CREATE FUNCTION ec_test.plan_vs_start(doc text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  m record;
  parent text;
  planned text[];
  actual text[];
  aspect text;
BEGIN
  BEGIN
  CREATE TEMP TABLE planned_steps AS SELECT * FROM ec_plan('p1', doc::jsonb, 'app');
  PERFORM ec_start('p1', doc::jsonb, 'app');
  SELECT * INTO m FROM expand_contract.migrations WHERE schema_name = 'app' AND NOT done;
  SELECT version_schema INTO parent FROM expand_contract.migrations
   WHERE schema_name = 'app' AND done ORDER BY id DESC LIMIT 1;
  FOREACH aspect IN ARRAY ARRAY['worker', 'complete', 'rollback', 'locks'] LOOP
    IF aspect = 'worker' THEN
      SELECT coalesce(array_agg(coalesce(relation, '-') || ': ' || coalesce(sql, 'backfill') ORDER BY step), '{}')
        INTO planned FROM planned_steps WHERE phase = 'worker';
      SELECT coalesce(array_agg(coalesce(quote_ident(n.nspname) || '.' || quote_ident(c.relname), '-') || ': ' ||
                                coalesce(t.sql, 'backfill') ORDER BY t.seq, t.part), '{}')
        INTO actual FROM expand_contract.tasks t LEFT JOIN pg_class c ON c.oid = t.relid
        LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.migration_id = m.id;
    ELSIF aspect = 'complete' THEN
      SELECT coalesce(array_agg(sql ORDER BY step), '{}') INTO planned
        FROM planned_steps WHERE phase = 'complete' AND sql IS NOT NULL;
      actual := m.validate_steps ||
                CASE WHEN parent IS NOT NULL THEN ARRAY[format('DROP SCHEMA %I CASCADE', parent)] ELSE '{}' END ||
                m.complete_steps;
    ELSIF aspect = 'rollback' THEN
      SELECT coalesce(array_agg(sql ORDER BY step DESC), '{}') INTO planned
        FROM planned_steps WHERE phase = 'rollback' AND sql IS NOT NULL;
      actual := m.rollback_steps;
    ELSE
      SELECT coalesce(array_agg(relation ORDER BY step), '{}') INTO planned
        FROM planned_steps WHERE phase = 'complete' AND sql IS NULL;
      SELECT coalesce(array_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname) ORDER BY r.i), '{}')
        INTO actual FROM unnest(m.relids) WITH ORDINALITY r(rel, i) JOIN pg_class c ON c.oid = r.rel
        JOIN pg_namespace n ON n.oid = c.relnamespace;
    END IF;
    IF planned IS DISTINCT FROM actual THEN
      RETURN NEXT format('%s differs: planned %s, saved %s', aspect, planned, actual);
    END IF;
  END LOOP;
  RETURN NEXT format('%s worker, %s complete, %s rollback step(s)',
                     (SELECT count(*) FROM planned_steps WHERE phase = 'worker'),
                     (SELECT count(*) FROM planned_steps WHERE phase = 'complete' AND sql IS NOT NULL),
                     (SELECT count(*) FROM planned_steps WHERE phase = 'rollback' AND sql IS NOT NULL));
  PERFORM ec_rollback('app');
  DROP TABLE planned_steps;
  -- Undo the lot, so that no worker is launched at commit for the migration rolled back.
  RAISE EXCEPTION USING ERRCODE = 'EC000';
  EXCEPTION WHEN SQLSTATE 'EC000' THEN
    RETURN;
  END;
END $$;
CREATE TABLE plan_docs (kind text, doc text);
INSERT INTO plan_docs VALUES
 ('create_table', '{"operations": [{"create_table": {"name": "notes", "columns": [{"name": "id", "type": "serial", "pk": true},
    {"name": "account_id", "type": "int", "references": {"name": "notes_account_fk", "table": "accounts", "column": "id"}},
    {"name": "body", "type": "text", "nullable": true}]}}]}'),
 ('add_column', '{"operations": [{"add_column": {"table": "accounts", "up": "upper(owner)",
    "column": {"name": "code", "type": "text", "unique": true, "check": {"name": "code_short", "constraint": "length(code) < 10"}}}}]}'),
 ('drop_column', '{"operations": [{"drop_column": {"table": "transfers", "column": "amount", "down": "1"}}]}'),
 ('rename_column', '{"operations": [{"rename_column": {"table": "accounts", "from": "owner", "to": "holder"}}]}'),
 ('alter_column', '{"operations": [{"alter_column": {"table": "transfers", "column": "account_id", "type": "bigint",
    "up": "account_id", "down": "account_id::int"}}]}'),
 ('alter_column compacted', '{"operations": [{"alter_column": {"table": "big", "column": "v", "type": "bigint",
    "up": "v", "down": "v::int"}}]}'),
 ('alter_column partitioned', '{"operations": [{"alter_column": {"table": "parts", "column": "qty", "type": "bigint",
    "up": "qty * 2", "down": "(qty / 2)::int"}}]}'),
 ('rename_table', '{"operations": [{"rename_table": {"from": "logs", "to": "journal"}}]}'),
 ('drop_table', '{"operations": [{"drop_table": {"name": "logs"}}]}'),
 ('sql', '{"operations": [{"sql": {"up": "CREATE TABLE app.side (id int)", "down": "DROP TABLE app.side"}},
    {"add_column": {"table": "logs", "column": {"name": "level", "type": "int", "nullable": true}}}]}'),
 ('create_constraint', '{"operations": [{"create_constraint": {"table": "accounts", "name": "balance_small", "type": "check",
    "columns": ["balance"], "check": "balance < 1000", "up": {"balance": "least(balance, 999)"}, "down": {"balance": "balance"}}}]}'),
 ('drop_constraint', '{"operations": [{"drop_constraint": {"table": "transfers", "name": "amount_positive", "up": "amount", "down": "greatest(amount, 1)"}}]}'),
 ('drop_multicolumn_constraint', '{"operations": [{"drop_multicolumn_constraint": {"table": "transfers", "name": "account_amount",
    "up": {"amount": "amount"}, "down": {"amount": "amount", "account_id": "account_id"}}}]}'),
 ('rename_constraint', '{"operations": [{"rename_constraint": {"table": "transfers", "from": "amount_positive", "to": "amount_above_zero"}}]}'),
 ('set_replica_identity', '{"operations": [{"set_replica_identity": {"table": "logs", "identity": {"type": "full", "index": ""}}}]}'),
 ('create_index', '{"operations": [{"create_index": {"table": "accounts", "name": "accounts_owner", "columns": [{"column": "owner"}]}}]}'),
 ('create_index partitioned', '{"operations": [{"create_index": {"table": "parts", "name": "parts_qty", "columns": [{"column": "qty"}]}}]}'),
 ('drop_index', '{"operations": [{"drop_index": {"name": "logs_line"}}]}');
SELECT d.kind, r AS outcome FROM plan_docs d, ec_test.plan_vs_start(d.doc) r ORDER BY d.kind, r;
SELECT * FROM ec_test.diff(:'before', 'app');
SELECT * FROM ec_test.leftovers();

-- The worker's steps of a big table: its backfill, then the compaction of the index it bloats.
SELECT phase, step, relation, lock, sql, rows, note
  FROM ec_plan('v1', (SELECT doc FROM plan_docs WHERE kind = 'alter_column compacted')::jsonb, 'app')
 WHERE phase = 'worker';

-- With an index on the rebuilt column: the migration builds the new column's index itself, and
-- the compaction rebuilds only the primary key, which survives complete untouched; neither the old
-- column's index (complete drops it) nor the new one is rebuilt.  ec_start queues the same.
CREATE INDEX big_v ON app.big (v);
SELECT phase, step, relation, lock, sql
  FROM ec_plan('v1', (SELECT doc FROM plan_docs WHERE kind = 'alter_column compacted')::jsonb, 'app')
 WHERE phase = 'worker';
SELECT r AS outcome FROM ec_test.plan_vs_start((SELECT doc FROM plan_docs WHERE kind = 'alter_column compacted')) r;
DROP INDEX app.big_v;

-- The worker's steps of a partitioned table: a backfill per leaf, each with its rows.
SELECT phase, step, relation, lock, rows, estimate IS NULL AS no_estimate
  FROM ec_plan('v1', (SELECT doc FROM plan_docs WHERE kind = 'alter_column partitioned')::jsonb, 'app')
 WHERE phase = 'worker';

-- A "sql" operation that later operations depend on is rehearsed like the rest: the table it
-- creates is there for the operation after it.  Its statement's row says that the rehearsal ran it.
SELECT phase, step, sql, note IS NOT NULL AS noted FROM ec_plan('v1', '{"operations": [
  {"sql": {"up": "CREATE TABLE app.later (id int PRIMARY KEY, v int)", "down": "DROP TABLE app.later"}},
  {"add_column": {"table": "later", "up": "v + 1", "column": {"name": "w", "type": "int", "nullable": true}}}]}', 'app')
 WHERE phase IN ('start', 'rollback') AND sql IS NOT NULL ORDER BY phase, step;
SELECT to_regclass('app.later') AS later_table;

-- Estimates once this database has a finished backfill and index build to measure a rate from.
SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "accounts", "column": "balance", "type": "bigint",
  "up": "balance * 100", "down": "(balance / 100)::int"}}]}', 'app');
SELECT ec_resume('app');
CALL ec_wait('app');
SELECT ec_complete('app');
SELECT phase, step, relation, rows, estimate >= '0' AS estimated, note LIKE '%earlier%in this database' AS measured
  FROM ec_plan('v2', '{"operations": [{"alter_column": {"table": "transfers", "column": "amount", "type": "bigint",
    "up": "amount", "down": "amount::int"}}]}', 'app')
 WHERE rows IS NOT NULL;
-- The previous version schema is dropped at complete.
SELECT step, sql FROM ec_plan('v2', '{"operations": [{"drop_table": {"name": "logs"}}]}', 'app')
 WHERE phase = 'complete' AND sql LIKE 'DROP SCHEMA%';

-- An active migration: ec_plan says what ec_start would.
SELECT ec_start('v2', '{"operations": [{"drop_table": {"name": "logs"}}]}', 'app');
SELECT ec_test.try($$SELECT * FROM ec_plan('v3', '{"operations": [{"drop_table": {"name": "logs"}}]}', 'app')$$);
SELECT ec_rollback('app');
-- A completed migration's name is taken.
SELECT ec_test.try($$SELECT * FROM ec_plan('v1', '{"operations": [{"drop_table": {"name": "logs"}}]}', 'app')$$);

-- Every error ec_start raises for a document (errors.sql's), ec_plan raises too, with its SQLSTATE.
CREATE SCHEMA bad;
CREATE TABLE bad.t (id int PRIMARY KEY, name text);
SELECT array_agg(x ORDER BY x) AS bad_before FROM ec_test.snapshot('bad') x \gset
CREATE TABLE bad_docs (n serial, name text, doc text, nsp text);
INSERT INTO bad_docs (name, doc, nsp) VALUES
 (NULL, '{"operations": []}', 'bad'),
 ('v1', NULL, 'bad'),
 ('', '{"operations": [{"drop_table": {"name": "t"}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'nosuchschema'),
 ('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'pg_catalog'),
 ('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'expand_contract'),
 ('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', NULL),
 (repeat('x', 70), '{"operations": [{"drop_table": {"name": "t"}}]}', 'bad'),
 ('v1', '[]', 'bad'),
 ('v1', '"text"', 'bad'),
 ('v1', '{}', 'bad'),
 ('v1', '{"operations": []}', 'bad'),
 ('v1', '{"operations": {}}', 'bad'),
 ('v1', '{"operations": [1]}', 'bad'),
 ('v1', '{"operations": [{}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {"name": "t"}, "sql": {"up": "select"}}]}', 'bad'),
 ('v1', '{"operations": [{"frobnicate": {}}]}', 'bad'),
 ('v1', '{"operations": [{"create_index": {"name": "i", "table": "t", "columns": ["id"]}}]}', 'bad'),
 ('v1', '{"operatoins": [], "operations": [{"drop_table": {"name": "t"}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {"name": "t", "cascade": true}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {"name": 5}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {"name": ""}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": "yes"}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "generated": {"expression": "1"}}}}]}', 'bad'),
 ('v1', '{"operations": [{"alter_column": {"table": "t", "column": "name"}}]}', 'bad'),
 ('v1', '{"operations": [{"sql": {"up": "select 1", "down": "select 2", "onComplete": true}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": true,
   "references": {"name": "fk", "table": "t", "column": "id", "on_delete": "EXPLODE"}}}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_table": {"name": "nope"}}]}', 'bad'),
 ('v1', '{"operations": [{"drop_column": {"table": "t", "column": "nope"}}]}', 'bad'),
 ('v1', '{"operations": [{"rename_column": {"table": "t", "from": "name", "to": "id"}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "name", "type": "text"}}}]}', 'bad'),
 ('v1', '{"operations": [{"create_table": {"name": "t", "columns": [{"name": "a", "type": "int"}]}}]}', 'bad'),
 ('v1', '{"operations": [{"rename_table": {"from": "t", "to": "t"}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "no_such_type", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int; drop table bad.t", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "name; DROP TABLE bad.t", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "1) FROM bad.t; DROP TABLE bad.t; --", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "name FROM bad.t", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "(SELECT 1, 2)", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "count(*)", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "no_such_column", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "name", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "ctid::text", "column": {"name": "x", "type": "text", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "up": "1 AS x", "column": {"name": "x", "type": "int", "nullable": true}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "default": "id"}}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int", "nullable": true, "check": {"name": "c", "constraint": "x > (SELECT 0)"}}}}]}', 'bad'),
 ('v1', '{"operations": [{"alter_column": {"table": "t", "column": "name", "name": "label", "type": "varchar(10)", "up": "name", "down": "name"}}]}', 'bad'),
 ('v1', '{"operations": [{"add_column": {"table": "t", "column": {"name": "x", "type": "int"}}}]}', 'bad'),
 -- errors of the statements themselves, raised by the rehearsed DDL
 ('v1', '{"operations": [{"sql": {"up": "CREATE TABLE bad.t (id int)"}}]}', 'bad'),
 ('v1', '{"operations": [{"sql": {"up": "ALTER TABLE bad.t ADD COLUMN x int DEFAULT id"}}]}', 'bad');
SELECT n, ec_test.try(format('SELECT * FROM ec_plan(%L, %L, %L)', name, doc, nsp)) AS ec_plan,
       ec_test.try(format('SELECT * FROM ec_plan(%L, %L, %L)', name, doc, nsp)) =
       ec_test.try(format('SELECT ec_start(%L, %L, %L)', name, doc, nsp)) AS same_as_ec_start
  FROM bad_docs ORDER BY n;
CREATE SCHEMA bad_v1;
SELECT ec_test.try($$SELECT * FROM ec_plan('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'bad')$$);
DROP SCHEMA bad_v1;
-- Privileges: a role that does not own the table may not plan its migration either.
CREATE ROLE regress_ec_plan_other;
GRANT USAGE ON SCHEMA bad, ec_test TO regress_ec_plan_other;
SET ROLE regress_ec_plan_other;
SELECT ec_test.try($$SELECT * FROM ec_plan('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'bad')$$) AS ec_plan,
       ec_test.try($$SELECT ec_start('v1', '{"operations": [{"drop_table": {"name": "t"}}]}', 'bad')$$) AS ec_start;
RESET ROLE;
REVOKE USAGE ON SCHEMA bad, ec_test FROM regress_ec_plan_other;
DROP ROLE regress_ec_plan_other;
SELECT * FROM ec_test.diff(:'bad_before', 'bad');
SELECT count(*) AS bad_migrations FROM expand_contract.migrations WHERE schema_name = 'bad';

DROP SCHEMA app, app_v1, bad CASCADE;
DROP TABLE plan_docs, bad_docs;
DROP FUNCTION ec_test.plan_vs_start(text);
DELETE FROM expand_contract.migrations;
