# Revert after complete under traffic, and kill -9 during ec_revert and during the window's final
# cleanup (by ec_cleanup and by the worker).  Clients write through the old version (public_v1) and
# the new one (public_v2) while ec_complete keeps a window and while ec_revert runs; every
# committed write is journalled in the same transaction, and after the revert every journalled row
# is there with its old-version value.  After each kill the window is either still open with the
# window's shape or closed, never half; and ec_revert and the cleanup then finish, leaving exactly
# the shape before ec_start (catalog snapshot) or the plain complete's.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('revert');
$node->init;
$node->append_conf('postgresql.conf', "expand_contract.lock_timeout = 100\nexpand_contract.lock_retries = 50\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION expand_contract');
$node->safe_psql('postgres', slurp_file('test/regress_helpers.sql'));
$node->safe_psql('postgres', q{
  CREATE SEQUENCE ids START 100000;
  CREATE TABLE journal (id bigint PRIMARY KEY, cents int);
  CREATE TABLE accounts (id bigint PRIMARY KEY, cents int, owner text, legacy text);
  INSERT INTO accounts SELECT g, g, 'o' || g, 'l' || g FROM generate_series(1, 5000) g;
  SELECT ec_start('v1', '{"operations": [{"rename_column": {"table": "accounts", "from": "owner", "to": "holder"}}]}');
  SELECT ec_complete();
});
my $doc = q{'{"operations": [
  {"alter_column": {"table": "accounts", "column": "cents", "name": "amount", "type": "numeric(12,2)",
                    "up": "cents / 100.0", "down": "(amount * 100)::int"}},
  {"rename_column": {"table": "accounts", "from": "holder", "to": "name"}},
  {"drop_column": {"table": "accounts", "column": "legacy", "down": "''gone''"}}]}'};
my $snap = q{SELECT string_agg(x, E'\n' ORDER BY x) FROM ec_test.snapshot('public') x};
my $before = $node->safe_psql('postgres', $snap);

my $dir = PostgreSQL::Test::Utils::tempdir();
open(my $f, '>', "$dir/old.sql") or die;
print $f q{\set c random(1, 100000)
\set r random(1, 5000)
BEGIN;
SET LOCAL search_path = public_v1;
WITH w AS (INSERT INTO accounts (id, cents, holder) VALUES (nextval('public.ids'), :c, 'old') RETURNING id, cents)
  INSERT INTO public.journal SELECT id, cents FROM w;
UPDATE accounts SET cents = :c WHERE id = :r;
COMMIT;
};
close $f;
open($f, '>', "$dir/new.sql") or die;
print $f q{\set c random(1, 100000)
BEGIN;
SET LOCAL search_path = public_v2;
WITH w AS (INSERT INTO accounts (id, amount, name) VALUES (nextval('public.ids'), :c / 100.0, 'new') RETURNING id, (amount * 100)::int AS cents)
  INSERT INTO public.journal SELECT id, cents FROM w;
COMMIT;
};
close $f;

sub pgbench
{
	my ($script, $secs) = @_;
	return start_pgbench(['pgbench', '-n', '-c', '2', '-T', $secs, '-f', "$dir/$script",
			'-h', $node->host, '-p', $node->port, 'postgres'], '');
}

# kill -9 of the postmaster and of every server process (a machine crash), then a start.
sub crash_restart
{
	my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my @children = split ' ', `ps -o pid= --ppid $pm`;
	$node->kill9;
	kill 'KILL', @children;
	usleep(50_000) while grep { kill(0, $_) } ($pm, @children);
	$node->start;
}

sub journal_kept
{
	return $node->safe_psql('postgres', q{
	  SELECT count(*) FILTER (WHERE a.cents IS DISTINCT FROM j.cents) || ' missing or wrong of '
	         || (count(*) > 0)::text FROM journal j LEFT JOIN accounts a USING (id)});
}

# Soak: complete with a window and revert, both under traffic through both versions.
$node->safe_psql('postgres', "SELECT ec_start('v2', $doc)");
$node->safe_psql('postgres', 'CALL ec_wait()');
my $old = pgbench('old.sql', 8);
my $new = pgbench('new.sql', 3);
sleep 1;
$node->safe_psql('postgres', q{SELECT ec_complete(revert_window => '1 day')});
is($node->safe_psql('postgres', 'SELECT phase FROM ec_status()'), 'revert window', 'complete kept a window');
finish_clients($new, 'new version writers (through complete)');
$node->safe_psql('postgres', 'SELECT ec_revert()');
finish_clients($old, 'old version writers (through complete and revert)');
is($node->safe_psql('postgres', $snap), $before, 'revert under traffic leaves the schema as before ec_start');
is(journal_kept(), '0 missing or wrong of true', 'every row written through either version is there, mapped back');
is($node->safe_psql('postgres', q{SELECT count(*) FROM accounts WHERE cents IS NULL}), '0', 'no old value lost');

# Crash during ec_revert: it waits for a lock held by another session when the server is killed.
$node->safe_psql('postgres', "SELECT ec_start('v2', $doc)");
$node->safe_psql('postgres', 'CALL ec_wait()');
$node->safe_psql('postgres', q{SELECT ec_complete(revert_window => '1 day')});
my $window = $node->safe_psql('postgres', $snap);
$node->safe_psql('postgres', q{SET search_path = public_v2; INSERT INTO accounts (id, amount, name) VALUES (9000001, 1.23, 'w')});

sub crash_while_waiting
{
	my ($call) = @_;
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('BEGIN; LOCK TABLE accounts IN ACCESS SHARE MODE');
	my $caller = $node->background_psql('postgres', on_error_stop => 0);
	$caller->query_until(qr/go/, "\\echo go\nSELECT $call;\n");
	ok(wait_for($node, 'postgres', q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT ec_%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()},
		't', 20, "$call waiting"), "$call is waiting for its lock");
	crash_restart();
	eval { $holder->quit; };
	eval { $caller->quit; };
}

crash_while_waiting('ec_revert()');
is($node->safe_psql('postgres', 'SELECT phase FROM ec_status()'), 'revert window', 'after the kill during ec_revert: still in the window');
is($node->safe_psql('postgres', $snap), $window, 'and exactly the window shape');
$node->safe_psql('postgres', 'SELECT ec_revert()');
is($node->safe_psql('postgres', $snap), $before, 'ec_revert after the crash leaves the schema as before ec_start');
is($node->safe_psql('postgres', 'SELECT cents FROM accounts WHERE id = 9000001'), '123', 'a row written in the window is kept');

# Crash during ec_cleanup, then during the worker's cleanup at the window's end.
$node->safe_psql('postgres', "SELECT ec_start('v2', $doc)");
$node->safe_psql('postgres', 'CALL ec_wait()');
$node->safe_psql('postgres', q{SELECT ec_complete(revert_window => '1 day')});
crash_while_waiting('ec_cleanup()');
is($node->safe_psql('postgres', 'SELECT phase FROM ec_status()'), 'revert window', 'after the kill during ec_cleanup: still in the window');
is($node->safe_psql('postgres', $snap), $window, 'and exactly the window shape');
$node->safe_psql('postgres', 'SELECT ec_cleanup()');
my $complete = $node->safe_psql('postgres', $snap);
is($node->safe_psql('postgres', 'SELECT count(*) FROM ec_test.leftovers()'), '0', 'cleanup leaves no helper');
like($complete, qr/column accounts.name text/, 'the new shape stays');

$node->safe_psql('postgres', q{SELECT ec_start('v3', '{"operations": [{"alter_column": {"table": "accounts",
  "column": "amount", "type": "numeric(14,2)", "up": "amount", "down": "amount"}}]}')});
$node->safe_psql('postgres', 'CALL ec_wait()');
$node->safe_psql('postgres', q{SELECT ec_complete(revert_window => '2 seconds')});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK TABLE accounts IN ACCESS SHARE MODE');
ok(wait_for($node, 'postgres', q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query = 'expand_contract: ending a revert window' OR (backend_type LIKE 'expand_contract%' AND wait_event_type = 'Lock')},
	't', 20, 'the worker ending the window'), 'the worker ends the window, waiting for its lock');
crash_restart();
eval { $holder->quit; };
is($node->safe_psql('postgres', 'SELECT phase FROM ec_status()'), 'revert window', 'after the kill during the worker cleanup: still in the window');
ok(wait_for($node, 'postgres', q{SELECT phase FROM ec_status()}, 'complete', 30, 'the worker cleanup after restart'),
	'the worker (started again by ec_status) ends the window after the restart');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ec_test.leftovers()'), '0', 'no helper left');

# A dump taken during a window restores with it: the restored trigger keeps the kept-aside column
# in step (it re-analyses the expressions by the columns' names after complete), and ec_revert works.
my $before_v4 = $node->safe_psql('postgres', $snap);
$node->safe_psql('postgres', q{SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "accounts",
  "column": "name", "name": "label", "type": "varchar(40)", "up": "name", "down": "label"}}]}')});
$node->safe_psql('postgres', 'CALL ec_wait()');
$node->safe_psql('postgres', q{SELECT ec_complete(revert_window => '1 day')});
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_dump', '-Fc', '-f', "$dir/window.dump", '-d', $node->connstr('postgres')], 'pg_dump during a window');
$node->command_ok(['pg_restore', '-d', $node->connstr('restored'), "$dir/window.dump"], 'pg_restore of it');
$node->safe_psql('restored', q{INSERT INTO accounts (id, amount, label) VALUES (9000002, 2.5, 'restored')});
is($node->safe_psql('restored', q{SELECT phase FROM ec_status()}), 'revert window', 'the restored database is in the window');
$node->safe_psql('restored', 'SELECT ec_revert()');
is($node->safe_psql('restored', $snap), $before_v4, 'ec_revert in the restored database leaves the shape before ec_start');
is($node->safe_psql('restored', q{SELECT name FROM accounts WHERE id = 9000002}), 'restored',
	'a row written through the new version after the restore is mapped back');

$node->stop;
done_testing();
