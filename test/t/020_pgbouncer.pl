# A real connection pooler (issue 14): pgbouncer in transaction pooling mode in front of the test
# cluster, with fewer server connections than clients, so that transactions of different clients
# share server connections.
#
# Migration: t.cents (integer) becomes t.amount (bigint), up "cents * 10", down "amount / 10".
# While the backfill runs, three pgbench runs through pgbouncer, each transaction:
#   old    the base table, no setting (the old version);
#   local  SET LOCAL expand_contract.version = 'public_v1', writes public_v1.t;
#   path   SET LOCAL search_path = public_v1, writes t (the view).
# Proves: no client error (pgbench exits 0, 0 failed transactions); the backfill ran while they
# wrote; afterwards every row is consistent (cents = down(amount), amount = up(cents)), before and
# after complete.
#
# And why the README says to use SET LOCAL: a session-level SET search_path = public_v1 of one
# client stays on the server connection after its transaction; another client's old-version
# write of public.t that pgbouncer puts on that connection is taken as a new-version write, and
# "down" overwrites the old column it wrote, silently.  The test asserts that this happens (through
# a pool of one server connection, so it is deterministic), and that SET LOCAL does not leak.
#
# Skipped only when pgbouncer is not installed; scripts/test.sh installs it (Debian package).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use lib 'test/perl';
use ECTest;

my ($pgbouncer) = grep { -x $_ } map { "$_/pgbouncer" } split(/:/, $ENV{PATH} // ''), '/usr/sbin';
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer; scripts/test.sh installs it)'
  unless $pgbouncer;

my $rows = 20000;
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', qq{
  CREATE EXTENSION expand_contract;
  CREATE TABLE t (id serial PRIMARY KEY, cents int NOT NULL);
  INSERT INTO t (cents) SELECT g FROM generate_series(1, $rows) g;
});

# pgbouncer: its own port, ini and auth file under the test's temporary directory; unix socket only.
my $dir = PostgreSQL::Test::Utils::tempdir_short;
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $user = getpwuid($<);
my $server = sprintf('host=%s port=%d dbname=postgres', $node->host, $node->port);
append_to_file("$dir/userlist.txt", qq{"$user" ""\n});
append_to_file("$dir/pgbouncer.ini", <<"EOF");
[databases]
postgres = $server
; one server connection: for the misattribution below
single = $server pool_size=1

[pgbouncer]
unix_socket_dir = $dir
listen_port = $port
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ], '>', \$bout, '2>', \$berr);
for (1 .. 100)
{
	last if -S "$dir/.s.PGSQL.$port";
	usleep(100_000);
}
ok(-S "$dir/.s.PGSQL.$port", 'pgbouncer listens') or diag("pgbouncer: $berr");

# psql through pgbouncer: one client connection, its commands one transaction each.
sub via_bouncer
{
	my ($db, @commands) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', $dir, '-p', $port,
			'-d', $db, map { ('-c', $_) } @commands ], '>', \$out, '2>', \$err)
	  or die "psql through pgbouncer failed: $err";
	chomp $out;
	return $out;
}
is(via_bouncer('postgres', 'SELECT count(*) FROM t'), $rows, 'queries go through pgbouncer');

$node->safe_psql('postgres', q{
  SET expand_contract.start_paused = on;
  SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "t", "column": "cents",
    "name": "amount", "type": "bigint", "up": "cents * 10", "down": "amount / 10"}}]}');
  SELECT ec_configure('public', '{"batch_size": 200, "batch_delay_ms": 20}');
});

my %scripts = (
	old => q{
\set id random(1, 20000)
\set c random(1, 100000)
BEGIN;
UPDATE t SET cents = :c WHERE id = :id;
INSERT INTO t (cents) VALUES (:c);
END;
},
	local => q{
\set id random(1, 20000)
\set c random(1, 100000)
BEGIN;
SET LOCAL expand_contract.version = 'public_v1';
UPDATE public_v1.t SET amount = :c * 10 WHERE id = :id;
INSERT INTO public_v1.t (amount) VALUES (:c * 10);
END;
},
	path => q{
\set id random(1, 20000)
\set c random(1, 100000)
BEGIN;
SET LOCAL search_path = public_v1;
UPDATE t SET amount = :c * 10 WHERE id = :id;
INSERT INTO t (amount) VALUES (:c * 10);
END;
});
my %clients;
for my $name (sort keys %scripts)
{
	append_to_file("$dir/$name.sql", $scripts{$name});
	# Two clients each: six clients on two server connections.
	$clients{$name} = start_pgbench(
		[ 'pgbench', '-n', '-c', '2', '-j', '1', '-T', '8', '-h', $dir, '-p', $port,
			'-f', "$dir/$name.sql", 'postgres' ], '', what => $name);
}
sleep 1;
$node->safe_psql('postgres', q{SELECT ec_resume('public')});
my ($seen_running, $max_servers) = (0, 0);
while (grep { running($_) } values %clients)
{
	$seen_running = 1
	  if $node->safe_psql('postgres', q{SELECT backfill_state FROM ec_status()}) eq 'running';
	my $n = $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()});
	$max_servers = $n if $n > $max_servers;
	usleep(200_000);
}
finish_clients($clients{$_}, "$_ clients through pgbouncer") for sort keys %clients;
ok($seen_running, 'the backfill ran while the clients wrote');
cmp_ok($max_servers, '<=', 3, 'six clients shared at most two server connections (and one of psql)');

$node->safe_psql('postgres', 'CALL ec_wait()');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM t WHERE _ec_new_cents IS DISTINCT FROM cents::bigint * 10
		                             OR cents IS DISTINCT FROM (_ec_new_cents / 10)::int}),
	'0', 'every row consistent: amount = up(cents), cents = down(amount)');
cmp_ok($node->safe_psql('postgres', qq{SELECT count(*) FROM t WHERE id > $rows}),
	'>', 0, 'the clients inserted rows');

# The misattribution, through the one server connection of database "single".  A new-version
# client sets its search_path for the session (one transaction on the connection; the setting
# stays there) ...
via_bouncer('single', 'SET search_path = public_v1, public');
# ... and an old-version client's write of the base table lands on that connection.
my $before = $node->safe_psql('postgres', 'SELECT cents FROM t WHERE id = 1');
is(via_bouncer('single', 'SHOW search_path', 'UPDATE public.t SET cents = 777777 WHERE id = 1',
		'RESET search_path'),
	'public_v1, public', 'the other client\'s session search_path is still on the connection');
my $after = $node->safe_psql('postgres', 'SELECT cents || \' \' || _ec_new_cents FROM t WHERE id = 1');
is($after, "$before " . ($before * 10),
	'session-level SET search_path through transaction pooling: the old client\'s write is taken as '
	  . 'a new-version write and down overwrites the old column it wrote (silently)');
# With SET LOCAL the setting ends with the transaction: the same write keeps its value.
via_bouncer('single', 'BEGIN; SET LOCAL search_path = public_v1, public; COMMIT;');
is(via_bouncer('single', 'SHOW search_path', 'UPDATE public.t SET cents = 777777 WHERE id = 1'),
	'"$user", public', 'SET LOCAL search_path does not stay on the connection');
is($node->safe_psql('postgres', 'SELECT cents || \' \' || _ec_new_cents FROM t WHERE id = 1'),
	'777777 7777770', 'so the old client\'s write counts as the old version\'s');

$node->safe_psql('postgres', 'SELECT ec_complete()');
is($node->safe_psql('postgres', q{SELECT count(*) FROM t WHERE amount IS NULL OR amount % 10 <> 0}),
	'0', 'after complete every row has its amount');
is(via_bouncer('postgres', 'SELECT count(*) > 0 FROM t WHERE amount = 7777770'), 't',
	'and the pooled clients read the completed table');

$bouncer->signal('TERM');
$bouncer->finish;
$node->stop;
done_testing();
