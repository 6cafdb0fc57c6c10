# Events: NOTIFY expand_contract with a JSON payload at each phase change, sent at commit.  A
# LISTENing psql session receives each event of a migration in order (started, paused, resumed,
# backfill_done, index_built, completed; then task_failed with the error, cut to fit, and
# rolled_back), nothing from a transaction that rolls back, and one backfill_done for a table whose
# backfill two workers fill in parts.
use strict;
use warnings;
use lib 'test/perl';
use ECTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init(extra => ['--encoding=UTF8', '--locale=C']);
$node->append_conf('postgresql.conf', q{
expand_contract.batch_size = 500
expand_contract.batch_delay_ms = 0
});
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE t (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO t SELECT g, g FROM generate_series(1, 2000) g;
  -- An "up" that fails on one row with a message longer than a NOTIFY payload may be.
  CREATE FUNCTION long_failure(v int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
  BEGIN
    IF v = 1500 THEN RAISE EXCEPTION 'no: %', repeat(chr(233) || '"\', 4000); END IF;
    RETURN v;
  END $$;
});

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN expand_contract');
my $pending = '';

# The next $n notifications the listener receives, as parsed payloads (psql prints them after the
# next query it runs).
sub events
{
	my ($n, $what) = @_;
	my @got;
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		$pending .= $listener->query_safe('SELECT 1') . "\n";
		while ($pending =~ s/^.*?Asynchronous notification "expand_contract" with payload "(.*?)" received from server process with PID \d+\.\n//s)
		{
			push @got, decode_json($1);
		}
		last if @got >= $n;
		usleep(100_000);
	}
	is(scalar(@got), $n, "$n notification(s) for $what");
	return @got;
}

sub summary
{
	return join(' ', map {
		my $e = $_;
		join(',', map { "$_=$e->{$_}" } grep { $_ ne 'error' } sort keys %$e)
	} @_);
}

# 1. A migration from start to complete.
$node->safe_psql('postgres', q{
  SET expand_contract.start_paused = on;
  SELECT ec_start('v1', '{"operations": [
    {"alter_column": {"table": "t", "column": "cents", "type": "bigint"}},
    {"create_index": {"name": "t_by_id", "table": "t", "columns": [{"column": "id"}]}}]}');
});
$node->safe_psql('postgres', q{SELECT ec_pause('public')});
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
$node->safe_psql('postgres', q{CALL ec_wait()});
$node->safe_psql('postgres', q{SELECT ec_complete('public')});
my @got = events(6, 'a migration from start to complete');
is(summary(@got),
	'event=started,migration=v1,schema=public event=paused,migration=v1,schema=public '
	  . 'event=resumed,migration=v1,schema=public event=backfill_done,migration=v1,schema=public,table=t '
	  . 'event=index_built,index=t_by_id,migration=v1,schema=public,table=t '
	  . 'event=completed,migration=v1,schema=public',
	'each phase change, in order, with its table and index');

# 2. Nothing from transactions that roll back.
$node->safe_psql('postgres', q{
  BEGIN;
  SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "t", "column": "cents", "type": "int"}}]}');
  ROLLBACK;
});

# 3. A failing backfill: task_failed, with its table and the error, cut short to fit; rolled_back.
$node->safe_psql('postgres', q{
  SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "t", "column": "cents",
    "name": "amount", "type": "bigint", "up": "long_failure(cents::int)", "down": "amount::int"}}]}');
});
ok( wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('public')}, 'failed', 60,
		'the backfill to fail'),
	'the backfill failed');
$node->safe_psql('postgres', q{BEGIN; SELECT ec_rollback('public'); ROLLBACK;});
$node->safe_psql('postgres', q{SELECT ec_rollback('public')});
@got = events(3, 'a failure and a rollback');
is(summary(@got),
	'event=started,migration=v2,schema=public event=task_failed,migration=v2,schema=public,table=t '
	  . 'event=rolled_back,migration=v2,schema=public',
	'the rolled-back transactions sent nothing; the failure and the rollback, in order');
like($got[1]{error} // '', qr/^no: (\x{e9}"\\){100}.*\.\.\.$/s, 'the failure\'s error, cut short, parses back');

# 4. A backfill split into parts, two workers filling them: one backfill_done, after the last part.
$node->safe_psql('postgres', q{
  CREATE TABLE big (id int PRIMARY KEY, cents int NOT NULL, pad text);
  INSERT INTO big SELECT g, g, repeat('x', 200) FROM generate_series(1, 100000) g;
  SET expand_contract.start_paused = on;
  SELECT ec_start('v3', '{"operations": [{"alter_column": {"table": "big", "column": "cents", "type": "bigint"}}]}');
  SELECT ec_configure('public', '{"max_parallel_workers": 2}');
});
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
$node->safe_psql('postgres', q{CALL ec_wait()});
my $parts = $node->safe_psql('postgres', q{SELECT count(*) FROM expand_contract.tasks t
  JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE m.name = 'v3' AND t.kind = 'backfill'});
cmp_ok($parts, '>', 1, "the backfill was split ($parts parts)");
$node->safe_psql('postgres', q{SELECT ec_complete('public')});
@got = events(4, 'a backfill in parts');
is(summary(@got),
	'event=started,migration=v3,schema=public event=resumed,migration=v3,schema=public '
	  . 'event=backfill_done,migration=v3,schema=public,table=big event=completed,migration=v3,schema=public',
	'one backfill_done for the table, whichever part finished last');

# 5. A revert window: completed, then reverted; another completed, then cleaned up.
$node->safe_psql('postgres', q{
  SELECT ec_start('v4', '{"operations": [{"rename_column": {"table": "t", "from": "cents", "to": "amount"}}]}');
  SELECT ec_complete('public', revert_window => '1 hour');
  SELECT ec_revert('public');
  SELECT ec_start('v5', '{"operations": [{"rename_column": {"table": "t", "from": "cents", "to": "amount"}}]}');
  SELECT ec_complete('public', revert_window => '1 hour');
  SELECT ec_cleanup('public');
});
@got = events(6, 'a revert window');
is(summary(@got),
	'event=started,migration=v4,schema=public event=completed,migration=v4,schema=public '
	  . 'event=reverted,migration=v4,schema=public '
	  . 'event=started,migration=v5,schema=public event=completed,migration=v5,schema=public '
	  . 'event=cleaned_up,migration=v5,schema=public',
	'reverted after ec_revert, cleaned_up after ec_cleanup');

my @rest = events(0, 'nothing more');

$listener->quit;
done_testing();
