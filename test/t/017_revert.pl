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
use Time::HiRes qw(time usleep);

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

# Keys under traffic: int to bigint of a unique column that another table's foreign key references
# (the old constraint and foreign key stay in force on the kept-aside column), complete with a
# window and revert while both versions insert into the key table and the referencing one and
# delete with the cascade.
$node->safe_psql('postgres', 'CREATE DATABASE keys');
$node->safe_psql('keys', 'CREATE EXTENSION expand_contract');
$node->safe_psql('keys', slurp_file('test/regress_helpers.sql'));
$node->safe_psql('keys', q{
  CREATE SEQUENCE ids START 100000;
  CREATE TABLE journal (id bigint PRIMARY KEY, code bigint);
  CREATE TABLE ukeys (id bigint PRIMARY KEY, code int NOT NULL CONSTRAINT ukeys_code_key UNIQUE, note text);
  CREATE TABLE urefs (id bigint PRIMARY KEY, code int NOT NULL
                      CONSTRAINT urefs_code_fkey REFERENCES ukeys (code) ON DELETE CASCADE);
  INSERT INTO ukeys SELECT g, g, 'n' || g FROM generate_series(1, 5000) g;
  INSERT INTO urefs SELECT g, g FROM generate_series(1, 5000) g;
  CREATE TABLE journal2 (id bigint PRIMARY KEY);
  CREATE TABLE pkeys (id int PRIMARY KEY, v text);
  CREATE TABLE prefs (id bigint PRIMARY KEY, pid int NOT NULL
                      CONSTRAINT prefs_pid_fkey REFERENCES pkeys ON DELETE CASCADE);
  INSERT INTO pkeys SELECT g, 'v' || g FROM generate_series(1, 5000) g;
  INSERT INTO prefs SELECT g, g FROM generate_series(1, 5000) g;
  CREATE TABLE journal3 (id bigint PRIMARY KEY, iid bigint);
  CREATE TABLE ikeys (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);
  CREATE TABLE irefs (id bigint PRIMARY KEY, iid int NOT NULL
                      CONSTRAINT irefs_iid_fkey REFERENCES ikeys ON DELETE CASCADE);
  INSERT INTO ikeys (v) SELECT 'v' || g FROM generate_series(1, 5000) g;
  INSERT INTO irefs SELECT g, g FROM generate_series(1, 5000) g;
  SELECT ec_start('k0', '{"operations": [{"rename_column": {"table": "ukeys", "from": "note", "to": "remark"}}]}');
  SELECT ec_complete();
});
my $keys_before = $node->safe_psql('keys', $snap);
for my $v ('k0', 'k1')
{
	open($f, '>', "$dir/keys_$v.sql") or die;
	print $f qq{\\set r random(1, 5000)
BEGIN;
SET LOCAL search_path = public_$v;
WITH k AS (INSERT INTO ukeys (id, code) VALUES (nextval('public.ids'), currval('public.ids')) RETURNING id, code),
     r AS (INSERT INTO urefs SELECT id, code FROM k RETURNING id, code)
  INSERT INTO public.journal SELECT id, code FROM r;
DELETE FROM ukeys WHERE id = :r;
COMMIT;
};
	close $f;
}
$node->safe_psql('keys', q{SELECT ec_start('k1', '{"operations": [{"alter_column": {"table": "ukeys", "column": "code", "type": "bigint", "up": "code", "down": "code::int"}}]}')});
$node->safe_psql('keys', 'CALL ec_wait()');
my @keys_clients = map {
	start_pgbench(['pgbench', '-n', '-c', '2', '-T', $_->[1], '-f', "$dir/keys_$_->[0].sql",
			'-h', $node->host, '-p', $node->port, 'keys'], '')
} (['k0', 8], ['k1', 3]);
sleep 1;
$node->safe_psql('keys', q{SELECT ec_complete(revert_window => '1 day')});
is($node->safe_psql('keys', 'SELECT phase FROM ec_status()'), 'revert window', 'keys: complete kept a window');
is($node->safe_psql('keys', q{SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contype IN ('u', 'f') AND conrelid IN ('ukeys'::regclass, 'urefs'::regclass)}),
	'_ec_old_ukeys_code_key,_ec_old_urefs_code_fkey,ukeys_code_key,urefs_code_fkey', 'keys: the old constraints kept aside, the new ones in place');
finish_clients($keys_clients[1], 'keys: new version writers (through complete)');
$node->safe_psql('keys', 'SELECT ec_revert()');
finish_clients($keys_clients[0], 'keys: old version writers (through complete and revert)');
is($node->safe_psql('keys', $snap), $keys_before, 'keys: revert under traffic leaves the schema as before ec_start');
is($node->safe_psql('keys', q{
  SELECT count(*) FILTER (WHERE k.code IS DISTINCT FROM j.code OR r.code IS DISTINCT FROM j.code) || ' of ' || (count(*) > 0)::text
    FROM journal j LEFT JOIN ukeys k USING (id) LEFT JOIN urefs r USING (id)}),
	'0 of true', 'keys: every row written through either version is there, key and reference mapped back');
is($node->safe_psql('keys', q{SELECT count(*) FROM urefs r WHERE NOT EXISTS (SELECT FROM ukeys k WHERE k.code = r.code)}),
	'0', 'keys: no dangling reference');
is($node->safe_psql('keys', q{SELECT (count(*) < 5000) || ' ' || count(*) FILTER (WHERE NOT EXISTS (SELECT FROM ukeys k WHERE k.id = r.id))
                                 FROM urefs r WHERE r.id <= 5000}),
	'true 0', 'keys: the writers deleted keys, and the cascade their references');
my (undef, undef, $fk_err) = $node->psql('keys', q{INSERT INTO urefs VALUES (-1, -1)});
like($fk_err, qr/violates foreign key constraint "urefs_code_fkey"/, 'keys: the restored foreign key is in force');

# The same for int to bigint of a primary key with a foreign key to it: the worker builds the old
# key's index again and adds the foreign key to it at the window's start; ec_revert waits for that.
for my $v ('k0', 'p1')
{
	open($f, '>', "$dir/pk_$v.sql") or die;
	print $f qq{\\set r random(1, 5000)
BEGIN;
SET LOCAL search_path = public_$v;
WITH k AS (INSERT INTO pkeys (id, v) VALUES (nextval('public.ids'), 'w') RETURNING id),
     r AS (INSERT INTO prefs SELECT id, id FROM k RETURNING id)
  INSERT INTO public.journal2 SELECT id FROM r;
DELETE FROM pkeys WHERE id = :r;
COMMIT;
};
	close $f;
}
$node->safe_psql('keys', q{SELECT ec_start('p1', '{"operations": [{"alter_column": {"table": "pkeys", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}')});
$node->safe_psql('keys', 'CALL ec_wait()');
my @pk_clients = map {
	start_pgbench(['pgbench', '-n', '-c', '2', '-T', $_->[1], '-f', "$dir/pk_$_->[0].sql",
			'-h', $node->host, '-p', $node->port, 'keys'], '')
} (['k0', 25], ['p1', 5]);
sleep 1;
# A snapshot older than the window: the worker's CREATE INDEX CONCURRENTLY of the old key waits for it.
my $pk_holder = $node->background_psql('keys');
$pk_holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM journal2');
$node->safe_psql('keys', q{SELECT ec_complete(revert_window => '1 day')});
is($node->safe_psql('keys', 'SELECT phase FROM ec_status()'), 'revert window', 'primary key: complete kept a window');
ok(wait_for($node, 'keys', q{SELECT count(*) > 0 FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill' AND wait_event = 'virtualxid'}, 't', 60,
	'the old key being built'), 'primary key: the worker builds the old key again, held up by an old snapshot');
like($node->safe_psql('keys', q{SELECT string_agg(DISTINCT coalesce(tasks, ''), '|') FROM ec_status()}),
	qr/^preparing ec_revert: \d+ step\(s\) left/, 'primary key: ec_status says ec_revert is not ready yet');
my (undef, undef, $not_ready) = $node->psql('keys', 'SELECT ec_revert()');
like($not_ready, qr/the revert of migration "p1" of schema "public" is not ready yet/,
	'primary key: ec_revert refuses until then, with a clear error');
# The build fails (canceled, as a statement_timeout or a DBA would): ec_status and ec_revert say
# why, a task_failed event tells listeners, and the worker tries again.
my $listener = $node->background_psql('keys');
$listener->query_safe('LISTEN expand_contract');
is($node->safe_psql('keys', q{SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
  WHERE backend_type = 'expand_contract backfill' AND wait_event = 'virtualxid'}), '1',
	'primary key: the old key\'s build canceled');
ok(wait_for($node, 'keys', q{SELECT string_agg(DISTINCT coalesce(tasks, ''), '|') ~ '^preparing ec_revert: \d+ step\(s\) left .*; preparing the revert window failed: canceling statement due to user request \(tried again every 10 seconds\)$' FROM ec_status()},
	't', 30, 'the failure shown'), 'primary key: ec_status shows the failed attempt, and that it is tried again');
(undef, undef, $not_ready) = $node->psql('keys', 'SELECT ec_revert()');
like($not_ready, qr/not ready yet\nDETAIL:  .*its last attempt failed \(preparing the revert window failed: canceling statement due to user request\), and it tries again every 10 seconds/,
	'primary key: ec_revert\'s refusal says why');
my $notified = '';
for (my $deadline = time() + 10; $notified !~ /task_failed/ && time() < $deadline; usleep(100_000))
{
	$notified .= $listener->query_safe('SELECT 1');
}
like($notified, qr/Asynchronous notification "expand_contract" with payload "\{"schema": "public", "migration": "p1", "event": "task_failed", "error": "preparing the revert window failed: canceling statement due to user request"\}"/,
	'primary key: a task_failed event for the failed attempt');
$listener->quit;
$pk_holder->query_safe('COMMIT');
$pk_holder->quit;
ok(wait_for($node, 'keys', q{SELECT prepare_steps = '{}' FROM expand_contract.revert_windows}, 't', 60, 'the window prepared'),
	'primary key: the worker built the old key again under traffic');
is($node->safe_psql('keys', 'SELECT bool_and(tasks IS NULL) FROM ec_status()'), 't', 'primary key: and ec_status no longer says preparing');
is($node->safe_psql('keys', q{SELECT string_agg(conname || ' ' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'prefs'::regclass AND contype = 'f'}),
	'_ec_old_prefs_pid_fkey true,prefs_pid_fkey true', 'primary key: the old foreign key is back on the kept-aside key, validated');
finish_clients($pk_clients[1], 'primary key: new version writers (through complete)');
$node->safe_psql('keys', 'SELECT ec_revert()');
finish_clients($pk_clients[0], 'primary key: old version writers (through complete and revert)');
is($node->safe_psql('keys', $snap), $keys_before, 'primary key: revert under traffic leaves the schema as before ec_start');
is($node->safe_psql('keys', q{
  SELECT count(*) FILTER (WHERE k.id IS NULL OR r.pid IS DISTINCT FROM j.id) || ' of ' || (count(*) > 0)::text
    FROM journal2 j LEFT JOIN pkeys k USING (id) LEFT JOIN prefs r USING (id)}),
	'0 of true', 'primary key: every row written through either version is there, key and reference');
is($node->safe_psql('keys', q{SELECT count(*) FROM prefs r WHERE NOT EXISTS (SELECT FROM pkeys k WHERE k.id = r.pid)}),
	'0', 'primary key: no dangling reference');
(undef, undef, $fk_err) = $node->psql('keys', q{INSERT INTO prefs VALUES (-1, -1)});
like($fk_err, qr/violates foreign key constraint "prefs_pid_fkey"/, 'primary key: the restored foreign key is in force');

# An identity primary key with a foreign key to it, int to bigint, under traffic: both versions
# insert rows whose ids the identity gives (through the base table's identity or the version
# views' defaults), complete keeps a window, ec_revert puts the old identity back.  No two rows
# may get the same id, during the window or after the revert.
my $ident_before = $node->safe_psql('keys', $snap);
for my $v ('k0', 'i1')
{
	open($f, '>', "$dir/ident_$v.sql") or die;
	print $f qq{\\set r random(1, 5000)
BEGIN;
SET LOCAL search_path = public_$v;
WITH k AS (INSERT INTO ikeys (v) VALUES ('$v') RETURNING id),
     r AS (INSERT INTO irefs SELECT nextval('public.ids'), id FROM k RETURNING id, iid)
  INSERT INTO public.journal3 SELECT id, iid FROM r;
DELETE FROM ikeys WHERE id = :r;
COMMIT;
};
	close $f;
}
$node->safe_psql('keys', q{SELECT ec_start('i1', '{"operations": [{"alter_column": {"table": "ikeys", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}')});
$node->safe_psql('keys', 'CALL ec_wait()');
my @ident_clients = map {
	start_pgbench(['pgbench', '-n', '-c', '2', '-T', $_->[1], '-f', "$dir/ident_$_->[0].sql",
			'-h', $node->host, '-p', $node->port, 'keys'], '')
} (['k0', 12], ['i1', 6]);
sleep 1;
$node->safe_psql('keys', q{SELECT ec_complete(revert_window => '1 day')});
is($node->safe_psql('keys', q{SELECT pg_get_serial_sequence('ikeys', 'id') || ' ' || pg_get_serial_sequence('ikeys', '_ec_old_id')}),
	'public.ikeys_id_seq public._ec_old_ikeys_id_seq', 'identity: the new column has its identity, the kept-aside one its own');
ok(wait_for($node, 'keys', q{SELECT prepare_steps = '{}' FROM expand_contract.revert_windows}, 't', 60, 'the window prepared'),
	'identity: the worker built the old key again under traffic');
finish_clients($ident_clients[1], 'identity: new version writers (through complete)');
$node->safe_psql('keys', 'SELECT ec_revert()');
finish_clients($ident_clients[0], 'identity: old version writers (through complete and revert)');
is($node->safe_psql('keys', $snap), $ident_before, 'identity: revert under traffic leaves the schema as before ec_start');
is($node->safe_psql('keys', q{
  SELECT count(*) FILTER (WHERE k.id IS NULL OR r.iid IS DISTINCT FROM j.iid) || ' of ' || (count(*) > 0)::text
    FROM journal3 j JOIN irefs r ON r.id = j.id LEFT JOIN ikeys k ON k.id = j.iid}),
	'0 of true', 'identity: every reference written through either version points at its key');
is($node->safe_psql('keys', q{SELECT count(DISTINCT v) FROM ikeys WHERE v IN ('k0', 'i1')}), '2',
	'identity: both versions inserted keys');
# After the revert the old identity goes on past every id given during the window.
is($node->safe_psql('keys', q{WITH n AS (INSERT INTO ikeys (v) SELECT 'after' FROM generate_series(1, 200) RETURNING id)
  SELECT count(*) FROM n}), '200', 'identity: inserts after the revert get fresh ids');

# The same migration completed without a window under the same traffic: complete locks the version
# views whose identity default it drops up front, with the tables, rather than in the middle.
$node->safe_psql('keys', q{SELECT ec_start('i1', '{"operations": [{"alter_column": {"table": "ikeys", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}}]}')});
$node->safe_psql('keys', 'CALL ec_wait()');
@ident_clients = map {
	start_pgbench(['pgbench', '-n', '-c', '2', '-T', $_->[1], '-f', "$dir/ident_$_->[0].sql",
			'-h', $node->host, '-p', $node->port, 'keys'], '')
} (['k0', 3], ['i1', 6]);
sleep 1;
finish_clients($ident_clients[0], 'identity, plain complete: old version writers (before complete)');
$node->safe_psql('keys', q{SET expand_contract.quiet_period = 0; SELECT ec_complete()});
finish_clients($ident_clients[1], 'identity, plain complete: new version writers (through complete)');
is($node->safe_psql('keys', q{SELECT format_type(atttypid, atttypmod) || ' ' || pg_get_serial_sequence('ikeys', 'id')
  FROM pg_attribute WHERE attrelid = 'ikeys'::regclass AND attname = 'id'}),
	'bigint public.ikeys_id_seq', 'identity, plain complete: the new column is the identity');
is($node->safe_psql('keys', q{WITH n AS (INSERT INTO ikeys (v) SELECT 'after' FROM generate_series(1, 200) RETURNING id)
  SELECT count(*) FROM n}), '200', 'identity, plain complete: inserts after it get fresh ids');

$node->stop;
done_testing();
