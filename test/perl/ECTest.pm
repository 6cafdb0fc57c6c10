# Helpers shared by the TAP tests in test/t (each does `use lib 'test/perl'; use ECTest;`; prove runs
# from the source tree's root).
package ECTest;

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(wait_for);

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

1;
