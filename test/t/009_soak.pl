# Soak test: real pgbench clients write through the old version (the base table) and the new version
# (search_path public_v2) at the same time, inserting, updating (the columns under migration, some of
# them only, the key, and none), deleting and upserting, while ec_start runs, the backfill worker fills
# the table in small batches and a maintenance client runs VACUUM (FREEZE); then ec_complete while
# new-version clients keep writing (database soak_complete), or ec_rollback while old-version clients
# keep writing (database soak_rollback).
#
# The migration has five operations on the table accounts(id, owner, cents, writer, nw):
#   rename_column     owner -> holder;
#   alter_column      cents int -> amount numeric(12,2), up cents / 100.0, down (amount * 100)::int;
#   add_column        label text, up holder || ':' || amount (the renamed owner and cents: NULL when
#                     cents is NULL); with EC_SOAK_LABEL_NOT_NULL=1: label text NOT NULL (pgroll's
#                     default: a NOT VALID check until complete), up holder || ':' ||
#                     coalesce(amount::text, '-');
#   create_constraint accounts_writer_check CHECK (writer IN ('init', 'old', 'new')): writer is
#                     duplicated (_ec_new_writer, up and down the column itself) and the copy
#                     carries the check, NOT VALID until the worker validates it;
#   create_index      accounts_holder_amount_idx on (holder, amount), the new version's names of
#                     owner and of the helper column of amount, built by the worker with CREATE
#                     INDEX CONCURRENTLY after the backfill, usually while the clients still write
#                     (the test notes how many writes of each version committed during the build);
# and a sixth on a second pair of tables, the headline int -> bigint of a primary key that another
# table's foreign key references:
#   alter_column      customers.id int -> bigint, customers(id int PRIMARY KEY, name text UNIQUE,
#                     writer) with a secondary index on (name, id), referenced by orders(id,
#                     customer_id int REFERENCES customers ON UPDATE CASCADE ON DELETE CASCADE,
#                     amount) with a unique index on (customer_id, id) and a secondary one on
#                     customer_id: the worker builds the new key's unique index before the backfill
#                     and the (name, id) index after it, adds the re-pointed foreign key NOT VALID
#                     and validates it; ec_complete puts them in the old ones' places, names
#                     included (ec_rollback drops them).
# accounts.id itself stays bigint: the new version shows a rebuilt key as NULL until the backfill
# reaches the row, so its clients could not address the rows not yet filled by key, and those writes
# are the point of the accounts model.  The same clients write the pair too, through both versions:
# old-version clients insert, delete (its orders go too) and re-key customers (its orders follow),
# and insert and delete orders; new-version clients insert and delete customers (found by name) and
# their orders.  Their writes go to aux.pledger, whose trigger keeps aux.cmodel and aux.omodel and
# checks each returned row, as for accounts.
#
# Every client owns a band of logical keys (k - 1) % nslots = its slot; a row of key k lives at id k
# or, after a key update, at id k + koff, so no two clients ever touch one row and key updates never
# collide.  Each write, in the same statement (a data-modifying CTE), appends what it did and the row
# it returned to aux.ledger, only if it changed a row; a trigger on the ledger keeps aux.model, the
# expected state of every row computed by the test's own up/down (not by the extension), and compares
# the returned row with it at once: a row's new columns are up(old) as of its last old-version write
# (or of its initial value, as if the backfill had filled it at ec_start), its old columns down(new)
# as of its last new-version write, and what a write did not set keeps its value.  So a wrong value
# is caught at the write that produced it, even if a later write overwrites it.
#
# Proves, for each database:
#   - no client saw an error: every pgbench exits 0, reports 0 failed transactions, no "aborted";
#   - every write returned the row the model expected (in the writing transaction; a delete's row is
#     the one before it);
#   - the backfill was really running while both kinds of client committed writes (ec_status sampled:
#     two samples, both mid-backfill, with writes of both versions committed between them);
#   - with traffic stopped before the contract phase: count(*) = the ledger's sum = rows in the model;
#     every row equals its model row in every column of both versions (exact, NULL-safe); amount =
#     up(cents) for every row, label = up(owner, cents) for rows last written through the old version;
#   - every kind of write (incl. upsert inserts and upsert updates) took effect at least once;
#   - the worker's index build and validation end (CALL ec_wait) with the index valid;
#   - complete: clients of the new version wrote before and after ec_complete, which succeeded; the
#     table then has its final shape and no helper object left, the check validated on the final
#     writer column, the index valid and, by amcheck's bt_index_check(heapallindexed), holding exactly
#     the table's rows; count and model match again; rows not written meanwhile equal the snapshot of
#     the new version taken before ec_complete;
#   - rollback: clients of the old version wrote before and after ec_rollback; the schema's catalog is
#     exactly as before ec_start (the index gone); count and model (old columns) match; rows not
#     written meanwhile equal the snapshot of the old version taken before ec_rollback;
#   - the pair, before the contract phase and after it: every kind of write took effect during the
#     backfill; every write returned what the model expected (a customer's delete counted the orders
#     its cascade deletes); customers and orders equal the model row for row (an order references
#     its customer where the customer is now) and their counts the ledger's; no order without its
#     customer in either version; both foreign keys there and validated before contract; after
#     complete exactly one, validated, under its name, on the bigint key, with its actions, the
#     carried indexes valid under their names (amcheck); after rollback the catalog as before.
#
# Short form by default (about a minute on 2 cores).  Environment, for a longer soak:
#   EC_SOAK_SECONDS           how long the clients write during the backfill (default 12)
#   EC_SOAK_ROWS              rows in the table at ec_start (default 100000)
#   EC_SOAK_CLIENTS           pgbench clients per version (default 2)
#   EC_SOAK_CONTRACT_SECONDS  how long clients write around ec_complete/ec_rollback (default max(8, S/3))
#   EC_SOAK_BATCH_SIZE        expand_contract.batch_size (default 1000)
#   EC_SOAK_BATCH_DELAY_MS    expand_contract.batch_delay_ms (default: the backfill spans about half of
#                             EC_SOAK_SECONDS)
#   EC_SOAK_PROTOCOL          pgbench -M (default prepared)
#   EC_SOAK_NEW_PARTIAL       0 leaves out the new-version updates that set only some new columns
#                             (test/soak/new_key.sql, new_amount.sql, new_holder.sql, new_touch.sql)
#   EC_SOAK_VACUUM            0 leaves out the client that runs VACUUM (FREEZE) accounts every second
#                             during the backfill (test/soak/vacuum.sql; default 1)
#   EC_SOAK_LABEL_NOT_NULL    1 makes the added column label NOT NULL (see above; default 0)
#   EC_SOAK_VARIANTS          complete,rollback (default both)
# e.g. EC_SOAK_SECONDS=120 EC_SOAK_ROWS=500000 make installcheck PROVE_TESTS=test/t/009_soak.pl
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);
use File::Basename qw(dirname);
use IPC::Run;

my $seconds = $ENV{EC_SOAK_SECONDS} // 12;
my $rows = $ENV{EC_SOAK_ROWS} // 100000;
my $clients = $ENV{EC_SOAK_CLIENTS} // 2;
my $contract_seconds = $ENV{EC_SOAK_CONTRACT_SECONDS} // ($seconds / 3 > 8 ? int($seconds / 3) : 8);
my $batch_size = $ENV{EC_SOAK_BATCH_SIZE} // 1000;
my $nbatches = $rows / $batch_size > 1 ? $rows / $batch_size : 1;
my $batch_delay = $ENV{EC_SOAK_BATCH_DELAY_MS} // int(500 * $seconds / $nbatches);
my $protocol = $ENV{EC_SOAK_PROTOCOL} // 'prepared';
my $partial = $ENV{EC_SOAK_NEW_PARTIAL} // 1;
my $not_null = $ENV{EC_SOAK_LABEL_NOT_NULL} // 0;
my $vacuum = $ENV{EC_SOAK_VACUUM} // 1;
my @variants = split /,/, ($ENV{EC_SOAK_VARIANTS} // 'complete,rollback');

# Key space: 5/4 of the rows, a multiple of the number of client slots; keys with k % 5 = 0 start free.
my $nslots = 2 * $clients;
my $nkeys = $nslots * int(($rows * 5 / 4 + $nslots - 1) / $nslots);
my $koff = 10 * $nkeys;
# The customers' likewise, with a tenth as many rows; about two orders each.
my $ckeys = $nslots * int(($rows / 8 + $nslots - 1) / $nslots);
my $ckoff = 10 * $ckeys;
my $soak = dirname(__FILE__) . '/../soak';

my @old_scripts = qw(old_insert@3 old_update@4 old_upsert@3 old_keymove@2 old_delete@1 old_touch@1);
my @new_scripts = qw(new_insert@3 new_update@3 new_upsert@3 new_keymove@2 new_delete@1);
push @new_scripts, qw(new_key@1 new_amount@1 new_holder@1 new_touch@1) if $partial;
my @old_pair_scripts = qw(old_customer_insert@1 old_customer_delete@1 old_customer_keymove@1
  old_order_insert@2 old_order_delete@1);
my @new_pair_scripts = qw(new_customer_insert@1 new_customer_delete@1 new_order_insert@2 new_order_delete@1);

note "soak: ${seconds}s of traffic on $rows rows, $clients clients per version, batches of $batch_size "
  . "rows with ${batch_delay} ms between them, ${contract_seconds}s around the contract phase, "
  . "pgbench -M $protocol, partial new-version updates " . ($partial ? 'on' : 'off')
  . ', VACUUM (FREEZE) ' . ($vacuum ? 'on' : 'off') . ', label ' . ($not_null ? 'NOT NULL' : 'nullable');

# "up" names the columns as the operations before it left them: holder, and amount (the old
# version's cents, which the alter_column before it renames).
my $label_up = $not_null ? q{holder || ':' || coalesce(amount::text, '-')} : q{holder || ':' || amount};
my $label_nullable = $not_null ? 'false' : 'true';
my $migration = qq[{"operations": [
  {"rename_column": {"table": "accounts", "from": "owner", "to": "holder"}},
  {"alter_column": {"table": "accounts", "column": "cents", "name": "amount", "type": "numeric(12,2)",
                    "up": "cents / 100.0", "down": "(amount * 100)::int"}},
  {"add_column": {"table": "accounts", "up": "$label_up",
                  "column": {"name": "label", "type": "text", "nullable": $label_nullable}}},
  {"create_constraint": {"table": "accounts", "name": "accounts_writer_check", "type": "check",
                         "columns": ["writer"], "check": "writer IN ('init', 'old', 'new')"}},
  {"create_index": {"table": "accounts", "name": "accounts_holder_amount_idx",
                    "columns": [{"column": "holder"}, {"column": "amount"}]}},
  {"alter_column": {"table": "customers", "column": "id", "type": "bigint"}}]}];

my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
expand_contract.batch_size = $batch_size
expand_contract.batch_delay_ms = $batch_delay
lc_messages = 'C'
log_lock_waits = on
});
$node->start;

sub setup
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
	  CREATE EXTENSION expand_contract;
	  CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, cents int,
	                         writer text NOT NULL, nw int NOT NULL);
	  CREATE SCHEMA aux;
	  -- One row per write that changed a row: logical key, the row's id after it, +1/-1/0, and the
	  -- row the write returned (the columns its version has; a delete returns the row before it).
	  CREATE TABLE aux.ledger (id bigserial PRIMARY KEY, k bigint NOT NULL, rid bigint NOT NULL,
	                           delta int NOT NULL, how text NOT NULL, v int NOT NULL, phase int NOT NULL,
	                           r_owner text, r_cents int, r_amount numeric(12,2), r_label text,
	                           r_writer text, r_nw int, at timestamptz NOT NULL DEFAULT clock_timestamp());
	  -- The expected state of each row, both versions' columns (owner is holder).
	  CREATE TABLE aux.model (k bigint PRIMARY KEY, id bigint NOT NULL UNIQUE, owner text NOT NULL,
	                          cents int, amount numeric(12,2), label text, writer text NOT NULL,
	                          nw int NOT NULL, how text NOT NULL);
	  -- Writes whose returned row differed from the model, or that the model could not apply.
	  CREATE TABLE aux.anomalies (ledger_id bigint, k bigint, how text, problem text);
	  -- The test's own up and down: up(cents) = cents / 100.0, up(owner, cents) = aux.up_label(),
	  -- down(amount) = (amount * 100)::int.  v = 1000001 means the client wrote NULL.
	  CREATE FUNCTION aux.up_label(holder text, amount int) RETURNS text LANGUAGE sql IMMUTABLE
	    AS \$\$ SELECT $label_up \$\$;
	  CREATE FUNCTION aux.apply() RETURNS trigger LANGUAGE plpgsql AS \$\$
	  DECLARE
	    val int := nullif(NEW.v, 1000001);
	    n int;
	    m aux.model;
	  BEGIN
	    IF NEW.how LIKE '%delete' THEN
	      SELECT * INTO m FROM aux.model WHERE k = NEW.k;
	    END IF;
	    IF NEW.how = 'old_insert' OR (NEW.how = 'old_upsert' AND NEW.delta = 1) THEN
	      INSERT INTO aux.model VALUES (NEW.k, NEW.rid, 'o' || NEW.v, val, val / 100.0,
	                                    aux.up_label('o' || NEW.v, val), 'old', 0, NEW.how);
	    ELSIF NEW.how = 'new_insert' OR (NEW.how = 'new_upsert' AND NEW.delta = 1) THEN
	      INSERT INTO aux.model VALUES (NEW.k, NEW.rid, 'n' || NEW.v, (val / 100.0 * 100)::int,
	                                    val / 100.0, 'N:' || NEW.v, 'new', 0, NEW.how);
	    ELSIF NEW.how IN ('old_delete', 'new_delete') THEN
	      DELETE FROM aux.model WHERE k = NEW.k AND id = NEW.rid;
	    ELSIF NEW.how IN ('old_update', 'old_upsert') THEN
	      UPDATE aux.model SET owner = 'o' || NEW.v, cents = val, amount = val / 100.0,
	                           label = aux.up_label('o' || NEW.v, val), writer = 'old', nw = nw + 1, how = NEW.how
	       WHERE k = NEW.k AND id = NEW.rid;
	    ELSIF NEW.how IN ('old_touch', 'old_keymove') THEN
	      -- an old-version write recomputes every new column from the old ones
	      UPDATE aux.model SET id = NEW.rid, amount = cents / 100.0, label = aux.up_label(owner, cents),
	                           writer = 'old', nw = nw + 1, how = NEW.how
	       WHERE k = NEW.k;
	    ELSIF NEW.how IN ('new_update', 'new_upsert', 'new_keymove') THEN
	      UPDATE aux.model SET id = NEW.rid, owner = 'n' || NEW.v, amount = val / 100.0,
	                           cents = (val / 100.0 * 100)::int, label = 'N:' || NEW.v,
	                           writer = 'new', nw = nw + 1, how = NEW.how
	       WHERE k = NEW.k;
	    ELSIF NEW.how = 'new_amount' THEN
	      UPDATE aux.model SET amount = val / 100.0, cents = (val / 100.0 * 100)::int,
	                           writer = 'new', nw = nw + 1, how = NEW.how
	       WHERE k = NEW.k AND id = NEW.rid;
	    ELSIF NEW.how = 'new_holder' THEN
	      UPDATE aux.model SET owner = 'n' || NEW.v, cents = (amount * 100)::int, writer = 'new', nw = nw + 1,
	                           how = NEW.how
	       WHERE k = NEW.k AND id = NEW.rid;
	    ELSIF NEW.how IN ('new_key', 'new_touch') THEN
	      -- a new-version write recomputes the old column from the new one, which keeps its value
	      UPDATE aux.model SET id = NEW.rid, cents = (amount * 100)::int, writer = 'new', nw = nw + 1,
	                           how = NEW.how
	       WHERE k = NEW.k;
	    ELSE
	      RAISE EXCEPTION 'aux.apply: unknown write %', NEW.how;
	    END IF;
	    GET DIAGNOSTICS n = ROW_COUNT;
	    IF n <> 1 THEN
	      INSERT INTO aux.anomalies VALUES (NEW.id, NEW.k, NEW.how, 'model rows changed: ' || n);
	    END IF;
	    -- The row the write returned, against the model (a delete's: the row before it).
	    IF NEW.how NOT LIKE '%delete' THEN
	      SELECT * INTO m FROM aux.model WHERE k = NEW.k;
	    END IF;
	    IF NEW.how LIKE 'old%' THEN
	      IF (NEW.rid, NEW.r_owner, NEW.r_cents, NEW.r_writer, NEW.r_nw)
	         IS DISTINCT FROM (m.id, m.owner, m.cents, m.writer, m.nw) THEN
	        INSERT INTO aux.anomalies VALUES (NEW.id, NEW.k, NEW.how, format(
	          'returned (id, owner, cents, writer, nw) = (%s, %s, %s, %s, %s), expected (%s, %s, %s, %s, %s)',
	          NEW.rid, NEW.r_owner, NEW.r_cents, NEW.r_writer, NEW.r_nw, m.id, m.owner, m.cents, m.writer, m.nw));
	      END IF;
	    ELSIF NEW.how = 'new_delete' THEN
	      -- a row the backfill has not reached yet reads NULL in the new columns: no amount, label
	      -- here, and writer (rebuilt by create_constraint) only once filled
	      IF (NEW.rid, NEW.r_owner, NEW.r_nw) IS DISTINCT FROM (m.id, m.owner, m.nw)
	         OR coalesce(NEW.r_writer, m.writer) IS DISTINCT FROM m.writer THEN
	        INSERT INTO aux.anomalies VALUES (NEW.id, NEW.k, NEW.how, format(
	          'returned (id, holder, writer, nw) = (%s, %s, %s, %s), expected (%s, %s, %s, %s)',
	          NEW.rid, NEW.r_owner, NEW.r_writer, NEW.r_nw, m.id, m.owner, m.writer, m.nw));
	      END IF;
	    ELSIF (NEW.rid, NEW.r_owner, NEW.r_amount, NEW.r_label, NEW.r_writer, NEW.r_nw)
	          IS DISTINCT FROM (m.id, m.owner, m.amount, m.label, m.writer, m.nw) THEN
	      INSERT INTO aux.anomalies VALUES (NEW.id, NEW.k, NEW.how, format(
	        'returned (id, holder, amount, label, writer, nw) = (%s, %s, %s, %s, %s, %s), expected (%s, %s, %s, %s, %s, %s)',
	        NEW.rid, NEW.r_owner, NEW.r_amount, NEW.r_label, NEW.r_writer, NEW.r_nw,
	        m.id, m.owner, m.amount, m.label, m.writer, m.nw));
	    END IF;
	    RETURN NULL;
	  END \$\$;
	  CREATE TRIGGER apply AFTER INSERT ON aux.ledger FOR EACH ROW WHEN (NEW.how <> 'init')
	    EXECUTE FUNCTION aux.apply();

	  CREATE TEMP TABLE init AS
	    SELECT k, CASE WHEN k % 8 = 0 THEN 1000001 ELSE (k * 7919) % 2000001 - 1000000 END::int AS v
	      FROM generate_series(1::bigint, $nkeys) k WHERE k % 5 <> 0;
	  INSERT INTO accounts SELECT k, 'i' || v, nullif(v, 1000001), 'init', 0 FROM init ORDER BY k;
	  INSERT INTO aux.ledger (k, rid, delta, how, v, phase) SELECT k, k, 1, 'init', v, 0 FROM init;
	  INSERT INTO aux.model SELECT k, k, 'i' || v, nullif(v, 1000001), nullif(v, 1000001) / 100.0,
	                               aux.up_label('i' || v, nullif(v, 1000001)), 'init', 0, 'init' FROM init;
	  VACUUM ANALYZE accounts;

	  -- The pair.  Each write of it appends what it did and the row it returned to aux.pledger, in
	  -- the same statement; the trigger keeps aux.cmodel (customers, by key k: where the customer
	  -- lives now) and aux.omodel (orders, by their customer's key), and checks the returned row.
	  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL CONSTRAINT customers_name_key UNIQUE,
	                          writer text NOT NULL);
	  CREATE INDEX customers_name_id_idx ON customers (name, id);
	  CREATE TABLE orders (id bigint PRIMARY KEY,
	                       customer_id int NOT NULL REFERENCES customers (id) ON UPDATE CASCADE ON DELETE CASCADE,
	                       amount int NOT NULL, CONSTRAINT orders_customer_id_id_key UNIQUE (customer_id, id));
	  CREATE INDEX orders_customer_id_idx ON orders (customer_id);
	  CREATE SEQUENCE aux.order_ids;
	  -- rid: the customer's id (NULL: a new-version delete of a row the backfill had not filled) or
	  -- the order's; cid: the customer's id the order references; cascaded: the orders a
	  -- customer's delete took with it; v: an order's amount, or a customer's other id k2.
	  CREATE TABLE aux.pledger (id bigserial PRIMARY KEY, k bigint NOT NULL, how text NOT NULL, rid bigint,
	                            cid bigint, delta int NOT NULL, v int NOT NULL, phase int NOT NULL,
	                            r_name text, r_writer text, cascaded bigint,
	                            at timestamptz NOT NULL DEFAULT clock_timestamp());
	  CREATE TABLE aux.cmodel (k bigint PRIMARY KEY, id bigint NOT NULL UNIQUE, name text NOT NULL,
	                           writer text NOT NULL);
	  CREATE TABLE aux.omodel (id bigint PRIMARY KEY, k bigint NOT NULL, amount int NOT NULL);
	  CREATE INDEX ON aux.omodel (k);
	  CREATE TABLE aux.panomalies (pledger_id bigint, k bigint, how text, problem text);
	  CREATE FUNCTION aux.papply() RETURNS trigger LANGUAGE plpgsql AS \$\$
	  DECLARE
	    m aux.cmodel;
	    problem text;
	  BEGIN
	    SELECT * INTO m FROM aux.cmodel WHERE k = NEW.k;
	    IF NEW.how LIKE '%customer_insert' THEN
	      IF m.k IS NOT NULL OR (NEW.rid, NEW.r_name, NEW.r_writer)
	         IS DISTINCT FROM (NEW.k, 'c' || NEW.k, split_part(NEW.how, '_', 1)) THEN
	        problem := format('inserted (%s, %s, %s), the model had %s', NEW.rid, NEW.r_name, NEW.r_writer, row(m.*));
	      END IF;
	      INSERT INTO aux.cmodel VALUES (NEW.k, NEW.k, 'c' || NEW.k, split_part(NEW.how, '_', 1))
	        ON CONFLICT DO NOTHING;
	    ELSIF NEW.how LIKE '%customer_delete' THEN
	      IF m.k IS NULL OR coalesce(NEW.rid, m.id) <> m.id OR (NEW.rid IS NULL AND NEW.how LIKE 'old%')
	         OR (NEW.r_name, NEW.r_writer) IS DISTINCT FROM (m.name, m.writer)
	         OR NEW.cascaded IS DISTINCT FROM (SELECT count(*) FROM aux.omodel o WHERE o.k = NEW.k) THEN
	        problem := format('deleted (%s, %s, %s) with %s orders, the model had %s with %s', NEW.rid, NEW.r_name,
	                          NEW.r_writer, NEW.cascaded, row(m.*), (SELECT count(*) FROM aux.omodel o WHERE o.k = NEW.k));
	      END IF;
	      DELETE FROM aux.cmodel WHERE k = NEW.k;
	      DELETE FROM aux.omodel WHERE k = NEW.k;
	    ELSIF NEW.how = 'old_customer_keymove' THEN
	      IF m.k IS NULL OR NEW.rid IS DISTINCT FROM (CASE WHEN m.id = NEW.k THEN NEW.v ELSE NEW.k END)
	         OR (NEW.r_name, NEW.r_writer) IS DISTINCT FROM (m.name, m.writer) THEN
	        problem := format('moved to (%s, %s, %s), the model had %s', NEW.rid, NEW.r_name, NEW.r_writer, row(m.*));
	      END IF;
	      UPDATE aux.cmodel SET id = NEW.rid WHERE k = NEW.k;
	    ELSIF NEW.how LIKE '%order_insert' THEN
	      IF m.k IS NULL OR NEW.cid IS DISTINCT FROM m.id THEN
	        problem := format('order %s of customer %s, the model had %s', NEW.rid, NEW.cid, row(m.*));
	      END IF;
	      INSERT INTO aux.omodel VALUES (NEW.rid, NEW.k, NEW.v);
	    ELSIF NEW.how LIKE '%order_delete' THEN
	      IF m.k IS NULL OR NEW.cid IS DISTINCT FROM m.id
	         OR NOT EXISTS (SELECT FROM aux.omodel o WHERE o.id = NEW.rid AND o.k = NEW.k AND o.amount = NEW.v) THEN
	        problem := format('deleted order (%s, %s, %s), the model had %s', NEW.rid, NEW.cid, NEW.v, row(m.*));
	      END IF;
	      DELETE FROM aux.omodel WHERE id = NEW.rid;
	    ELSE
	      RAISE EXCEPTION 'aux.papply: unknown write %', NEW.how;
	    END IF;
	    IF problem IS NOT NULL THEN
	      INSERT INTO aux.panomalies VALUES (NEW.id, NEW.k, NEW.how, problem);
	    END IF;
	    RETURN NULL;
	  END \$\$;
	  CREATE TRIGGER papply AFTER INSERT ON aux.pledger FOR EACH ROW WHEN (NEW.how NOT LIKE 'init%')
	    EXECUTE FUNCTION aux.papply();
	  INSERT INTO customers SELECT k, 'c' || k, 'init' FROM generate_series(1, $ckeys) k WHERE k % 5 <> 0;
	  INSERT INTO orders SELECT nextval('aux.order_ids'), c.id, (c.id * 7919 + g) % 1000000 + 1
	    FROM customers c CROSS JOIN generate_series(1, 2) g ORDER BY c.id, g;
	  INSERT INTO aux.cmodel SELECT k, k, 'c' || k, 'init' FROM generate_series(1, $ckeys) k WHERE k % 5 <> 0;
	  INSERT INTO aux.omodel SELECT id, customer_id, amount FROM orders;
	  INSERT INTO aux.pledger (k, rid, cid, delta, how, v, phase)
	    SELECT k, k, k, 1, 'init_customer', 0, 0 FROM aux.cmodel;
	  INSERT INTO aux.pledger (k, rid, cid, delta, how, v, phase)
	    SELECT k, id, k, 1, 'init_order', amount, 0 FROM aux.omodel;
	  VACUUM ANALYZE customers, orders;
	});
}

# The schema's catalog, as rollback must leave it (columns, constraints, relations, indexes,
# triggers, version schemas).
my $catalog_query = q{
  SELECT string_agg(x, E'\n' ORDER BY x) FROM (
    SELECT format('column %s.%s %s %s %s default %s', c.relname, a.attnum, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) x
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('constraint %s %s %s', conname, pg_get_constraintdef(oid), convalidated)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT format('relation %s %s', relname, relkind) FROM pg_class
     WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('index %s %s', pg_get_indexdef(indexrelid), indisvalid) FROM pg_index
     WHERE indrelid IN ('public.accounts'::regclass, 'public.customers'::regclass, 'public.orders'::regclass)
    UNION ALL SELECT format('trigger %s on %s', tgname, tgrelid::regclass) FROM pg_trigger
     WHERE tgrelid IN ('public.accounts'::regclass, 'public.customers'::regclass, 'public.orders'::regclass)
       AND NOT tgisinternal
    UNION ALL SELECT format('schema %s', nspname) FROM pg_namespace WHERE nspname LIKE 'public\_%') s};

# Helper objects only an active migration may have.
my $leftovers_query = q{
  SELECT coalesce(string_agg(x, ', '), '') FROM (
    SELECT format('column %s.%s', attrelid::regclass, attname) x FROM pg_attribute
     WHERE attrelid IN ('public.accounts'::regclass, 'public.customers'::regclass)
       AND attname LIKE '\_ec\_%' AND NOT attisdropped
    UNION ALL SELECT format('trigger %s on %s', tgname, tgrelid::regclass) FROM pg_trigger
     WHERE tgrelid IN ('public.accounts'::regclass, 'public.customers'::regclass, 'public.orders'::regclass)
       AND NOT tgisinternal
    UNION ALL SELECT format('relation %s', relname) FROM pg_class
     WHERE relnamespace = 'public'::regnamespace AND relname LIKE '\_ec\_%'
    UNION ALL SELECT format('constraint %s', conname) FROM pg_constraint WHERE conname LIKE '\_ec\_%'
    UNION ALL SELECT format('dual_write %s', relid) FROM expand_contract.dual_writes
    UNION ALL SELECT format('active migration %s', name) FROM expand_contract.migrations WHERE NOT done) s};

# Start pgbench in the background: clients of version $ver ('old' or 'new') writing for $secs s, or
# ('vacuum') one client freezing the table every second.
sub start_clients
{
	my ($db, $ver, $phase, $secs) = @_;
	my $scripts = $ver eq 'old' ? [ @old_scripts, @old_pair_scripts ]
	  : $ver eq 'new' ? [ @new_scripts, @new_pair_scripts ] : ['vacuum@1'];
	my @cmd = (
		'pgbench', '-n', '-M', ($ver eq 'vacuum' ? 'simple' : $protocol),
		'-c', ($ver eq 'vacuum' ? 1 : $clients), '-j', 1, '-T', $secs,
		'-D', "nkeys=$nkeys", '-D', "nslots=$nslots", '-D', "koff=$koff", '-D', "phase=$phase",
		'-D', "ckeys=$ckeys", '-D', "ckoff=$ckoff",
		'-D', 'slot0=' . ($ver eq 'old' ? 0 : $clients),
		(map { ('-f', "$soak/$_") } map { s/@/.sql@/r } @$scripts),
		'-h', $node->host, '-p', $node->port, $db);
	# The new version's clients set search_path for their whole session, as an application would
	# in its connection string.
	return start_pgbench(\@cmd, $ver eq 'new' ? '-c search_path=public_v2' : '',
		ver => $ver, phase => $phase, db => $db);
}

# What the ledgers say each kind of write did (effective writes only), per phase.
sub write_counts
{
	my ($db, $phase) = @_;
	my %c = map { split /=/ } split /\n/, $node->safe_psql($db, qq{
	  SELECT kind || '=' || count(*) FROM (
	    SELECT how || CASE WHEN how LIKE '%upsert' THEN CASE delta WHEN 1 THEN '(insert)' ELSE '(update)' END
	                       ELSE '' END AS kind
	      FROM (SELECT how, delta FROM aux.ledger WHERE phase = $phase
	            UNION ALL SELECT how, delta FROM aux.pledger WHERE phase = $phase) w) s GROUP BY kind ORDER BY kind});
	return \%c;
}

# Compare every row with its model row; $select gives the table's columns as (id, owner, cents, amount,
# label, writer, nw) with NULL for those the version does not have, $model_cols the model's.
sub check_model
{
	my ($db, $select, $model_cols, $what) = @_;
	my $diff = qq{
	  FROM (SELECT $model_cols, how, k FROM aux.model) m (id, owner, cents, amount, label, writer, nw, how, k)
	  FULL JOIN ($select) r (id, owner, cents, amount, label, writer, nw) ON r.id = m.id
	 WHERE m.id IS NULL OR r.id IS NULL
	    OR (r.owner, r.cents, r.amount, r.label, r.writer, r.nw)
	       IS DISTINCT FROM (m.owner, m.cents, m.amount, m.label, m.writer, m.nw)};
	my $bad = $node->safe_psql($db, "SELECT count(*) $diff");
	is($bad, '0', "$what: every row equals the model (expected state from the ledger) in every column")
	  or diag("mismatching rows by last write: "
		  . $node->safe_psql($db, qq{SELECT string_agg(how || ': ' || n, ', ')
		       FROM (SELECT coalesce(m.how, 'row not in the model') how, count(*) n $diff GROUP BY 1) s})
		  . "\nexamples (actual | expected | ledger of the key):\n"
		  . $node->safe_psql($db, qq{SELECT format('%s | %s | %s', row(r.*), row(m.*),
		         (SELECT string_agg(format('%s %s rid=%s v=%s phase=%s', l.id, l.how, l.rid, l.v, l.phase),
		                  '; ' ORDER BY l.id) FROM aux.ledger l WHERE l.k = coalesce(m.k, r.id % $koff)))
		       $diff ORDER BY coalesce(m.id, r.id) LIMIT 8}));
}

sub check_ledger
{
	my ($db, $what) = @_;
	my ($count, $ledger, $model) = split /\|/, $node->safe_psql($db, q{
	  SELECT (SELECT count(*) FROM public.accounts) || '|' || (SELECT sum(delta) FROM aux.ledger)
	         || '|' || (SELECT count(*) FROM aux.model)});
	is($count, $ledger, "$what: count(*) ($count) = what the clients committed (ledger sum $ledger)");
	is($model, $ledger, "$what: the model has as many rows as the ledger");
	is($node->safe_psql($db, q{SELECT count(*) FROM aux.anomalies}), '0',
		"$what: every write returned the row the model expected (checked in the writing transaction)")
	  or diag("keys with a wrong write, by the kind of their first wrong write: "
		  . $node->safe_psql($db, q{SELECT string_agg(how || ': ' || n, ', ')
		       FROM (SELECT how, count(*) n FROM (SELECT DISTINCT ON (k) * FROM aux.anomalies ORDER BY k, ledger_id) f
		              GROUP BY how ORDER BY how) s})
		  . "\nfirst example of each kind, with the key's earlier writes:\n"
		  . $node->safe_psql($db, q{SELECT format('ledger %s, key %s, %s: %s; earlier: %s', a.ledger_id, a.k, a.how,
		         a.problem, (SELECT string_agg(format('%s %s v=%s', l.id, l.how, l.v), '; ' ORDER BY l.id)
		                       FROM aux.ledger l WHERE l.k = a.k AND l.id < a.ledger_id))
		       FROM (SELECT DISTINCT ON (how) * FROM (SELECT DISTINCT ON (k) * FROM aux.anomalies ORDER BY k, ledger_id) f
		              ORDER BY how, ledger_id) a}));
}

# The pair against its model, with traffic stopped: the counts; every write returned what the model
# expected; through each version schema in @nsps, every customer and order equal to its model row (an
# order references its customer where the customer lives now), and no order without its customer.
sub check_pair
{
	my ($db, $what, @nsps) = @_;
	my ($customers, $cledger, $cmodel, $orders, $oledger, $omodel, $anomalies) = split /\|/,
	  $node->safe_psql($db, q{
	  SELECT (SELECT count(*) FROM public.customers) || '|'
	      || (SELECT sum(delta) FROM aux.pledger WHERE how LIKE '%customer%') || '|'
	      || (SELECT count(*) FROM aux.cmodel) || '|'
	      || (SELECT count(*) FROM public.orders) || '|'
	      || (SELECT sum(delta) FILTER (WHERE how LIKE '%order%') - coalesce(sum(cascaded), 0) FROM aux.pledger) || '|'
	      || (SELECT count(*) FROM aux.omodel) || '|'
	      || (SELECT count(*) FROM aux.panomalies)});
	is($customers, $cledger, "$what: count(customers) ($customers) = what the clients committed (ledger sum $cledger)");
	is($cmodel, $cledger, "$what: the customers' model has as many rows as the ledger");
	is($orders, $oledger, "$what: count(orders) ($orders) = what the clients committed (ledger: inserts - deletes "
		  . "- the orders that deleting customers cascaded to, $oledger)");
	is($omodel, $oledger, "$what: the orders' model has as many rows as the ledger");
	is($anomalies, '0', "$what: every write of the pair returned the row the model expected (a customer's "
		  . 'delete, the count of orders it cascaded to)')
	  or diag("first of them: " . $node->safe_psql($db, q{
		SELECT string_agg(format('pledger %s, key %s, %s: %s', pledger_id, k, how, problem), E'\n' ORDER BY pledger_id)
		  FROM (SELECT * FROM aux.panomalies ORDER BY pledger_id LIMIT 5) a}));
	for my $nsp (@nsps)
	{
		my ($bad_customers, $bad_orders, $orphans) = split /\|/, $node->safe_psql($db, qq{
		  SELECT (SELECT count(*) FROM $nsp.customers c FULL JOIN aux.cmodel m ON m.id = c.id
		           WHERE c.id IS NULL OR m.id IS NULL OR (c.name, c.writer) IS DISTINCT FROM (m.name, m.writer)) || '|'
		      || (SELECT count(*) FROM $nsp.orders o
		            FULL JOIN (aux.omodel om JOIN aux.cmodel cm ON cm.k = om.k) ON om.id = o.id
		           WHERE o.id IS NULL OR om.id IS NULL OR (o.customer_id, o.amount) IS DISTINCT FROM (cm.id, om.amount)) || '|'
		      || (SELECT count(*) FROM $nsp.orders o WHERE NOT EXISTS (SELECT FROM $nsp.customers c WHERE c.id = o.customer_id))});
		is($bad_customers, '0', "$what, $nsp: every customer equals its model row (id, name, writer)");
		is($bad_orders, '0', "$what, $nsp: every order equals its model row (id, customer's id now, amount)");
		is($orphans, '0', "$what, $nsp: no order without its customer");
	}
}

# The foreign keys of orders: "name definition validated", by name.
my $orders_fks_query = q{
  SELECT string_agg(format('%s %s %s', conname, pg_get_constraintdef(oid), convalidated), '; ' ORDER BY conname COLLATE "C")
    FROM pg_constraint WHERE conrelid = 'public.orders'::regclass AND contype = 'f'};
my $orders_fk = 'FOREIGN KEY (customer_id) REFERENCES customers(id) ON UPDATE CASCADE ON DELETE CASCADE';

############################################################################
# One variant: traffic of both versions over ec_start and the backfill, then the contract phase.
############################################################################

sub soak
{
	my ($variant) = @_;
	my $db = "soak_$variant";
	my $t0 = time();
	setup($db);
	my $initial = $node->safe_psql($db, 'SELECT count(*) FROM accounts');
	my $catalog_before = $node->safe_psql($db, $catalog_query);
	note "$variant: $initial rows loaded in " . sprintf('%.1f', time() - $t0) . ' s';

	# Old-version clients first; ec_start under their writes; then the new version's clients.
	my $old = start_clients($db, 'old', 1, $seconds + 2);
	ok(wait_for($node, $db, q{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 1}, 't', 30, 'old clients'),
		"$variant: old-version clients are writing before ec_start");
	is($node->safe_psql($db, "SELECT ec_start('v2', \$doc\$$migration\$doc\$)"), 'public_v2',
		"$variant: ec_start under old-version traffic");
	my $new = start_clients($db, 'new', 1, $seconds);
	my $vacuumer = $vacuum ? start_clients($db, 'vacuum', 1, $seconds) : undef;

	# Sample the backfill's progress and the last write each version committed (its ledger id).
	my $sampler = $node->background_psql($db);
	my @samples;
	while (running($old) || running($new))
	{
		my $both = running($old) && running($new);
		my $s = $sampler->query_safe(q{
		  SELECT s.backfill_state || '|' || s.rows_done || '|' || s.batches || '|'
		         || (SELECT coalesce(max(id), 0) FROM aux.ledger WHERE phase = 1 AND how LIKE 'old%') || '|'
		         || (SELECT coalesce(max(id), 0) FROM aux.ledger WHERE phase = 1 AND how LIKE 'new%')
		    FROM ec_status('public') s WHERE s.table_name = 'accounts'});
		my %s;
		@s{qw(state rows batches old new)} = split /\|/, $s;
		push @samples, \%s if $both;
		usleep(250_000);
	}
	$sampler->quit;
	finish_clients($old, "$variant, old-version clients during the backfill");
	finish_clients($new, "$variant, new-version clients during the backfill");
	finish_clients($vacuumer, "$variant, VACUUM (FREEZE) client during the backfill") if $vacuum;

	my $overlap;
	for my $i (0 .. $#samples)
	{
		my $a = $samples[$i];
		next unless $a->{state} eq 'running' && $a->{rows} > 0;
		for my $j ($i + 1 .. $#samples)
		{
			my $b = $samples[$j];
			$overlap = [ $a, $b ]
			  if $b->{state} eq 'running' && $b->{rows} > $a->{rows}
			  && $b->{old} > $a->{old} && $b->{new} > $a->{new};
		}
	}
	note sprintf('%s: %d samples while both versions wrote; backfill states seen: %s', $variant,
		scalar @samples, join(',', map { "$_->{state}:$_->{rows}" } @samples[0 .. ($#samples < 5 ? $#samples : 5)]));
	ok($overlap, "$variant: the backfill was running while clients of both versions committed writes")
	  and note sprintf('  between samples: rows_done %d -> %d, last old-version write %d -> %d, new %d -> %d',
		$overlap->[0]{rows}, $overlap->[1]{rows}, $overlap->[0]{old}, $overlap->[1]{old},
		$overlap->[0]{new}, $overlap->[1]{new});

	ok( wait_for($node, $db, q{SELECT string_agg(DISTINCT backfill_state, ',') FROM ec_status('public')}, 'done',
			60 + 2 * $seconds, 'the backfills'),
		"$variant: the backfills (accounts and customers) finish");
	my ($rows_done, $batches, $customers_done) = split /\|/, $node->safe_psql($db, q{
	  SELECT (SELECT rows_done || '|' || batches FROM ec_status('public') WHERE table_name = 'accounts') || '|'
	      || (SELECT rows_done FROM ec_status('public') WHERE table_name = 'customers')});
	note "$variant: backfill filled $rows_done rows of accounts in $batches batches, $customers_done of customers";
	cmp_ok($batches, '>', 1, "$variant: the backfill took several batches");
	cmp_ok($rows_done, '<=', $initial, "$variant: the backfill filled no more than the rows present at start");
	# After the backfill the worker validates the check and builds the index (CREATE INDEX
	# CONCURRENTLY, which waits for every snapshot, ec_complete's included: hence ec_wait first);
	# and for the pair, builds customers' (name, id) index on the new key, adds the re-pointed
	# foreign key NOT VALID and validates it.
	my ($wret, $wout, $werr) = $node->psql($db, q{CALL ec_wait('public', '120s')}, timeout => 180);
	is($wret, 0, "$variant: CALL ec_wait returns: the check validated, the indexes built, the foreign key "
		  . 're-pointed and validated') or diag($werr);
	is($node->safe_psql($db, $orders_fks_query),
		"_ec_con_orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers(_ec_new_id) "
		  . "ON UPDATE CASCADE ON DELETE CASCADE t; orders_customer_id_fkey $orders_fk t",
		"$variant: before the contract phase, orders has both foreign keys, validated: the old one on "
		  . 'the old key, the re-pointed one on the new key, with the same actions');
	is( $node->safe_psql($db, q{
		  SELECT format('%s %s %s', i.indisvalid, i.indisready,
		                (SELECT convalidated FROM pg_constraint WHERE conrelid = 'public.accounts'::regclass
		                    AND conname = 'accounts_writer_check'))
		    FROM pg_index i WHERE i.indexrelid = to_regclass('public.accounts_holder_amount_idx')}),
		't t t', "$variant: the index is valid and ready, the check validated, before the contract phase");
	note "$variant: index build " . $node->safe_psql($db, q{
	  SELECT format('%s s, writes committed meanwhile: old %s, new %s',
	                round(extract(epoch FROM t.finished_at - t.started_at), 2),
	                count(*) FILTER (WHERE l.how LIKE 'old%'), count(*) FILTER (WHERE l.how LIKE 'new%'))
	    FROM expand_contract.tasks t LEFT JOIN aux.ledger l ON l.phase = 1 AND l.at BETWEEN t.started_at AND t.finished_at
	   WHERE t.sql LIKE '%CREATE INDEX CONCURRENTLY%accounts_holder_amount_idx%'
	   GROUP BY t.started_at, t.finished_at});
	note "$variant: re-pointed foreign key " . $node->safe_psql($db, q{
	  SELECT format('added NOT VALID in %s s, validated in %s s; writes of the pair committed after it was added: '
	                || '%s, %s of them customers'' deletes, which cascaded to %s orders, and %s key moves',
	                round(extract(epoch FROM a.finished_at - a.started_at), 2),
	                round(extract(epoch FROM v.finished_at - v.started_at), 2), count(l.*),
	                count(*) FILTER (WHERE l.how LIKE '%customer_delete'), coalesce(sum(l.cascaded), 0),
	                count(*) FILTER (WHERE l.how LIKE '%keymove'))
	    FROM expand_contract.tasks a JOIN expand_contract.tasks v ON v.migration_id = a.migration_id
	    LEFT JOIN aux.pledger l ON l.phase = 1 AND l.at > a.finished_at
	   WHERE a.sql LIKE '%ADD CONSTRAINT _ec_con_orders_customer_id_fkey %'
	     AND v.sql LIKE '%VALIDATE CONSTRAINT _ec_con_orders_customer_id_fkey'
	   GROUP BY a.started_at, a.finished_at, v.started_at, v.finished_at});

	############################################################################
	# Traffic stopped, before the contract phase: every row right, the count right.
	############################################################################

	check_ledger($db, "$variant, before contract");
	check_pair($db, "$variant, before contract", 'public', 'public_v2');
	check_model($db, q{SELECT b.id, b.owner, b.cents, n.amount, n.label, b.writer, b.nw
	                     FROM public.accounts b JOIN public_v2.accounts n USING (id)},
		'id, owner, cents, amount, label, writer, nw', "$variant, before contract");
	is($node->safe_psql($db, q{SELECT count(*) FROM public.accounts b JOIN public_v2.accounts n USING (id)
	                          WHERE n.holder IS DISTINCT FROM b.owner
	                             OR n.amount IS DISTINCT FROM b.cents / 100.0
	                             OR b.cents IS DISTINCT FROM (n.amount * 100)::int
	                             OR n.writer IS DISTINCT FROM b.writer}),
		'0', "$variant: every row has holder = owner, amount = up(cents) (and cents = down(amount)), "
		  . 'and the same writer in both versions');
	is($node->safe_psql($db, q{SELECT count(*) FROM public.accounts b JOIN public_v2.accounts n USING (id)
	                          WHERE b.writer IN ('init', 'old') AND n.label IS DISTINCT FROM aux.up_label(b.owner, b.cents)}),
		'0', "$variant: every row last written through the old version (or never) has label = up(owner, cents)");
	is($node->safe_psql($db, q{SELECT count(*) FROM public.accounts b FULL JOIN public_v2.accounts n USING (id)
	                          WHERE b.id IS NULL OR n.id IS NULL}),
		'0', "$variant: both versions show the same rows");

	my $w = write_counts($db, 1);
	note "$variant: effective writes during the backfill: " . join(', ', map { "$_ $w->{$_}" } sort keys %$w);
	my @kinds = ((map { s/@.*//r } @old_scripts, @new_scripts, @old_pair_scripts, @new_pair_scripts),
		qw(old_upsert(insert) old_upsert(update) new_upsert(insert) new_upsert(update)));
	my @missing = grep { !/_upsert$/ && !$w->{$_} } @kinds;
	is("@missing", '', "$variant: every kind of write took effect at least once during the backfill");

	$node->safe_psql($db, q{
	  CREATE TABLE aux.snap_new AS SELECT id, holder, amount, label, writer, nw FROM public_v2.accounts;
	  CREATE TABLE aux.snap_old AS SELECT id, owner, cents, writer, nw FROM public.accounts;
	});

	############################################################################
	# Contract phase under the traffic of the version that stays.
	############################################################################

	my $ver = $variant eq 'complete' ? 'new' : 'old';
	my $clients3 = start_clients($db, $ver, 3, $contract_seconds);
	ok(wait_for($node, $db, q{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 3}, 't', 30, "$ver clients"),
		"$variant: $ver-version clients are writing before ec_$variant");
	my $c0 = time();
	my ($ret, $out, $err) = $node->psql($db, "SELECT ec_$variant()", timeout => 60 + $contract_seconds);
	my $took = time() - $c0;
	is($ret, 0, "$variant: ec_$variant succeeds while $ver-version clients write") or diag($err);
	note sprintf('%s: ec_%s took %.2f s', $variant, $variant, $took);
	my $after = $node->safe_psql($db, 'SELECT coalesce(max(id), 0) FROM aux.ledger');
	my $kept_on = wait_for($node, $db, qq{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 3 AND id > $after},
		't', 30, "$ver writes after ec_$variant");
	finish_clients($clients3, "$variant, $ver-version clients around ec_$variant");
	ok($kept_on, "$variant: $ver-version clients committed writes after ec_$variant returned");
	$w = write_counts($db, 3);
	note "$variant: effective writes around ec_$variant: " . join(', ', map { "$_ $w->{$_}" } sort keys %$w);

	############################################################################
	# After the contract phase.
	############################################################################

	check_ledger($db, "$variant, after ec_$variant");
	check_pair($db, "$variant, after ec_$variant", 'public', $variant eq 'complete' ? 'public_v2' : ());
	is($node->safe_psql($db, $leftovers_query), '', "$variant: no helper object left");
	if ($variant eq 'complete')
	{
		is( $node->safe_psql($db, q{
			  SELECT string_agg(format('%s %s%s', attname, format_type(atttypid, atttypmod),
			                           CASE WHEN attnotnull THEN ' not null' ELSE '' END), ', ' ORDER BY attnum)
			    FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attnum > 0 AND NOT attisdropped}),
			'id bigint not null, holder text not null, nw integer not null, '
			  . 'amount numeric(12,2), label text' . ($not_null ? ' not null' : '') . ', writer text not null',
			'complete: the table has its final shape');
		is( $node->safe_psql($db, q{
			  SELECT format('%s %s', convalidated, pg_get_constraintdef(oid)) FROM pg_constraint
			   WHERE conrelid = 'public.accounts'::regclass AND conname = 'accounts_writer_check'}),
			q{t CHECK ((writer = ANY (ARRAY['init'::text, 'old'::text, 'new'::text])))},
			'complete: create_constraint left its check, validated, on the final writer column');
		is( $node->safe_psql($db, q{
			  SELECT format('%s %s', i.indisvalid, pg_get_indexdef(i.indexrelid)) FROM pg_index i
			   WHERE i.indexrelid = to_regclass('public.accounts_holder_amount_idx')}),
			't CREATE INDEX accounts_holder_amount_idx ON public.accounts USING btree (holder, amount)',
			'complete: the index is valid, on the final columns');
		is($node->safe_psql($db, q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '0',
			'complete: no invalid index');
		my ($aret, $aout, $aerr) = $node->psql($db, q{
		  CREATE EXTENSION amcheck;
		  SELECT bt_index_check('public.accounts_holder_amount_idx', heapallindexed => true);
		  SELECT bt_index_check('public.accounts_pkey', heapallindexed => true);
		  SELECT bt_index_check('public.customers_pkey', heapallindexed => true);
		  SELECT bt_index_check('public.customers_name_id_idx', heapallindexed => true);});
		is($aret == 0 ? $aerr : "psql exit $aret: $aerr", '',
			'complete: amcheck finds the index (and the primary key) consistent, every row in it; and '
			  . 'the indexes of customers that the worker built on the new key');
		is( $node->safe_psql($db, q{
			  SELECT string_agg(format('%s %s%s', attname, format_type(atttypid, atttypmod),
			                           CASE WHEN attnotnull THEN ' not null' ELSE '' END), ', ' ORDER BY attnum)
			    FROM pg_attribute WHERE attrelid = 'public.customers'::regclass AND attnum > 0 AND NOT attisdropped}),
			'name text not null, writer text not null, id bigint not null',
			'complete: customers has its final shape, id bigint');
		is( $node->safe_psql($db, q{
			  SELECT string_agg(format('%s %s %s', c.relname, pg_get_indexdef(i.indexrelid), coalesce(k.contype::text, '-')),
			                    '; ' ORDER BY c.relname)
			    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			    LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
			   WHERE i.indrelid = 'public.customers'::regclass}),
			'customers_name_id_idx CREATE INDEX customers_name_id_idx ON public.customers USING btree (name, id) -; '
			  . 'customers_name_key CREATE UNIQUE INDEX customers_name_key ON public.customers USING btree (name) u; '
			  . 'customers_pkey CREATE UNIQUE INDEX customers_pkey ON public.customers USING btree (id) p',
			'complete: customers has its primary key, unique and secondary indexes under their names, on the bigint id');
		is($node->safe_psql($db, $orders_fks_query), "orders_customer_id_fkey $orders_fk t",
			'complete: orders has exactly one foreign key, under its name, validated, with its actions, '
			  . 'on the bigint key');
		is($node->safe_psql($db, q{SELECT string_agg(DISTINCT phase, ',') FROM ec_status('public')}), 'complete',
			'complete: ec_status shows the migration complete');
		is($node->safe_psql($db, q{SELECT (SELECT count(*) FROM public_v2.accounts) = (SELECT count(*) FROM public.accounts)}),
			't', 'complete: the version schema still serves the table');
		check_model($db, q{SELECT id, holder, NULL::int, amount, label, writer, nw FROM public.accounts},
			'id, owner, NULL::int, amount, label, writer, nw', 'complete, after ec_complete');
		is( $node->safe_psql($db, q{
			  WITH untouched AS (SELECT * FROM public.accounts t WHERE NOT EXISTS
			           (SELECT FROM aux.ledger l WHERE l.phase = 3 AND l.k = t.id % } . $koff . q{)),
			       snap AS (SELECT * FROM aux.snap_new s WHERE NOT EXISTS
			           (SELECT FROM aux.ledger l WHERE l.phase = 3 AND l.k = s.id % } . $koff . q{))
			  SELECT count(*) FROM ((SELECT id, holder, amount, label, writer, nw FROM untouched EXCEPT ALL
			                         SELECT * FROM snap)
			                        UNION ALL (SELECT * FROM snap EXCEPT ALL
			                         SELECT id, holder, amount, label, writer, nw FROM untouched)) d}),
			'0', 'complete: rows not written around ec_complete equal the new version before it');
	}
	else
	{
		is($node->safe_psql($db, $catalog_query), $catalog_before,
			'rollback: the schema\'s catalog is exactly as before ec_start');
		is( $node->safe_psql($db, q{SELECT (SELECT count(*) FROM pg_class WHERE relname = 'accounts_holder_amount_idx')
			                              || ' ' || (SELECT count(*) FROM pg_index WHERE NOT indisvalid)}),
			'0 0', 'rollback: the index is gone, no invalid index left');
		check_model($db, q{SELECT id, owner, cents, NULL::numeric, NULL, writer, nw FROM public.accounts},
			'id, owner, cents, NULL::numeric, NULL, writer, nw', 'rollback, after ec_rollback');
		is( $node->safe_psql($db, q{
			  WITH untouched AS (SELECT * FROM public.accounts t WHERE NOT EXISTS
			           (SELECT FROM aux.ledger l WHERE l.phase = 3 AND l.k = t.id % } . $koff . q{)),
			       snap AS (SELECT * FROM aux.snap_old s WHERE NOT EXISTS
			           (SELECT FROM aux.ledger l WHERE l.phase = 3 AND l.k = s.id % } . $koff . q{))
			  SELECT count(*) FROM ((SELECT * FROM untouched EXCEPT ALL SELECT * FROM snap)
			                        UNION ALL (SELECT * FROM snap EXCEPT ALL SELECT * FROM untouched)) d}),
			'0', 'rollback: rows not written around ec_rollback equal the old version before it');
	}
	note sprintf('%s: %.0f s', $variant, time() - $t0);
}

soak($_) for @variants;

$node->stop;
done_testing();
