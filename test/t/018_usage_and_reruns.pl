# Who still uses the old version: with the library preloaded, the dual-write trigger counts the
# rows written through each version in shared memory, across backends and exactly (pgbench
# clients); ec_status shows them, ec_complete warns while the old version wrote within
# expand_contract.quiet_period, refuses with require_quiet, and goes through once the period has
# passed.  A restart resets the counts, and a required check cannot pass until the quiet period
# has passed since the restart.  A completed migration's slot is reused when all are taken.  Re-runs: a migration file run twice by psql -1 -f, and by plain
# psql -f (one transaction per statement) with a backfill, is safe.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Temp qw(tempdir);
use lib 'test/perl';
use ECTest;

my $node = PostgreSQL::Test::Cluster->new('usage');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'expand_contract'
expand_contract.nice_ratio = 0
});
$node->start;
my $dir = tempdir(CLEANUP => 1);

$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE orders (id bigserial PRIMARY KEY, amount_cents integer NOT NULL);
  INSERT INTO orders (amount_cents) SELECT g FROM generate_series(1, 1000) g;
  SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "orders", "column": "amount_cents",
    "name": "amount", "type": "numeric(12,2)", "up": "amount_cents / 100.0",
    "down": "(amount * 100)::integer"}}]}');
});
$node->safe_psql('postgres', 'CALL ec_wait()');

sub usage
{
	return $node->safe_psql('postgres', q{
	  SELECT concat_ws(' ', old_version_writes, old_version_last_write IS NOT NULL,
	                   new_version_writes, new_version_last_write IS NOT NULL, coalesce(usage_note, '-'))
	    FROM ec_status('public')});
}

# The backfill's 1000 rows are not writes of either version.
is(usage(), '0 f 0 f -', 'before any write: nothing counted, the backfill not either');

# Writes from several backends: each safe_psql is one.
$node->safe_psql('postgres', 'INSERT INTO orders (amount_cents) VALUES (1), (2), (3)');
$node->safe_psql('postgres', 'UPDATE orders SET amount_cents = amount_cents + 1 WHERE id <= 2');
$node->safe_psql('postgres', q{SET search_path = public_v2; INSERT INTO orders (amount) VALUES (1.50)});
$node->safe_psql('postgres', q{SET expand_contract.version = 'v2'; UPDATE public_v2.orders SET amount = 2 WHERE id = 3});
is(usage(), '5 t 2 t -', 'rows written through the old and the new version, from several backends');

# Exact under concurrency: 2 pgbench clients, 400 one-row writes each, through the old version.
my $script = "$dir/old.sql";
open(my $fh, '>', $script) or die;
print $fh "INSERT INTO orders (amount_cents) VALUES (7);\n";
close $fh;
$node->command_ok(['pgbench', '-n', '-c', '2', '-t', '400', '-f', $script, '-h', $node->host,
	'-p', $node->port, 'postgres'], 'pgbench through the old version');
is(usage(), '805 t 2 t -', 'every concurrent write counted once');

# ec_complete: a warning while the old version wrote within the quiet period (5min by default) ...
my ($ret, $out, $err) = $node->psql('postgres', 'BEGIN; SELECT ec_complete(); ROLLBACK;');
like($err, qr/WARNING:  the old version of migration "v2" wrote [0-9.]+ s ago/, 'complete warns');
like($err, qr/805 row\(s\) were written through the old version \("public"\) in the last 15 minutes; expand_contract.quiet_period is 5min/,
	'the warning counts the writes and names the quiet period');

# ... and refuses when asked to, by the argument or the setting.
($ret, $out, $err) = $node->psql('postgres', 'SELECT ec_complete(require_quiet => true)');
isnt($ret, 0, 'require_quiet: refused');
like($err, qr/ERROR:  the old version of migration "v2" wrote/, 'the error says the old version wrote');
like($err, qr/HINT:  Move the code that still uses "public" to "public_v2"/, 'and hints what to do');
($ret, $out, $err) = $node->psql('postgres', 'SET expand_contract.require_quiet = on; SELECT ec_complete()');
isnt($ret, 0, 'expand_contract.require_quiet: refused too');
($ret, $out, $err) = $node->psql('postgres',
	'SET expand_contract.require_quiet = on; BEGIN; SELECT ec_complete(require_quiet => false); ROLLBACK;');
is($ret, 0, 'require_quiet => false overrides the setting');
like($err, qr/WARNING:  the old version of migration "v2" wrote/, '... and warns');
is($node->safe_psql('postgres', q{SELECT phase FROM ec_status()}), 'active', 'still active');

# Writes through the new version do not count against the quiet period; once it has passed
# since the old version's last write, the required check passes.
$node->safe_psql('postgres', q{SET search_path = public_v2; INSERT INTO orders (amount) VALUES (3)});
($ret, $out, $err) = $node->psql('postgres', q{
  SET expand_contract.quiet_period = '500ms';
  SELECT pg_sleep(0.7);
  SELECT ec_complete(require_quiet => true);});
is($ret, 0, 'quiet for the (tiny) quiet period: complete goes through');
is($err, '', 'without a warning');
is($node->safe_psql('postgres', q{SELECT phase FROM ec_status()}), 'complete', 'complete');
is(usage(), '805 t 3 t -', 'the counts stay with the completed migration');

# A restart resets the counts: a migration started before it cannot be told quiet until the quiet
# period has passed since the restart.
$node->safe_psql('postgres', q{
  SELECT ec_start('v3', '{"operations": [{"alter_column": {"table": "orders", "column": "amount",
    "type": "numeric(14,2)", "up": "amount", "down": "amount"}}]}');
  INSERT INTO orders (amount) VALUES (9);});
$node->safe_psql('postgres', 'CALL ec_wait()');
like(usage(), qr/^1 t 0 f -$/, 'v3: one write through its old version');
$node->restart;
like(usage(), qr/^0 f 0 f counted since the server started at /, 'after a restart: counted since then, the note says');
($ret, $out, $err) = $node->psql('postgres', 'SELECT ec_complete(require_quiet => true)');
isnt($ret, 0, 'require_quiet right after the restart: refused');
like($err, qr/cannot tell whether the old version of migration "v3" is quiet.*counted only since the server started/s,
	'the error says why');
($ret, $out, $err) = $node->psql('postgres', q{
  SET expand_contract.quiet_period = '1s';
  SELECT pg_sleep(1.2);
  SELECT ec_complete(require_quiet => true);});
is($ret, 0, 'once the quiet period has passed since the restart, it goes through');

# Re-runs.  A migration file as Flyway, Liquibase or psql -1 runs it: one transaction.
$node->safe_psql('postgres', q{
  CREATE SCHEMA app;
  CREATE TABLE app.users (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO app.users SELECT g, 'user ' || g FROM generate_series(1, 1000) g;});
my $file = "$dir/V1__rename.sql";
open($fh, '>', $file) or die;
print $fh q{SELECT ec_start('r1', '{"operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}},
  {"add_column": {"table": "users", "column": {"name": "nick", "type": "text", "nullable": true}}}]}', 'app');
SELECT ec_complete('app');
};
close $fh;
for my $run (1, 2)
{
	($ret, $out, $err) = $node->psql('postgres', '', on_error_stop => 1, extra_params => ['-1', '-f', $file]);
	is($ret, 0, "psql -1 -f, run $run: succeeds");
	if ($run == 2)
	{
		like($err, qr/NOTICE:  migration "r1" of schema "app" is already complete, nothing to do/, 'run 2: start says it has nothing to do');
		like($err, qr/NOTICE:  schema "app" has no active migration, nothing to complete/, 'run 2: so does complete');
	}
	is($node->safe_psql('postgres', q{
	  SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	   WHERE attrelid = 'app.users'::regclass AND attnum > 0 AND NOT attisdropped}),
		'id,full_name,nick', "run $run: the schema as the migration leaves it");
}
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || bool_and(done) FROM expand_contract.migrations WHERE schema_name = 'app'}),
	'1 true', 'one migration in the history');

# Plain psql -f (a transaction per statement) of a migration with a backfill and an index build
# (the new primary key), twice: the first run waits for them, the second does nothing (ec_wait has
# nothing to wait for).
$file = "$dir/V2__widen.sql";
open($fh, '>', $file) or die;
print $fh q{SELECT ec_start('r2', '{"operations": [{"alter_column": {"table": "users", "column": "id", "type": "bigint"}}]}', 'app');
CALL ec_wait('app');
SELECT ec_complete('app');
};
close $fh;
for my $run (1, 2)
{
	($ret, $out, $err) = $node->psql('postgres', '', on_error_stop => 1, extra_params => ['-f', $file]);
	is($ret, 0, "psql -f with a backfill, run $run: succeeds");
	is($node->safe_psql('postgres', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	   WHERE attrelid = 'app.users'::regclass AND attname = 'id'}), 'bigint', "run $run: id is a bigint");
}
like($err, qr/already complete, nothing to do.*nothing to complete/s, 'run 2 said so');
is($node->safe_psql('postgres', q{SELECT count(*) FROM app.users}), '1000', 'the rows are all there');

# The same name with another document: an error naming it and saying what differs.
($ret, $out, $err) = $node->psql('postgres', q{
  SELECT ec_start('r2', '{"operations": [{"alter_column": {"table": "users", "column": "id", "type": "numeric"}}]}', 'app')});
isnt($ret, 0, 'another document under the same name: refused');
like($err, qr/migration "r2" of schema "app" already exists with another document.*Operation 1 \("alter_column"\) differs in "type"/s,
	'the error says what differs');

# Slots: with one only, a second migration is not counted (and a required check cannot pass) until
# the first completes; its slot is then reused.
$node->append_conf('postgresql.conf', 'expand_contract.usage_slots = 1');
$node->restart;
$node->safe_psql('postgres', q{
  CREATE SCHEMA s1; CREATE SCHEMA s2;
  CREATE TABLE s1.t (id int PRIMARY KEY, n int NOT NULL);
  CREATE TABLE s2.t (id int PRIMARY KEY, n int NOT NULL);
  INSERT INTO s1.t VALUES (1, 1); INSERT INTO s2.t VALUES (1, 1);
  SELECT ec_start('a', '{"operations": [{"alter_column": {"table": "t", "column": "n", "type": "bigint"}}]}', 's1');
  SELECT ec_start('b', '{"operations": [{"alter_column": {"table": "t", "column": "n", "type": "bigint"}}]}', 's2');});
$node->safe_psql('postgres', q{CALL ec_wait('s1'); CALL ec_wait('s2')});
$node->safe_psql('postgres', 'INSERT INTO s1.t VALUES (2, 2)');
$node->safe_psql('postgres', 'INSERT INTO s2.t VALUES (2, 2)');
sub usage_of
{
	my ($schema) = @_;
	return $node->safe_psql('postgres', qq{
	  SELECT concat_ws(' ', coalesce(old_version_writes::text, 'null'), coalesce(usage_note, '-'))
	    FROM ec_status('$schema')});
}
is(usage_of('s1'), '1 -', 'the first migration has the one slot');
is(usage_of('s2'), 'null not counted: all 1 slots of expand_contract.usage_slots are taken', 'the second is not counted');
($ret, $out, $err) = $node->psql('postgres', q{SET expand_contract.quiet_period = '1ms'; SELECT ec_complete('s2', require_quiet => true)});
like($err, qr/cannot tell whether the old version of migration "b" is quiet.*every slot of expand_contract.usage_slots was taken/s,
	'a required check cannot pass without a slot');
# A completion that rolls back does not give the slot up.
$node->safe_psql('postgres', q{SET expand_contract.quiet_period = 0; BEGIN; SELECT ec_complete('s1'); ROLLBACK;});
$node->safe_psql('postgres', 'INSERT INTO s2.t VALUES (3, 3)');
is(usage_of('s2'), 'null not counted: all 1 slots of expand_contract.usage_slots are taken', 'rolled-back complete: slot kept');
$node->safe_psql('postgres', q{SET expand_contract.quiet_period = 0; SELECT ec_complete('s1')});
$node->safe_psql('postgres', 'INSERT INTO s2.t VALUES (4, 4)');
is(usage_of('s2'), '1 -', 'once the first is complete, the second takes its slot');
$node->safe_psql('postgres', q{SET search_path = s2_b; INSERT INTO t VALUES (5, 5)});
is($node->safe_psql('postgres', q{SELECT new_version_writes FROM ec_status('s2')}), '1', 'new-version writes too');
($ret, $out, $err) = $node->psql('postgres', q{SET expand_contract.quiet_period = '200ms'; SELECT pg_sleep(0.3); SELECT ec_complete('s2', require_quiet => true)});
is($ret, 0, 'and its quiet check passes after the period');

# A migration completed with a revert window gives its slot up at ec_cleanup (found in review: it
# kept it for good); a migration that has not written yet reads as counted once a slot is free again.
$node->safe_psql('postgres', q{
  SELECT ec_start('c', '{"operations": [{"alter_column": {"table": "t", "column": "n", "type": "numeric"}}]}', 's2');});
$node->safe_psql('postgres', q{CALL ec_wait('s2')});
$node->safe_psql('postgres', 'INSERT INTO s2.t VALUES (6, 6)');
is(usage_of('s2'), '1 -', 'the migration with a window to come is counted');
$node->safe_psql('postgres', q{SET expand_contract.quiet_period = 0; SELECT ec_complete('s2', revert_window => '1 hour')});
$node->safe_psql('postgres', q{SELECT ec_cleanup('s2')});
$node->safe_psql('postgres', q{
  SELECT ec_start('d', '{"operations": [{"alter_column": {"table": "t", "column": "n", "type": "numeric"}}]}', 's1');});
is(usage_of('s1'), '0 -', 'a new migration that has not written yet is counted (no writes), not "all slots taken"');
$node->safe_psql('postgres', 'INSERT INTO s1.t VALUES (7, 7)');
is(usage_of('s1'), '1 -', 'and takes the slot ec_cleanup retired');

$node->stop;
done_testing();
