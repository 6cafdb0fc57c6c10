-- Writes through the new version to rows the backfill has or has not reached, frozen or not: the
-- trigger fills what the backfill would have, from the row as it was, and never twice.
\i test/regress_helpers.sql
SET expand_contract.start_paused = on;
CREATE TABLE t (id int PRIMARY KEY, cents int NOT NULL, note text);
INSERT INTO t VALUES (1, 1250, 'a'), (2, 700, 'b'), (3, 300, 'c'), (4, 400, 'd');
-- The second "up" reads the old version's value of the column that the first renames to amount.
SELECT ec_start('v2', '{"operations": [
  {"alter_column": {"table": "t", "column": "cents", "name": "amount", "type": "numeric(12,2)",
                    "up": "cents / 100.0", "down": "(amount * 100)::int"}},
  {"add_column": {"table": "t", "up": "note || amount", "column": {"name": "label", "type": "text", "nullable": true}}}]}');

-- Before the backfill (paused): an update that sets neither new column keeps cents (NOT NULL: it
-- would fail with down(NULL)), and one that sets amount only gets label from the row as it was.
UPDATE t SET cents = cents WHERE id = 4;              -- old version: row 4 is filled now
SET search_path = public_v2;
UPDATE t SET note = 'a2' WHERE id = 1;                -- label from note 'a', not 'a2'
UPDATE t SET amount = 8 WHERE id = 2;
UPDATE t SET note = 'd2' WHERE id = 4;                -- filled already: label stays d400
RESET search_path;
SELECT id, cents, note FROM t ORDER BY id;
SELECT id, amount, note, label FROM public_v2.t ORDER BY id;

SELECT ec_resume('public');
CALL ec_wait('public');
SELECT id, amount, note, label FROM public_v2.t ORDER BY id;

-- After the backfill, with every row frozen: frozen rows written since the start are not taken
-- for rows to fill, so an update of another column recomputes nothing.
SET search_path = public_v2;
UPDATE t SET amount = 5, label = 'mine' WHERE id = 3;
RESET search_path;
VACUUM (FREEZE) t;
SET search_path = public_v2;
UPDATE t SET note = 'x' WHERE id IN (2, 3);
RESET search_path;
SELECT id, amount, note, label FROM public_v2.t ORDER BY id;
SELECT id, cents FROM t ORDER BY id;

SELECT ec_complete('public');
SELECT * FROM t ORDER BY id;
SELECT * FROM ec_test.leftovers();
SET client_min_messages = warning;
DROP SCHEMA public_v2 CASCADE;
DROP TABLE t;
DELETE FROM expand_contract.migrations;
RESET client_min_messages;
