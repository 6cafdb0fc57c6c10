# A streaming standby (pg_basebackup of the primary) follows whole migrations: its version schemas
# serve reads for the old and the new version, equal to the primary's, with both column sets
# consistent after writes through either version on the primary; after a failover to it, an active
# migration's backfill goes on there and the migration can be completed (first pair of nodes) or
# rolled back (second pair), with every row kept.  While it is a standby, the ec_* functions that
# change something fail with a clean error and leave the standby working; ec_status() reads there,
# and must not use up background worker slots for workers that cannot start before a promotion.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);

# Wait until the standby has replayed everything committed on the primary.  The worker commits
# asynchronously: pg_current_wal_lsn() (wait_for_catchup's target) may not cover its last commits
# until a synchronous commit that wrote WAL flushes them (one that only took an xid is not flushed).
sub catchup
{
	my ($primary, $standby) = @_;
	$primary->safe_psql('postgres', 'INSERT INTO testaux.flush VALUES (1)');
	$primary->wait_for_catchup($standby);
}

sub q1
{
	my ($node, $sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

# An ec_* call that must fail on a standby: a clean error, and the standby still there, replaying.
sub fails_on_standby
{
	my ($standby, $sql, $what) = @_;
	my ($ret, $out, $err) = $standby->psql('postgres', $sql);
	isnt($ret, 0, "on the standby, $what fails");
	$err =~ s/\n(?:DETAIL|HINT|CONTEXT).*//s;
	note "on the standby, $what: $err";
	like($err, qr/ERROR:.*(recovery|read-only)/, "on the standby, $what says why (read-only / recovery)");
	unlike($err, qr/server closed the connection|terminated/, "on the standby, $what does not crash");
	is(q1($standby, 'SELECT pg_is_in_recovery()'), 't', "the standby is still up after $what");
}

# Catalog snapshot of a schema and its version schemas (as in the regression tests).
my $snapshot_function = q{
  CREATE FUNCTION snapshot(nsp text) RETURNS SETOF text LANGUAGE sql AS $f$
    SELECT format('column %s.%s %s %s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                  a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace = nsp::regnamespace AND c.relkind IN ('r', 'p')
    UNION ALL
    SELECT format('constraint %s: %s %s', conname, pg_get_constraintdef(oid), convalidated)
      FROM pg_constraint WHERE connamespace = nsp::regnamespace
    UNION ALL
    SELECT format('relation %s kind %s', relname, relkind) FROM pg_class WHERE relnamespace = nsp::regnamespace
    UNION ALL
    SELECT format('trigger %s on %s', tgname, tgrelid::regclass)
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = nsp::regnamespace AND NOT tgisinternal
    UNION ALL
    SELECT format('schema %s', nspname) FROM pg_namespace WHERE nspname LIKE nsp || '\_%'
    ORDER BY 1
  $f$;
};

# Reads of every row as a version sees it, for comparing two nodes.
my %read = (
	base_v0 => q{SELECT count(*) || ' ' || md5(string_agg(id || ',' || cents || ',' || customer_name, ';' ORDER BY id)) FROM public.orders},
	v1 => q{SET search_path TO public_v1;
	  SELECT count(*) || ' ' || md5(string_agg(id || ',' || amount || ',' || customer, ';' ORDER BY id)) FROM orders;
	  SELECT count(*) || ' ' || md5(string_agg(id || ',' || body || ',' || tag, ';' ORDER BY id)) FROM notes},
	notes_v0 => q{SELECT count(*) || ' ' || md5(string_agg(id || ',' || body, ';' ORDER BY id)) FROM public.notes},
	v2 => q{SET search_path TO public_v2;
	  SELECT count(*) || ' ' || md5(string_agg(id || ',' || amount || ',' || client || ',' || coalesce(status, '?'), ';' ORDER BY id)) FROM orders},
);

sub same_reads
{
	my ($primary, $standby, $what, @versions) = @_;
	for my $v (@versions)
	{
		my $p = q1($primary, $read{$v});
		is(q1($standby, $read{$v}), $p, "$what: reads through version $v on the standby equal the primary's");
	}
}

my $parallel_count = q{
  SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
  SET min_parallel_table_scan_size = 0; SET parallel_leader_participation = off;
  EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM public.orders};

############################################################################
# Primary and standby
############################################################################

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', q{
max_connections = 30
shared_buffers = 16MB
max_worker_processes = 8
lc_messages = 'C'
});
$primary->start;
q1($primary, qq{
  CREATE EXTENSION expand_contract;
  CREATE SCHEMA testaux;
  CREATE TABLE testaux.flush (x int);
  CREATE TABLE orders (id bigint PRIMARY KEY, cents int NOT NULL, customer_name text NOT NULL);
  INSERT INTO orders SELECT g, g % 1000 + 1, 'customer ' || g FROM generate_series(1, 30000) g;
  CREATE TABLE notes (id bigint PRIMARY KEY, body text);
  INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 5000) g;
  CREATE SCHEMA other;
  CREATE TABLE other.t (id int PRIMARY KEY, x int);
  INSERT INTO other.t SELECT g, g FROM generate_series(1, 100) g;
  $snapshot_function
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
catchup($primary, $standby);

############################################################################
# v1, followed by the standby: reads through both versions, writes through both on the primary
############################################################################

q1($primary, q{SELECT ec_start('v1', '{"operations": [
  {"alter_column": {"table": "orders", "column": "cents", "name": "amount", "type": "numeric(12,2)",
                    "up": "cents / 100.0", "down": "(amount * 100)::int"}},
  {"rename_column": {"table": "orders", "from": "customer_name", "to": "customer"}},
  {"add_column": {"table": "notes", "column": {"name": "tag", "type": "text", "nullable": true}, "up": "''t'' || id"}}]}')});
q1($primary, q{CALL ec_wait('public', '120s')});
q1($primary, q{
  INSERT INTO orders VALUES (30001, 501, 'old writer');
  UPDATE orders SET cents = 777 WHERE id = 10;
  DELETE FROM orders WHERE id = 11;
  INSERT INTO notes (id, body) VALUES (5001, 'old note');
});
q1($primary, q{
  SET search_path TO public_v1;
  INSERT INTO orders (id, amount, customer) VALUES (30002, 12.34, 'new writer');
  UPDATE orders SET amount = 9.99, customer = 'renamed' WHERE id = 20;
  DELETE FROM orders WHERE id = 21;
  INSERT INTO notes (id, body, tag) VALUES (5002, 'new note', 'custom');
});
catchup($primary, $standby);

same_reads($primary, $standby, 'v1 active', qw(base_v0 notes_v0 v1));
is( q1($standby, q{SELECT count(*) FROM public.orders o JOIN public_v1.orders n USING (id)
	    WHERE n.amount IS DISTINCT FROM o.cents / 100.0 OR n.customer IS DISTINCT FROM o.customer_name}),
	'0', 'v1 active: on the standby, both column sets agree in every row');
is( q1($standby, q{SELECT string_agg(id || ':' || cents || ':' || amount || ':' || customer, ' ' ORDER BY id)
	    FROM public_v1.orders JOIN public.orders USING (id) WHERE id IN (10, 11, 20, 21, 30001, 30002)}),
	'10:777:7.77:customer 10 20:999:9.99:renamed 30001:501:5.01:old writer 30002:1234:12.34:new writer',
	'v1 active: the writes through both versions are on the standby, in both column sets');
is( q1($standby, q{SELECT string_agg(id || ':' || tag, ' ' ORDER BY id) FROM public_v1.notes WHERE id IN (1, 5001, 5002)}),
	'1:t1 5001:t5001 5002:custom', 'v1 active: the added column on the standby');

# ec_status() reads on the standby (the backfill is done: nothing to launch).
my $status = q{SELECT string_agg(concat_ws('|', migration, phase, table_name, backfill_state, rows_done), ' '
    ORDER BY table_name) FROM ec_status()};
my ($ret, $out, $err) = $standby->psql('postgres', $status);
is($ret, 0, 'v1 active: ec_status() works on the standby') or diag($err);
is($out, q1($primary, $status), 'v1 active: ec_status() on the standby shows what the primary shows');

# Calls that change something fail cleanly on the standby.
fails_on_standby($standby, q{SELECT ec_start('x1', '{"operations": [{"add_column": {"table": "t",
    "column": {"name": "y", "type": "int", "nullable": true}}}]}', 'other')}, 'ec_start');
fails_on_standby($standby, q{SELECT ec_complete()}, 'ec_complete (backfill done)');
fails_on_standby($standby, q{SELECT ec_rollback()}, 'ec_rollback');
fails_on_standby($standby, q{SELECT ec_pause()}, 'ec_pause');
fails_on_standby($standby, q{SELECT ec_configure('public', '{"batch_size": 10}')}, 'ec_configure');

q1($primary, q{SELECT ec_complete()});
catchup($primary, $standby);
same_reads($primary, $standby, 'v1 complete', qw(v1));
is(q1($standby, q{SELECT string_agg(x, E'\n') FROM snapshot('public') x}),
	q1($primary, q{SELECT string_agg(x, E'\n') FROM snapshot('public') x}),
	'v1 complete: the standby has the primary\'s final catalog');
is( q1($standby, q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	    WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped}),
	'id,customer,amount', 'v1 complete: the standby has the final columns');
is( q1($standby, q{SELECT count(*) FROM pg_attribute WHERE attname LIKE '\_ec\_%' AND NOT attisdropped}) . ' '
	  . q1($standby, q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%ec\_dual\_write%'}),
	'0 0', 'v1 complete: no helper column or trigger on the standby');

############################################################################
# v2 on top of v1 (old version: public_v1), running on the primary
############################################################################

my $rows_at_v2 = q1($primary, 'SELECT count(*) FROM orders');
q1($primary, q{
  BEGIN;
  SELECT ec_start('v2', '{"operations": [
    {"add_column": {"table": "orders", "column": {"name": "status", "type": "text", "nullable": false},
                    "up": "CASE WHEN amount >= 5 THEN ''big'' ELSE ''small'' END"}},
    {"rename_column": {"table": "orders", "from": "customer", "to": "client"}}]}');
  SELECT ec_configure('public', '{"batch_size": 100, "batch_delay_ms": 200}');
  COMMIT;
});
ok(wait_for($primary, 'postgres', q{SELECT backfill_state FROM ec_status()}, 'running', 60, 'v2 backfill under way'),
	'v2: the backfill runs on the primary');
catchup($primary, $standby);
# (Read from the table: ec_status() would try to start a worker, see below.)
is(q1($standby, q{SELECT state FROM expand_contract.tasks t JOIN expand_contract.migrations m
    ON m.id = t.migration_id WHERE m.name = 'v2' AND t.kind = 'backfill'}), 'running',
	'v2: the standby sees the backfill running');

# ec_status() on the standby while the backfill is unfinished: the standby cannot run a worker;
# it must not register one per call, each taking a background worker slot until a promotion.
like(q1($standby, $parallel_count), qr/Workers Launched: [12]/,
	'the standby runs parallel queries (before ec_status() calls there)');
my @warnings;
for my $call (1 .. 10)
{
	($ret, $out, $err) = $standby->psql('postgres', q{SELECT count(*) FROM ec_status()});
	is($ret, 0, "ec_status() call $call on the standby works") or diag($err);
	push @warnings, "call $call: $err" if $err ne '';
}
is(join("\n", @warnings), '', 'ec_status() on the standby raises no warning');
like(q1($standby, $parallel_count), qr/Workers Launched: [12]/,
	'the standby still gets parallel workers after 10 ec_status() calls (no worker slot used up)');

# ec_complete on the standby while the primary's backfill runs: it should refuse at once, as it
# does once the backfill is done.  (statement_timeout bounds a wait.)
fails_on_standby($standby, q{SET statement_timeout = '5s'; SELECT ec_complete()},
	'ec_complete (backfill running on the primary)');
fails_on_standby($standby, q{SET statement_timeout = '5s'; CALL ec_wait('public', '3s')},
	'ec_wait (backfill running on the primary)');

# Pause the backfill half-way, then write through both versions.
q1($primary, q{SELECT ec_pause()});
ok(wait_for($primary, 'postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'},
		'0', 30, 'worker exit'),
	'v2: the worker exits when paused');
my $v2_done_at_pause = q1($primary, q{SELECT rows_done FROM ec_status()});
cmp_ok($v2_done_at_pause, '<', $rows_at_v2, "v2: paused with the backfill unfinished ($v2_done_at_pause of $rows_at_v2 rows)");
q1($primary, q{
  SET search_path TO public_v1;
  INSERT INTO orders (id, customer, amount) VALUES (30003, 'v1 writer', 3.00);
  UPDATE orders SET amount = 8.00 WHERE id = 30;
});
q1($primary, q{
  SET search_path TO public_v2;
  INSERT INTO orders (id, client, amount, status) VALUES (30004, 'v2 writer', 1.00, 'custom');
  UPDATE orders SET client = 'renamed v2' WHERE id = 31;
});
catchup($primary, $standby);
same_reads($primary, $standby, 'v2 active, paused', qw(v1 v2));
($ret, $out, $err) = $standby->psql('postgres', $status);
is($ret, 0, 'v2 paused: ec_status() works on the standby') or diag($err);
is($out, q1($primary, $status), 'v2 paused: ec_status() on the standby shows what the primary shows');
is( q1($standby, q{SELECT string_agg(o.id || ':' || o.client || ':' || o.amount || ':' || o.status || '/' || p.customer, ' ' ORDER BY id)
	    FROM public_v2.orders o JOIN public_v1.orders p USING (id) WHERE id IN (30, 31, 30003, 30004)}),
	'30:customer 30:8.00:big/customer 30 31:renamed v2:0.32:small/renamed v2 30003:v1 writer:3.00:small/v1 writer '
	  . '30004:v2 writer:1.00:custom/v2 writer',
	'v2 paused: the standby has the writes of both versions, in both column sets');
my $final_count = q1($primary, 'SELECT count(*) FROM orders');
my $digest_v1 = q1($primary, $read{v1});

############################################################################
# Failover with v2 active and its backfill unfinished: resume and complete on the promoted node
############################################################################

$primary->stop('immediate');
$standby->promote;
ok($standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'), 'the standby is promoted');
is(q1($standby, $read{v1}), $digest_v1, 'promoted: every row there, as the old version saw it');
is(q1($standby, q{SELECT phase || ' ' || backfill_state FROM ec_status()}), 'active paused',
	'promoted: v2 active, its backfill paused');
q1($standby, q{SELECT ec_configure('public', '{"batch_delay_ms": null}')});
q1($standby, q{SELECT ec_resume()});
ok(wait_for($standby, 'postgres', q{SELECT backfill_state FROM ec_status()}, 'done', 120, 'backfill on the promoted node'),
	'promoted: the backfill goes on and finishes');
# Rows 30 and 31, written through the versions while paused, are the trigger's if the backfill had
# not reached them; every other row that predates v2 is filled once, before or after the failover.
my $v2_rows_done = q1($standby, q{SELECT rows_done FROM ec_status()});
ok($v2_rows_done >= $rows_at_v2 - 2 && $v2_rows_done <= $rows_at_v2,
	"promoted: rows_done ($v2_rows_done) counts each row that predates v2 once, across the failover");
# Each batch is one transaction: the rows one filled share its xmin.  v1's backfill moved every row
# to the second half of the table, so v2's first batches find no row to fill; a batch must still
# stay near batch_size (100 here) rows, not cover the rest of the table at once.
my $largest = q1($standby, q{SELECT max(n) FROM (SELECT xmin::text, count(*) AS n FROM public.orders GROUP BY 1) s});
cmp_ok($largest, '<=', 1000, "promoted: no backfill batch filled more than 1000 rows (batch_size 100; largest: $largest)");
is( q1($standby, q{SELECT count(*) FROM public_v2.orders
	    WHERE id <> 30004 AND status IS DISTINCT FROM CASE WHEN amount >= 5 THEN 'big' ELSE 'small' END}),
	'0', 'promoted: every row has status = up(amount)');
q1($standby, q{SET search_path TO public_v1; INSERT INTO orders (id, customer, amount) VALUES (30005, 'after failover v1', 6.00)});
q1($standby, q{SET search_path TO public_v2; INSERT INTO orders (id, client, amount, status) VALUES (30006, 'after failover v2', 0.50, 'small')});
q1($standby, q{CALL ec_wait('public', '120s')});
q1($standby, q{SELECT ec_complete()});
is(q1($standby, q{SELECT phase FROM ec_status()}), 'complete', 'promoted: ec_complete works');
is( q1($standby, q{SELECT count(*) || ' ' || count(*) FILTER (WHERE id = 30004 OR
	    status = CASE WHEN amount >= 5 THEN 'big' ELSE 'small' END) FROM public.orders}),
	($final_count + 2) . ' ' . ($final_count + 2), 'promoted: no row lost, every row right after complete');
is( q1($standby, q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	    WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped}),
	'id,client,amount,status', 'promoted: the final columns');
is( q1($standby, q{SELECT string_agg(id || ':' || client || ':' || amount || ':' || status, ' ' ORDER BY id)
	    FROM orders WHERE id IN (30003, 30004, 30005, 30006)}),
	'30003:v1 writer:3.00:small 30004:v2 writer:1.00:custom 30005:after failover v1:6.00:big '
	  . '30006:after failover v2:0.50:small',
	'promoted: the rows written through both versions before and after the failover');
$standby->stop;

############################################################################
# Second pair: failover while the backfill runs, then roll back on the promoted node
############################################################################

my $primary2 = PostgreSQL::Test::Cluster->new('primary2');
$primary2->init(allows_streaming => 1);
$primary2->append_conf('postgresql.conf', q{
max_connections = 30
shared_buffers = 16MB
lc_messages = 'C'
});
$primary2->start;
q1($primary2, qq{
  CREATE EXTENSION expand_contract;
  CREATE SCHEMA testaux;
  CREATE TABLE testaux.flush (x int);
  CREATE TABLE items (id bigint PRIMARY KEY, qty int NOT NULL, label text);
  INSERT INTO items SELECT g, g % 500, 'item ' || g FROM generate_series(1, 20000) g;
  $snapshot_function
});
$primary2->backup('base2');
my $standby2 = PostgreSQL::Test::Cluster->new('standby2');
$standby2->init_from_backup($primary2, 'base2', has_streaming => 1);
$standby2->start;
my $before = q1($primary2, q{SELECT string_agg(x, E'\n') FROM snapshot('public') x});

q1($primary2, q{
  BEGIN;
  SELECT ec_start('r1', '{"operations": [
    {"alter_column": {"table": "items", "column": "qty", "name": "quantity", "type": "numeric(10,1)",
                      "up": "qty / 2.0", "down": "(quantity * 2)::int"}},
    {"add_column": {"table": "items", "column": {"name": "note", "type": "text", "nullable": true}, "up": "''n'' || id"}}]}');
  SELECT ec_configure('public', '{"batch_size": 100, "batch_delay_ms": 200}');
  COMMIT;
});
q1($primary2, q{
  INSERT INTO items VALUES (20001, 7, 'old writer');
  UPDATE items SET qty = 9 WHERE id = 5;
  SET search_path TO public_r1;
  INSERT INTO items (id, quantity, label, note) VALUES (20002, 4.5, 'new writer', 'mine');
  UPDATE items SET quantity = 100 WHERE id = 6;
  DELETE FROM items WHERE id = 7;
});
ok(wait_for($primary2, 'postgres', q{SELECT rows_done > 0 AND backfill_state = 'running' FROM ec_status()}, 't', 60,
		'r1 backfill under way'),
	'r1: the backfill runs on the primary');
catchup($primary2, $standby2);
my $items = q{SELECT count(*) || ' ' || md5(string_agg(id || ',' || qty || ',' || coalesce(label, '?'), ';' ORDER BY id)) FROM public.items};
my $items_before = q1($primary2, $items);
my $done_before = q1($standby2, q{SELECT rows_done FROM ec_status()});
$primary2->stop('immediate');
$standby2->promote;
ok($standby2->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'), 'the second standby is promoted');
is(q1($standby2, q{SELECT backfill_state FROM ec_status()}), 'running',
	'promoted: r1 active, its backfill unfinished');
ok(wait_for($standby2, 'postgres', qq{SELECT rows_done > $done_before FROM ec_status()}, 't', 60, 'progress after failover'),
	'promoted: ec_status() relaunched the worker, the backfill goes on');
is(q1($standby2, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'}), '1',
	'promoted: one worker runs');
q1($standby2, q{SELECT ec_rollback()});
is(q1($standby2, q{SELECT count(*) FROM ec_status()}), '0', 'promoted: r1 rolled back, no migration left');
is(q1($standby2, q{SELECT string_agg(x, E'\n') FROM snapshot('public') x}), $before,
	'promoted: the schema is exactly as before r1');
is(q1($standby2, $items), $items_before, 'promoted: every row kept, with its old-version values');
is( q1($standby2, q{SELECT string_agg(id || ':' || qty || ':' || label, ' ' ORDER BY id) FROM items WHERE id IN (5, 6, 7, 20001, 20002)}),
	'5:9:item 5 6:200:item 6 20001:7:old writer 20002:9:new writer',
	'promoted: rows written through the new version have their down() values');
is(q1($standby2, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'}), '0',
	'promoted: no worker left after the rollback');
$standby2->stop;

for my $n ($primary, $standby, $primary2, $standby2)
{
	ok(!$n->log_contains(qr/PANIC|TRAP:|expand_contract backfill of migration \d+ failed/),
		'the log of ' . $n->name . ' shows no PANIC, no assertion failure and no failed backfill');
}
done_testing();
