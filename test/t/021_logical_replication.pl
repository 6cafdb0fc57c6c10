# Logical replication keeps flowing through a migration (issue 14).  A publisher with
# CREATE PUBLICATION p FOR TABLE t and a subscriber on a second cluster; the same migration (t.cents
# integer to bigint) runs on both, the way the README's "Logical replication" section says:
# start on both (publisher first here), complete on the subscriber first, then on the publisher.
# Writes through both versions of the publisher while both backfills run, between the two completes
# and after them.
#
# Proves: while the publisher's migration is active its publication's entry for t has a column
# list without the helper column (before the fix, the first write after ec_start stopped the
# subscriber for good with 'missing replicated column: "_ec_new_cents"'); the subscriber's
# dual-write trigger fills its own helper column from the replicated writes (it fires under
# session_replication_role = replica); after both completes the subscriber's rows equal the
# publisher's, in every column; the apply worker never failed (pg_stat_subscription_stats, and no
# logical replication ERROR in the subscriber's log); the publisher's slot's confirmed_flush_lsn
# advanced past the last writes; the entry has no column list again.  Then a rename_column, which a
# subscriber cannot follow without errors: completed on the publisher first, the subscriber's apply
# worker fails on the new name until the subscriber completes too, and has every row afterwards.
# Last, revert windows on the publisher (the subscriber completed without one): twice an
# alter_column completed with a window, during which the entry lists the table's columns without
# the kept-aside one and both versions write; once ended by ec_revert, once by ec_cleanup; the
# subscriber's rows equal the publisher's after each, and its apply worker still never failed.
# Then a drop_table completed with a window: the kept-aside table leaves the publication, and the
# previous version's writes to it never reach the subscriber, which dropped the table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;

my $rows = 20000;
my $schema_sql = q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE t (id int PRIMARY KEY, cents int NOT NULL, note text);
};

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "wal_retrieve_retry_interval = 500ms\n");
$sub->start;

$pub->safe_psql('postgres', $schema_sql);
$sub->safe_psql('postgres', $schema_sql);
$pub->safe_psql('postgres', qq{
  INSERT INTO t SELECT g, g, 'row ' || g FROM generate_series(1, $rows) g;
  CREATE PUBLICATION p FOR TABLE t;
});
my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION s CONNECTION '$connstr' PUBLICATION p");
ok( $sub->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')}),
	'initial copy done');
$pub->wait_for_catchup('s');

my $migration = q{'{"operations": [{"alter_column": {"table": "t", "column": "cents", "type": "bigint"}}]}'};
# Slow backfills (batches of 200, 20 ms apart), so that the writes below run during them.
my $start = qq{
  SELECT ec_start('v1', $migration);
  SELECT ec_configure('public', '{"batch_size": 200, "batch_delay_ms": 20}');
};

# One round of writes through each version of the publisher, on keys of its own (round $r).  The new
# version updates and deletes only rows written during the migration: before the backfill reaches
# a row, its new column reads NULL there (README, Choosing a version).
my $round = 0;
sub writes
{
	$round++;
	my $base = $rows + 1000 * $round;
	my ($old, $new) = ($base, $base + 500);
	$pub->safe_psql('postgres', qq{
	  INSERT INTO t (id, cents, note) SELECT g, g, 'old $round' FROM generate_series($old, $old + 99) g;
	  UPDATE t SET cents = cents + 1, note = 'old upd $round' WHERE id % 97 = $round;
	  DELETE FROM t WHERE id % 1009 = $round;
	});
	return if $pub->safe_psql('postgres', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'public_v1'}) eq '0';
	$pub->safe_psql('postgres', qq{
	  BEGIN;
	  SET LOCAL expand_contract.version = 'public_v1';
	  INSERT INTO public_v1.t (id, cents, note) SELECT g, g * 2, 'new $round' FROM generate_series($new, $new + 99) g;
	  UPDATE public_v1.t SET cents = cents + 2, note = 'new upd $round' WHERE id > $rows AND id % 89 = $round;
	  DELETE FROM public_v1.t WHERE id > $rows AND id % 13 = $round;
	  COMMIT;
	});
}

sub same_rows
{
	my ($what) = @_;
	$pub->wait_for_catchup('s');
	my $q = q{SELECT count(*) || ' ' || md5(string_agg(id || ':' || cents || ':' || coalesce(note, '-'), ',' ORDER BY id)) FROM t};
	is($sub->safe_psql('postgres', $q), $pub->safe_psql('postgres', $q),
		"$what: the subscriber's rows equal the publisher's");
}

# The publisher starts first; writes reach the subscriber while its table is unchanged.
$pub->safe_psql('postgres', $start);
is($pub->safe_psql('postgres', q{SELECT attnames FROM pg_publication_tables WHERE pubname = 'p'}),
	'{id,cents,note}', 'while the migration is active, p publishes t without the helper column');
writes() for 1 .. 3;
same_rows('publisher migrating');

# The subscriber starts the same migration; replicated writes fill its helper column too.
$sub->safe_psql('postgres', $start);
ok( wait_for($pub, 'postgres', q{SELECT backfill_state FROM ec_status()}, 'running', 30,
		'the publisher\'s backfill to run'),
	'the publisher\'s backfill runs');
my $rounds_during = 0;
while ($rounds_during < 40)
{
	writes();
	$rounds_during++;
	last if $pub->safe_psql('postgres', q{SELECT backfill_state FROM ec_status()}) eq 'done'
	  && $sub->safe_psql('postgres', q{SELECT backfill_state FROM ec_status()}) eq 'done';
}
cmp_ok($rounds_during, '>', 1, 'rounds of writes ran during the backfills');
$sub->safe_psql('postgres', 'CALL ec_wait()');
$pub->safe_psql('postgres', 'CALL ec_wait()');
same_rows('both migrating');
$pub->wait_for_catchup('s');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM t WHERE _ec_new_cents IS DISTINCT FROM cents}),
	'0', 'on the subscriber, every replicated row has its new column');

# Complete: the subscriber first (its bigint column takes the publisher's integer values), then the
# publisher, whose publication publishes every column again.
$sub->safe_psql('postgres', 'SELECT ec_complete()');
writes() for 1 .. 2;
same_rows('subscriber complete');
$pub->safe_psql('postgres', 'SELECT ec_complete()');
is($pub->safe_psql('postgres',
		q{SELECT prattrs IS NULL FROM pg_publication_rel WHERE prrelid = 't'::regclass}),
	't', 'after complete, p publishes t without a column list again');
my $flushed = $pub->safe_psql('postgres', q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's'});
writes() for 1 .. 2;
$pub->safe_psql('postgres', q{INSERT INTO t (id, cents, note) VALUES (3000000, 5000000000, 'beyond integer')});
same_rows('both complete');
is($sub->safe_psql('postgres', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'cents'}),
	'bigint', 'the subscriber\'s column is bigint');
ok( $pub->poll_query_until('postgres',
		qq{SELECT confirmed_flush_lsn > '$flushed' FROM pg_replication_slots WHERE slot_name = 's'}),
	'the slot\'s confirmed_flush_lsn advances past the last writes');

is($sub->safe_psql('postgres', q{SELECT apply_error_count || ' ' || sync_error_count FROM pg_stat_subscription_stats}),
	'0 0', 'the apply worker never failed');
my $log = slurp_file($sub->logfile);
unlike($log, qr/ERROR:.*logical replication|ERROR:.*replicated column/, 'no logical replication error in the subscriber\'s log');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL}),
	'1', 'the apply worker is running');

# A rename is what a subscriber cannot follow without errors (README): complete on the publisher
# first, then on the subscriber.  Until the subscriber has completed, its apply worker fails on the
# first change under the new name and retries it; nothing is lost.
my $rename = q{'{"operations": [{"rename_column": {"table": "t", "from": "note", "to": "remark"}}]}'};
$pub->safe_psql('postgres', "SELECT ec_start('v2', $rename)");
$sub->safe_psql('postgres', "SELECT ec_start('v2', $rename)");
$pub->safe_psql('postgres', q{UPDATE t SET note = 'before rename' WHERE id % 50 = 0});
$pub->safe_psql('postgres', 'SELECT ec_complete()');
$pub->safe_psql('postgres', q{UPDATE t SET remark = 'after rename' WHERE id % 70 = 0;
  INSERT INTO t (id, cents, remark) VALUES (3000001, 1, 'renamed')});
ok( $sub->poll_query_until('postgres', q{SELECT apply_error_count > 0 FROM pg_stat_subscription_stats}),
	'rename, publisher completed first: the subscriber\'s apply worker fails on the new name');
$sub->safe_psql('postgres', 'SELECT ec_complete()');
$pub->wait_for_catchup('s');
my $q = q{SELECT count(*) || ' ' || md5(string_agg(id || ':' || cents || ':' || coalesce(remark, '-'), ',' ORDER BY id)) FROM t};
is($sub->safe_psql('postgres', $q), $pub->safe_psql('postgres', $q),
	'rename, once the subscriber has completed too: it has every row');

# A revert window on the publisher (the subscriber completes without one): the column it keeps
# aside (_ec_old_remark) is not published meanwhile, so the subscriber keeps applying every write of
# either version; ec_revert and then, on a second run, the window's cleanup give the entry back its
# shape (no column list).
my $errors_before = $sub->safe_psql('postgres', q{SELECT apply_error_count FROM pg_stat_subscription_stats});
my $widen = q{'{"operations": [{"alter_column": {"table": "t", "column": "remark", "type": "varchar(200)"}}]}'};
my $next_id = 4000000;
sub window_writes
{
	my ($what) = @_;
	my ($new, $old) = ($next_id, $next_id + 100);
	$next_id += 1000;
	# The new version (the base table) and the previous one (public_v2's views, which still read and
	# write the kept-aside column).
	$pub->safe_psql('postgres', qq{
	  INSERT INTO t (id, cents, remark) SELECT g, g, '$what new' FROM generate_series($new, $new + 49) g;
	  UPDATE t SET remark = '$what new upd' WHERE id % 83 = 1;
	  BEGIN;
	  SET LOCAL expand_contract.version = 'public_v2';
	  INSERT INTO public_v2.t (id, cents, remark) SELECT g, g, '$what old' FROM generate_series($old, $old + 49) g;
	  UPDATE public_v2.t SET remark = '$what old upd' WHERE id % 79 = 1;
	  DELETE FROM public_v2.t WHERE id % 1013 = 7;
	  COMMIT;
	});
}
sub same_remarks
{
	my ($what) = @_;
	$pub->wait_for_catchup('s');
	is($sub->safe_psql('postgres', $q), $pub->safe_psql('postgres', $q),
		"$what: the subscriber's rows equal the publisher's");
}
$sub->safe_psql('postgres', "SELECT ec_start('v3', $widen)");
$sub->safe_psql('postgres', 'CALL ec_wait()');
$sub->safe_psql('postgres', 'SELECT ec_complete()');
for my $run (1, 2)
{
	$pub->safe_psql('postgres', "SELECT ec_start('v3', $widen)");
	$pub->safe_psql('postgres', 'CALL ec_wait()');
	$pub->safe_psql('postgres', q{SELECT ec_complete(revert_window => '1 hour')});
	is($pub->safe_psql('postgres', q{SELECT phase FROM ec_status()}), 'revert window', "window run $run: the window is open");
	like($pub->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	    WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped}), qr/_ec_old_remark/,
		"window run $run: the old column is kept aside");
	is($pub->safe_psql('postgres', q{SELECT attnames FROM pg_publication_tables WHERE pubname = 'p'}),
		'{id,cents,remark}', "window run $run: p publishes t without the kept-aside column");
	window_writes("window $run") for 1 .. 3;
	same_remarks("window run $run, during the window");
	if ($run == 1)
	{
		$pub->safe_psql('postgres', 'SELECT ec_revert()');
		is($pub->safe_psql('postgres', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		    WHERE attrelid = 't'::regclass AND attname = 'remark'}), 'text', 'after ec_revert, remark is text again');
	}
	else
	{
		$pub->safe_psql('postgres', 'SELECT ec_cleanup()');
		is($pub->safe_psql('postgres', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		    WHERE attrelid = 't'::regclass AND attname = 'remark'}), 'character varying(200)',
			'after ec_cleanup, remark is varchar(200)');
	}
	is($pub->safe_psql('postgres', q{SELECT prattrs IS NULL FROM pg_publication_rel WHERE prrelid = 't'::regclass}),
		't', "window run $run: after the " . ($run == 1 ? 'revert' : 'cleanup') . ', p publishes t without a column list again');
	$pub->safe_psql('postgres', q{UPDATE t SET remark = remark || '.' WHERE id % 61 = 3});
	same_remarks("window run $run, after the " . ($run == 1 ? 'revert' : 'cleanup'));
}

# A dropped table, kept aside by a window as _ec_dropped_notes: it leaves p meanwhile, so the
# previous version's writes to it are not sent to the subscriber, which dropped its table at
# complete (a change for a table it lacks would stop its apply worker).  The table comes from a
# migration, so that the window's previous version (public_v3b) shows it.
my $notes = q{'{"operations": [{"create_table": {"name": "notes", "columns": [
  {"name": "id", "type": "int", "pk": true}, {"name": "body", "type": "text", "nullable": true}]}}]}'};
for my $node ($pub, $sub)
{
	$node->safe_psql('postgres', "SELECT ec_start('v3b', $notes)");
	$node->safe_psql('postgres', 'SELECT ec_complete()');
}
$pub->safe_psql('postgres', q{
  INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g;
  ALTER PUBLICATION p ADD TABLE notes;
});
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION s REFRESH PUBLICATION');
ok( $sub->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')}),
	'notes: initial copy done');
$pub->wait_for_catchup('s');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM notes'), '100', 'notes: the subscriber has its rows');
my $drop_notes = q{'{"operations": [{"drop_table": {"name": "notes"}}]}'};
$sub->safe_psql('postgres', "SELECT ec_start('v4', $drop_notes)");
$sub->safe_psql('postgres', 'SELECT ec_complete()');
$pub->safe_psql('postgres', "SELECT ec_start('v4', $drop_notes)");
$pub->safe_psql('postgres', q{SELECT ec_complete(revert_window => '1 hour')});
is($pub->safe_psql('postgres', q{SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'p'}),
	't', 'dropped-table window: p publishes t only, not the kept-aside table');
$pub->safe_psql('postgres', q{
  BEGIN;
  SET LOCAL expand_contract.version = 'public_v3b';
  INSERT INTO public_v3b.notes SELECT g, 'late ' || g FROM generate_series(101, 150) g;
  UPDATE public_v3b.notes SET body = body || '!' WHERE id % 7 = 0;
  COMMIT;
  UPDATE t SET remark = remark || '+' WHERE id % 67 = 5;
});
is($pub->safe_psql('postgres', 'SELECT count(*) FROM _ec_dropped_notes'), '150',
	'dropped-table window: the previous version writes to the kept-aside table');
same_remarks('dropped-table window, after writes to the kept-aside table');
$pub->safe_psql('postgres', 'SELECT ec_cleanup()');
is($pub->safe_psql('postgres', q{SELECT to_regclass('_ec_dropped_notes') IS NULL}), 't',
	'after the cleanup, the kept-aside table is gone');
$pub->safe_psql('postgres', q{UPDATE t SET remark = remark || '-' WHERE id % 67 = 5});
same_remarks('dropped-table window, after the cleanup');

is($sub->safe_psql('postgres', q{SELECT apply_error_count FROM pg_stat_subscription_stats}), $errors_before,
	'the apply worker never failed during the windows');

$sub->stop;
$pub->stop;
done_testing();
