# The backfill's load-aware pace (src/throttle.c): it waits while more client sessions than max_load
# run queries, says so in ec_status ("throttled: load"), and goes on by itself once they stop;
# sessions that only sleep in a query (pg_sleep, CALL ec_wait()) are not load; batch_time_ms sizes
# batches by their duration, batch_size staying the maximum; nice_ratio sleeps after batches and
# after the compaction steps while another session works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('load');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE t (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO t SELECT g, g FROM generate_series(1, 100000) g;
});

my $migration = q{'{"operations": [{"alter_column": {"table": "t", "column": "cents", "name": "amount",
  "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}'};

sub status
{
	my ($column) = @_;
	return $node->safe_psql('postgres', "SELECT $column FROM ec_status('public')");
}

# Sessions that keep a query running: CPU-bound ones, or asleep.
sub sessions
{
	my ($query, $n) = @_;
	my @h;
	for (1 .. $n)
	{
		my ($out, $err) = ('', '');
		push @h, IPC::Run::start(
			[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', $query ],
			'>', \$out, '2>', \$err);
	}
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) >= $n FROM pg_stat_activity WHERE query = '$query' AND state = 'active'"),
		"$n sessions run: $query");
	return @h;
}

sub stop_sessions
{
	my ($query, @h) = @_;
	$node->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = '$query'");
	$_->finish for @h;
}

############################################################################
# The load gate.
############################################################################
$node->safe_psql('postgres', qq{
  SET expand_contract.start_paused = on;
  SELECT ec_start('v1', $migration);
  SELECT ec_configure('public', '{"batch_size": 1000, "max_load": 1}');
});

# Asleep in their queries: not load.
my $sleep = 'SELECT pg_sleep(600)';
my @sleepers = sessions($sleep, 2);
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
ok($node->poll_query_until('postgres', q{SELECT backfill_state = 'done' FROM ec_status('public')}),
	'two sessions asleep in pg_sleep do not hold the backfill back (max_load 1)');
stop_sessions($sleep, @sleepers);
$node->safe_psql('postgres', 'SELECT ec_rollback()');

$node->safe_psql('postgres', qq{
  SET expand_contract.start_paused = on;
  SELECT ec_start('v1', $migration);
  SELECT ec_configure('public', '{"batch_size": 1000, "max_load": 1}');
});
# (generate_series in the select list: in FROM it would fill a temporary file)
my $busy = 'SELECT count(*) FROM (SELECT generate_series(1, 100000000000)) s';
my @workers = sessions($busy, 2);
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
ok($node->poll_query_until('postgres',
		q{SELECT backfill_state = 'throttled: load' FROM ec_status('public')}),
	'two sessions running queries put the backfill in "throttled: load" (max_load 1)');
like(status('detail'), qr/^load: [23] client sessions running queries, above max_load 1$/,
	'ec_status says how many and the limit');
my $rows = status('rows_done');
sleep 2;
is(status('rows_done'), $rows, 'no batch runs while the server is loaded');

stop_sessions($busy, @workers);
ok($node->poll_query_until('postgres', q{SELECT backfill_state = 'done' FROM ec_status('public')}),
	'the backfill goes on by itself once the load is gone');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public_v1.t WHERE amount IS DISTINCT FROM id / 100.0'),
	'0', 'every row filled');
$node->safe_psql('postgres', 'SELECT ec_rollback()');

############################################################################
# batch_time_ms: batches sized by their duration, batch_size the maximum.
############################################################################
$node->safe_psql('postgres', qq{
  BEGIN;
  SELECT ec_start('v1', $migration);
  SELECT ec_configure('public', '{"batch_size": 50000, "batch_time_ms": 1}');
  COMMIT;
});
ok($node->poll_query_until('postgres', q{SELECT backfill_state = 'done' FROM ec_status('public')}),
	'backfill with a 1 ms target done');
my ($done, $batches) = split /\|/, status(q{rows_done || '|' || batches});
note "batch_time_ms 1: $done rows in $batches batches";
cmp_ok($batches, '>=', 5, 'a 1 ms target splits 100,000 rows into many batches, though batch_size is 50,000');
$node->safe_psql('postgres', 'SELECT ec_rollback()');

$node->safe_psql('postgres', qq{
  BEGIN;
  SELECT ec_start('v1', $migration);
  SELECT ec_configure('public', '{"batch_size": 50000, "batch_time_ms": 0, "compact": false}');
  COMMIT;
});
ok($node->poll_query_until('postgres', q{SELECT backfill_state = 'done' FROM ec_status('public')}),
	'backfill without a target done');
cmp_ok(status('batches'), '<=', 3, 'batch_time_ms 0: batches of batch_size rows (compact off: no twentieth cap)');
$node->safe_psql('postgres', 'SELECT ec_complete()');

############################################################################
# worker_nice: the worker's operating-system priority, lowered before its batches.
############################################################################
# The previous migration's worker may still be finishing: the one counted below must be the next's.
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill'}), 'no worker left');
my $widen = q{'{"operations": [{"alter_column": {"table": "t", "column": "amount", "type": "numeric(14,2)",
  "up": "amount", "down": "amount"}}]}'};
$node->safe_psql('postgres', qq{
  BEGIN;
  SELECT ec_start('v3', $widen);
  SELECT ec_configure('public', '{"worker_nice": 7, "batch_size": 1000, "batch_delay_ms": 100}');
  COMMIT;
});
my $worker_pid;
# Any state: between its batches (a few ms each) it sleeps 100 ms, idle.
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill'}), 'the worker runs');
$worker_pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill'});
sub nice_of
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return undef;
	my $stat = <$fh>;
	close $fh;
	$stat =~ s/^.*\) //;    # after the command name, which may hold spaces
	return (split / /, $stat)[16];    # field 19 of stat(5)
}
open(my $pidfile, '<', $node->data_dir . '/postmaster.pid') or die "postmaster.pid: $!";
my $postmaster_pid = <$pidfile>;
close $pidfile;
chomp $postmaster_pid;
ok($node->poll_query_until('postgres', q{SELECT rows_done > 0 FROM ec_status('public')}), 'batches run');
is(nice_of($worker_pid), 7, "worker_nice 7: the worker (pid $worker_pid) runs at nice 7");
is(nice_of($postmaster_pid), 0, 'the postmaster keeps nice 0');
$node->safe_psql('postgres', q{SELECT ec_configure('public', '{"batch_delay_ms": 0}')});
$node->safe_psql('postgres', 'CALL ec_wait()');
$node->safe_psql('postgres', 'SELECT ec_rollback()');

############################################################################
# nice_ratio: while another session works, the worker sleeps nice_ratio times each step's time,
# after its batches and after the compaction's VACUUM and REINDEX steps alike (those are single
# statements that cannot pause inside).  Sampled from one session: the worker's wait on its latch,
# during the backfill and after it (when only compaction steps are left).
############################################################################
$node->safe_psql('postgres', q{
  CREATE TABLE big (id int PRIMARY KEY, n int NOT NULL, pad text NOT NULL);
  INSERT INTO big SELECT g, g, repeat('x', 60) FROM generate_series(1, 300000) g;
  VACUUM ANALYZE big;
  CREATE TABLE nice_samples (compacting bool, sleeping bool, query text);
});
# Both loops commit each round: a REINDEX CONCURRENTLY waits for every older snapshot.
$busy = q{DO $$BEGIN LOOP PERFORM count(*) FROM generate_series(1, 100000); COMMIT; END LOOP; END$$};
my @busy = sessions($busy, 1);
$node->safe_psql('postgres', q{
  BEGIN;
  SELECT ec_start('n1', '{"operations": [{"alter_column": {"table": "big", "column": "n",
    "type": "bigint", "up": "n", "down": "n::int"}}]}');
  SELECT ec_configure('public', '{"nice_ratio": 4, "max_load": 0}');
  COMMIT;
});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill'}), 'nice_ratio 4: the worker runs');
$node->safe_psql('postgres', q{
  DO $$
  DECLARE
    migration bigint := (SELECT id FROM expand_contract.migrations WHERE name = 'n1');
    deadline timestamptz := clock_timestamp() + interval '180 s';
  BEGIN
    LOOP
      PERFORM pg_stat_clear_snapshot();
      INSERT INTO nice_samples
        SELECT NOT EXISTS (SELECT FROM expand_contract.tasks
                            WHERE migration_id = migration AND kind = 'backfill' AND state <> 'done'),
               a.wait_event_type IS NOT DISTINCT FROM 'Extension',
               a.query
          FROM pg_stat_activity a WHERE a.backend_type = 'expand_contract backfill';
      EXIT WHEN NOT FOUND OR clock_timestamp() > deadline;
      COMMIT;
      PERFORM pg_sleep(0.005);
    END LOOP;
  END $$;
});
stop_sessions($busy, @busy);
is($node->safe_psql('postgres', q{SELECT count(*) FROM expand_contract.tasks t
  JOIN expand_contract.migrations m ON m.id = t.migration_id
  WHERE m.name = 'n1' AND t.kind = 'compact' AND t.state = 'done' AND t.detail IS DISTINCT FROM 'skipped: expand_contract.compact is off'}),
	'2', 'the VACUUM task and the primary key\'s REINDEX ran');
my ($backfill_n, $backfill_asleep, $compact_n, $compact_asleep) = split /\|/, $node->safe_psql('postgres', q{
  SELECT count(*) FILTER (WHERE NOT compacting), count(*) FILTER (WHERE NOT compacting AND sleeping),
         count(*) FILTER (WHERE compacting), count(*) FILTER (WHERE compacting AND sleeping)
    FROM nice_samples});
note("samples: backfill $backfill_asleep of $backfill_n asleep, compaction $compact_asleep of $compact_n");
cmp_ok($backfill_n, '>=', 20, 'samples taken during the backfill');
cmp_ok($backfill_asleep, '>', 0.4 * $backfill_n,
	'nice_ratio 4 under traffic: the worker sleeps most of the backfill (after each batch)');
cmp_ok($compact_n, '>=', 10, 'samples taken during the compaction steps');
cmp_ok($compact_asleep, '>', 0.4 * $compact_n,
	'nice_ratio 4 under traffic: the worker sleeps after each VACUUM and REINDEX step');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE query ~ '^expand_contract: waiting \d+ ms \(throttle\) after: (expand_contract backfill of big|VACUUM|REINDEX)')
  > 0.9 * count(*) FROM nice_samples WHERE sleeping}), 't',
	'while it sleeps, the worker\'s pg_stat_activity says it waits, and after what')
	or diag($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT regexp_replace(query, '\d+', 'N', 'g'), E'\n')
	  FROM nice_samples WHERE sleeping}));
$node->safe_psql('postgres', 'SELECT ec_complete()');

############################################################################
# ec_configure checks its values.
############################################################################
$node->safe_psql('postgres', qq{SELECT ec_start('v2', '{"operations": [{"add_column": {"table": "t",
  "column": {"name": "note", "type": "text", "nullable": true}, "up": "amount::text"}}]}')});
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_configure('public', '{"nice_ratio": -1}')});
like($err, qr/setting "nice_ratio" must be a number between 0 and 100/, 'nice_ratio out of range');
($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_configure('public', '{"max_load": 1.5}')});
like($err, qr/setting "max_load" must be an integer between -1 and 100000/, 'max_load not an integer');
($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_configure('public', '{"nice": 1}')});
like($err, qr/unknown setting "nice"/, 'unknown setting');
like($node->safe_psql('postgres', q{SELECT ec_configure('public', '{"nice_ratio": 0.25}')}),
	qr/"nice_ratio": 0.25/, 'a fractional nice_ratio');
$node->safe_psql('postgres', 'CALL ec_wait()');
$node->safe_psql('postgres', 'SELECT ec_complete()');

done_testing();
