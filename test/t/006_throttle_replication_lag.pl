# The backfill waits while a standby lags: with max_replication_lag_ms set, a paused replay on a
# streaming standby puts the backfill in state "throttled" with the reason, and it finishes once the
# standby catches up.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "wal_receiver_status_interval = 1s\n");
$primary->start;
$primary->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE t (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO t SELECT g, g FROM generate_series(1, 50000) g;
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "wal_receiver_status_interval = 1s\n");
$standby->start;
$primary->wait_for_catchup($standby);

# Stop replay on the standby; keep the primary writing so that replay_lag grows.
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql('postgres', q{
  SET expand_contract.start_paused = on;
  SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "t", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}');
  SELECT ec_configure('public', '{"batch_size": 500, "max_replication_lag_ms": 1000}');
});
for (1 .. 30)
{
	$primary->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS heartbeat (x int); INSERT INTO heartbeat VALUES (1)');
	last if $primary->safe_psql('postgres',
		'SELECT coalesce(extract(epoch FROM max(replay_lag)), 0) > 1.5 FROM pg_stat_replication') eq 't';
	sleep 1;
}
$primary->safe_psql('postgres', q{SELECT ec_resume('public')});

ok( $primary->poll_query_until('postgres',
		q{SELECT backfill_state = 'throttled: replication lag' FROM ec_status('public')}),
	'the backfill is throttled while the standby lags');
like($primary->safe_psql('postgres', q{SELECT detail FROM ec_status('public')}),
	qr/replication lag: \d+ ms, above max_replication_lag_ms 1000 ms/, 'ec_status says why');
my $rows = $primary->safe_psql('postgres', q{SELECT rows_done FROM ec_status('public')});
sleep 2;
is($primary->safe_psql('postgres', q{SELECT rows_done FROM ec_status('public')}), $rows,
	'no batch runs while throttled');

# Replay resumes: the lag shrinks and the backfill finishes, on the standby too.
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok( $primary->poll_query_until('postgres', q{SELECT backfill_state = 'done' FROM ec_status('public')}),
	'the backfill finishes once the standby catches up');
$primary->safe_psql('postgres', 'SELECT ec_complete()');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t WHERE amount <> id / 100.0'), '0',
	'the standby has every row backfilled');

$standby->stop;
$primary->stop;
done_testing();
