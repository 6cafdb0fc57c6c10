# A batch that waits for a row the application updates rechecks the row's new version (EvalPlanQual)
# with expand_contract.unfilled(), whose per-page answers must not outlive the versions they were
# about: here a VACUUM frees the slot of a dead version from before the migration while the batch
# waits, and a new-version write lands in that slot.  The batch must leave that write alone (found in
# review: a cached answer for the dead version overwrote it with "up" of the old column).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;

my $node = PostgreSQL::Test::Cluster->new('recheck');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\nexpand_contract.nice_ratio = 0\n");
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
  INSERT INTO t SELECT g, repeat('a', 90) FROM generate_series(1, 70) g;
  UPDATE t SET v = v WHERE id = 70;
  BEGIN;
  SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "t", "column": "v", "name": "w",
    "type": "text", "up": "upper(v)", "down": "lower(w)"}}]}');
  SELECT ec_pause('public');
  COMMIT;
  UPDATE t SET v = v WHERE id = 70;
});

my $old = $node->background_psql('postgres');
my $new = $node->background_psql('postgres');
$old->query_safe(q{BEGIN; UPDATE t SET v = v WHERE id = 1});
$new->query_safe(q{SET search_path TO public_v1, public; BEGIN; SELECT id FROM t WHERE id = 2 FOR UPDATE});
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
ok(wait_for($node, 'postgres', q{SELECT count(*) FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill' AND wait_event = 'transactionid'}, '1', 30),
	'the batch waits for the row the old version updates');
$old->query_safe('COMMIT');
$node->safe_psql('postgres', 'VACUUM t');
$new->query_safe(q{UPDATE t SET w = repeat('MiXeD', 20) WHERE id = 2; COMMIT});
$old->quit;
$new->quit;
$node->safe_psql('postgres', 'CALL ec_wait()');

is($node->safe_psql('postgres', q{SET search_path TO public_v1; SELECT w FROM t WHERE id = 2}),
	'MiXeD' x 20, 'the new version\'s write survives the batch\'s recheck');
is($node->safe_psql('postgres', q{SELECT count(*) FROM public_v1.t WHERE id <> 2 AND w <> upper(repeat('a', 90))}),
	'0', 'every other row filled from up');
$node->safe_psql('postgres', 'SELECT ec_complete()');

done_testing();
