-- User views over a column that a migration rebuilds beside the old one, views on those views, and
-- user triggers naming the column (UPDATE OF, WHEN): untouched by start (they keep reading the old
-- column), untouched by rollback, and at complete dropped before the old column goes and created
-- again over the rebuilt one with their owner, grants, comments, options and column defaults, the
-- triggers with their enabled state.  The final views and triggers equal a twin built with the new
-- type from the start.  What cannot be carried is refused at start, naming it, leaving nothing.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
SET expand_contract.start_paused = on;
CREATE ROLE cv_owner;
CREATE ROLE cv_reader;
-- Everything about a schema's views and triggers that complete re-creates, the schema's name
-- replaced by "_" so that a migrated schema compares with its twin.
CREATE FUNCTION ec_test.cv_catalog(nsp text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT replace(x, nsp || '.', '_.') FROM (
    SELECT format('view %s owner %s acl %s options %s comment %s: %s', c.relname,
                  pg_get_userbyid(c.relowner), c.relacl, c.reloptions,
                  obj_description(c.oid, 'pg_class'), pg_get_viewdef(c.oid, true)) AS x
      FROM pg_class c WHERE c.relnamespace = nsp::regnamespace AND c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('view column %s.%s %s default %s comment %s acl %s', c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),
                  col_description(c.oid, a.attnum), a.attacl)
      FROM pg_class c
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace = nsp::regnamespace AND c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('trigger %s enabled %s comment %s: %s', t.tgname, t.tgenabled,
                  obj_description(t.oid, 'pg_trigger'), pg_get_triggerdef(t.oid))
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = nsp::regnamespace AND NOT t.tgisinternal
  ) s
$$;
CREATE FUNCTION ec_test.cv_twin_diff(a text, b text) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT '- ' || x FROM ec_test.cv_catalog(a) x EXCEPT SELECT '- ' || y FROM ec_test.cv_catalog(b) y)
  UNION ALL
  (SELECT '+ ' || y FROM ec_test.cv_catalog(b) y EXCEPT SELECT '+ ' || x FROM ec_test.cv_catalog(a) x)
  ORDER BY 1
$$;
-- A table with a view (security_invoker, check_option, owned by another role, a grant, a column
-- grant, comments, a column default), a view on that view, a trigger with UPDATE OF the column, one
-- with WHEN (NEW.amount ...), and a disabled one: built the same way in cv (amount integer) and, for
-- the twin, in twin_cv with the type the migration gives it.
CREATE FUNCTION ec_test.cv_objects(amount_type text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE accounts (id integer PRIMARY KEY, amount %s NOT NULL, note text)',
                 amount_type);
  CREATE TABLE log (what text, val text);
  CREATE FUNCTION log_amount() RETURNS trigger LANGUAGE plpgsql AS $f$
  BEGIN
    EXECUTE format('INSERT INTO %I.log VALUES (%L, %L)', TG_TABLE_SCHEMA, TG_NAME,
                   OLD.amount || ' -> ' || NEW.amount);
    RETURN NEW;
  END $f$;
  CREATE FUNCTION flag_big() RETURNS trigger LANGUAGE plpgsql AS $f$
  BEGIN
    NEW.note := 'big';
    RETURN NEW;
  END $f$;
  CREATE VIEW big_accounts WITH (security_invoker = true, check_option = local) AS
    SELECT id, amount, note FROM accounts WHERE amount > 10;
  ALTER VIEW big_accounts ALTER COLUMN note SET DEFAULT 'from view';
  COMMENT ON VIEW big_accounts IS 'more than 10';
  COMMENT ON COLUMN big_accounts.amount IS 'the amount';
  GRANT SELECT ON big_accounts TO cv_reader;
  GRANT UPDATE (note) ON big_accounts TO cv_reader;
  ALTER VIEW big_accounts OWNER TO cv_owner;
  CREATE VIEW doubled WITH (security_barrier = true) AS
    SELECT id, amount * 2 AS twice FROM big_accounts;
  CREATE TRIGGER amount_changed AFTER UPDATE OF amount ON accounts
    FOR EACH ROW EXECUTE FUNCTION log_amount();
  CREATE TRIGGER amount_big BEFORE INSERT OR UPDATE ON accounts
    FOR EACH ROW WHEN (NEW.amount > 100) EXECUTE FUNCTION flag_big();
  CREATE TRIGGER amount_off AFTER UPDATE OF amount ON accounts
    FOR EACH ROW EXECUTE FUNCTION log_amount();
  ALTER TABLE accounts DISABLE TRIGGER amount_off;
  COMMENT ON TRIGGER amount_changed ON accounts IS 'logs amounts';
  INSERT INTO accounts VALUES (1, 5, 'small'), (2, 50, 'mid');
END $$;
CREATE SCHEMA cv;
CREATE SCHEMA twin_cv;
GRANT USAGE ON SCHEMA cv, twin_cv, ec_test TO cv_owner, cv_reader;
SET search_path = cv;
SELECT ec_test.cv_objects('integer');
GRANT SELECT ON accounts TO cv_owner, cv_reader;
SET search_path = twin_cv;
SELECT ec_test.cv_objects('bigint');
GRANT SELECT ON accounts TO cv_owner, cv_reader;
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cv') x \gset
SELECT array_agg(x ORDER BY x) AS before_views FROM ec_test.cv_catalog('cv') x \gset

\set type_doc '{"operations": [{"alter_column": {"table": "accounts", "column": "amount", "type": "bigint"}}]}'
SELECT ec_start('v1', :'type_doc', 'cv');
-- Start changed none of them (the dual-write triggers are new, and the UPDATE OF triggers' stand-ins
-- for new-version updates): the views still read the old column, the triggers still name it.
SELECT x AS changed FROM ec_test.cv_catalog('cv') x EXCEPT SELECT unnest(:'before_views'::text[]);
-- What complete will do for them: drop them before the old column goes, create them again after.
SELECT s AS step FROM expand_contract.migrations m, unnest(m.complete_steps) s
 WHERE NOT m.done AND (s ~ 'VIEW|TRIGGER amount|ON (VIEW|COLUMN|TABLE) cv\.(big|doub)')
   AND s !~ 'ec_dual_write';
-- The views are locked by complete with its other relations.
SELECT r::regclass AS locked FROM expand_contract.migrations m, unnest(m.relids) r
 WHERE NOT m.done ORDER BY 1::text;
SELECT ec_resume('cv');
CALL ec_wait('cv');
-- The views work through the old column; writes through either version fire the triggers, the
-- WHEN one on the amount as each version writes it (the dual-write trigger fills both first).
SELECT * FROM cv.doubled ORDER BY id;
SET search_path = cv_v1;
INSERT INTO cv_v1.accounts VALUES (3, 500, 'new');
UPDATE cv_v1.accounts SET amount = 60 WHERE id = 2;
RESET search_path;
INSERT INTO cv.accounts VALUES (4, 400, 'old');
UPDATE cv.accounts SET amount = 450 WHERE id = 4;
SELECT id, amount, note FROM cv.big_accounts ORDER BY id;
-- Until complete, UPDATE OF amount fires for updates naming the old column (the old version's),
-- and its stand-in "_ec_new_amount_changed" (UPDATE OF the new column, see carry_views.c) for
-- new-version updates; neither for the backfill.
SELECT what, val FROM cv.log ORDER BY 1, 2;
-- The check option of the view is still enforced (44000), through the old column.
SELECT ec_test.try('INSERT INTO cv.big_accounts (id, amount) VALUES (9, 1)') AS check_option;
SET ROLE cv_reader;
SELECT count(*) AS reader_sees FROM cv.big_accounts;
SELECT ec_test.try('SELECT count(*) FROM cv.doubled') AS reader_doubled;
RESET ROLE;
DELETE FROM cv.accounts WHERE id > 2;
UPDATE cv.accounts SET amount = 50 WHERE id = 2;
TRUNCATE cv.log;

-- Rollback: the catalog exactly as before, the views and triggers untouched.
SELECT ec_rollback('cv');
SELECT * FROM ec_test.diff(:'before', 'cv');
SELECT x AS changed FROM ec_test.cv_catalog('cv') x EXCEPT SELECT unnest(:'before_views'::text[]);
SELECT * FROM ec_test.leftovers();

-- Start again and complete: the views and triggers as the twin built with bigint has them.
SELECT ec_start('v1', :'type_doc', 'cv');
SELECT ec_resume('cv');
CALL ec_wait('cv');
SELECT ec_complete('cv');
SELECT x AS final FROM ec_test.cv_catalog('cv') x ORDER BY 1;
SELECT * FROM ec_test.cv_twin_diff('cv', 'twin_cv');
SELECT * FROM ec_test.leftovers();
SELECT relname FROM pg_class WHERE relname LIKE '\_ec\_%';
-- The views read the rebuilt column and the triggers fire on it, in their order.
SELECT a.attname, d.refobjsubid = a.attnum AS reads_it
  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE r.ev_class = 'cv.big_accounts'::regclass AND d.refobjid = 'cv.accounts'::regclass
 ORDER BY 1;
INSERT INTO cv.accounts (id, amount, note) VALUES (3, 3000000000, 'huge');
UPDATE cv.accounts SET amount = 70 WHERE id = 2;
SELECT * FROM cv.doubled ORDER BY id;
SELECT id, amount, note FROM cv.big_accounts ORDER BY id;
SELECT what, val FROM cv.log ORDER BY 1, 2;
SELECT ec_test.try('INSERT INTO cv.big_accounts (id, amount) VALUES (9, 1)') AS check_option;
INSERT INTO cv.big_accounts (id, amount) VALUES (10, 20);
SELECT note FROM cv.accounts WHERE id = 10;
SET ROLE cv_reader;
SELECT count(*) AS reader_sees FROM cv.big_accounts;
SELECT ec_test.try('SELECT count(*) FROM cv.doubled') AS reader_doubled;
SELECT ec_test.try('UPDATE cv.big_accounts SET note = ''r'' WHERE id = 10') AS reader_updates_note;
SELECT ec_test.try('UPDATE cv.big_accounts SET amount = 11 WHERE id = 10') AS reader_updates_amount;
RESET ROLE;

-- A materialized view reading the column, with an index (unique: REFRESH ... CONCURRENTLY), options,
-- a grant, comments and a view over it: a copy over the new column, empty until the worker's REFRESH
-- after the backfill, takes its place at complete.  The old one keeps its rows until then.
CREATE SCHEMA cmv;
CREATE SCHEMA twin_cmv;
CREATE FUNCTION ec_test.cmv_objects(amount_type text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE accounts (id integer PRIMARY KEY, branch integer, amount %s NOT NULL)',
                 amount_type);
  INSERT INTO accounts SELECT g, g % 3, g FROM generate_series(1, 30) g;
  CREATE MATERIALIZED VIEW totals WITH (fillfactor = 90) AS
    SELECT branch, sum(amount) AS total, max(amount) AS top FROM accounts GROUP BY branch;
  CREATE UNIQUE INDEX totals_branch ON totals (branch);
  CREATE INDEX totals_top ON totals (top DESC);
  GRANT SELECT ON totals TO cv_reader;
  COMMENT ON MATERIALIZED VIEW totals IS 'per branch';
  COMMENT ON COLUMN totals.top IS 'largest';
  CREATE VIEW big_branches AS SELECT branch FROM totals WHERE total > 150;
END $$;
SET search_path = cmv;
SELECT ec_test.cmv_objects('integer');
SET search_path = twin_cmv;
SELECT ec_test.cmv_objects('bigint');
RESET search_path;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cmv') x \gset
SELECT ec_start('m1', :'type_doc', 'cmv');
SELECT c.relname, c.relispopulated, (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) AS indexes
  FROM pg_class c WHERE c.relnamespace = 'cmv'::regnamespace AND c.relkind = 'm' ORDER BY 1;
SELECT kind, sql FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE NOT m.done AND t.sql LIKE 'REFRESH%';
SELECT ec_rollback('cmv');
SELECT * FROM ec_test.diff(:'before', 'cmv');
SELECT * FROM ec_test.leftovers();
SELECT ec_start('m1', :'type_doc', 'cmv');
SELECT ec_resume('cmv');
CALL ec_wait('cmv');
-- Writes after the refresh do not show until the next one, as with any materialized view.
INSERT INTO cmv.accounts VALUES (100, 0, 1000);
SELECT ec_complete('cmv');
SELECT * FROM ec_test.cv_twin_diff('cmv', 'twin_cmv');
SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'cmv.totals'::regclass ORDER BY 1;
SELECT * FROM cmv.totals ORDER BY branch;
REFRESH MATERIALIZED VIEW CONCURRENTLY cmv.totals;
SELECT * FROM cmv.big_branches ORDER BY branch;
SELECT * FROM ec_test.leftovers();
SET client_min_messages = warning;
DROP SCHEMA cmv, twin_cmv, cmv_m1 CASCADE;
RESET client_min_messages;
DROP FUNCTION ec_test.cmv_objects(text);

-- Refused at start, naming the object, with nothing left behind.
CREATE SCHEMA cr;
CREATE TABLE cr.t (id integer PRIMARY KEY, n integer, s text);
CREATE VIEW cr.plain AS SELECT id, n FROM cr.t;
SELECT array_agg(x ORDER BY x) AS before FROM ec_test.snapshot('cr') x \gset
\set n_bigint '{"operations": [{"alter_column": {"table": "t", "column": "n", "type": "bigint"}}]}'
-- A materialized view on a view of the column (a copy would read the view's old column).
CREATE MATERIALIZED VIEW cr.mat AS SELECT id, n FROM cr.plain;
SELECT ec_start('r1', :'n_bigint', 'cr');
DROP MATERIALIZED VIEW cr.mat;
-- A view whose query does not parse over the new type: refused at start, not at complete.
CREATE VIEW cr.upper_n AS SELECT upper(s) AS u FROM cr.t;
SELECT ec_start('r2', '{"operations": [{"alter_column": {"table": "t", "column": "s", "type": "integer", "up": "length(s)", "down": "s::text"}}]}', 'cr');
DROP VIEW cr.upper_n;
-- Nor a trigger whose WHEN clause does not.
CREATE FUNCTION cr.keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER s_like BEFORE UPDATE ON cr.t FOR EACH ROW WHEN (NEW.s LIKE 'a%') EXECUTE FUNCTION cr.keep();
SELECT ec_start('r2', '{"operations": [{"alter_column": {"table": "t", "column": "s", "type": "integer", "up": "length(s)", "down": "s::text"}}]}', 'cr');
DROP TRIGGER s_like ON cr.t;
DROP FUNCTION cr.keep();
-- A trigger on a view, a rule on a view, another object on a view, a column renamed too.
CREATE VIEW cr.on_plain AS SELECT id, n FROM cr.plain;
CREATE FUNCTION cr.nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER instead INSTEAD OF INSERT ON cr.on_plain FOR EACH ROW EXECUTE FUNCTION cr.nothing();
SELECT ec_test.try(format('SELECT ec_start(%L, %L, %L)', 'r3', :'n_bigint', 'cr')) AS view_trigger;
DROP TRIGGER instead ON cr.on_plain;
DROP FUNCTION cr.nothing();
CREATE RULE no_delete AS ON DELETE TO cr.on_plain DO INSTEAD NOTHING;
SELECT ec_test.try(format('SELECT ec_start(%L, %L, %L)', 'r4', :'n_bigint', 'cr')) AS view_rule;
DROP RULE no_delete ON cr.on_plain;
CREATE FUNCTION cr.count_plain() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM cr.on_plain; END;
SELECT ec_test.try(format('SELECT ec_start(%L, %L, %L)', 'r5', :'n_bigint', 'cr')) AS view_function;
DROP FUNCTION cr.count_plain();
DROP VIEW cr.on_plain;
SELECT ec_start('r6', '{"operations": [{"rename_column": {"table": "t", "from": "n", "to": "m"}}, {"alter_column": {"table": "t", "column": "m", "type": "bigint"}}]}', 'cr');
SELECT * FROM ec_test.diff(:'before', 'cr');
SELECT * FROM ec_test.leftovers();
-- A view owned by a role that the starting role cannot act as: complete could not give it back.
CREATE ROLE cv_mig;
CREATE ROLE cv_stranger;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO cv_mig', current_database()); END $$;
CREATE SCHEMA cm AUTHORIZATION cv_mig;
GRANT USAGE, CREATE ON SCHEMA cm TO cv_stranger;
SET ROLE cv_mig;
CREATE TABLE cm.t (id integer PRIMARY KEY, n integer);
GRANT SELECT ON cm.t TO cv_stranger;
SET ROLE cv_stranger;
CREATE VIEW cm.theirs AS SELECT id, n FROM cm.t;
SET ROLE cv_mig;
SELECT ec_start('m1', :'n_bigint', 'cm');
RESET ROLE;
SELECT * FROM ec_test.leftovers();
SET client_min_messages = warning;
DROP SCHEMA cm CASCADE;
RESET client_min_messages;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM cv_mig', current_database()); END $$;
DROP ROLE cv_mig;
DROP ROLE cv_stranger;
-- Dropping the column still refuses its views: they would be lost.
SELECT ec_test.try(format('SELECT ec_start(%L, %L, %L)', 'r7',
  '{"operations": [{"drop_column": {"table": "t", "column": "n"}}]}', 'cr')) AS dropped;
SELECT * FROM ec_test.diff(:'before', 'cr');
SELECT * FROM ec_test.leftovers();

SET client_min_messages = warning;
DROP SCHEMA cv, cv_v1, twin_cv, cr CASCADE;
RESET client_min_messages;
DROP FUNCTION ec_test.try(text), ec_test.cv_catalog(text), ec_test.cv_twin_diff(text, text),
  ec_test.cv_objects(text);
DELETE FROM expand_contract.migrations;
DROP OWNED BY cv_owner, cv_reader;
DROP ROLE cv_owner;
DROP ROLE cv_reader;
