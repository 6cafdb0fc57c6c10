# ec_start while clients write: every row written before the dual-write trigger existed must be
# backfilled, including rows of transactions that held the table while ec_start waited for it.
# Each round adds a column computed by "up" and checks, inside ec_complete's transaction (which
# holds the table, so no row comes in meanwhile), that every row has up(old).  wal_level must be replica (the default, not the TAP default minimal): then
# taking ACCESS EXCLUSIVE assigns ec_start an xid before it waits, so xids alone do not order
# ec_start after the writers it waited for.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $rounds = $ENV{EC_START_ROUNDS} // 8;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE orders (id bigserial PRIMARY KEY, cents int NOT NULL);
  INSERT INTO orders (cents) SELECT g FROM generate_series(1, 1000) g;
});

is($node->safe_psql('postgres', 'SHOW wal_level'), 'replica', 'wal_level is replica');

# Deterministic case: a writer holds the table (ROW EXCLUSIVE, no xid yet) when ec_start asks for
# ACCESS EXCLUSIVE; ec_start gets its xid and waits; the writer then inserts (a later xid, no
# trigger yet) and commits.  That row must still be backfilled.
my $writer = $node->background_psql('postgres');
$writer->query_safe('BEGIN; LOCK TABLE orders IN ROW EXCLUSIVE MODE');
my $migrator = $node->background_psql('postgres', on_error_stop => 0);
$migrator->query_until(qr/starting/, q{
  \echo starting
  SELECT ec_start('held', '{"operations": [{"add_column": {"table": "orders", "up": "cents * 2",
    "column": {"name": "doubled", "type": "int", "nullable": true}}}]}');
});
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND NOT granted})
  or die 'ec_start did not queue for its lock';
$writer->query_safe('INSERT INTO orders (cents) VALUES (21); COMMIT');
$writer->quit;
$migrator->quit;
is($node->safe_psql('postgres', q{SELECT phase FROM ec_status()}), 'active', 'ec_start went through after the writer');
$node->safe_psql('postgres', q{SELECT ec_complete()});
is($node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE doubled IS DISTINCT FROM cents * 2}),
	'0', 'the row written while ec_start waited was backfilled too');

my $script = $node->basedir . '/writer.sql';
open(my $fh, '>', $script) or die $!;
print $fh "BEGIN;\nINSERT INTO orders (cents) VALUES (random() * 1000);\nEND;\n";
close $fh;

my $seconds = 2 * $rounds + 10;
my ($out, $err) = ('', '');
my $writers = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-T', $seconds, '-f', $script, '-h', $node->host,
	  '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

for my $round (1 .. $rounds)
{
	$node->safe_psql('postgres', qq{
	  SELECT ec_start('r$round', '{"operations": [{"add_column": {"table": "orders",
	    "up": "cents + $round", "column": {"name": "c$round", "type": "int", "nullable": true}}}]}');
	});
	select(undef, undef, undef, 0.3);
	is( $node->safe_psql('postgres', qq{
		  BEGIN;
		  SELECT ec_complete();
		  SELECT count(*) FROM orders WHERE c$round IS DISTINCT FROM cents + $round;
		  COMMIT;}),
		"\n0", "round $round: every row has up(old) at complete");
}
$writers->kill_kill;
$writers->finish;
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), '>', 1000 + 10 * $rounds,
	'writers were inserting throughout');

$node->stop;
done_testing();
