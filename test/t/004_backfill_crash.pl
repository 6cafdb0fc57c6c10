# Crash safety of the backfill.  Progress is committed with each batch, so after the worker is killed
# (the postmaster then reinitialises the whole cluster), after a fast shutdown and after a crash of the
# server, the backfill goes on from its last committed batch, and every row ends up right.  (The worker
# commits asynchronously, so a crash may undo its last few batches, rows and progress together; the
# test makes what it saw durable before each crash, see make_seen_durable.)
#  (a) without shared_preload_libraries: the work resumes at the next ec_status() call;
#  (b) with shared_preload_libraries = 'expand_contract': the launcher resumes it without any call.
#  (c) a partitioned table, one backfill task per leaf, the worker killed in the middle of a leaf.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);

my $nrows = 150000;
my $migration = q{'{"operations": [{"alter_column": {"table": "orders", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}'};

# The backfill task's progress, read from the table (no function call: that could start a worker).
my $task_from = q{FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE m.name = 'v2' AND t.kind = 'backfill'};
my $task_query = qq{SELECT t.state || '|' || t.rows_done || '|' || t.batches || '|' || t.next_block || '|'
     || coalesce(t.total_blocks, -1) $task_from};

sub task
{
	my ($node) = @_;
	my %t;
	@t{qw(state rows batches next total)} = split /\|/, $node->safe_psql('postgres', $task_query);
	return \%t;
}

sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill' LIMIT 1});
}

sub setup
{
	my ($node) = @_;
	$node->safe_psql('postgres', qq{
	  CREATE EXTENSION expand_contract;
	  CREATE TABLE orders (id bigserial PRIMARY KEY, cents int NOT NULL);
	  INSERT INTO orders (cents) SELECT g % 100000 FROM generate_series(1, $nrows) g;
	  SELECT ec_start('v2', $migration);
	});
}

# Wait until the backfill has committed at least $blocks blocks, and return its progress.
sub progress_past
{
	my ($node, $blocks, $what) = @_;
	ok(wait_for($node, 'postgres', qq{SELECT next_block >= $blocks $task_from}, 't', 30, "progress past block $blocks"),
		"$what: the backfill got past block $blocks");
	return task($node);
}

# After an interruption at progress $before: resumes from there, not from 0; rows_done carries on.
sub check_resumed
{
	my ($node, $before, $what) = @_;
	my $after = task($node);
	cmp_ok($after->{next}, '>=', $before->{next},
		"$what: next_block after the restart ($after->{next}) is not behind the last one seen ($before->{next})");
	cmp_ok($after->{rows}, '>=', $before->{rows}, "$what: rows_done kept ($after->{rows})");
	isnt($after->{state}, 'done', "$what: interrupted before the end") or return;
	return $after;
}

# Once resumed: the first batch after the restart goes on from the committed block.
sub check_continues
{
	my ($node, $at_restart, $what) = @_;
	ok( wait_for($node, 'postgres', qq{SELECT batches > $at_restart->{batches} $task_from}, 't', 20,
			"$what: a batch after the restart"),
		"$what: the backfill makes progress again");
	my $now = task($node);
	cmp_ok($now->{next}, '>', $at_restart->{next},
		"$what: continued from block $at_restart->{next} (now $now->{next}), not from 0");
	cmp_ok($now->{rows}, '>', $at_restart->{rows}, "$what: rows_done continues from $at_restart->{rows}");
}

sub check_result
{
	my ($node, $what) = @_;
	my $t = task($node);
	is($t->{rows}, $nrows, "$what: rows_done ends at exactly the number of rows (no batch counted twice)");
	cmp_ok($t->{next}, '>=', $t->{total}, "$what: next_block reached total_blocks");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), $nrows, "$what: row count unchanged");
	is( $node->safe_psql('postgres', q{
		  SELECT count(*) FROM public.orders o JOIN public_v2.orders n USING (id)
		   WHERE n.amount IS DISTINCT FROM o.cents / 100.0}),
		'0', "$what: every row has amount = cents / 100.0");
}

############################################################################
# (a) no shared_preload_libraries: ec_status() relaunches the worker.
############################################################################

my $node = PostgreSQL::Test::Cluster->new('lazy');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
expand_contract.batch_size = 1000
expand_contract.batch_delay_ms = 50
restart_after_crash = on
});
$node->start;
setup($node);

my $before = progress_past($node, 100, 'kill -9');
my $pid = worker_pid($node);
ok($pid =~ /^\d+$/, "the worker is running (pid $pid)");
$before = task($node);
make_seen_durable($node);
kill 'KILL', $pid;
# The postmaster treats this as a crash: every backend is terminated and shared memory reinitialised.
ok(wait_for($node, 'postgres', 'SELECT 1', '1', 30, 'crash recovery'), 'server back after the worker was killed');
ok($node->log_contains(qr/terminated by signal 9/), 'the server log shows the killed worker');
my $at_restart = check_resumed($node, $before, 'kill -9');
usleep(1_000_000);
note 'kill -9: without shared_preload_libraries the work '
  . (task($node)->{batches} == $at_restart->{batches} ? 'waited for ec_status()' : 'resumed by itself')
  if $at_restart;
$node->safe_psql('postgres', q{SELECT count(*) FROM ec_status()});
check_continues($node, $at_restart, 'kill -9') if $at_restart;

# Fast shutdown in the middle, then start.
my $half = int(task($node)->{total} / 2);
$before = progress_past($node, $half, 'fast shutdown');
my $t0 = time();
$node->stop('fast');
cmp_ok(time() - $t0, '<', 10, 'a fast shutdown is not held up by the worker');
$node->start;
$at_restart = check_resumed($node, $before, 'fast shutdown');
$node->safe_psql('postgres', q{SELECT count(*) FROM ec_status()});
check_continues($node, $at_restart, 'fast shutdown') if $at_restart;

ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status()}, 'done', 40, 'backfill done'),
	'(a) the backfill completes after the interruptions');
check_result($node, '(a)');
$node->safe_psql('postgres', q{SELECT ec_complete()});
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE amount * 100 = id % 100000) || '/' || count(*) FROM orders}),
	"$nrows/$nrows", '(a) every row right after ec_complete');
$node->stop;

############################################################################
# (b) shared_preload_libraries: the launcher relaunches the work, nobody calls a function.
############################################################################

$node = PostgreSQL::Test::Cluster->new('preload');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'expand_contract'
expand_contract.batch_size = 1000
expand_contract.batch_delay_ms = 50
restart_after_crash = on
});
$node->start;
ok(wait_for($node, 'postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract launcher'},
		'1', 10, 'launcher'),
	'the launcher runs at server start');
setup($node);

# The worker killed: crash restart of the cluster; the launcher comes back and relaunches the worker.
$before = progress_past($node, 100, 'preload kill -9');
$pid = worker_pid($node);
ok($pid =~ /^\d+$/, "the worker is running (pid $pid)");
$before = task($node);
make_seen_durable($node);
kill 'KILL', $pid;
ok(wait_for($node, 'postgres', 'SELECT 1', '1', 30, 'crash recovery'), 'server back after the worker was killed');
$at_restart = check_resumed($node, $before, 'preload kill -9');
check_continues($node, $at_restart, 'preload kill -9') if $at_restart;

# Crash of the server (immediate stop), then start.
$half = int(task($node)->{total} / 2);
$before = progress_past($node, $half, 'preload crash');
make_seen_durable($node);
$node->stop('immediate');
$node->start;
$at_restart = check_resumed($node, $before, 'preload crash');
check_continues($node, $at_restart, 'preload crash') if $at_restart;

ok(wait_for($node, 'postgres', qq{SELECT t.state $task_from}, 'done', 40, 'backfill done'),
	'(b) the backfill completes without any function call');
check_result($node, '(b)');
ok(wait_for($node, 'postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'},
		'0', 10, 'worker exit'),
	'(b) the worker exits when its work is done');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract launcher'}),
	'1', '(b) the launcher is still there');
$node->safe_psql('postgres', q{SELECT ec_complete(wait => false)});
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE amount * 100 = id % 100000) || '/' || count(*) FROM orders}),
	"$nrows/$nrows", '(b) every row right after ec_complete');
$node->stop;

############################################################################
# (c) a partitioned table: one backfill task per leaf partition.  The worker is killed while it
# fills the second leaf; after the crash restart the first leaf stays done, the second goes on
# from its last committed batch, the third is filled, and every row of every partition is right.
############################################################################

$node = PostgreSQL::Test::Cluster->new('partitioned');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
expand_contract.batch_size = 1000
expand_contract.batch_delay_ms = 20
restart_after_crash = on
});
$node->start;
my $per_leaf = 40000;
$node->safe_psql('postgres', qq{
  CREATE EXTENSION expand_contract;
  CREATE TABLE events (id bigint NOT NULL, cents int NOT NULL) PARTITION BY RANGE (id);
  CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO ($per_leaf + 1);
  -- Another column order and a dropped column: its attribute numbers differ from the parent's.
  CREATE TABLE events_2 (cents int NOT NULL, gone int, id bigint NOT NULL);
  ALTER TABLE events_2 DROP COLUMN gone;
  ALTER TABLE events ATTACH PARTITION events_2 FOR VALUES FROM ($per_leaf + 1) TO (2 * $per_leaf + 1);
  CREATE TABLE events_rest PARTITION OF events DEFAULT;
  INSERT INTO events SELECT g, g % 100000 FROM generate_series(1, 3 * $per_leaf) g;
  SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "events", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}');
});
my $leaf_from = q{FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
 WHERE m.name = 'v2' AND t.kind = 'backfill'};
sub leaf_task
{
	my ($leaf) = @_;
	my %t;
	@t{qw(state rows batches next)} = split /\|/, $node->safe_psql('postgres', qq{
	  SELECT t.state || '|' || t.rows_done || '|' || t.batches || '|' || t.next_block $leaf_from
	     AND t.relid = '$leaf'::regclass});
	return \%t;
}
is($node->safe_psql('postgres', qq{SELECT count(*) $leaf_from}), '3', '(c) one backfill task per leaf');
ok(wait_for($node, 'postgres', qq{SELECT next_block >= 20 $leaf_from AND t.relid = 'events_2'::regclass},
		't', 60, 'second leaf under way'),
	'(c) the backfill reached the second leaf');
my $first = leaf_task('events_1');
my $second = leaf_task('events_2');
is($first->{state}, 'done', '(c) the first leaf is done');
$pid = worker_pid($node);
ok($pid =~ /^\d+$/, "(c) the worker is running (pid $pid)");
$second = leaf_task('events_2');
make_seen_durable($node);
kill 'KILL', $pid;
ok(wait_for($node, 'postgres', 'SELECT 1', '1', 30, 'crash recovery'), '(c) server back after the worker was killed');
my $after = leaf_task('events_2');
cmp_ok($after->{next}, '>=', $second->{next}, "(c) the second leaf kept its progress ($after->{next})");
isnt($after->{state}, 'done', '(c) the second leaf was interrupted before its end');
$node->safe_psql('postgres', q{SELECT count(*) FROM ec_status()});
ok(wait_for($node, 'postgres', qq{SELECT count(*) FILTER (WHERE t.state = 'done') $leaf_from}, '3', 60,
		'every leaf done'),
	'(c) the backfill completes every leaf after the crash');
is(leaf_task('events_1')->{rows}, $first->{rows}, '(c) the first leaf was not filled again');
is($node->safe_psql('postgres', qq{SELECT sum(t.rows_done) $leaf_from}), 3 * $per_leaf,
	'(c) rows_done adds up to the number of rows (no batch counted twice)');
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(part || ' ' || n || ' ' || filled, ', ' ORDER BY part)
	    FROM (SELECT tableoid::regclass::text AS part, count(*) AS n,
	                 count(*) FILTER (WHERE _ec_new_cents = cents / 100.0) AS filled
	            FROM events GROUP BY 1) e}),
	"events_1 $per_leaf $per_leaf, events_2 $per_leaf $per_leaf, events_rest $per_leaf $per_leaf",
	'(c) every partition holds its rows, each filled');
$node->safe_psql('postgres', q{SELECT ec_complete()});
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE amount * 100 = id % 100000) || '/' || count(*) FROM events}),
	3 * $per_leaf . '/' . 3 * $per_leaf, '(c) every row right after ec_complete');
$node->stop;

done_testing();
