# Helpers shared by the TAP tests in test/t (each does `use lib 'test/perl'; use ECTest;`; prove runs
# from the source tree's root).
package ECTest;

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use Time::HiRes qw(time usleep);
use IPC::Run;

our @EXPORT = qw(wait_for start_pgbench running finish_clients make_seen_durable);

# Polls $query in database $db of $node until it returns $expected, for at most $secs seconds (short,
# so that a broken backfill fails a test quickly instead of after the framework's 180 s).  Returns
# whether it did; says what it last saw when it did not.
sub wait_for
{
	my ($node, $db, $query, $expected, $secs, $what) = @_;
	my $deadline = time() + $secs;
	my ($ret, $out, $err) = (0, '', '');
	while (time() < $deadline)
	{
		($ret, $out, $err) = $node->psql($db, $query);
		return 1 if $ret == 0 && $out eq $expected;
		usleep(100_000);
	}
	diag("timed out after ${secs}s waiting for $what: query\n$query\nexpected '$expected', got '$out'"
		  . ($err ne '' ? "\nstderr: $err" : ''));
	return 0;
}

# The worker commits its batches with synchronous_commit = off: a crash may lose the last ones it
# committed (their rows and their progress together, in one transaction; they are done again).  A
# test that reads the worker's progress and then crashes the server calls this in between: a commit
# of its own, synchronous, flushes the WAL up to it, so every batch it saw committed survives.
sub make_seen_durable
{
	my ($node, $db) = @_;
	$node->safe_psql($db // 'postgres', 'SET synchronous_commit = on; SELECT txid_current()');
}

# Starts pgbench (@$cmd) in the background with PGOPTIONS $pgoptions; returns a handle for running
# and finish_clients, with %fields (the caller's own: version, phase, ...) in it.
sub start_pgbench
{
	my ($cmd, $pgoptions, %fields) = @_;
	my $h = { %fields, out => '', err => '' };
	local $ENV{PGOPTIONS} = $pgoptions;
	$h->{run} = IPC::Run::start($cmd, '>', \$h->{out}, '2>', \$h->{err});
	$h->{started} = time();
	return $h;
}

sub running
{
	my ($h) = @_;
	return 0 if $h->{done} || !$h->{run}->pumpable;
	eval { $h->{run}->pump_nb; };    # "process ended prematurely" when it has just exited
	return $h->{run}->pumpable;
}

# Waits for pgbench to end and checks that no client saw an error.
sub finish_clients
{
	my ($h, $what) = @_;
	$h->{run}->finish;
	$h->{done} = 1;
	my $rc = $h->{run}->result(0);
	my ($n) = $h->{out} =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $h->{out} =~ /number of failed transactions: (\d+)/;
	my ($tps) = $h->{out} =~ /tps = ([\d.]+)/;
	note sprintf("%s: %s transactions, %s tps, %.0f s", $what, $n // '?', $tps // '?', time() - $h->{started});
	my $ok = is($rc, 0, "$what: pgbench exits 0");
	$ok &&= is($failed, '0', "$what: pgbench reports 0 failed transactions");
	$ok &&= unlike($h->{err}, qr/aborted|error/i, "$what: no client was aborted by an error");
	$ok &&= cmp_ok($n // 0, '>', 0, "$what: clients committed transactions");
	diag("pgbench stderr:\n$h->{err}\npgbench stdout:\n$h->{out}") unless $ok;
	return $ok;
}

1;
