-- Fuzzing ec_start with a corpus and generated documents: malformed, type-confused, deeply nested,
-- huge, with hostile strings and injection attempts in every field.  Each call runs in a subtransaction that is rolled back; the test
-- passes if the server survives every one (a crash fails it) and every failure is a clean ERROR.  The
-- random sequence is seeded, so the tally of outcomes is deterministic.
\set ECHO none
\i test/regress_helpers.sql
\set ECHO all
CREATE TABLE fz (id int PRIMARY KEY, a text NOT NULL, b int, c numeric);
INSERT INTO fz VALUES (1, 'x', 1, 1.5);
CREATE TABLE fz2 (k int PRIMARY KEY, fz_id int REFERENCES fz);
-- A partitioned table, two levels, a default partition (the corpus's documents on fzp).
CREATE TABLE fzp (id int NOT NULL, g int NOT NULL, v text, PRIMARY KEY (g, id)) PARTITION BY LIST (g);
CREATE TABLE fzp_1 PARTITION OF fzp FOR VALUES IN (1) PARTITION BY HASH (id);
CREATE TABLE fzp_1a PARTITION OF fzp_1 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE fzp_1b PARTITION OF fzp_1 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE fzp_rest PARTITION OF fzp DEFAULT;
INSERT INTO fzp VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c');

CREATE FUNCTION ec_test.pick(a anyarray) RETURNS anyelement LANGUAGE sql AS
  $$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;

-- A random JSON value, biased towards what a migration document holds.
CREATE FUNCTION ec_test.gen(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  keys text[] := ARRAY['table', 'name', 'column', 'from', 'to', 'type', 'up', 'down', 'nullable',
    'default', 'columns', 'pk', 'unique', 'check', 'references', 'comment', 'constraints', 'onComplete',
    'constraint', 'on_delete', 'match_type', 'generated', 'operations', 'version_schema', 'bogus', ''];
  strings text[] := ARRAY['fz', 'fz2', 'a', 'b', 'c', 'id', 'k', 'fz_id', 'new', '', 'int', 'text',
    'numeric(10,2)', 'serial', 'int[]', 'no_such_type', 'a || ''x''', 'b + 1', '(SELECT 1)', 'count(*)',
    '1; DROP TABLE fz', 'x"; DROP TABLE fz; --', 'DROP TABLE fz', 'CASCADE', 'SET NULL', 'now()',
    'random()', 'a::int', 'ctid', 'fz.*', repeat('x', 64), repeat('é', 40), 'NULL', 'true',
    'CREATE TABLE t9 (x int)', 'select'];
  r float8 := random();
  obj jsonb := '{}';
  arr jsonb := '[]';
BEGIN
  IF depth <= 0 OR r < 0.35 THEN
    RETURN ec_test.pick(ARRAY[to_jsonb(ec_test.pick(strings)), to_jsonb(ec_test.pick(strings)),
      'true'::jsonb, 'false', 'null', '0', '-1', '3.5', '1e300', '[]', '{}']);
  ELSIF r < 0.8 THEN
    FOR i IN 1..floor(random() * 6)::int LOOP
      obj := obj || jsonb_build_object(ec_test.pick(keys), ec_test.gen(depth - 1));
    END LOOP;
    RETURN obj;
  ELSE
    FOR i IN 1..floor(random() * 4)::int LOOP
      arr := arr || jsonb_build_array(ec_test.gen(depth - 1));
    END LOOP;
    RETURN arr;
  END IF;
END $$;

-- A valid document with one to three random edits: a field replaced, dropped or added.
CREATE FUNCTION ec_test.mutate(doc jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  i int;
  opname text;
  body jsonb;
  k text;
  r float8;
BEGIN
  FOR step IN 1..1 + floor(random() * 3)::int LOOP
    i := floor(random() * jsonb_array_length(doc->'operations'))::int;
    IF jsonb_typeof(doc->'operations'->i) <> 'object' THEN
      CONTINUE;
    END IF;
    SELECT key INTO opname FROM jsonb_object_keys(doc->'operations'->i) key LIMIT 1;
    body := doc->'operations'->i->opname;
    IF jsonb_typeof(body) <> 'object' THEN
      CONTINUE;
    END IF;
    SELECT key INTO k FROM jsonb_object_keys(body) key ORDER BY random() LIMIT 1;
    r := random();
    IF k IS NOT NULL AND jsonb_typeof(body->k) = 'object' AND r < 0.3 THEN
      body := jsonb_set(body, ARRAY[k], (body->k) || jsonb_build_object(
                ec_test.pick(ARRAY['name', 'type', 'nullable', 'default', 'pk', 'unique', 'check']),
                ec_test.gen(1)));
    ELSIF k IS NOT NULL AND r < 0.75 THEN
      body := jsonb_set(body, ARRAY[k], ec_test.gen(1));
    ELSIF k IS NOT NULL AND r < 0.85 THEN
      body := body - k;
    ELSE
      body := body || jsonb_build_object(
                ec_test.pick(ARRAY['up', 'down', 'default', 'nullable', 'type', 'bogus']), ec_test.gen(1));
    END IF;
    doc := jsonb_set(doc, ARRAY['operations', i::text, opname], body);
  END LOOP;
  RETURN doc;
END $$;

-- A document: mostly a mutated valid one, sometimes generated from scratch, deep, or huge.
CREATE FUNCTION ec_test.gen_doc() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  ops text[] := ARRAY['create_table', 'add_column', 'drop_column', 'rename_column', 'alter_column',
    'rename_table', 'drop_table', 'sql', 'create_index', 'frobnicate'];
  list jsonb := '[]';
  r float8 := random();
  templates jsonb[] := ARRAY[
    '{"operations": [{"add_column": {"table": "fz", "up": "upper(a)", "column": {"name": "d", "type": "text", "nullable": true, "unique": true}}}]}',
    '{"operations": [{"alter_column": {"table": "fz", "column": "b", "name": "bb", "type": "bigint", "nullable": false, "up": "coalesce(b, 0)", "down": "bb::int"}}]}',
    '{"operations": [{"alter_column": {"table": "fz", "column": "a", "default": "''z''", "comment": "c", "check": {"name": "ck", "constraint": "length(a) < 10"}, "up": "a", "down": "a"}}]}',
    '{"operations": [{"drop_column": {"table": "fz", "column": "c", "down": "b * 1.5"}}, {"rename_column": {"table": "fz", "from": "a", "to": "aa"}}]}',
    '{"operations": [{"create_table": {"name": "t2", "columns": [{"name": "id", "type": "serial", "pk": true}, {"name": "r", "type": "int", "references": {"name": "r_fk", "table": "fz", "column": "id"}}], "constraints": [{"name": "u", "type": "unique", "columns": ["r"]}]}}]}',
    '{"operations": [{"rename_table": {"from": "fz2", "to": "fz3"}}, {"drop_table": {"name": "fz3"}}]}',
    '{"operations": [{"sql": {"up": "CREATE TABLE t4 (x int)", "down": "DROP TABLE t4"}}, {"add_column": {"table": "t4", "column": {"name": "y", "type": "int", "nullable": true}}}]}',
    '{"version_schema": "vv", "operations": [{"alter_column": {"table": "fz2", "column": "fz_id", "type": "bigint", "up": "fz_id", "down": "fz_id::int"}}]}'
  ]::jsonb[];
BEGIN
  IF r < 0.6 THEN
    RETURN ec_test.mutate(ec_test.pick(templates));
  ELSIF r < 0.65 THEN
    RETURN ec_test.pick(templates);
  ELSIF r < 0.72 THEN
    RETURN ec_test.gen(4);
  ELSIF r < 0.74 THEN   -- deep nesting
    RETURN jsonb_build_object('operations', (SELECT jsonb_agg(x) FROM (SELECT ec_test.gen(0) x) s)) ||
           jsonb_build_object('bogus', (SELECT string_agg('[', '') || '1' || string_agg(']', '')
                                          FROM generate_series(1, 2000))::jsonb);
  ELSIF r < 0.76 THEN   -- huge
    RETURN jsonb_build_object('operations', (SELECT jsonb_agg(jsonb_build_object('drop_column',
             jsonb_build_object('table', 'fz', 'column', 'c'))) FROM generate_series(1, 5000)));
  END IF;
  FOR i IN 1..1 + floor(random() * 3)::int LOOP
    list := list || jsonb_build_array(jsonb_build_object(ec_test.pick(ops), ec_test.gen(3)));
  END LOOP;
  RETURN jsonb_build_object('operations', list);
END $$;

-- The corpus (test/fuzz/corpus.jsonl, one document per line): hand-written hostile documents and
-- the ones that found bugs.  Each runs as is and mutated.  For a long run, by hand:
--   psql -v fuzz_count=30000 -v fuzz_seed=0.1717 -f sql/fuzz.sql   (in a scratch database, at the root)
\if :{?fuzz_count}
\else
\set fuzz_count 1500
\endif
\if :{?fuzz_seed}
\else
\set fuzz_seed 0.4242
\endif
CREATE TEMP TABLE corpus (n serial, doc jsonb);
\copy corpus (doc) FROM 'test/fuzz/corpus.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
SELECT count(*) AS corpus_documents FROM corpus;
SELECT setseed(:fuzz_seed);
SELECT set_config('ec_test.fuzz_count', :'fuzz_count', false) IS NOT NULL AS configured;
CREATE TEMP TABLE outcome (sqlstate text, plan_sqlstate text, window_sqlstate text);
DO $$
DECLARE
  doc jsonb;
  ncorpus int := (SELECT count(*) FROM corpus);
  planned text;
  windowed text;
BEGIN
  FOR i IN 1..ncorpus * 4 + current_setting('ec_test.fuzz_count')::int LOOP
    IF i <= ncorpus THEN
      doc := (SELECT c.doc FROM corpus c WHERE n = i);
    ELSIF i <= ncorpus * 4 THEN
      doc := (SELECT c.doc FROM corpus c WHERE n = 1 + i % ncorpus);
      IF jsonb_typeof(doc->'operations') = 'array' AND jsonb_array_length(doc->'operations') > 0
         AND jsonb_typeof(doc->'operations'->0) = 'object' THEN
        doc := ec_test.mutate(doc);
      END IF;
    ELSE
      doc := ec_test.gen_doc();
    END IF;
    -- The corpus and its mutations go through ec_plan too: it must raise what ec_start raises.
    planned := NULL;
    IF i <= ncorpus * 4 THEN
      BEGIN
        PERFORM count(*) FROM ec_plan('f' || i, doc, 'public');
        planned := 'accepted';
      EXCEPTION WHEN OTHERS THEN
        planned := SQLSTATE;
      END;
    END IF;
    windowed := NULL;
    BEGIN
      PERFORM ec_start('f' || i, doc, 'public');
      -- An accepted one is completed with a revert window and reverted, in the same transaction
      -- (one with background work left refuses to complete: that is an outcome too).
      BEGIN
        PERFORM ec_complete('public', wait => false, revert_window => '1 hour');
        PERFORM ec_revert('public');
        windowed := 'reverted';
      EXCEPTION WHEN OTHERS THEN
        windowed := SQLSTATE;
      END;
      RAISE EXCEPTION USING ERRCODE = 'EC000', MESSAGE = 'accepted';   -- roll it back
    EXCEPTION WHEN OTHERS THEN
      INSERT INTO outcome VALUES (CASE WHEN SQLSTATE = 'EC000' THEN 'accepted' ELSE SQLSTATE END, planned,
                                  windowed);
    END;
  END LOOP;
END $$;
-- Every call ended in an ERROR of a proper class (no XX000 internal error), or was accepted.
SELECT CASE WHEN sqlstate = 'accepted' THEN sqlstate ELSE left(sqlstate, 2) END AS class, count(*)
  FROM outcome GROUP BY 1 ORDER BY 1;
SELECT count(*) AS internal_errors FROM outcome
 WHERE sqlstate LIKE 'XX%' OR plan_sqlstate LIKE 'XX%' OR window_sqlstate LIKE 'XX%';
-- The accepted ones through ec_complete with a window and ec_revert: reverted, or refused cleanly
-- (55000: backfill work left).
SELECT window_sqlstate AS windowed, count(*)
  FROM outcome WHERE sqlstate = 'accepted' GROUP BY 1 ORDER BY 1;
-- ec_plan raised what ec_start raised (or accepted what it accepted), document by document.
SELECT count(*) FILTER (WHERE plan_sqlstate IS NOT NULL) > 0 AS planned,
       count(*) FILTER (WHERE plan_sqlstate IS DISTINCT FROM sqlstate AND plan_sqlstate IS NOT NULL) AS plan_differs
  FROM outcome;
-- Nothing was left behind, and the tables are intact.
SELECT * FROM ec_test.leftovers();
SELECT count(*) AS migrations FROM expand_contract.migrations;
SELECT * FROM fz;
SELECT * FROM fzp ORDER BY id;
DROP TABLE fz2, fz, fzp;
DROP FUNCTION ec_test.gen_doc(), ec_test.mutate(jsonb), ec_test.gen(int), ec_test.pick(anyarray);
