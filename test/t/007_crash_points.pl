# kill -9 of the postmaster at random points during ec_start, during the backfill (and the worker's
# index builds and validations around it) and during ec_complete.  After each recovery the migration
# is in one consistent phase, never half of one:
#  - absent: no state rows, and the schema exactly as before ec_start (catalog snapshot);
#  - active: its state rows, triggers, helper columns and version schema all there (the catalog
#    snapshot equals that of an undisturbed reference run of the same migration);
#  - complete: the final shape, exactly that of the reference run after ec_complete;
# a call that returned success before the kill is never undone; every row committed before the kill
# (base rows, and each row a concurrent writer saw committed, through either version) is there with
# its values; and the migration can be driven on: an active one's backfill resumes from its
# committed progress at the next ec_status() call and ends with new = up(old) in every row, then it
# is completed or rolled back (alternately), each leaving exactly the reference shape with every row.
# A last case checks that the backfill worker stops when the postmaster dies instead of committing
# batches with no postmaster (which also keeps a new postmaster from starting).
#
# Half of the kills take every server process down with the postmaster (see crash_restart).
# Kill points are random: EC_CRASH_SEED=<n> replays a run (the seed is printed first),
# EC_CRASH_ITERATIONS=<n> sets the iterations per phase (default 3).  Each iteration migrates its
# own schema of four tables with an eighteen-operation migration (two create_index and two
# create_constraint among them, so that the worker builds four indexes concurrently), with concurrent
# writers, and in some iterations a transaction holding one of the tables so that the call sits in its
# lock-retry loop.  With three iterations or more, one backfill kill lands in the middle of the first
# index build (before the backfills) and one in the last (after them), each leaving an INVALID index.
use strict;
use warnings;
use Cwd qw(realpath);
use IPC::Run;
use List::Util;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);

my $seed = $ENV{EC_CRASH_SEED} // (int(time() * 1000) ^ $$) % 1_000_000_000;
srand($seed);
note "random kill points: EC_CRASH_SEED=$seed";
my $iterations = $ENV{EC_CRASH_ITERATIONS} // 3;

my $N = 20000;    # rows of t1, t2, t3
my $N4 = 2000;    # rows of t4
my $tmp = PostgreSQL::Test::Utils::tempdir();

my $doc = <<'EOF';
{"operations": [
 {"alter_column": {"table": "t1", "column": "cents", "name": "amount", "type": "numeric(12,2)",
                   "up": "cents / 100.0", "down": "(amount * 100)::int"}},
 {"rename_column": {"table": "t1", "from": "name", "to": "label"}},
 {"create_index": {"table": "t1", "name": "t1_label_key", "unique": true, "columns": [{"column": "label"}]}},
 {"create_index": {"table": "t1", "name": "t1_amount_idx", "columns": [{"column": "amount"}]}},
 {"add_column": {"table": "t1", "column": {"name": "code", "type": "text", "nullable": true, "unique": true},
                 "up": "'c' || id"}},
 {"sql": {"up": "SELECT count(*) FROM generate_series(1, 2000000)", "down": "SELECT 1"}},
 {"add_column": {"table": "t2", "column": {"name": "doubled", "type": "bigint", "nullable": false},
                 "up": "qty * 2"}},
 {"alter_column": {"table": "t2", "column": "flag", "nullable": false, "up": "coalesce(flag, 0)", "down": "flag"}},
 {"sql": {"up": "SELECT count(*) FROM generate_series(1, 2000000)", "down": "SELECT 1"}},
 {"drop_column": {"table": "t3", "column": "old_col", "down": "'restored ' || id"}},
 {"add_column": {"table": "t3", "column": {"name": "w", "type": "int", "nullable": true,
                 "check": {"name": "w_pos", "constraint": "w >= 0"}}, "up": "v"}},
 {"create_constraint": {"table": "t4", "name": "t4_a_positive", "type": "check", "columns": ["a"],
                        "check": "a > 0"}},
 {"create_constraint": {"table": "t4", "name": "t4_b_key", "type": "unique", "columns": ["b"]}},
 {"rename_table": {"from": "t4", "to": "t4_renamed"}},
 {"rename_constraint": {"table": "t4_renamed", "from": "t4_pkey", "to": "t4_renamed_pkey"}},
 {"set_replica_identity": {"table": "t2", "identity": {"type": "full"}}},
 {"create_table": {"name": "audit", "columns": [{"name": "id", "type": "bigint", "pk": true},
                                                {"name": "what", "type": "text", "nullable": true}]}},
 {"sql": {"up": "SELECT count(*) FROM generate_series(1, 2000000)", "onComplete": true}}
]}
EOF

############################################################################
# Helpers
############################################################################

# psql running a script in the background; bg_finish returns (exit code, stdout, stderr).
my $jobs = 0;

sub bg_psql
{
	my ($node, $sql) = @_;
	my $file = "$tmp/job" . ++$jobs . '.sql';
	open(my $fh, '>', $file) or die "$file: $!";
	print $fh $sql;
	close $fh;
	my %job = (out => '', err => '');
	$job{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-h', $node->host, '-p', $node->port,
		  '-d', 'postgres', '-f', $file ],
		'<', \undef, '>', \$job{out}, '2>', \$job{err},
		IPC::Run::timeout(300));
	return \%job;
}

sub bg_finish
{
	my ($job) = @_;
	eval { $job->{h}->finish; };
	if ($@)
	{
		diag("background psql did not end: $@");
		$job->{h}->kill_kill;
		return (-1, $job->{out}, $job->{err});
	}
	return ($job->{h}->result(0), $job->{out}, $job->{err});
}

# The server's processes: every one has the data directory as its working directory.
sub server_pids
{
	my ($node) = @_;
	my $dir = realpath($node->data_dir);
	opendir(my $dh, '/proc') or die "/proc: $!";
	my @pids = grep { /^\d+$/ && (readlink("/proc/$_/cwd") // '') eq $dir } readdir($dh);
	closedir($dh);
	return @pids;
}

sub cmdline
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/cmdline") or return '?';
	local $/;
	my $c = <$fh> // '';
	$c =~ s/\0/ /g;
	return $c;
}

sub postmaster_pid
{
	my ($node) = @_;
	open(my $fh, '<', $node->data_dir . '/postmaster.pid') or die "postmaster.pid: $!";
	my $pid = <$fh>;
	close $fh;
	chomp $pid;
	return $pid;
}

# A new postmaster refuses to start while the old one's pid exists, even as a zombie: wait until
# it has been reaped.
sub wait_reaped
{
	my ($pid) = @_;
	my $deadline = time() + 60;
	usleep(20_000) while kill(0, $pid) && time() < $deadline;
	diag("process $pid still there after 60s") if kill(0, $pid);
}

# kill -9 the postmaster, wait for its children to notice and exit, start again.  Returns the
# children that were still there after $patience seconds (they are then killed).
# A backend notices the postmaster's death only when it waits (for a lock, a latch, the client):
# one in the middle of a statement finishes it, and may commit.  So half the time every server
# process is killed with the postmaster, which stops each wherever it is (as a crash of the whole
# machine or container would, except that what reached the kernel is kept).
sub crash_restart
{
	my ($node, $what, $patience) = @_;
	$patience //= 60;
	my $postmaster = postmaster_pid($node);
	my $everything = rand() < 0.5;
	note "$what: kill -9 of the postmaster" . ($everything ? ' and of every server process' : '');
	$node->kill9;
	kill 'KILL', server_pids($node) if $everything;
	my $deadline = time() + $patience;
	my @left;
	while (1)
	{
		@left = server_pids($node);
		last if !@left || time() > $deadline;
		usleep(50_000);
	}
	my @lingered = map { "$_ (" . cmdline($_) . ')' } @left;
	if (@left)
	{
		diag("$what: still running ${patience}s after the postmaster was killed: @lingered");
		kill 'KILL', @left;
		usleep(50_000) while server_pids($node);
	}
	wait_reaped($postmaster);
	$node->start;
	return @lingered;
}

sub q1
{
	my ($node, $sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

sub make_schema
{
	my ($node, $s) = @_;
	q1($node, qq{
	  CREATE SCHEMA $s;
	  CREATE TABLE $s.t1 (id bigint PRIMARY KEY, cents int NOT NULL, name text NOT NULL);
	  CREATE TABLE $s.t2 (id bigint PRIMARY KEY, qty int NOT NULL, flag int);
	  CREATE TABLE $s.t3 (id bigint PRIMARY KEY, v int NOT NULL, old_col text);
	  CREATE TABLE $s.t4 (id bigint PRIMARY KEY, a int, b text);
	  INSERT INTO $s.t1 SELECT g, g % 1000 + 1, 'name ' || g FROM generate_series(1, $N) g;
	  INSERT INTO $s.t2 SELECT g, g % 50, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 7 END
	    FROM generate_series(1, $N) g;
	  INSERT INTO $s.t3 SELECT g, g % 100, 'old ' || g FROM generate_series(1, $N) g;
	  INSERT INTO $s.t4 SELECT g, g, 'b' || g FROM generate_series(1, $N4) g;
	  ANALYZE $s.t1, $s.t2, $s.t3, $s.t4;
	});
}

sub start_sql
{
	my ($s, $settings) = @_;
	my $sql = "SELECT ec_start('v1', \$m\$$doc\$m\$, '$s');\n";
	$sql = "BEGIN;\n$sql SELECT ec_configure('$s', '$settings');\nCOMMIT;\n" if $settings;
	return "$sql\\echo STARTED\n";
}

# Writers: one autocommit INSERT per statement, each printing what it wrote once committed.
# Old version: the base tables (no version schema on the path).  New version: $s_v1.
# Every value is a function of the id, the same whichever version wrote it.
sub old_writer_sql
{
	my ($s, $first, $n) = @_;
	my $sql = '';
	for my $id ($first .. $first + $n - 1)
	{
		my $cents = $id % 1000 + 1;
		my $flag = $id % 7;
		my $qty = $id % 50;
		$sql .= "INSERT INTO $s.t1 (id, cents, name) VALUES ($id, $cents, 'name $id') RETURNING 't1:' || id;\n";
		$sql .= "INSERT INTO $s.t2 (id, qty, flag) VALUES ($id, $qty, $flag) RETURNING 't2:' || id;\n";
	}
	return $sql;
}

sub new_writer_sql
{
	my ($s, $first, $n) = @_;
	my $sql = "SET search_path TO ${s}_v1;\n";
	for my $id ($first .. $first + $n - 1)
	{
		my $amount = sprintf('%.2f', ($id % 1000 + 1) / 100);
		my $flag = $id % 7;
		my $qty = $id % 50;
		my $doubled = 2 * $qty;
		$sql .= "INSERT INTO t1 (id, amount, label, code) VALUES ($id, $amount, 'name $id', 'c$id') RETURNING 't1:' || id;\n";
		$sql .= "INSERT INTO t2 (id, qty, flag, doubled) VALUES ($id, $qty, $flag, $doubled) RETURNING 't2:' || id;\n";
	}
	return $sql;
}

# Rows a finished writer saw committed: {t1 => [ids], t2 => [ids]}.
sub acked
{
	my ($acked, $out) = @_;
	for my $line (split /\n/, $out)
	{
		push @{ $acked->{$1} }, $2 if $line =~ /^(t[12]):(\d+)$/;
	}
}

# Expected values, as functions of the id.
my $t2_flag = "CASE WHEN id <= $N AND id % 3 = 0 THEN NULL ELSE id % 7 END";
my %bad = (
	old => {
		t1 => "cents IS DISTINCT FROM id % 1000 + 1 OR name IS DISTINCT FROM 'name ' || id",
		t2 => "qty IS DISTINCT FROM id % 50 OR flag IS DISTINCT FROM $t2_flag",
		t3 => "v IS DISTINCT FROM id % 100 OR old_col IS DISTINCT FROM 'old ' || id",
		t4 => "a IS DISTINCT FROM id OR b IS DISTINCT FROM 'b' || id",
	},
	new => {
		t1 => "amount IS DISTINCT FROM (id % 1000 + 1) / 100.0 OR label IS DISTINCT FROM 'name ' || id"
		  . " OR code IS DISTINCT FROM 'c' || id",
		t2 => "qty IS DISTINCT FROM id % 50 OR flag IS DISTINCT FROM coalesce($t2_flag, 0)"
		  . " OR doubled IS DISTINCT FROM (id % 50) * 2",
		t3 => "v IS DISTINCT FROM id % 100 OR w IS DISTINCT FROM id % 100",
		t4_renamed => "a IS DISTINCT FROM id OR b IS DISTINCT FROM 'b' || id",
	});

# Checks the rows of schema $s as version $version ('old': base tables before complete; 'new': the
# version schema's views, or the base tables once complete) sees them: every base row there, with
# its values, every acknowledged writer row there; every row right (with $only_written, only rows
# written through the trigger are checked in the new version: the backfill has not run yet).
sub check_rows
{
	my ($node, $s, $version, $nsp, $acked, $what, $only_written) = @_;
	for my $t (sort keys %{ $bad{$version} })
	{
		my $base = $t =~ /^t4/ ? $N4 : $N;
		my $sum = $base * ($base + 1) / 2;
		my $filter = $only_written ? "AND id > $N" : '';
		is( q1($node, qq{
			  SELECT count(*) FILTER (WHERE id <= $base) || ' ' || coalesce(sum(id) FILTER (WHERE id <= $base), 0)
			         || ' ' || count(*) FILTER (WHERE ($bad{$version}{$t}) $filter)
			    FROM $nsp.$t}),
			"$base $sum 0",
			"$what: $version version, $nsp.$t: all $base base rows there, "
			  . ($only_written ? 'rows written since the start' : 'every row') . ' right');
		my $ids = $acked->{ $t =~ s/_renamed//r } // [];
		next unless @$ids;
		is( q1($node, "SELECT count(*) FROM $nsp.$t WHERE id = ANY ('{" . join(',', @$ids) . "}')"),
			scalar(@$ids), "$what: $version version, $nsp.$t: the " . scalar(@$ids)
			  . ' rows the writers saw committed are there');
	}
}

# Catalog snapshot of schema $s and its version schemas, schema names replaced by S.  Non-strict
# leaves out what the backfill worker changes while the migration is active: the validity of NOT
# VALID constraints and the indexes it builds concurrently (_ec_* for the unique column and
# constraint, and the create_index ones, t1_label_key and t1_amount_idx; a kill during a build
# leaves an invalid one that the next attempt replaces).
sub install_helpers
{
	my ($node) = @_;
	q1($node, q{
	  CREATE SCHEMA crashtest;
	  CREATE TABLE crashtest.ref (kind text, x text);
	  CREATE FUNCTION crashtest.snapshot(nsp text, strict boolean) RETURNS SETOF text LANGUAGE sql AS $f$
	    SELECT replace(x, nsp, 'S') FROM (
	    SELECT format('column %s.%s %s %s default %s', c.relname, a.attname,
	                  format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
	                  pg_get_expr(d.adbin, d.adrelid)) AS x
	      FROM pg_class c
	      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
	     WHERE c.relnamespace = nsp::regnamespace AND c.relkind IN ('r', 'p')
	    UNION ALL
	    SELECT format('constraint %s on %s: %s%s', conname, c.relname,
	                  replace(pg_get_constraintdef(k.oid), ' NOT VALID', ''),
	                  CASE WHEN strict AND NOT convalidated THEN ' NOT VALID' ELSE '' END)
	      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.connamespace = nsp::regnamespace
	    UNION ALL
	    SELECT format('relation %s kind %s', relname, relkind)
	      FROM pg_class WHERE relnamespace = nsp::regnamespace
	       AND (strict OR NOT (relname LIKE '\_ec\_%' OR relname IN ('t1_label_key', 't1_amount_idx')))
	    UNION ALL
	    SELECT format('index %s %s', pg_get_indexdef(i.indexrelid), CASE WHEN i.indisvalid THEN 'valid' ELSE 'INVALID' END)
	      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
	     WHERE c.relnamespace = nsp::regnamespace
	       AND (strict OR NOT (ic.relname LIKE '\_ec\_%' OR ic.relname IN ('t1_label_key', 't1_amount_idx')))
	    UNION ALL
	    SELECT format('trigger %s on %s enabled %s: %s', tgname, c.relname, tgenabled, pg_get_triggerdef(t.oid))
	      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	     WHERE c.relnamespace = nsp::regnamespace AND NOT tgisinternal
	    UNION ALL
	    SELECT format('identity %s %s', relname, relreplident)
	      FROM pg_class WHERE relnamespace = nsp::regnamespace AND relkind IN ('r', 'p')
	    UNION ALL
	    SELECT format('schema %s', nspname) FROM pg_namespace WHERE nspname LIKE nsp || '\_%'
	    UNION ALL
	    SELECT format('view %s.%s column %s %s', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod))
	      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
	     WHERE n.nspname LIKE nsp || '\_%'
	    UNION ALL
	    SELECT format('view %s.%s: %s', n.nspname, c.relname, pg_get_viewdef(c.oid))
	      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	     WHERE n.nspname LIKE nsp || '\_%' AND c.relkind = 'v'
	    UNION ALL
	    SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p WHERE pronamespace = nsp::regnamespace
	    ) s
	  $f$;
	  CREATE FUNCTION crashtest.diff(k text, nsp text, strict boolean) RETURNS SETOF text LANGUAGE sql AS $f$
	    (SELECT '- ' || x FROM crashtest.ref WHERE kind = k EXCEPT SELECT '- ' || y FROM crashtest.snapshot(nsp, strict) y)
	    UNION ALL
	    (SELECT '+ ' || y FROM crashtest.snapshot(nsp, strict) y EXCEPT SELECT '+ ' || x FROM crashtest.ref WHERE kind = k)
	    ORDER BY 1
	  $f$;
	});
}

sub save_ref
{
	my ($node, $kind, $s, $strict) = @_;
	q1($node, "INSERT INTO crashtest.ref SELECT '$kind', x FROM crashtest.snapshot('$s', $strict) x");
}

sub same_shape
{
	my ($node, $kind, $s, $strict, $what) = @_;
	is(q1($node, "SELECT string_agg(d, E'\\n') FROM crashtest.diff('$kind', '$s', $strict) d"), '',
		"$what: the catalog is exactly the reference '$kind' shape");
}

# 'absent', 'active' or 'complete'.
sub phase
{
	my ($node, $s) = @_;
	return q1($node, qq{SELECT coalesce((SELECT CASE WHEN done THEN 'complete' ELSE 'active' END
	    FROM expand_contract.migrations WHERE schema_name = '$s' AND name = 'v1'), 'absent')});
}

# Extension state rows of the migration of $s: dual_writes, tasks, steps.
sub state_rows
{
	my ($node, $s) = @_;
	return q1($node, qq{
	  SELECT (SELECT count(*) FROM expand_contract.dual_writes d WHERE d.migration_id = m.id) || ' '
	      || (SELECT count(*) FROM expand_contract.tasks t WHERE t.migration_id = m.id) || ' '
	      || (cardinality(complete_steps) > 0 AND cardinality(rollback_steps) > 0 AND cardinality(relids) = 5)
	    FROM expand_contract.migrations m WHERE schema_name = '$s' AND name = 'v1'});
}

# Whatever the recovery left: exactly one of the three phases, each complete in itself.
sub check_consistent
{
	my ($node, $s, $acked, $what, $written_through_trigger) = @_;
	my $phase = phase($node, $s);
	note "$what: after recovery the migration is $phase";
	if ($phase eq 'absent')
	{
		same_shape($node, 'before', $s, 'true', $what);
		is( q1($node, qq{SELECT count(*) FROM expand_contract.dual_writes d JOIN pg_class c ON c.oid = d.relid
		     WHERE c.relnamespace = '$s'::regnamespace}), '0', "$what: no dual-write state left");
		check_rows($node, $s, 'old', $s, $acked, $what);
	}
	elsif ($phase eq 'active')
	{
		same_shape($node, 'active', $s, 'false', $what);
		# dual_writes: t1 to t4.  Tasks: the unique index builds (t1_label_key, column code, t4_b_key),
		# the backfills of t1 to t4, the validations (t1 amount and t2 doubled and flag NOT NULL,
		# w_pos, t4_a_positive), the build of t1_amount_idx.
		is(state_rows($node, $s), '4 13 true', "$what: dual_writes, tasks and plan rows all there");
		check_rows($node, $s, 'old', $s, $acked, $what);
		check_rows($node, $s, 'new', "${s}_v1", $acked, $what, 1) if $written_through_trigger;
	}
	else
	{
		same_shape($node, 'complete', $s, 'true', $what);
		is(state_rows($node, $s), '0 13 true', "$what: complete: no dual-write state left, history kept");
		check_rows($node, $s, 'new', $s, $acked, $what);
	}
	return $phase;
}

# Writes through both versions of an active migration after the recovery: the triggers work.
sub probe_writes
{
	my ($node, $s, $acked, $what) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', old_writer_sql($s, 300001, 5) . new_writer_sql($s, 400001, 5));
	is($ret, 0, "$what: writes through both versions work after the recovery") or diag($err);
	acked($acked, $out);
}

# Indexes of schema $s that are not valid (a CREATE INDEX CONCURRENTLY that did not finish).
sub invalid_indexes
{
	my ($node, $s) = @_;
	return q1($node, qq{SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	    WHERE c.relnamespace = '$s'::regnamespace AND NOT i.indisvalid});
}

my $drive = 0;

# Drive an active migration to its end: its backfill resumes (ec_status() relaunches the worker)
# and ends with new = up(old) in every row; then complete or roll back, alternately.
sub drive_on
{
	my ($node, $s, $acked, $what, $exact_rows_done) = @_;
	q1($node, "SELECT count(*) FROM ec_status('$s')");
	ok(wait_for($node, 'postgres', "SELECT count(*) FROM ec_status('$s') WHERE backfill_state <> 'done'", '0', 180,
			"$what: backfill done"),
		"$what: the backfill resumes and finishes");
	if ($exact_rows_done)
	{
		is(q1($node, "SELECT string_agg(rows_done::text, ' ' ORDER BY table_name) FROM ec_status('$s')"),
			"$N $N $N $N4", "$what: rows_done is exactly the number of rows of each table (no batch counted twice)");
	}
	my ($ret, $out, $err) = $node->psql('postgres', "CALL ec_wait('$s', '180s')");
	is($ret, 0, "$what: every task of the worker done") or diag($err);
	is(invalid_indexes($node, $s), '0', "$what: every index the worker built is valid");
	same_shape($node, 'active_done', $s, 'true', "$what: backfilled");
	check_rows($node, $s, 'old', $s, $acked, "$what: backfilled");
	check_rows($node, $s, 'new', "${s}_v1", $acked, "$what: backfilled");
	if ($drive++ % 2 == 0)
	{
		q1($node, "SELECT ec_complete('$s')");
		is(phase($node, $s), 'complete', "$what: ec_complete after the recovery");
		same_shape($node, 'complete', $s, 'true', "$what: completed");
		is(invalid_indexes($node, $s), '0', "$what: completed: no invalid index");
		check_rows($node, $s, 'new', $s, $acked, "$what: completed");
		check_rows($node, $s, 'new', "${s}_v1", $acked, "$what: completed, through the version schema");
	}
	else
	{
		q1($node, "SELECT ec_rollback('$s')");
		is(phase($node, $s), 'absent', "$what: ec_rollback after the recovery");
		same_shape($node, 'before', $s, 'true', "$what: rolled back");
		is(invalid_indexes($node, $s), '0', "$what: rolled back: no invalid index");
		check_rows($node, $s, 'old', $s, $acked, "$what: rolled back");
	}
}

# A transaction holding one of the tables for a while, so that the call waits in its retry loop.
sub lock_holder
{
	my ($node, $s) = @_;
	my $t = (qw(t1 t2 t3 t4))[ int(rand(4)) ];
	my $hold = sprintf('%.2f', 0.3 + rand(1.5));
	my $job = bg_psql($node, "BEGIN;\nLOCK TABLE $s.$t IN ACCESS SHARE MODE;\nSELECT pg_sleep($hold);\nCOMMIT;\n");
	wait_for($node, 'postgres', qq{SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	    WHERE c.relname = '$t' AND c.relnamespace = '$s'::regnamespace AND l.granted}, 't', 30, 'lock holder')
	  or die 'the lock holder did not get its lock';
	return ($job, $hold, $t);
}

sub elapsed
{
	my ($node, $sql) = @_;
	my $t0 = time();
	q1($node, $sql);
	return time() - $t0;
}

############################################################################
# The node, and a reference run of the migration: the shape before, while active, once the
# backfill is done, after complete; and how long each step takes on this machine.
############################################################################

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
expand_contract.lock_timeout = '200ms'
expand_contract.lock_retries = 100
max_worker_processes = 16
max_connections = 40
shared_buffers = 32MB
log_statement = none
track_commit_timestamp = on
lc_messages = 'C'
});
$node->start;
q1($node, 'CREATE EXTENSION expand_contract');
install_helpers($node);

make_schema($node, 'crash_ref');
save_ref($node, 'before', 'crash_ref', 'true');
my $t_start = elapsed($node, start_sql('crash_ref', '{"batch_size": 100, "batch_delay_ms": 2}'));
save_ref($node, 'active', 'crash_ref', 'false');
my $t0 = time();
$node->psql('postgres', "CALL ec_wait('crash_ref', '180s')");
my $t_backfill = time() - $t0;
save_ref($node, 'active_done', 'crash_ref', 'true');
my $t_complete = elapsed($node, "SELECT ec_complete('crash_ref')");
save_ref($node, 'complete', 'crash_ref', 'true');
note sprintf('reference run: ec_start %.2fs, backfill, validations and index builds %.2fs (batches of 100), '
	  . 'ec_complete %.2fs', $t_start, $t_backfill, $t_complete);
is(q1($node, q{SELECT count(*) FROM crashtest.ref WHERE kind = 'active' AND x LIKE 'trigger%'}), '8',
	'reference: the active shape has the dual-write triggers, two on each of four tables');
is(q1($node, q{SELECT count(*) FROM crashtest.ref WHERE kind = 'complete' AND x LIKE '%\_ec\_%'}), '0',
	'reference: the complete shape has no helper object');
check_rows($node, 'crash_ref', 'new', 'crash_ref', {}, 'reference');

############################################################################
# (a) kill during ec_start
############################################################################

for my $i (1 .. $iterations)
{
	my $s = sprintf('crash_st%03d', $i);
	my $what = "ec_start #$i";
	make_schema($node, $s);
	q1($node, 'CHECKPOINT');
	my %acked;

	my $writer = bg_psql($node, old_writer_sql($s, 100001, 3000));
	my ($holder, $hold, $held) = rand() < 0.5 ? lock_holder($node, $s) : (undef, 0, '');
	my $call = bg_psql($node, start_sql($s, rand() < 0.5 ? '{"batch_size": 100}' : undef));
	my $delay = rand(1.2 * $t_start + $hold);
	usleep(int($delay * 1e6));
	note sprintf('%s: kill after %.3fs%s', $what, $delay, $holder ? " ($held held for ${hold}s)" : '');
	crash_restart($node, $what);

	my ($ret, $out, $err) = bg_finish($call);
	acked(\%acked, (bg_finish($writer))[1]);
	bg_finish($holder) if $holder;
	my $returned = $ret == 0 && $out =~ /^STARTED$/m;
	note "$what: ec_start " . ($returned ? 'had returned' : "had not returned ($err)");

	my $phase = check_consistent($node, $s, \%acked, $what, 0);
	isnt($phase, 'complete', "$what: not complete");
	is($phase, 'active', "$what: ec_start returned before the kill, so it is active") if $returned;
	if ($phase eq 'absent')
	{
		# Nothing stuck: the migration starts again, without a crash this time.
		q1($node, start_sql($s));
		is(phase($node, $s), 'active', "$what: ec_start works again after the recovery");
	}
	probe_writes($node, $s, \%acked, $what);
	drive_on($node, $s, \%acked, $what);
}

############################################################################
# (b) kill during the backfill
############################################################################

# Where each iteration kills: once the backfill has done a random part of its blocks (a fraction),
# or in the middle of the first or the last index build.  With three iterations or more, each index
# build once and the rest at random parts of the blocks, in random order.
my @bf_kills = map { my $r = rand(); $r < 0.2 ? 'first index build' : $r < 0.4 ? 'last index build' : rand() }
  1 .. $iterations;
@bf_kills = List::Util::shuffle('first index build', 'last index build', map { rand() } 3 .. $iterations)
  if $iterations >= 3;

for my $i (1 .. $iterations)
{
	my $s = sprintf('crash_bf%03d', $i);
	my $what = "backfill #$i";
	make_schema($node, $s);
	q1($node, 'CHECKPOINT');
	my %acked;
	my $settings = sprintf('{"batch_size": 100, "batch_delay_ms": %d}', rand() < 0.5 ? 0 : 2);
	# Where to kill: once the backfill has done a random part of its blocks, a few milliseconds
	# later; or in the middle of an index build, the first one (t1_label_key, a unique create_index,
	# before the backfills) or the last (t1_amount_idx, after the backfills and validations).  An
	# index build is held there by a transaction with an older snapshot, which CREATE INDEX
	# CONCURRENTLY waits for with the index already in the catalog, INVALID: the kill leaves it
	# behind, for the worker to clean up and build again.
	my $part = $bf_kills[ $i - 1 ];
	my $snapshot_holder = sub {
		my $job = bg_psql($node, "SET application_name = 'snapshot holder $s';\n"
			  . "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT 1;\nSELECT pg_sleep(150);\nCOMMIT;\n");
		wait_for($node, 'postgres', qq{SELECT count(*) FROM pg_stat_activity
		    WHERE application_name = 'snapshot holder $s' AND backend_xmin IS NOT NULL}, '1', 30, 'snapshot holder')
		  or die 'the snapshot holder did not take its snapshot';
		return $job;
	};
	my $snapshot = $part eq 'first index build' ? $snapshot_holder->() : undef;
	q1($node, start_sql($s, $settings));

	my $old = bg_psql($node, old_writer_sql($s, 100001, 3000));
	my $new = bg_psql($node, new_writer_sql($s, 200001, 3000));
	my $tasks_left = qq{SELECT count(*) FROM expand_contract.tasks t
	    JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE m.schema_name = '$s' AND t.state <> 'done'};
	my $deadline = time() + 120;
	my $blocks = q1($node, "SELECT sum(relpages) FROM pg_class WHERE relnamespace = '$s'::regnamespace
	    AND relname IN ('t1', 't2', 't3', 't4')");
	my $building = '';
	if ($part =~ /index/)
	{
		if ($part eq 'last index build')
		{
			# Once the unique indexes are built (the backfills then take seconds).
			usleep(10_000) while q1($node, qq{SELECT count(*) FROM expand_contract.tasks t
			    JOIN expand_contract.migrations m ON m.id = t.migration_id
			   WHERE m.schema_name = '$s' AND t.kind = 'sql' AND t.sql LIKE '%UNIQUE INDEX CONCURRENTLY%'
			     AND t.state <> 'done'}) ne '0' && time() < $deadline;
			$snapshot = $snapshot_holder->();
		}
		my $invalid = qq{SELECT coalesce(string_agg(c.relname, ','), '') FROM pg_index i
		    JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = '$s'::regnamespace AND NOT i.indisvalid};
		usleep(10_000)
		  while ($building = q1($node, $invalid)) eq '' && q1($node, $tasks_left) ne '0' && time() < $deadline;
		usleep(int(rand(0.03) * 1e6));
	}
	else
	{
		my $progress = qq{SELECT coalesce(sum(t.next_block), 0) FROM expand_contract.tasks t
		    JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE m.schema_name = '$s'};
		usleep(20_000) while q1($node, $progress) < $part * $blocks && time() < $deadline;
		usleep(int(rand(0.03) * 1e6));
	}
	my $before = q1($node, qq{SELECT string_agg(t.seq || ':' || t.state || ':' || t.next_block, ' ' ORDER BY t.seq)
	    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
	   WHERE m.schema_name = '$s'});
	note sprintf('%s (%s): kill %s; tasks seq:state:next_block %s', $what, $settings,
		$part =~ /index/ ? "during the $part (invalid: $building)" : sprintf('at %d%% of %d blocks', 100 * $part, $blocks),
		$before);
	crash_restart($node, $what);
	acked(\%acked, (bg_finish($old))[1]);
	acked(\%acked, (bg_finish($new))[1]);
	bg_finish($snapshot) if $snapshot;
	ok($building ne '', "$what: the kill came during the $part (an INVALID index in the catalog)")
	  if $part =~ /index/;

	is(check_consistent($node, $s, \%acked, $what, 1), 'active', "$what: still active");
	# The worker commits asynchronously (synchronous_commit = off): the last batches seen before
	# the kill may be lost with their progress, and are then done again.  Hence no comparison here;
	# rows_done, exact at the end, shows that no batch was counted twice.
	note "$what: tasks after the recovery " . q1($node, qq{
	  SELECT string_agg(t.seq || ':' || t.state || ':' || t.next_block, ' ' ORDER BY t.seq)
	    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
	   WHERE m.schema_name = '$s'}) . '; invalid indexes: ' . invalid_indexes($node, $s);
	probe_writes($node, $s, \%acked, $what);
	drive_on($node, $s, \%acked, $what, 1);
}

############################################################################
# (c) kill during ec_complete
############################################################################

for my $i (1 .. $iterations)
{
	my $s = sprintf('crash_co%03d', $i);
	my $what = "ec_complete #$i";
	make_schema($node, $s);
	my %acked;
	# Half the time the worker is still busy when the call is made: the call is then CALL ec_wait()
	# and ec_complete() (ec_complete cannot wait for the worker's CREATE INDEX CONCURRENTLY, which
	# waits for ec_complete's own snapshot), so the kill lands in the backfill, a validation, an
	# index build or ec_complete.
	my $pending = rand() < 0.5;
	q1($node, start_sql($s, '{"batch_size": 100, "batch_delay_ms": 2}'));
	q1($node, "CALL ec_wait('$s', '180s')") unless $pending;
	q1($node, 'CHECKPOINT');

	my $old = bg_psql($node, old_writer_sql($s, 100001, 3000));
	my $new = bg_psql($node, new_writer_sql($s, 200001, 3000));
	my ($holder, $hold, $held) = rand() < 0.5 ? lock_holder($node, $s) : (undef, 0, '');
	my $call = bg_psql($node,
		($pending ? "CALL ec_wait('$s', '180s');\n" : '') . "SELECT ec_complete('$s');\n\\echo COMPLETED\n");
	my $delay = rand(1.3 * $t_complete + $hold + ($pending ? $t_backfill : 0));
	usleep(int($delay * 1e6));
	note sprintf('%s: kill after %.3fs%s%s', $what, $delay, $pending ? ', worker busy at the call (ec_wait first)' : '',
		$holder ? " ($held held for ${hold}s)" : '');
	crash_restart($node, $what);

	my ($ret, $out, $err) = bg_finish($call);
	acked(\%acked, (bg_finish($old))[1]);
	acked(\%acked, (bg_finish($new))[1]);
	bg_finish($holder) if $holder;
	my $returned = $ret == 0 && $out =~ /COMPLETED/;
	note "$what: ec_complete " . ($returned ? 'had returned' : "had not returned ($err)");

	my $phase = check_consistent($node, $s, \%acked, $what, 1);
	isnt($phase, 'absent', "$what: not absent");
	is($phase, 'complete', "$what: ec_complete returned before the kill, so it is complete") if $returned;
	if ($phase eq 'active')
	{
		probe_writes($node, $s, \%acked, $what);
		drive_on($node, $s, \%acked, $what);
	}
	else
	{
		is(invalid_indexes($node, $s), '0', "$what: complete: no invalid index");
		check_rows($node, $s, 'new', "${s}_v1", \%acked, "$what: complete, through the version schema");
	}
}

############################################################################
# (d) The backfill worker stops when the postmaster dies.  It is frozen (SIGSTOP) while the
# postmaster is killed, then let go (SIGCONT): it may commit the batch it was in, and must then exit
# instead of going on with no postmaster (batch_delay_ms 0: it never waits on its latch).  Its
# batches after the kill are counted by commit timestamp (track_commit_timestamp): a batch is one
# transaction.  Only the postmaster is killed here, and the other processes are left to notice.
############################################################################

{
	my $s = 'crash_orphan';
	my $what = 'postmaster death';
	q1($node, qq{
	  CREATE SCHEMA $s;
	  CREATE TABLE $s.big (id bigint PRIMARY KEY, cents int NOT NULL);
	  INSERT INTO $s.big SELECT g, g % 1000 FROM generate_series(1, 100000) g;
	  ANALYZE $s.big;
	  CHECKPOINT;
	});
	q1($node, qq{BEGIN;
	  SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "big", "column": "cents",
	    "name": "amount", "type": "numeric(12,2)", "up": "cents / 100.0", "down": "(amount * 100)::int"}}]}', '$s');
	  SELECT ec_configure('$s', '{"batch_size": 100, "batch_delay_ms": 0}');
	  COMMIT;});
	ok(wait_for($node, 'postgres', "SELECT batches >= 10 FROM ec_status('$s')", 't', 60, 'some batches'),
		"$what: the backfill is under way");
	my $pid = q1($node, q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'});
	like($pid, qr/^\d+$/, "$what: the worker runs (pid $pid)");
	my $batches = q1($node, "SELECT batches FROM ec_status('$s')");

	my $postmaster = postmaster_pid($node);
	kill 'STOP', $pid;
	my $killed_at = time();
	$node->kill9;
	kill 'CONT', $pid;
	my $deadline = time() + 30;
	usleep(50_000) while kill(0, $pid) && (readlink("/proc/$pid/cwd") // '') ne '' && time() < $deadline;
	my $exited = !kill(0, $pid) || (readlink("/proc/$pid/cwd") // '') eq '';
	note sprintf('%s: the worker %s %.1fs after the postmaster was killed', $what,
		$exited ? 'had exited' : 'was still running (now killed)', time() - $killed_at);
	kill 'KILL', $pid unless $exited;
	usleep(50_000) while server_pids($node);
	wait_reaped($postmaster);
	$node->start;

	my $after = q1($node, qq{SELECT count(DISTINCT xmin::text) FROM $s.big
	    WHERE pg_xact_commit_timestamp(xmin) > to_timestamp($killed_at)});
	note "$what: backfill state after the restart: "
	  . q1($node, "SELECT backfill_state || ', ' || batches || ' batches' FROM ec_status('$s')");
	# The batch in flight, and one more at most: SIGSTOP takes effect asynchronously, so a batch may
	# still commit between kill() and the timestamp.  Without the postmaster check it was hundreds.
	cmp_ok($after, '<=', 2,
		"$what: the worker committed at most the batch in flight after the postmaster died "
		  . "(it had done $batches batches; it committed $after more)");
	is(phase($node, $s), 'active', "$what: the migration is active");
	q1($node, "SELECT ec_rollback('$s')");
	is(q1($node, "SELECT count(*) || ' ' || sum(cents) FROM $s.big"), '100000 49950000',
		"$what: rolled back with every row");
}

ok(!$node->log_contains(qr/PANIC|TRAP:|expand_contract backfill of migration \d+ failed/),
	'the server log shows no PANIC, no assertion failure and no failed backfill');
$node->stop;
done_testing();
