# A data-moving migration leaves the table compact (src/compact.c): against the same change made
# offline (ALTER TABLE ... TYPE, then VACUUM), the heap is at most 1.2x and the indexes 1.1x after
# ec_complete and a VACUUM; with expand_contract.compact off they are about twice the size (so the
# comparison means something).  The VACUUM after the backfill truncates nothing, so the heap's size
# is what the pruning during the backfill kept.  A snapshot older than the backfill reads the rows
# as they were (nothing it sees is pruned).  The VACUUM and REINDEX CONCURRENTLY tasks show in
# ec_status (a cancelled VACUUM is retried); one interrupted REINDEX
# leaves no invalid index behind, nor does a kill -9 in the middle of one; pg_repack works on the
# table after ec_complete.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('compact');
$node->init;
$node->append_conf('postgresql.conf', qq{
autovacuum = off
expand_contract.nice_ratio = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION expand_contract');

my $nrows = 300000;

sub load
{
	my ($name) = @_;
	$node->safe_psql('postgres', qq{
	  DROP TABLE IF EXISTS $name CASCADE;
	  CREATE TABLE $name (id bigint PRIMARY KEY, a int, b text);
	  CREATE INDEX ${name}_b ON $name (b);
	  INSERT INTO $name SELECT g, g, md5(g::text) FROM generate_series(1, $nrows) g;
	  VACUUM ANALYZE $name;
	});
}

sub sizes
{
	my ($name) = @_;
	return split /\|/, $node->safe_psql('postgres',
		"SELECT pg_relation_size('$name') || '|' || pg_indexes_size('$name')");
}

my $migration = q{'{"operations": [{"alter_column": {"table": "t", "column": "a", "type": "bigint",
  "up": "a", "down": "a::int"}}]}'};

# The offline change, on a twin.
load('t_offline');
$node->safe_psql('postgres', 'ALTER TABLE t_offline ALTER COLUMN a TYPE bigint; VACUUM t_offline');
my ($off_heap, $off_index) = sizes('t_offline');

my $version = 0;

sub migrate
{
	my ($settings) = @_;
	load('t');
	$version++;
	$node->safe_psql('postgres', qq{
	  BEGIN;
	  SELECT ec_start('v$version', $migration);
	  SELECT ec_configure('public', '$settings');
	  COMMIT;
	});
	$node->safe_psql('postgres', 'CALL ec_wait()');
	$node->safe_psql('postgres', 'SELECT ec_complete(); VACUUM t');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE a IS DISTINCT FROM id'), '0',
		"$settings: every row converted");
	return sizes('t');
}

my ($heap, $index) = migrate('{}');
note sprintf('compact: heap %.2fx, indexes %.2fx of the offline change', $heap / $off_heap, $index / $off_index);
cmp_ok($heap / $off_heap, '<=', 1.2, 'heap at most 1.2x the offline change');
cmp_ok($index / $off_index, '<=', 1.1, 'indexes at most 1.1x the offline change');
my ($vacuum_state, $vacuums) = split /\|/, $node->safe_psql('postgres', q{SELECT state || '|' || batches
  FROM expand_contract.tasks WHERE kind = 'compact' AND sql LIKE 'VACUUM%'
   AND migration_id = (SELECT max(id) FROM expand_contract.migrations)});
is($vacuum_state, 'done', 'the VACUUM task is done');
is($vacuums, '0', 'no VACUUM during the backfill: its batches prune instead');

my ($heap_off, $index_off) = migrate('{"compact": false}');
note sprintf('compact off: heap %.2fx, indexes %.2fx', $heap_off / $off_heap, $index_off / $off_index);
cmp_ok($heap_off / $off_heap, '>=', 1.5, 'compact off: the heap is much bigger (what compact saves)');
cmp_ok($index_off / $off_index, '>=', 1.5, 'compact off: so are the indexes');
is($node->safe_psql('postgres', q{SELECT string_agg(detail, ', ') FROM expand_contract.tasks
  WHERE kind = 'compact' AND migration_id = (SELECT max(id) FROM expand_contract.migrations)}),
	'skipped: expand_contract.compact is off, skipped: expand_contract.compact is off, skipped: expand_contract.compact is off',
	'compact off: the VACUUM and REINDEX tasks were skipped');

############################################################################
# A snapshot taken before the backfill: the pages the batches fill are pruned only of what no
# snapshot sees, so it reads every row as it was, and the backfill still finishes.
############################################################################
load('t');
my $before = $node->safe_psql('postgres', q{SELECT count(*) || '|' || sum(a) || '|' || sum(length(b)) FROM t});
# The snapshot is taken on another table: a lock on t would hold ec_start off.
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t_offline');
$node->safe_psql('postgres', qq{SELECT ec_start('v20', $migration)});
ok(wait_for($node, 'postgres', q{SELECT bool_and(state = 'done') FROM expand_contract.tasks
  WHERE kind = 'backfill' AND migration_id = (SELECT max(id) FROM expand_contract.migrations)}, 't', 120),
	'the backfill finishes under an older snapshot');
is($reader->query_safe(q{SELECT count(*) || '|' || sum(a) || '|' || sum(length(b)) FROM t}), $before,
	'the older snapshot still reads every row as it was');
$reader->query_safe('COMMIT');
$reader->quit;
$node->safe_psql('postgres', 'CALL ec_wait()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE a IS DISTINCT FROM id'), '0',
	'under an older snapshot: every row converted');
$node->safe_psql('postgres', 'SELECT ec_complete()');

############################################################################
# The VACUUM after the backfill is a task of its own in ec_status, with its progress; one
# cancelled is retried.  vacuum_cost_delay (read by the worker from the database's settings) slows
# it down enough to watch.
############################################################################
load('t');
$node->safe_psql('postgres', q{ALTER DATABASE postgres SET vacuum_cost_delay = '20ms';
  ALTER DATABASE postgres SET vacuum_cost_limit = 1});
$node->safe_psql('postgres', qq{SELECT ec_start('v13', $migration)});
ok(wait_for($node, 'postgres', q{SELECT tasks ~ 'vacuum public\.t running \([a-z ]+(, \d+% of blocks)?\)'
  FROM ec_status('public')}, 't', 120),
	'ec_status shows the VACUUM as a task of its own, with its progress')
	or diag($node->safe_psql('postgres', q{SELECT tasks FROM ec_status('public')}));
is($node->safe_psql('postgres', q{SELECT backfill_state FROM ec_status('public')}), 'done',
	'after the backfill');
is($node->safe_psql('postgres', q{SELECT bool_and(pg_cancel_backend(pid)) FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill' AND query LIKE 'VACUUM%'}),
	't', 'the VACUUM is cancelled');
ok(wait_for($node, 'postgres', q{SELECT detail LIKE 'retrying after: canceling statement%'
  FROM expand_contract.tasks WHERE kind = 'compact' AND sql LIKE 'VACUUM%'
   AND migration_id = (SELECT max(id) FROM expand_contract.migrations)}, 't', 60),
	'the cancelled VACUUM: its task says it is retried')
	or diag($node->safe_psql('postgres', q{SELECT state || ' ' || coalesce(detail, '') FROM expand_contract.tasks
  WHERE kind = 'compact' AND migration_id = (SELECT max(id) FROM expand_contract.migrations)}));
$node->safe_psql('postgres', q{ALTER DATABASE postgres RESET vacuum_cost_delay;
  ALTER DATABASE postgres RESET vacuum_cost_limit});
# A new worker, without the slow settings.
$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill'});
$node->safe_psql('postgres', q{SELECT count(*) FROM ec_status()});
$node->safe_psql('postgres', 'CALL ec_wait()');
# (the backfill may be split into parts: one row each)
is($node->safe_psql('postgres', q{SELECT count(DISTINCT seq) || ' tasks, ' || count(*) FILTER (WHERE state <> 'done')
  || ' not done' FROM expand_contract.tasks WHERE migration_id = (SELECT max(id) FROM expand_contract.migrations)}),
	'4 tasks, 0 not done', 'after the cancel: the backfill, the VACUUM and the REINDEX tasks done');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE a IS DISTINCT FROM id'), '0',
	'after the cancel: every row converted');
$node->safe_psql('postgres', 'SELECT ec_complete()');

############################################################################
# The REINDEX tasks in ec_status; one interrupted leaves nothing invalid behind.
############################################################################
load('t');
$node->safe_psql('postgres', qq{SET expand_contract.start_paused = on; SELECT ec_start('v9', $migration)});
like($node->safe_psql('postgres', q{SELECT tasks FROM ec_status('public')}),
	qr/reindex public\.t_pkey paused; reindex public\.t_b paused/, 'ec_status lists the REINDEX tasks');

# A transaction holding a snapshot: REINDEX CONCURRENTLY waits for it after building t_pkey_ccnew.
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t_offline');
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
ok(wait_for($node, 'postgres',
		q{SELECT count(*) > 0 FROM pg_class WHERE relname = 't_pkey_ccnew'}, 't', 120),
	'the worker is in the middle of REINDEX CONCURRENTLY of t_pkey');
is($node->safe_psql('postgres', q{SELECT bool_and(pg_cancel_backend(pid)) FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill' AND query LIKE 'REINDEX%'}),
	't', 'the REINDEX CONCURRENTLY is cancelled');
$holder->query_safe('COMMIT');
$holder->quit;
$node->safe_psql('postgres', 'CALL ec_wait()');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
  WHERE c.relname LIKE 't%cc%' OR NOT i.indisvalid}),
	'0', 'after a cancelled REINDEX CONCURRENTLY and its retry: no _ccnew/_ccold, no invalid index');

############################################################################
# pg_repack: refused while the migration moves the table's data, fine after ec_complete.
############################################################################
$node->safe_psql('postgres', 'CREATE EXTENSION pg_repack');
my ($out, $err) = ('', '');
ok( !IPC::Run::run([ 'pg_repack', '--table=public.t', '-h', $node->host, '-p', $node->port,
		'-d', 'postgres' ], '>', \$out, '2>', \$err),
	'pg_repack during the migration fails');
like($err, qr/cannot repack table "t" while migration "v9" moves its data/, 'with a clear error');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'repack%'}), '0',
	'and leaves no trigger of its own');
$node->safe_psql('postgres', 'SELECT ec_complete()');
($out, $err) = ('', '');
my $ok = IPC::Run::run([ 'pg_repack', '--table=public.t', '-h', $node->host, '-p', $node->port,
	'-d', 'postgres' ], '>', \$out, '2>', \$err);
ok($ok, 'pg_repack of the migrated table succeeds') or diag($err);
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE a IS DISTINCT FROM id'), '0',
	'every row intact after pg_repack');
($heap) = sizes('t');
cmp_ok($heap / $off_heap, '<=', 1.2, 'compact after pg_repack');

############################################################################
# ec_complete does not wait for compaction: it skips what is left, dropping an interrupted
# REINDEX's invalid index under its own locks.
############################################################################
load('t');
$holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t_offline');
$node->safe_psql('postgres', qq{SELECT ec_start('v10', $migration)});
ok(wait_for($node, 'postgres',
		q{SELECT count(*) > 0 FROM pg_class WHERE relname = 't_pkey_ccnew'}, 't', 120),
	'the worker is in the middle of REINDEX CONCURRENTLY, held up by an old snapshot');
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT ec_complete()');
is($ret, 0, 'ec_complete does not wait for it');
like($stderr, qr/NOTICE:  2 compaction task\(s\) of the migration skipped/,
	'and says which work it skipped');
$holder->query_safe('COMMIT');
$holder->quit;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
  WHERE c.relname LIKE 't%cc%' OR NOT i.indisvalid}),
	'0', 'no _ccnew left behind, no invalid index');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE a IS DISTINCT FROM id'), '0',
	'every row converted');

############################################################################
# kill -9 in the middle of a REINDEX CONCURRENTLY: after crash recovery the task's cleanup drops the
# invalid index the crash left, the rebuild runs again, and nothing invalid is left.
############################################################################
load('t');
$node->safe_psql('postgres', q{ALTER SYSTEM SET restart_after_crash = on; SELECT pg_reload_conf()});
$holder = $node->background_psql('postgres', on_error_die => 0);
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t_offline');
$node->safe_psql('postgres', qq{SELECT ec_start('v12', $migration)});
ok(wait_for($node, 'postgres',
		q{SELECT count(*) > 0 FROM pg_class WHERE relname = 't_pkey_ccnew'}, 't', 120),
	'kill -9: the worker is in the middle of REINDEX CONCURRENTLY of t_pkey');
my $reindex_pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill' AND query LIKE 'REINDEX%'});
like($reindex_pid, qr/^\d+$/, "kill -9: the REINDEX runs in the worker (pid $reindex_pid)");
# Paused, so that the worker relaunched after recovery does not clean up before we look.
$node->safe_psql('postgres', q{SELECT ec_pause('public')});
my $log_offset = -s $node->logfile;
kill 'KILL', $reindex_pid;
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
ok(wait_for($node, 'postgres', 'SELECT 1', '1', 60, 'crash recovery'), 'kill -9: the server is back');
eval { $holder->quit };
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
  WHERE c.relname = 't_pkey_ccnew' AND NOT i.indisvalid}),
	'1', 'kill -9: the crash left the invalid t_pkey_ccnew');
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
$node->safe_psql('postgres', 'CALL ec_wait()');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
  WHERE c.relname LIKE 't%cc%' OR NOT i.indisvalid}),
	'0', 'kill -9: after recovery and the retry, no _ccnew/_ccold and no invalid index');
is($node->safe_psql('postgres', q{SELECT string_agg(state, ',') FROM expand_contract.tasks
  WHERE kind = 'compact' AND migration_id = (SELECT max(id) FROM expand_contract.migrations)}),
	'done,done,done', 'kill -9: the VACUUM and both REINDEX tasks done');
$node->safe_psql('postgres', 'SELECT ec_complete(); VACUUM t');
($heap, $index) = sizes('t');
cmp_ok($index / $off_index, '<=', 1.1, 'kill -9: the indexes end compact');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE a IS DISTINCT FROM id'), '0',
	'kill -9: every row converted');

############################################################################
# A partitioned table: compacted per leaf.
############################################################################
for my $name ('pt', 'pt_offline')
{
	$node->safe_psql('postgres', qq{
	  CREATE TABLE $name (id bigint PRIMARY KEY, a int, b text) PARTITION BY RANGE (id);
	  CREATE TABLE ${name}_1 PARTITION OF $name FOR VALUES FROM (1) TO (200001);
	  CREATE TABLE ${name}_2 PARTITION OF $name FOR VALUES FROM (200001) TO (400001);
	  INSERT INTO $name SELECT g, g, md5(g::text) FROM generate_series(1, 400000) g;
	  VACUUM ANALYZE $name;
	});
}
$node->safe_psql('postgres', 'ALTER TABLE pt_offline ALTER COLUMN a TYPE bigint; VACUUM pt_offline');
$node->safe_psql('postgres', q{SELECT ec_start('v11', '{"operations": [{"alter_column": {"table": "pt",
  "column": "a", "type": "bigint", "up": "a", "down": "a::int"}}]}')});
$node->safe_psql('postgres', 'CALL ec_wait()');
is($node->safe_psql('postgres', q{SELECT string_agg(sql, '; ' ORDER BY seq) FROM expand_contract.tasks
  WHERE kind = 'compact' AND migration_id = (SELECT max(id) FROM expand_contract.migrations)}),
	'VACUUM (SKIP_LOCKED, TRUNCATE false) public.pt_1; REINDEX INDEX CONCURRENTLY public.pt_1_pkey; '
	. 'VACUUM (SKIP_LOCKED, TRUNCATE false) public.pt_2; REINDEX INDEX CONCURRENTLY public.pt_2_pkey',
	'partitioned: one VACUUM per leaf and one REINDEX per leaf index');
$node->safe_psql('postgres', 'SELECT ec_complete(); VACUUM pt');
for my $leaf ('pt_1', 'pt_2')
{
	my ($h, $i) = sizes($leaf);
	my ($oh, $oi) = sizes($leaf =~ s/pt/pt_offline/r);
	note sprintf('partition %s: heap %.2fx, indexes %.2fx of the offline change', $leaf, $h / $oh, $i / $oi);
	# 16 MB leaves, each pruned as its backfill goes like a plain table (measured 1.04-1.06x here
	# on 2026-12-02 with a VACUUM after each twentieth instead).
	cmp_ok($h / $oh, '<=', 1.2, "partition $leaf: heap at most 1.2x the offline change (1.9x without)");
	cmp_ok($i / $oi, '<=', 1.1, "partition $leaf: indexes at most 1.1x");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM pt WHERE a IS DISTINCT FROM id'), '0',
	'partitioned: every row converted');

done_testing();
