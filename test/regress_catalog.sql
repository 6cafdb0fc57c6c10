-- Catalog comparisons for the regression tests that rebuild columns (included after
-- regress_helpers.sql): a migrated table against its twin changed offline.
-- A table's constraints, indexes and columns, its own name left out: a migrated table against its
-- twin changed offline.
CREATE OR REPLACE FUNCTION ec_test.carry_catalog(t regclass) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT format('constraint %s %s: %s%s%s', conname, contype, pg_get_constraintdef(oid),
                CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END,
                CASE WHEN conislocal THEN '' ELSE ' inherited' END)
    FROM pg_constraint WHERE conrelid = t
  UNION ALL
  SELECT format('index %s', replace(replace(pg_get_indexdef(indexrelid), ' ON ONLY ' || t::text || ' ',
                                            ' ON ONLY _ '), ' ON ' || t::text || ' ', ' ON _ '))
    FROM pg_index WHERE indrelid = t
  UNION ALL
  SELECT format('column %s %s%s%s', attname, format_type(atttypid, atttypmod),
                CASE WHEN attnotnull THEN ' not null' ELSE '' END,
                ' default ' || pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute LEFT JOIN pg_attrdef d ON d.adrelid = attrelid AND d.adnum = attnum
   WHERE attrelid = t AND attnum > 0 AND NOT attisdropped
  UNION ALL
  SELECT format('replica identity %s', relreplident) FROM pg_class WHERE oid = t
$$;
CREATE OR REPLACE FUNCTION ec_test.carry_same(a regclass, b regclass) RETURNS SETOF text LANGUAGE sql AS $$
  (SELECT 'migrated only: ' || x FROM ec_test.carry_catalog(a) x
   EXCEPT SELECT 'migrated only: ' || y FROM ec_test.carry_catalog(b) y)
  UNION ALL
  (SELECT 'offline only: ' || y FROM ec_test.carry_catalog(b) y
   EXCEPT SELECT 'offline only: ' || x FROM ec_test.carry_catalog(a) x)
  ORDER BY 1
$$;
