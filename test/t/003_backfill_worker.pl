# The background-worker backfill: launched when ec_start commits, as the role that called it; visible
# in pg_stat_activity; progress in ec_status; pause/resume; ec_configure; values written through the
# new version during the backfill are never overwritten; terminates under constant inserts; a failing
# "up" is reported with the row's key and resumed after the data is fixed; tables without a primary key;
# a migration started under SET ROLE to a NOLOGIN owner role.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
# Small batches with a pause between them: 100k rows take ~100 batches, several seconds.
$node->append_conf('postgresql.conf', q{
expand_contract.batch_size = 1000
expand_contract.batch_delay_ms = 50
max_parallel_workers_per_gather = 0
});
$node->start;

sub status
{
	my ($schema, $cols) = @_;
	return $node->safe_psql('postgres', "SELECT $cols FROM ec_status('$schema')");
}

my $migration = q{'{"operations": [{"alter_column": {"table": "orders", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0",
    "down": "round(amount)::int * 100"}}]}'};
# "down" is lossy on purpose: a value written through the new version (12.67) is not up(down(value))
# (13.00), so a backfill that recomputed such a row from the old column would be caught.

$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE ROLE migrator SUPERUSER LOGIN;
  CREATE SCHEMA aux;
  CREATE TABLE aux.written (id bigint NOT NULL);
  CREATE TABLE orders (id bigserial PRIMARY KEY, cents int NOT NULL);
  INSERT INTO orders (cents) SELECT g % 100000 FROM generate_series(1, 100000) g;
});

############################################################################
# Launched at commit, not before; runs as the role that called ec_start.
############################################################################

my $mig = $node->background_psql('postgres', extra_params => [ '-U', 'migrator' ]);
$mig->query_safe(qq{BEGIN; SELECT ec_start('v2', $migration)});
usleep(500_000);
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'}),
	'0', 'no backfill worker before ec_start commits');
$mig->query_safe('COMMIT');
$mig->quit;

ok( wait_for($node, 'postgres',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'},
		't', 10, 'the backfill worker'),
	'a backfill worker appears in pg_stat_activity after ec_start commits');
my $worker = $node->safe_psql('postgres', q{
  SELECT usename || '|' || datname || '|' || coalesce(query, '')
    FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill' LIMIT 1});
note "worker: $worker";
my ($w_user, $w_db, $w_query) = split /\|/, $worker, 3;
is($w_user, 'migrator', 'the worker runs as the role that called ec_start');
is($w_db, 'postgres', 'the worker is connected to the migration\'s database');
like($w_query // '', qr/orders/, 'the worker\'s query in pg_stat_activity names what it is doing');

############################################################################
# Progress grows; writers start (old-version inserts, new-version updates).
############################################################################

ok(wait_for($node, 'postgres', q{SELECT batches > 0 FROM ec_status('public')}, 't', 10, 'first batch'),
	'ec_status shows batches after the worker started');
my ($rows1) = status('public', 'rows_done');
ok(wait_for($node, 'postgres', qq{SELECT rows_done > $rows1 FROM ec_status('public')}, 't', 10, 'more rows'),
	"rows_done increases (was $rows1)");

# Constant writers for the rest of the backfill: one inserting through the old version, one updating
# through the new version with a value that is not up(down(value)), logging the ids it wrote.
my $ins = $node->basedir . '/insert.sql';
my $upd = $node->basedir . '/update.sql';
open(my $fh, '>', $ins) or die $!;
print $fh "INSERT INTO orders (cents) VALUES ((random() * 100000)::int);\n";
close $fh;
open($fh, '>', $upd) or die $!;
print $fh q{\set id random(1, 90000)
SET search_path = public_v2, public;
BEGIN;
UPDATE orders SET amount = :id + 0.67 WHERE id = :id;
INSERT INTO aux.written VALUES (:id);
END;
};
close $fh;
my @pgb = ('pgbench', '-n', '-c', '1', '-T', '50', '-h', $node->host, '-p', $node->port);
my ($iout, $ierr, $uout, $uerr) = ('', '', '', '');
my $inserter = IPC::Run::start([ @pgb, '-f', $ins, 'postgres' ], '>', \$iout, '2>', \$ierr);
my $updater = IPC::Run::start([ @pgb, '-f', $upd, 'postgres' ], '>', \$uout, '2>', \$uerr);

my ($est, $rps) = split /\|/, status('public', q{rows_estimated || '|' || coalesce(rows_per_second, -1)});
cmp_ok($est, '>=', 50000, "rows_estimated is about the table's size ($est)");
cmp_ok($est, '<=', 200000, "rows_estimated is not far above the table's size ($est)");

############################################################################
# Pause: no progress while paused.
############################################################################

$node->safe_psql('postgres', q{SELECT ec_pause('public')});
is(status('public', 'backfill_state'), 'paused', 'ec_status shows paused');
usleep(500_000);    # let a batch in flight commit
my ($p_rows, $p_batches) = split /\|/, status('public', q{rows_done || '|' || batches});
sleep(2);
my ($p_rows2, $p_batches2) = split /\|/, status('public', q{rows_done || '|' || batches});
is("$p_rows2/$p_batches2", "$p_rows/$p_batches", 'rows_done and batches stay the same for 2 s while paused');
cmp_ok($p_rows, '<', 90000, "paused in the middle of the backfill (rows_done $p_rows)");
is($node->safe_psql('postgres', q{SELECT state FROM expand_contract.tasks t
    JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE m.name = 'v2' AND t.kind = 'backfill'}),
	'paused', 'the task is marked paused');

# Rows not reached yet read NULL in the new version; new-version writes to such rows now.
is($node->safe_psql('postgres', q{SELECT amount IS NULL FROM public_v2.orders WHERE id = 99999}),
	't', 'a pre-existing row not backfilled yet reads NULL through the new version');
$node->safe_psql('postgres', q{
  SET search_path = public_v2, public;
  UPDATE orders SET amount = id + 0.67 WHERE id BETWEEN 99001 AND 99010;
  INSERT INTO aux.written SELECT generate_series(99001, 99010);
});
is( $node->safe_psql('postgres',
		q{SELECT string_agg(cents::text, ',' ORDER BY id) FROM public.orders WHERE id IN (99001, 99002)}),
	'9900200,9900300', 'new-version writes set the old column from down');
# And an old-version update of a row not backfilled yet: the trigger computes the new column.
$node->safe_psql('postgres', q{UPDATE orders SET cents = 4242 WHERE id = 98000});
is($node->safe_psql('postgres', q{SELECT amount FROM public_v2.orders WHERE id = 98000}),
	'42.42', 'old-version write during the backfill fills the new column');

############################################################################
# ec_configure: larger batches after resume.
############################################################################

my $per_batch1 = $p_rows / $p_batches;
cmp_ok($per_batch1, '>=', 500, "expand_contract.batch_size = 1000: ~1000 rows per batch ($per_batch1)");
cmp_ok($per_batch1, '<=', 2000, "expand_contract.batch_size = 1000: not many more rows per batch ($per_batch1)");
# batch_time_ms 0: sized by batch_size alone (the default 50 ms target would cap them under this load).
my $conf = $node->safe_psql('postgres',
	q{SELECT ec_configure('public', '{"batch_size": 10000, "batch_time_ms": 0}')});
note "ec_configure returned $conf";
like($conf, qr/"batch_size":\s*10000/, 'ec_configure returns the migration\'s settings');

$node->safe_psql('postgres', q{SELECT ec_resume('public')});
isnt(status('public', 'backfill_state'), 'paused', 'ec_status no longer shows paused after ec_resume');
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('public')}, 'done', 40, 'backfill done'),
	'the backfill terminates while clients write constantly');
$inserter->pump_nb;
$updater->pump_nb;
ok($inserter->pumpable && $updater->pumpable, 'both writers were still running when the backfill finished')
  or diag("inserter: $ierr\nupdater: $uerr");
$inserter->kill_kill;
$inserter->finish;
$updater->kill_kill;
$updater->finish;

my ($e_rows, $e_batches) = split /\|/, status('public', q{rows_done || '|' || batches});
my $per_batch2 = ($e_rows - $p_rows) / (($e_batches - $p_batches) || 1);
note "rows per batch: $per_batch1 before ec_configure, $per_batch2 after ($e_rows rows, $e_batches batches)";
cmp_ok($per_batch2, '>', 4 * $per_batch1,
	'after ec_configure(batch_size 10000) each batch covers many more rows');
# Rows written through the trigger before the backfill reached them need no filling; every other
# pre-existing row is counted once.
my $touched = $node->safe_psql('postgres', q{SELECT count(DISTINCT id) + 1 FROM aux.written});
cmp_ok($e_rows, '<=', 100000, 'rows_done counts only rows that existed at start');
cmp_ok($e_rows, '>=', 100000 - $touched,
	"rows_done counts every pre-existing row the writers did not touch first ($touched touched)");

############################################################################
# Every value right; new-version writes kept.
############################################################################

cmp_ok($node->safe_psql('postgres', q{SELECT count(DISTINCT id) FROM aux.written}), '>', 10,
	'the new-version writer updated rows during the backfill');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM orders}), '>', 100000,
	'the old-version writer inserted rows during the backfill');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM public.orders o JOIN public_v2.orders n USING (id)
	   WHERE NOT EXISTS (SELECT FROM aux.written w WHERE w.id = o.id)
	     AND n.amount IS DISTINCT FROM o.cents / 100.0}),
	'0', 'every other row has amount = up(cents)');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM public_v2.orders n
	   WHERE EXISTS (SELECT FROM aux.written w WHERE w.id = n.id) AND n.amount IS DISTINCT FROM n.id + 0.67}),
	'0', 'no value written through the new version was overwritten by the backfill');
is($node->safe_psql('postgres', q{SELECT amount FROM public_v2.orders WHERE id = 99005}),
	'99005.67', 'a row written through the new version while paused kept its value');

is($node->safe_psql('postgres', q{SET statement_timeout = '30s'; SELECT ec_complete()}), '', 'ec_complete');
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	   WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped}),
	'id,amount', 'contracted: the table has id, amount');
is($node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE amount IS NULL}), '0',
	'no NULL amount after complete');

############################################################################
# A failing "up": reported with the row's key; fixed data + ec_resume completes it.
############################################################################

$node->safe_psql('postgres', q{
  CREATE SCHEMA bad;
  CREATE TABLE bad.items (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO bad.items SELECT g, CASE WHEN g = 31337 THEN 500 ELSE g + 1000 END
    FROM generate_series(1, 50000) g;
  SELECT ec_start('b1', '{"operations": [{"alter_column": {"table": "items", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "100000 / (cents - 500)",
    "down": "(amount * 100)::int"}}]}', 'bad');
});
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('bad')}, 'failed', 30, 'failed backfill'),
	'a failing up puts the backfill in state failed');
my $detail = status('bad', 'detail');
note "detail: $detail";
like($detail, qr/division by zero/, 'detail has the error');
like($detail, qr/\(row .*\b31337\b.*\)/, 'detail has the failing row\'s key');
is(status('bad', 'phase'), 'active', 'the migration stays active');
cmp_ok(status('bad', 'rows_done'), '>', 0, 'batches before the failing row were committed');

my ($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_complete('bad')}, timeout => 30);
isnt($ret, 0, 'ec_complete fails while the backfill has failed');
like($err, qr/backfill/i, 'ec_complete\'s error is about the backfill');
like($err, qr/fail/i, 'ec_complete\'s error says it failed');
note "ec_complete error: $err";
is(status('bad', 'phase'), 'active', 'the migration is still active after the refused ec_complete');

# Fix the row through the old version: the trigger computes its new column.
$node->safe_psql('postgres', q{UPDATE bad.items SET cents = 600 WHERE id = 31337});
$node->safe_psql('postgres', q{SELECT ec_resume('bad')});
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('bad')}, 'done', 30, 'resumed backfill'),
	'ec_resume retries the failed backfill and it completes');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM bad.items o JOIN bad_b1.items n USING (id)
	   WHERE n.amount IS DISTINCT FROM 100000 / (o.cents - 500)}),
	'0', 'every row has up(old) after the resumed backfill');
is($node->safe_psql('postgres', q{SELECT detail IS NULL FROM ec_status('bad')}), 't',
	'the error is cleared from detail once done');
($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_complete('bad')}, timeout => 30);
is($ret, 0, 'ec_complete succeeds after the fix') or diag($err);
is($node->safe_psql('postgres', q{SELECT amount FROM bad.items WHERE id = 31337}), '1000.00',
	'the fixed row has its value');

############################################################################
# A table without a primary key.
############################################################################

$node->safe_psql('postgres', q{
  CREATE SCHEMA nopk;
  CREATE TABLE nopk.events (k int, cents int);
  INSERT INTO nopk.events SELECT g % 1000, g % 1000 FROM generate_series(1, 60000) g;
  SELECT ec_start('n1', '{"operations": [{"alter_column": {"table": "events", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0",
    "down": "(amount * 100)::int"}}]}', 'nopk');
});
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('nopk')}, 'done', 30, 'no-PK backfill'),
	'a table without a primary key is backfilled by the worker');
is($node->safe_psql('postgres', q{SELECT count(*) FROM nopk_n1.events WHERE amount IS DISTINCT FROM k / 100.0}),
	'0', 'every row of the table without a primary key has up(old)');
($ret, $out, $err) = $node->psql('postgres', q{SELECT ec_complete('nopk', wait => false)}, timeout => 30);
is($ret, 0, 'ec_complete(wait => false) succeeds once the backfill is done') or diag($err);
is($node->safe_psql('postgres', q{SELECT count(*) || '/' || count(*) FILTER (WHERE amount = k / 100.0) FROM nopk.events}),
	'60000/60000', 'contracted table without a primary key has every value');

is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'}),
	'0', 'no backfill worker left once all work is done');

############################################################################
# ec_start under SET ROLE to a NOLOGIN owner role (the usual way to run DDL as a table's owner):
# the work must still get done, and ec_complete must not wait forever.
############################################################################

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
  CREATE ROLE app_owner NOLOGIN SUPERUSER;
  CREATE SCHEMA own AUTHORIZATION app_owner;
  CREATE TABLE own.items (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO own.items SELECT g, g FROM generate_series(1, 20000) g;
  ALTER TABLE own.items OWNER TO app_owner;
  SET ROLE app_owner;
  SELECT ec_start('o1', '{"operations": [{"alter_column": {"table": "items", "column": "cents",
    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0",
    "down": "(amount * 100)::int"}}]}', 'own');
});
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('own')}, 'done', 15, 'NOLOGIN owner backfill'),
	'a migration started under SET ROLE to a NOLOGIN role is backfilled')
  or diag('server log: ' . join('', grep { /FATAL|ERROR/ }
		  split /^/, slurp_file($node->logfile, $log_offset)) =~ s/(.{0,600}).*/$1/sr);
($ret, $out, $err) = $node->psql('postgres', q{SET statement_timeout = '10s'; SELECT ec_complete('own')},
	timeout => 30);
is($ret, 0, 'ec_complete of that migration finishes (no endless wait)') or diag($err);

############################################################################
# CALL ec_wait: a timeout; inside a transaction block it waits in that transaction (as ec_complete
# does); outside one it commits between polls, so it holds no snapshot the worker waits for.
############################################################################
$node->safe_psql('postgres', q{
  CREATE SCHEMA w;
  CREATE TABLE w.items (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO w.items SELECT g, g FROM generate_series(1, 20000) g;
  BEGIN;
  SELECT ec_start('w1', '{"operations": [{"alter_column": {"table": "items", "column": "cents",
    "type": "bigint", "up": "cents", "down": "cents::int"}}]}', 'w');
  SELECT ec_configure('w', '{"batch_size": 500, "batch_delay_ms": 100, "batch_time_ms": 0}');
  COMMIT;
});
($ret, $out, $err) = $node->psql('postgres', q{CALL ec_wait('w', '300 ms')});
isnt($ret, 0, 'ec_wait with a timeout shorter than the backfill fails');
like($err, qr/background work of the migration of schema "w" did not finish within 00:00:00\.3/,
	'saying it did not finish within the timeout');
is($node->safe_psql('postgres', q{
  BEGIN;
  CALL ec_wait('w');
  SELECT backfill_state FROM ec_status('w');
  COMMIT;
}), 'done', 'ec_wait inside a transaction block waits there until the backfill is done');
$node->safe_psql('postgres', q{
  SELECT ec_complete('w');
  CREATE INDEX ON w.items (cents);
  SELECT ec_start('w2', '{"operations": [{"create_index": {"table": "items", "name": "items_id_cents",
    "columns": [{"column": "id"}, {"column": "cents"}]}}]}', 'w');
});
$node->safe_psql('postgres', q{CALL ec_wait('w')});
is($node->safe_psql('postgres', q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'w.items_id_cents'::regclass}),
	't', 'CALL ec_wait outside a transaction block lets the worker build an index concurrently');
$node->safe_psql('postgres', q{SELECT ec_complete('w')});

# ec_start and ec_rollback in one transaction launch no worker at its commit (found by the ec_plan
# work: each pair took a background worker slot, and a dozen warned that none was free).
my $pairs = join "\n", map { qq{SELECT ec_start('r$_', '{"operations": [{"alter_column": {"table": "items",
  "column": "cents", "type": "int8", "up": "cents", "down": "cents::int"}}]}', 'w'); SELECT ec_rollback('w');} } 1 .. 12;
($ret, $out, $err) = $node->psql('postgres', "BEGIN;\n$pairs\nCOMMIT;");
is($ret, 0, 'twelve ec_start/ec_rollback pairs in one transaction');
unlike($err, qr/WARNING/, 'and no worker launched for them at commit (no slot warning)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM expand_contract.migrations WHERE name LIKE 'r%'}), '0',
	'none of them left in the history');
# Undone by a subtransaction abort, the rollback no longer cancels the launch.
$node->safe_psql('postgres', q{
  BEGIN;
  SELECT ec_start('s1', '{"operations": [{"alter_column": {"table": "items", "column": "cents",
    "type": "int8", "up": "cents", "down": "cents::int"}}]}', 'w');
  SAVEPOINT a;
  SELECT ec_rollback('w');
  ROLLBACK TO SAVEPOINT a;
  COMMIT;
});
ok(wait_for($node, 'postgres', q{SELECT backfill_state FROM ec_status('w')}, 'done', 30, 'rolled-back rollback'),
	'a rollback undone by ROLLBACK TO SAVEPOINT keeps the launch: the backfill runs');
# Its index is rebuilt concurrently after the backfill: wait outside a transaction block first.
$node->safe_psql('postgres', q{CALL ec_wait('w')});
$node->safe_psql('postgres', q{SELECT ec_complete('w')});

$node->stop;
done_testing();
