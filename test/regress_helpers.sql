-- Helpers for the regression tests (included by each sql/*.sql).
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS ec_test;

-- Everything about a schema that a migration could change, one line per item: rollback must leave
-- it identical, complete must leave no helper object behind.
CREATE OR REPLACE FUNCTION ec_test.snapshot(nsp text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('column %s.%s %s %s default %s comment %s', c.relname, a.attname,
                format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum))
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = nsp::regnamespace AND c.relkind IN ('r', 'p')
  UNION ALL
  SELECT format('constraint %s on %s: %s %s', conname, conrelid::regclass,
                pg_get_constraintdef(oid), CASE WHEN convalidated THEN '' ELSE 'NOT VALID' END)
    FROM pg_constraint WHERE connamespace = nsp::regnamespace
  UNION ALL
  SELECT format('relation %s kind %s', relname, relkind)
    FROM pg_class WHERE relnamespace = nsp::regnamespace
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = nsp::regnamespace
  UNION ALL
  SELECT format('trigger %s on %s', tgname, tgrelid::regclass)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = nsp::regnamespace AND NOT tgisinternal
  UNION ALL
  SELECT format('schema %s', nspname) FROM pg_namespace WHERE nspname LIKE nsp || '\_%'
  UNION ALL
  SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p WHERE pronamespace = nsp::regnamespace
$$;

-- Helper objects that only an active migration may have.
CREATE OR REPLACE FUNCTION ec_test.leftovers() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('column %s.%s', attrelid::regclass, attname) FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'v')
   WHERE attname LIKE '\_ec\_%' AND NOT attisdropped
  UNION ALL SELECT format('constraint %s', conname) FROM pg_constraint WHERE conname LIKE '\_ec\_%'
  UNION ALL SELECT format('trigger %s on %s', tgname, tgrelid::regclass) FROM pg_trigger
   WHERE tgname LIKE '%ec\_dual\_write%'
  UNION ALL SELECT format('dual_write %s', relid) FROM expand_contract.dual_writes
  UNION ALL SELECT format('active migration %s', name) FROM expand_contract.migrations WHERE NOT done
$$;

-- A statement's outcome: ok, or its SQLSTATE and message (the trigger sees the caller's version).
CREATE OR REPLACE FUNCTION ec_test.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Symmetric difference between a saved snapshot and the schema now: empty means identical.
CREATE OR REPLACE FUNCTION ec_test.diff(saved text[], nsp text) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT '- ' || x FROM unnest(saved) x EXCEPT SELECT '- ' || y FROM ec_test.snapshot(nsp) y)
  UNION ALL
  (SELECT '+ ' || y FROM ec_test.snapshot(nsp) y EXCEPT SELECT '+ ' || x FROM unnest(saved) x)
  ORDER BY 1
$$;
RESET client_min_messages;

