# Parallel backfill: a table of more than 16 MB is filled as parts (block ranges) that several
# workers share, up to expand_contract.max_parallel_workers per migration (ec_configure) and
# max_parallel_workers_total helpers on the server.  Progress, pause and resume, a failing row, a
# killed helper and a lack of worker slots behave as with one worker, and ec_status shows one row per
# table with how many workers fill it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;

my $node = PostgreSQL::Test::Cluster->new('parallel');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'expand_contract'
restart_after_crash = on
max_worker_processes = 16
expand_contract.nice_ratio = 0
expand_contract.batch_size = 2000
});
$node->start;

# About 90 MB: about 10 parts.
my $nrows = 1200000;
$node->safe_psql('postgres', qq{
  CREATE EXTENSION expand_contract;
  CREATE TABLE orders (id int PRIMARY KEY, cents int NOT NULL, note text NOT NULL);
  INSERT INTO orders SELECT g, g % 100000, repeat('x', 40) FROM generate_series(1, $nrows) g;
  VACUUM ANALYZE orders;
});

sub migration
{
	my ($up) = @_;
	$up //= 'cents / 100.0';
	return qq{'{"operations": [{"alter_column": {"table": "orders", "column": "cents", "name": "amount",
	  "type": "numeric(12,2)", "up": "$up", "down": "(amount * 100)::int"}}]}'};
}

sub status
{
	my ($column) = @_;
	return $node->safe_psql('postgres', "SELECT $column FROM ec_status('public')");
}

sub workers
{
	return $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'expand_contract backfill%'});
}

sub start
{
	my ($settings, $up) = @_;
	my $doc = migration($up);
	$node->safe_psql('postgres', qq{
	  BEGIN;
	  SELECT ec_start('v1', $doc);
	  SELECT ec_configure('public', '$settings');
	  COMMIT;
	});
}

sub all_filled
{
	return $node->safe_psql('postgres',
		q{SELECT count(*) FILTER (WHERE n.amount IS DISTINCT FROM o.cents / 100.0) || '|' || count(*)
		    FROM public.orders o JOIN public_v1.orders n USING (id)});
}

############################################################################
# Three workers share the parts.
############################################################################
start('{"max_parallel_workers": 3}');
ok(wait_for($node, 'postgres', q{SELECT detail FROM ec_status('public')}, '3 of 3 workers', 30),
	'ec_status: "3 of 3 workers"');
ok(wait_for($node, 'postgres',
		q{SELECT count(*) >= 2 FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill helper'},
		't', 10),
	'two helpers run beside the migration\'s worker');
my $parts = $node->safe_psql('postgres', q{SELECT count(*) FROM expand_contract.tasks WHERE kind = 'backfill'});
cmp_ok($parts, '>=', 8, "the table is split into parts ($parts)");
is(status('count(*)'), '1', 'ec_status shows the table once');
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('public')}, 'done', 120),
	'the parallel backfill finishes');
is(all_filled(), "0|$nrows", 'every row filled once, right');
is(status('rows_done'), $nrows, 'rows_done is the sum over the parts');
ok(wait_for($node, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'expand_contract backfill%'}, '0', 30),
	'the workers leave once the work is done');
$node->safe_psql('postgres', 'SELECT ec_rollback()');

############################################################################
# Pause and resume; a killed helper.
############################################################################
start('{"max_parallel_workers": 3, "batch_size": 500}');
ok(wait_for($node, 'postgres',
		q{SELECT count(*) >= 2 FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill helper'},
		't', 30),
	'helpers started');
$node->safe_psql('postgres', q{SELECT ec_pause('public')});
ok(wait_for($node, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'expand_contract backfill%'}, '0', 30),
	'ec_pause: every worker leaves');
is(status('backfill_state'), 'paused', 'ec_status: paused');
my $paused_rows = status('rows_done');
sleep 1;
is(status('rows_done'), $paused_rows, 'no batch runs while paused');
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
ok(wait_for($node, 'postgres',
		q{SELECT count(*) >= 1 FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill helper'},
		't', 30),
	'ec_resume: helpers again');
my $helper = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill helper' LIMIT 1});
kill 'KILL', $helper;
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('public')}, 'done', 180),
	'after kill -9 of a helper (the server reinitialised) the backfill resumes and finishes');
is(all_filled(), "0|$nrows", 'every row filled, right, after pause, resume and a crash');
$node->safe_psql('postgres', 'SELECT ec_rollback()');

############################################################################
# A row that fails: its part fails, every worker stops, ec_status names the row.
############################################################################
start('{"max_parallel_workers": 3}', 'cents / (CASE WHEN id = 1100000 THEN 0 ELSE 100 END)::numeric');
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('public')}, 'failed', 120),
	'the failing row fails the backfill');
like(status('detail'), qr/division by zero \(row \(id\)=\(1100000\)\)/, 'ec_status names the row');
ok(wait_for($node, 'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'expand_contract backfill%'}, '0', 30),
	'every worker stops');
$node->safe_psql('postgres', 'SELECT ec_rollback()');

############################################################################
# Fewer workers than asked: the server cap, and no background worker slot.
############################################################################
$node->safe_psql('postgres', q{ALTER SYSTEM SET expand_contract.max_parallel_workers_total = 1});
$node->reload;
start('{"max_parallel_workers": 4, "batch_size": 500}');
ok( wait_for($node, 'postgres', q{SELECT detail FROM ec_status('public')},
		'2 of 4 workers: expand_contract.max_parallel_workers_total (1) reached', 30),
	'ec_status says the server cap holds it to 2 workers');
cmp_ok(workers(), '<=', 2, 'no more than one helper runs');
$node->safe_psql('postgres', 'CALL ec_wait()');
is(all_filled(), "0|$nrows", 'every row filled');
$node->safe_psql('postgres', 'SELECT ec_rollback()');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET expand_contract.max_parallel_workers_total});

# The launcher, the logical replication launcher and the migration's worker: no slot left.
$node->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$node->restart;
start('{"max_parallel_workers": 2, "batch_size": 500}');
ok( wait_for($node, 'postgres', q{SELECT detail FROM ec_status('public')},
		'1 of 2 workers: no background worker slot free (max_worker_processes)', 30),
	'ec_status says no background worker slot is free');
$node->safe_psql('postgres', 'CALL ec_wait()');
is(all_filled(), "0|$nrows", 'one worker fills it all');
$node->safe_psql('postgres', 'SELECT ec_complete()');

done_testing();
