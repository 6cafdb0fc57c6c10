# Backfill workers in two databases at the same time; ec_complete waiting for a running backfill
# without blocking writers; and what happens when no background worker slot is free: a WARNING at
# ec_start's commit and an ERROR (53000) from ec_complete, both with a hint at max_worker_processes,
# then the work proceeds once a slot is free.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);

my $migration = q{'{"operations": [{"alter_column": {"table": "orders", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}'};

sub setup_db
{
	my ($node, $db, $nrows) = @_;
	$node->safe_psql($db, qq{
	  CREATE EXTENSION expand_contract;
	  CREATE TABLE orders (id bigserial PRIMARY KEY, k int NOT NULL, cents int NOT NULL);
	  INSERT INTO orders (k, cents) SELECT g % 100000, g % 100000 FROM generate_series(1, $nrows) g;
	});
}

# k duplicates the old column, so values can be checked after ec_complete dropped cents.
sub check_values
{
	my ($node, $db, $what) = @_;
	is($node->safe_psql($db, q{SELECT count(*) FROM orders WHERE amount IS DISTINCT FROM k / 100.0}),
		'0', "$what: every row has amount = up(old)");
}

############################################################################
# Two databases, two workers at once.
############################################################################

my $node = PostgreSQL::Test::Cluster->new('multi');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
expand_contract.batch_size = 1000
expand_contract.batch_delay_ms = 30
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE db1');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
setup_db($node, 'db1', 80000);
setup_db($node, 'db2', 120000);
$node->safe_psql('db1', qq{SELECT ec_start('v2', $migration)});
$node->safe_psql('db2', qq{SELECT ec_start('v2', $migration)});

ok( wait_for($node, 'postgres', q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
	  WHERE backend_type = 'expand_contract backfill'}, 'db1,db2', 10, 'a worker in each database'),
	'one backfill worker in each database, at the same time');

# ec_complete (wait) in db2 while its backfill runs: it waits for the worker without holding the
# table, so writers are not blocked meanwhile.
my $completer = $node->background_psql('db2', on_error_stop => 0);
$completer->query_until(qr/completing/, q{
  \echo completing
  SELECT ec_complete();
  \echo completed
});
usleep(500_000);
is($node->safe_psql('db2', q{SELECT done FROM expand_contract.migrations WHERE name = 'v2'}), 'f',
	'ec_complete is waiting while the backfill runs');
isnt($node->safe_psql('db2', q{SELECT backfill_state FROM ec_status()}), 'done', 'the backfill is still running');
my ($ret, $out, $err) = $node->psql('db2', q{
  SET lock_timeout = '1s';
  INSERT INTO orders (k, cents) VALUES (4242, 4242);
  UPDATE orders SET cents = 1, k = 1 WHERE id = 119999;
  SELECT 'written'}, timeout => 20);
is($out, 'written', 'old-version writes go through while ec_complete waits for the backfill') or diag($err);
is( $node->safe_psql('db2', q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	  WHERE l.relation = 'orders'::regclass AND a.query LIKE '%ec_complete%' AND a.backend_type = 'client backend'}),
	'0', 'ec_complete holds no lock on the table while it waits');

ok(wait_for($node, 'db1', q{SELECT backfill_state FROM ec_status()}, 'done', 30, 'db1 done'),
	'db1: the backfill completes');
ok(wait_for($node, 'db2', q{SELECT done FROM expand_contract.migrations WHERE name = 'v2'}, 't', 30,
		'db2 ec_complete'),
	'db2: ec_complete finished after the backfill');
$completer->quit;
unlike($completer->{stderr}, qr/ERROR/, 'db2: ec_complete did not fail') or diag($completer->{stderr});
is($node->safe_psql('db2', q{SELECT backfill_state FROM ec_status()}), 'done',
	'db2: the backfill was done by the worker');
cmp_ok($node->safe_psql('db2', q{SELECT batches FROM ec_status()}), '>', 10, 'db2: in batches');
$node->safe_psql('db1', q{SELECT ec_complete()});
check_values($node, 'db1', 'db1');
check_values($node, 'db2', 'db2');
is($node->safe_psql('db1', 'SELECT count(*) FROM orders'), '80000', 'db1: row count');
is($node->safe_psql('db2', 'SELECT count(*) FROM orders'), '120001', 'db2: row count');
$node->stop;

############################################################################
# No free background worker slot.
############################################################################

$node = PostgreSQL::Test::Cluster->new('slots');
$node->init(allows_streaming => 1);
# One slot (no logical replication launcher to take it); parallel query off unless asked for.
$node->append_conf('postgresql.conf', q{
max_worker_processes = 1
max_logical_replication_workers = 0
max_parallel_workers_per_gather = 0
});
$node->start;
is( $node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	  WHERE backend_type NOT IN ('client backend', 'autovacuum launcher', 'background writer', 'checkpointer',
	                             'walwriter', 'startup', 'archiver', 'autovacuum worker', 'walsender')}),
	'0', 'no background worker runs: the single slot is free');
setup_db($node, 'postgres', 20000);

# Take the only slot with a parallel worker that sleeps.
my $occupier = $node->background_psql('postgres', on_error_stop => 0);
$occupier->query_safe(q{SET force_parallel_mode = on; SET max_parallel_workers_per_gather = 1;
  SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0});
my $occupier_pid = $occupier->query_safe('SELECT pg_backend_pid()');
$occupier->query_until(qr/sleeping/, q{
  \echo sleeping
  SELECT pg_sleep(120);
});
ok( wait_for($node, 'postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'},
		'1', 10, 'parallel worker'),
	'a parallel worker holds the only background worker slot');

($ret, $out, $err) = $node->psql('postgres', qq{SELECT ec_start('v2', $migration)}, timeout => 30);
is($ret, 0, 'ec_start succeeds when no worker slot is free') or diag($err);
note "ec_start stderr: $err";
like($err, qr/WARNING:/, 'ec_start\'s commit warns that the worker could not be started');
like($err, qr/HINT:.*max_worker_processes/, 'the warning\'s hint names max_worker_processes');
is($node->safe_psql('postgres', q{SELECT backfill_state FROM ec_status()}), 'queued',
	'ec_status shows the work queued');

my $t0 = time();
($ret, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
  SELECT ec_complete()}, timeout => 30);
note "ec_complete stderr: $err";
isnt($ret, 0, 'ec_complete(wait) fails when it cannot start a worker');
like($err, qr/ERROR:\s+53000/, 'with SQLSTATE 53000 (insufficient_resources)');
like($err, qr/HINT:.*max_worker_processes/, 'and a hint naming max_worker_processes');
cmp_ok(time() - $t0, '<', 15, 'ec_complete fails promptly instead of stalling');
is($node->safe_psql('postgres', q{SELECT phase FROM ec_status()}), 'active', 'the migration is still active');
($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_complete(wait => false)}, timeout => 30);
isnt($ret, 0, 'ec_complete(wait => false) fails while the work is unfinished');
note "ec_complete(wait => false) stderr: $err";

# Free the slot: the next ec_* call starts the worker.
$node->safe_psql('postgres', "SELECT pg_cancel_backend($occupier_pid)");
$occupier->quit;
ok( wait_for($node, 'postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'},
		'0', 10, 'slot freed'),
	'the slot is free again');
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status()}, 'done', 30, 'backfill done'),
	'once a slot is free, the queued backfill runs to the end');
cmp_ok($node->safe_psql('postgres', q{SELECT batches FROM ec_status()}), '>', 0, 'it ran in batches');
($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_complete()}, timeout => 30);
is($ret, 0, 'ec_complete succeeds') or diag($err);
check_values($node, 'postgres', 'slots');
$node->stop;

done_testing();
