# pg_dump and restore of a database under migration: one completed migration, one active and halfway
# through its backfill, one started paused.  A custom-format dump goes to another database of the same
# cluster (pg_restore), a plain one to a database of another cluster (psql).  In each copy: the state
# restores (the id sequence too), both versions stay in step for new writes from the first one on,
# even before any expand_contract call, the unfinished backfill fills every restored row, the active
# migrations complete and roll back with every row right, and a new migration starts and completes.
# Also: a backfill whose table was dropped fails once, visibly, and ec_wait reports it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;

my $node = PostgreSQL::Test::Cluster->new('origin');
$node->init;
$node->append_conf('postgresql.conf', "max_parallel_workers_per_gather = 0\n");
$node->start;

my $rows = 20000;
# accounts gets a dropped column from migration v1, so that its attribute numbers differ after a
# restore (a dump does not keep dropped columns).
$node->safe_psql('postgres', qq{
  CREATE DATABASE d1;
});
$node->safe_psql('d1', qq{
  CREATE EXTENSION expand_contract;
  CREATE TABLE accounts (id int PRIMARY KEY, note text, cents int NOT NULL);
  INSERT INTO accounts SELECT g, 'n' || g, g * 3 FROM generate_series(1, $rows) g;
  SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "accounts", "column": "note",
    "type": "varchar(40)", "nullable": true}}]}');
});
$node->safe_psql('d1', q{CALL ec_wait()});
$node->safe_psql('d1', q{
  SELECT ec_complete();
  SET expand_contract.start_paused = on;
  SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "accounts", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}');
  SELECT ec_configure('public', '{"batch_size": 500, "batch_delay_ms": 200}');
  CREATE SCHEMA other;
  CREATE TABLE other.people (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO other.people SELECT g, 'p' || g FROM generate_series(1, 1000) g;
  SELECT ec_start('w1', '{"operations": [{"alter_column": {"table": "people", "column": "name",
    "type": "varchar(20)", "up": "upper(name)", "down": "lower(name)"}}]}', 'other');
  RESET expand_contract.start_paused;
  SELECT ec_resume('public');
});
ok( wait_for($node, 'd1', q{SELECT rows_done > 0 FROM ec_status('public')}, 't', 60,
		'the backfill of v2 to begin'),
	'v2 is backfilling');
# Writes through both versions before the dump: to filled and to unfilled rows.
$node->safe_psql('d1', q{
  INSERT INTO accounts (id, note, cents) VALUES (30001, 'old', 1234);
  UPDATE accounts SET cents = 999 WHERE id = 19990;
  SET search_path = public_v2, public;
  INSERT INTO accounts (id, note, amount) VALUES (30002, 'new', 7.25);
  UPDATE accounts SET amount = 4.44 WHERE id = 2;
  UPDATE accounts SET amount = 5.55 WHERE id = 19991;
});
$node->safe_psql('d1', q{
  INSERT INTO other.people VALUES (2001, 'Ann');
  SET search_path = other_w1, other;
  INSERT INTO people VALUES (2002, 'BOB');
});

my $dumpdir = PostgreSQL::Test::Utils::tempdir;
my $port = $node->port;
my $host = $node->host;
command_ok(['pg_dump', '-h', $host, '-p', $port, '-Fc', '-f', "$dumpdir/d1.dump", 'd1'],
	'custom-format dump');
command_ok(['pg_dump', '-h', $host, '-p', $port, '-Fp', '-f', "$dumpdir/d1.sql", 'd1'],
	'plain dump');
my $mid = $node->safe_psql('d1', q{
  SELECT rows_done > 0 AND rows_done < 20000 FROM ec_status('public')});
note("v2 was halfway through its backfill at the dump: $mid");

# A second cluster: another system identifier, another history of transaction ids.
my $other = PostgreSQL::Test::Cluster->new('elsewhere');
$other->init;
$other->start;

$node->safe_psql('postgres', q{CREATE DATABASE d2 TEMPLATE template0});
command_ok(['pg_restore', '-h', $host, '-p', $port, '-d', 'd2', "$dumpdir/d1.dump"],
	'pg_restore into another database of the same cluster');
$other->safe_psql('postgres', q{CREATE DATABASE d3 TEMPLATE template0});
$other->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'd3', '-f', "$dumpdir/d1.sql"],
	'plain dump restored with psql into another cluster');

sub check_copy
{
	my ($n, $db, $what) = @_;

	# Nothing has adopted the migration yet: the trigger works from the stored SQL text.
	is( $n->safe_psql($db, q{
		  SELECT string_agg(m.name || ':' || (t.state <> 'done' AND t.rows_done BETWEEN 1 AND 19999),
		                    ',' ORDER BY m.name)
		    FROM expand_contract.migrations m JOIN expand_contract.tasks t ON t.migration_id = m.id
		   WHERE t.kind = 'backfill' AND NOT m.done}),
		'v2:true,w1:false', "$what: the restored tasks say v2 was halfway, w1 had not begun");
	is($n->safe_psql($db, q{SELECT last_value >= 3 FROM expand_contract.migrations_id_seq}), 't',
		"$what: the history's id sequence is restored");

	# Writes right after the restore, through both versions.
	$n->safe_psql($db, q{
	  INSERT INTO accounts (id, note, cents) VALUES (40001, 'old', 4321);
	  UPDATE accounts SET cents = 777 WHERE id = 19992;
	  SET search_path = public_v2, public;
	  INSERT INTO accounts (id, note, amount) VALUES (40002, 'new', 2.50);
	  UPDATE accounts SET amount = 6.66 WHERE id = 19993;
	  UPDATE accounts SET note = 'touched' WHERE id = 19994;
	});
	$n->safe_psql($db, q{
	  INSERT INTO other.people VALUES (3001, 'Cid');
	  SET search_path = other_w1, other;
	  INSERT INTO people VALUES (3002, 'DEE');
	});
	is( $n->safe_psql($db, q{
		  SELECT string_agg(o.id || '=' || o.cents || '/' || n.amount, ',' ORDER BY o.id)
		    FROM public.accounts o JOIN public_v2.accounts n USING (id)
		   WHERE o.id IN (40001, 40002, 19992, 19993, 19994)}),
		'19992=777/7.77,19993=666/6.66,19994=59982/599.82,40001=4321/43.21,40002=250/2.50',
		"$what: writes through both versions are in step before anything adopted the migration");
	is( $n->safe_psql($db, q{
		  SELECT string_agg(o.id || '=' || o.name || '/' || n.name, ',' ORDER BY o.id)
		    FROM other.people o JOIN other_w1.people n USING (id) WHERE o.id > 3000}),
		'3001=Cid/CID,3002=dee/DEE', "$what: and in the paused migration's table");

	# ec_status adopts them: both active, the paused one still paused.
	is( $n->safe_psql($db, q{
		  SELECT string_agg(schema_name || ' ' || migration || ' ' || coalesce(parent, '-') || ' ' || phase
		                    || ' ' || (backfill_state = 'paused'), ',' ORDER BY schema_name)
		    FROM ec_status()}),
		'other w1 - active true,public v2 v1 active false', "$what: ec_status");
	$n->safe_psql($db, q{SELECT ec_configure('public', '{"batch_delay_ms": 0}')});
	$n->safe_psql($db, q{CALL ec_wait('public')});
	is( $n->safe_psql($db, q{
		  SELECT count(*) FILTER (WHERE n.amount IS DISTINCT FROM o.cents / 100.0) || ' of ' || count(*)
		    FROM public.accounts o JOIN public_v2.accounts n USING (id)}),
		'0 of 20004', "$what: the backfill filled every restored row");
	is( $n->safe_psql($db, q{
		  SELECT string_agg(id || '=' || amount, ',' ORDER BY id) FROM public_v2.accounts
		   WHERE id IN (2, 19990, 19991, 30001, 30002)}),
		'2=4.44,19990=9.99,19991=5.55,30001=12.34,30002=7.25',
		"$what: what both versions wrote before the dump is kept");

	my $sum = $n->safe_psql($db, q{SELECT sum(amount) FROM public_v2.accounts});
	$n->safe_psql($db, q{SELECT ec_complete('public')});
	is( $n->safe_psql($db, q{
		  SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		    FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attnum > 0
		     AND NOT attisdropped}),
		'id integer, note character varying(40), amount numeric(12,2)', "$what: v2 completed");
	is( $n->safe_psql($db, q{
		  SELECT count(*) || ' ' || sum(amount) FROM accounts}),
		"20004 $sum", "$what: every row kept, with the new version's values");

	$n->safe_psql($db, q{SELECT ec_rollback('other')});
	is( $n->safe_psql($db, q{
		  SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		    FROM pg_attribute WHERE attrelid = 'other.people'::regclass AND attnum > 0
		     AND NOT attisdropped}),
		'id integer, name text', "$what: w1 rolled back to the old shape");
	is( $n->safe_psql($db, q{
		  SELECT count(*) || ' ' || string_agg(name, ',' ORDER BY id) FILTER (WHERE id > 2000)
		    FROM other.people}),
		'1004 Ann,bob,Cid,dee', "$what: with every row, in the old version's values");

	# A new migration starts (its id is new) and completes.
	$n->safe_psql($db, q{
	  SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "accounts",
	    "column": {"name": "flag", "type": "boolean", "nullable": true}, "up": "amount > 10"}}]}');
	});
	$n->safe_psql($db, q{CALL ec_wait('public')});
	$n->safe_psql($db, q{SELECT ec_complete('public')});
	is( $n->safe_psql($db, q{
		  SELECT count(*) FILTER (WHERE flag IS DISTINCT FROM amount > 10) || ' '
		         || (SELECT string_agg(name, ',' ORDER BY id) FROM expand_contract.migrations)
		    FROM accounts}),
		'0 v1,v2,v3', "$what: a new migration starts and completes");
}

check_copy($node, 'd2', 'same cluster, pg_restore');
check_copy($other, 'd3', 'other cluster, psql');

# A backfill whose table is dropped (past the DDL guard) fails once and visibly; ec_wait reports it.
$node->safe_psql('d2', q{
  CREATE TABLE gone (id int PRIMARY KEY, v int);
  INSERT INTO gone SELECT g, g FROM generate_series(1, 100) g;
  SET expand_contract.start_paused = on;
  SELECT ec_start('v4', '{"operations": [{"alter_column": {"table": "gone", "column": "v",
    "type": "bigint"}}]}');
});
$node->safe_psql('d2', q{SET expand_contract.allow_ddl = on; DROP TABLE gone CASCADE; SELECT ec_resume('public')});
ok( wait_for($node, 'd2', q{SELECT backfill_state || ': ' || detail FROM ec_status('public')},
		'failed: the table of the backfill no longer exists', 30, 'the backfill to fail'),
	'a backfill whose table was dropped fails, with the reason in ec_status');
my ($ret, $out, $err) = $node->psql('d2', q{CALL ec_wait('public', '10 s')});
like($err, qr/failed.*\n.*the table of the backfill no longer exists/,
	'ec_wait returns the failure instead of waiting');
is( $node->safe_psql('d2', q{SELECT batches || ' ' || state FROM expand_contract.tasks t
	  JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE m.name = 'v4'}),
	'0 failed', 'and it stays failed: the worker is not relaunched in a loop');

$other->stop;
$node->stop;
done_testing();
