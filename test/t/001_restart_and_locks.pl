# An active migration across a crash and a restart; and DDL that waits for a lock never stalls
# the application's queries for longer than expand_contract.lock_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract;
  CREATE TABLE accounts (id int PRIMARY KEY, cents int NOT NULL);
  INSERT INTO accounts SELECT g, g * 100 FROM generate_series(1, 1000) g;
  SELECT ec_start('v2', '{"operations": [{"alter_column": {"table": "accounts", "column": "cents",
    "name": "amount", "type": "numeric(10,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}');
});

# Writes through both versions, then a crash (immediate stop) and recovery.
$node->safe_psql('postgres', q{INSERT INTO accounts VALUES (1001, 5)});
$node->safe_psql('postgres', q{SET search_path = public_v2; INSERT INTO accounts VALUES (1002, 7.25)});
$node->stop('immediate');
$node->start;

is($node->safe_psql('postgres', q{SELECT migration || ' ' || phase FROM ec_status()}),
	'v2 active', 'migration still active after crash recovery');

# Fresh backends: the trigger's plan is rebuilt from the extension's tables.
$node->safe_psql('postgres', q{UPDATE accounts SET cents = 999 WHERE id = 1001});
$node->safe_psql('postgres', q{SET search_path = public_v2; UPDATE accounts SET amount = 8.5 WHERE id = 1002});
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(o.id || ':' || o.cents || ':' || n.amount, ',' ORDER BY o.id)
	    FROM public.accounts o JOIN public_v2.accounts n USING (id) WHERE o.id > 1000}),
	'1001:999:9.99,1002:850:8.50', 'both versions stay in step after restart');

$node->restart;
$node->safe_psql('postgres', q{SELECT ec_complete()});
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FILTER (WHERE amount * 100 = id * 100 OR id > 1000) || '/' || count(*) FROM accounts}),
	'1002/1002', 'every row has its value after complete');

# Lock timeouts: a long transaction holds the table; ec_start gives up after its retries, and a
# query arriving meanwhile is not queued behind the waiting DDL for longer than one attempt.
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT count(*) FROM accounts});

my $started = time();
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
  SET expand_contract.lock_timeout = '200ms';
  SET expand_contract.lock_retries = 3;
  SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "accounts",
    "column": {"name": "note", "type": "text", "nullable": true}}}]}');
});
my $elapsed = time() - $started;
isnt($ret, 0, 'ec_start fails while another transaction holds the table');
like($stderr, qr/could not lock relation "accounts" after 4 attempts/, 'clear lock error');
like($stderr, qr/expand_contract\.lock_timeout/, 'error names the setting to raise');
cmp_ok($elapsed, '<', 30, 'ec_start gave up instead of waiting for the transaction');
is($node->safe_psql('postgres', q{SELECT count(*) FROM expand_contract.migrations WHERE name = 'v3'}),
	'0', 'failed start left no migration behind');

# Each attempt waits its whole lock_timeout and each pause its whole backoff (50 ms doubling, plus
# jitter), even when the latch is set meanwhile.  A lock wait ended by lock_timeout leaves such a
# wakeup behind: the deadlock check's SIGALRM stays scheduled for deadlock_timeout after the wait
# began and sets the latch when it goes off.  A pause that ended at the first wakeup lasted at most
# deadlock_timeout - lock_timeout, here 50 ms.  5 attempts of 100 ms and pauses of at least 50, 100,
# 200 and 400 ms take at least 1250 ms; only a lower bound, a slow machine takes longer.
($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
  \set VERBOSITY verbose
  SET expand_contract.lock_timeout = '100ms';
  SET expand_contract.lock_retries = 4;
  SET deadlock_timeout = '150ms';
  SELECT clock_timestamp() AS before_start \gset
  SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "accounts",
    "column": {"name": "note", "type": "text", "nullable": true}}}]}');
  SELECT extract(epoch FROM clock_timestamp() - :'before_start'::timestamptz) * 1000;
},
	on_error_stop => 0);
like($stderr, qr/ERROR:  55P03: could not lock relation "accounts" after 5 attempts/,
	'ec_start fails with SQLSTATE 55P03 after lock_retries + 1 attempts');
like($stdout, qr/^\d+(\.\d+)?$/, 'time spent in ec_start measured');
note(sprintf('ec_start waited %.0f ms for the lock (lower bound 1250 ms)', $stdout));
cmp_ok($stdout, '>=', 1250, 'ec_start waited every attempt and every pause in full');

# While ec_start is waiting for the lock, a reader of the table gets through between attempts.
my $migrator = $node->background_psql('postgres', on_error_stop => 0);
$migrator->query_until(qr/started/, q{
  SET expand_contract.lock_timeout = '300ms';
  SET expand_contract.lock_retries = 20;
  \echo started
  SELECT ec_start('v3', '{"operations": [{"add_column": {"table": "accounts",
    "column": {"name": "note", "type": "text", "nullable": true}}}]}');
});
sleep(1);
$started = time();
$node->safe_psql('postgres', q{SET statement_timeout = '20s'; SELECT count(*) FROM accounts});
my $reader_wait = time() - $started;
cmp_ok($reader_wait, '<', 5, "a reader is not stuck behind the waiting migration (waited ${reader_wait}s)");

$holder->query_safe(q{COMMIT});
$holder->quit;
$migrator->quit;
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM expand_contract.migrations WHERE name = 'v3'})
  or die 'ec_start did not succeed once the lock was free';
is($node->safe_psql('postgres', q{SELECT phase FROM ec_status() WHERE migration = 'v3'}),
	'active', 'ec_start proceeds once the lock is free');

# ec_plan rehearses ec_start with its locks but never queues for one: with a reader holding the
# table it gives up at once (each attempt waits 1 ms), and a writer behind it is not held up.
$node->safe_psql('postgres', q{SELECT ec_rollback()});
$holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT count(*) FROM accounts});
$started = time();
my ($plan_ret, $plan_out, $plan_err) = $node->psql('postgres', q{SET expand_contract.lock_retries = 0;
  SELECT count(*) FROM ec_plan('p1', '{"operations": [{"alter_column": {"table": "accounts",
    "column": "amount", "type": "numeric(14,2)"}}]}')});
my $plan_wait = time() - $started;
isnt($plan_ret, 0, 'ec_plan fails while a reader holds the table');
like($plan_err, qr/could not lock relation "accounts"/, 'saying it could not lock the table');
cmp_ok($plan_wait, '<', 5, "it gives up at once (${plan_wait}s)");
$node->safe_psql('postgres', q{SET statement_timeout = '5s'; INSERT INTO accounts (id, amount) VALUES (-1, 0)});
pass('a writer after it is not held up');
$holder->query_safe(q{COMMIT});
$holder->quit;
is($node->safe_psql('postgres', q{SELECT count(*) FROM expand_contract.migrations WHERE name = 'p1'}), '0',
	'ec_plan left no history row');

$node->stop;
done_testing();
