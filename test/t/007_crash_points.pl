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
# EC_CRASH_ITERATIONS=<n> sets the iterations per phase (default 3; with three or more, the backfill
# phase has three more, for its named points).  Each iteration migrates its own schema of six tables
# with a twenty-operation migration, with concurrent writers, and in some iterations a transaction
# holding one of the tables so that the call sits in its lock-retry loop.
# Among the operations: two create_index and two create_constraint, so that the worker builds four
# indexes concurrently; and the int -> bigint of a primary key referenced by another table's foreign
# key (accounts.id, and transfers.account_id, which references it), with a unique and a secondary
# index on each table: the worker builds the new key's unique index and transfers' unique
# (account_id, id) before the backfills and the secondary indexes after them, then adds the
# re-pointed foreign key NOT VALID and validates it; ec_complete swaps them in.  So after each
# recovery the foreign key is also checked: in force (an orphan or the delete of a referenced
# account fails in either version), no orphan row, and once complete exactly one, validated, under
# its own name.
# With three iterations or more, besides the random backfill kills, one lands in the middle of each
# of: the first index build (before the backfills), the build of the new key's unique index (the
# carried primary key), the first index build after the backfills (each leaving an INVALID index);
# the window between the worker's ADD CONSTRAINT ... NOT VALID of the re-pointed foreign key and its
# task being marked done; its VALIDATE CONSTRAINT; and one ec_complete kill lands while it holds its
# locks, in the swap.
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
my $NA = 1000;    # rows of accounts
my $NT = 5000;    # rows of transfers, each referencing account id % $NA + 1
my %base_rows = (t1 => $N, t2 => $N, t3 => $N, t4 => $N4, t4_renamed => $N4, accounts => $NA, transfers => $NT);
# The re-pointed foreign key, under the name the worker adds it with until complete.
my $new_fk = '_ec_con_transfers_account_id_fkey';
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
 {"alter_column": {"table": "accounts", "column": "id", "type": "bigint"}},
 {"alter_column": {"table": "transfers", "column": "account_id", "type": "bigint"}},
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
	  CREATE TABLE $s.accounts (id int PRIMARY KEY, name text NOT NULL CONSTRAINT accounts_name_key UNIQUE);
	  CREATE INDEX accounts_name_id ON $s.accounts (name, id);
	  CREATE TABLE $s.transfers (id int PRIMARY KEY, account_id int NOT NULL REFERENCES $s.accounts (id),
	                             amount int NOT NULL, CONSTRAINT transfers_account_id_id_key UNIQUE (account_id, id));
	  CREATE INDEX transfers_account_id_idx ON $s.transfers (account_id);
	  INSERT INTO $s.t1 SELECT g, g % 1000 + 1, 'name ' || g FROM generate_series(1, $N) g;
	  INSERT INTO $s.t2 SELECT g, g % 50, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 7 END
	    FROM generate_series(1, $N) g;
	  INSERT INTO $s.t3 SELECT g, g % 100, 'old ' || g FROM generate_series(1, $N) g;
	  INSERT INTO $s.t4 SELECT g, g, 'b' || g FROM generate_series(1, $N4) g;
	  INSERT INTO $s.accounts SELECT g, 'a' || g FROM generate_series(1, $NA) g;
	  INSERT INTO $s.transfers SELECT g, g % $NA + 1, g % 1000 FROM generate_series(1, $NT) g;
	  ANALYZE $s.t1, $s.t2, $s.t3, $s.t4, $s.accounts, $s.transfers;
	});
}

# With $paused, the worker waits for ec_resume() (expand_contract.start_paused).
sub start_sql
{
	my ($s, $settings, $paused) = @_;
	my $sql = "SELECT ec_start('v1', \$m\$$doc\$m\$, '$s');\n";
	$sql = "SET LOCAL expand_contract.start_paused = on;\n$sql" if $paused;
	$sql .= "SELECT ec_configure('$s', '$settings');\n" if $settings;
	$sql = "BEGIN;\n${sql}COMMIT;\n" if $settings || $paused;
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
		$sql .= "INSERT INTO $s.accounts (id, name) VALUES ($id, 'a$id') RETURNING 'accounts:' || id;\n";
		$sql .= "INSERT INTO $s.transfers (id, account_id, amount) VALUES ($id, $id, $id % 1000)"
		  . " RETURNING 'transfers:' || id;\n";
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
		$sql .= "INSERT INTO accounts (id, name) VALUES ($id, 'a$id') RETURNING 'accounts:' || id;\n";
		$sql .= "INSERT INTO transfers (id, account_id, amount) VALUES ($id, $id, $id % 1000)"
		  . " RETURNING 'transfers:' || id;\n";
	}
	return $sql;
}

# Rows a finished writer saw committed: {t1 => [ids], t2 => [ids], accounts => [ids], transfers => [ids]}.
sub acked
{
	my ($acked, $out) = @_;
	for my $line (split /\n/, $out)
	{
		push @{ $acked->{$1} }, $2 if $line =~ /^(t[12]|accounts|transfers):(\d+)$/;
	}
}

# Expected values, as functions of the id.  A writer's transfer references the account it wrote.
my $t2_flag = "CASE WHEN id <= $N AND id % 3 = 0 THEN NULL ELSE id % 7 END";
my $accounts_bad = "name IS DISTINCT FROM 'a' || id";
my $transfers_bad = "account_id IS DISTINCT FROM CASE WHEN id <= $NT THEN id % $NA + 1 ELSE id END"
  . " OR amount IS DISTINCT FROM id % 1000";
my %bad = (
	old => {
		t1 => "cents IS DISTINCT FROM id % 1000 + 1 OR name IS DISTINCT FROM 'name ' || id",
		t2 => "qty IS DISTINCT FROM id % 50 OR flag IS DISTINCT FROM $t2_flag",
		t3 => "v IS DISTINCT FROM id % 100 OR old_col IS DISTINCT FROM 'old ' || id",
		t4 => "a IS DISTINCT FROM id OR b IS DISTINCT FROM 'b' || id",
		accounts => $accounts_bad,
		transfers => $transfers_bad,
	},
	new => {
		t1 => "amount IS DISTINCT FROM (id % 1000 + 1) / 100.0 OR label IS DISTINCT FROM 'name ' || id"
		  . " OR code IS DISTINCT FROM 'c' || id",
		t2 => "qty IS DISTINCT FROM id % 50 OR flag IS DISTINCT FROM coalesce($t2_flag, 0)"
		  . " OR doubled IS DISTINCT FROM (id % 50) * 2",
		t3 => "v IS DISTINCT FROM id % 100 OR w IS DISTINCT FROM id % 100",
		t4_renamed => "a IS DISTINCT FROM id OR b IS DISTINCT FROM 'b' || id",
		accounts => $accounts_bad,
		transfers => $transfers_bad,
	});

# Checks the rows of schema $s as version $version ('old': base tables before complete; 'new': the
# version schema's views, or the base tables once complete) sees them: every base row there, with
# its values, every acknowledged writer row there; every row right (with $only_written, only rows
# written through the trigger are checked in the new version: the backfill has not run yet).
sub check_rows
{
	my ($node, $s, $version, $nsp, $acked, $what, $only_written) = @_;
	my @tables = sort keys %{ $bad{$version} };
	my (%expected, %query);
	for my $t (@tables)
	{
		my $base = $base_rows{$t};
		my $sum = $base * ($base + 1) / 2;
		my $filter = $only_written ? "AND id > $N" : '';
		my $ids = $acked->{ $t =~ s/_renamed//r } // [];
		my $acked_there = @$ids ? "count(*) FILTER (WHERE id = ANY ('{" . join(',', @$ids) . "}'))" : '0';
		if ($only_written && $t eq 'accounts')
		{
			# Its key is rebuilt: until the backfill fills it, the new version shows a base row's id
			# as NULL, so there is no base row to tell apart yet.
			$query{$t} = "count(*) FILTER (WHERE ($bad{$version}{$t}) $filter)";
			$expected{$t} = '0';
		}
		else
		{
			$query{$t} = "count(*) FILTER (WHERE id <= $base) || ' ' || coalesce(sum(id) FILTER (WHERE id <= $base), 0)
			              || ' ' || count(*) FILTER (WHERE ($bad{$version}{$t}) $filter)";
			$expected{$t} = "$base $sum 0";
		}
		$query{$t} = "SELECT '$t|' || $query{$t} || '|' || $acked_there FROM $nsp.$t";
	}
	# One query for all the tables: the checks are many, each psql start costs.
	my %got = map { my ($t, $rows, $acked_there) = split /\|/; ($t => [ $rows, $acked_there ]) }
	  split /\n/, q1($node, join("\nUNION ALL ", map { $query{$_} } @tables));
	for my $t (@tables)
	{
		my $base = $base_rows{$t};
		is($got{$t}[0], $expected{$t},
			"$what: $version version, $nsp.$t: "
			  . ($only_written && $t eq 'accounts' ? 'rows written since the start right'
				: "all $base base rows there, " . ($only_written ? 'rows written since the start' : 'every row') . ' right'));
		my $ids = $acked->{ $t =~ s/_renamed//r } // [];
		next unless @$ids;
		is($got{$t}[1], scalar(@$ids),
			"$what: $version version, $nsp.$t: the " . scalar(@$ids) . ' rows the writers saw committed are there');
	}
}

# Catalog snapshot of schema $s and its version schemas, schema names replaced by S.  Non-strict
# leaves out what the backfill worker changes while the migration is active: the validity of NOT
# VALID constraints, the indexes it builds concurrently (_ec_* for the unique column and
# constraint and the carried indexes, and the create_index ones, t1_label_key and t1_amount_idx; a
# kill during a build leaves an invalid one that the next attempt replaces), and the re-pointed
# foreign key it adds (checked by check_foreign_keys instead).
# crashtest.try runs a statement and returns 'ok' or its SQLSTATE, in the caller's search_path (so,
# for the dual-write trigger, in the caller's version); crashtest.flush is there to be written with
# a synchronous commit, which flushes the WAL written before it.
sub install_helpers
{
	my ($node) = @_;
	q1($node, q{
	  CREATE SCHEMA crashtest;
	  CREATE TABLE crashtest.ref (kind text, x text);
	  CREATE TABLE crashtest.flush (n int);
	  INSERT INTO crashtest.flush VALUES (0);
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
	       AND (strict OR conname NOT LIKE '\_ec\_con\_%')
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
	  CREATE FUNCTION crashtest.try(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
	  BEGIN
	    EXECUTE stmt;
	    RETURN 'ok';
	  EXCEPTION WHEN OTHERS THEN
	    RETURN SQLSTATE;
	  END
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
	      || (cardinality(complete_steps) > 0 AND cardinality(rollback_steps) > 0 AND cardinality(relids) = 7)
	    FROM expand_contract.migrations m WHERE schema_name = '$s' AND name = 'v1'});
}

# The foreign key of transfers, in the versions of phase $phase.  Its definitions, each
# "name FOREIGN KEY (columns) REFERENCES table(columns)", " NOT VALID" when it is not validated: before
# ec_start and after rollback the original one; while active the original one, validated, always
# (it keeps both versions right until complete), and the re-pointed one on the new columns once the
# worker added it: its ADD CONSTRAINT may have committed before a kill that kept its task from being
# marked done, and its VALIDATE likewise; once complete exactly one, the re-pointed one under the
# original name, validated.  Then in each version: no transfer whose account is missing (while
# active, in the new version, among the transfers whose account's new key is filled), and the
# constraint in force: an orphan transfer and the delete of a referenced account both fail with
# 23503.
sub check_foreign_keys
{
	my ($node, $s, $phase, $what) = @_;
	my $old = 'transfers_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts(id)';
	my $new = "$new_fk FOREIGN KEY (_ec_new_account_id) REFERENCES accounts(_ec_new_id)";
	my $task = qq{SELECT t.state FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
	    WHERE m.schema_name = '$s' AND m.name = 'v1' AND NOT m.done AND t.sql LIKE};
	my ($fks, $added, $validated) = split /\|/, q1($node, qq{
	  SELECT (SELECT string_agg(format('%s %s%s', conname,
	                                   replace(replace(pg_get_constraintdef(oid), ' NOT VALID', ''), '$s.', ''),
	                                   CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END), '; ' ORDER BY conname COLLATE "C")
	            FROM pg_constraint WHERE conrelid = '$s.transfers'::regclass AND contype = 'f')
	         || '|' || coalesce(($task '%ADD CONSTRAINT $new_fk %'), '')
	         || '|' || coalesce(($task '%VALIDATE CONSTRAINT $new_fk'), '')}), -1;
	my @allowed = ($old);
	my $tasks = '';
	if ($phase eq 'active')
	{
		$tasks = " (ADD CONSTRAINT task $added, VALIDATE task $validated)";
		@allowed = $validated eq 'done' ? ("$new; $old")
		  : $added eq 'done' ? ("$new NOT VALID; $old", "$new; $old")
		  : ($old, "$new NOT VALID; $old");
	}
	ok((grep { $_ eq $fks } @allowed), "$what: $phase: the foreign keys of transfers are as they must be$tasks")
	  or diag("foreign keys of transfers: $fks\nallowed:\n" . join("\nor\n", @allowed));
	my @versions = $phase eq 'absent' ? ($s) : ($s, "${s}_v1");
	for my $nsp (@versions)
	{
		my $version = $nsp eq $s && $phase ne 'complete' ? 'old version' : "$nsp";
		# While active, the new version shows NULL for the key of an account the backfill has not
		# reached (an account inserted just before ec_start, its transfer just after): not an orphan.
		my $unfilled = $phase eq 'active' && $nsp ne $s
		  ? "AND NOT EXISTS (SELECT FROM $s.accounts b WHERE b.id = t.account_id AND b._ec_new_id IS NULL)" : '';
		my ($orphans, $in_force) = split /\|/, q1($node, qq{SET search_path TO $nsp;
		  SELECT (SELECT count(*) FROM transfers t WHERE t.account_id IS NOT NULL
		            AND NOT EXISTS (SELECT FROM accounts a WHERE a.id = t.account_id) $unfilled)
		         || '|' || crashtest.try('INSERT INTO transfers (id, account_id, amount) VALUES (900001, 900001, 1)')
		         || ' ' || crashtest.try('DELETE FROM accounts WHERE name = ''a1''')});
		is($orphans, '0', "$what: $phase, $version: no transfer without its account");
		is($in_force, '23503 23503', "$what: $phase, $version: the foreign key is in force (an orphan transfer, "
			  . 'the delete of a referenced account fail)');
	}
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
		# dual_writes: t1 to t4, accounts, transfers.  Tasks: the unique index builds (t1_label_key,
		# column code, t4_b_key, the new key's accounts_pkey, transfers_account_id_id_key), the
		# backfills of the six tables, the validations (NOT NULL of t1 amount, t2 doubled and flag,
		# accounts id, transfers account_id; w_pos, t4_a_positive), the builds of t1_amount_idx,
		# accounts_name_id and transfers_account_id_idx, the re-pointed foreign key's ADD CONSTRAINT
		# and VALIDATE, and the compaction's VACUUMs of the two tables of 1 MB or more.
		is(state_rows($node, $s), '6 25 true', "$what: dual_writes, tasks and plan rows all there");
		check_rows($node, $s, 'old', $s, $acked, $what);
		check_rows($node, $s, 'new', "${s}_v1", $acked, $what, 1) if $written_through_trigger;
	}
	else
	{
		same_shape($node, 'complete', $s, 'true', $what);
		is(state_rows($node, $s), '0 25 true', "$what: complete: no dual-write state left, history kept");
		check_rows($node, $s, 'new', $s, $acked, $what);
	}
	check_foreign_keys($node, $s, $phase, $what);
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
			"$NA $N $N $N $N4 $NT", "$what: rows_done is exactly the number of rows of each table (no batch counted twice)");
	}
	my ($ret, $out, $err) = $node->psql('postgres', "CALL ec_wait('$s', '180s')");
	is($ret, 0, "$what: every task of the worker done") or diag($err);
	is(invalid_indexes($node, $s), '0', "$what: every index the worker built is valid");
	same_shape($node, 'active_done', $s, 'true', "$what: backfilled");
	check_rows($node, $s, 'old', $s, $acked, "$what: backfilled");
	check_rows($node, $s, 'new', "${s}_v1", $acked, "$what: backfilled");
	check_foreign_keys($node, $s, 'active', "$what: backfilled");
	if ($drive++ % 2 == 0)
	{
		q1($node, "SELECT ec_complete('$s')");
		is(phase($node, $s), 'complete', "$what: ec_complete after the recovery");
		same_shape($node, 'complete', $s, 'true', "$what: completed");
		is(invalid_indexes($node, $s), '0', "$what: completed: no invalid index");
		check_rows($node, $s, 'new', $s, $acked, "$what: completed");
		check_rows($node, $s, 'new', "${s}_v1", $acked, "$what: completed, through the version schema");
		check_foreign_keys($node, $s, 'complete', "$what: completed");
	}
	else
	{
		q1($node, "SELECT ec_rollback('$s')");
		is(phase($node, $s), 'absent', "$what: ec_rollback after the recovery");
		same_shape($node, 'before', $s, 'true', "$what: rolled back");
		is(invalid_indexes($node, $s), '0', "$what: rolled back: no invalid index");
		check_rows($node, $s, 'old', $s, $acked, "$what: rolled back");
		check_foreign_keys($node, $s, 'absent', "$what: rolled back");
	}
}

# A transaction holding one of the tables for a while, so that the call waits in its retry loop.
sub lock_holder
{
	my ($node, $s) = @_;
	my $t = (qw(t1 t2 t3 t4 accounts transfers))[ int(rand(6)) ];
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
is(q1($node, q{SELECT count(*) FROM crashtest.ref WHERE kind = 'active' AND x LIKE 'trigger%'}), '12',
	'reference: the active shape has the dual-write triggers, two on each of six tables');
is(q1($node, q{SELECT count(*) FROM crashtest.ref WHERE kind = 'complete' AND x LIKE '%\_ec\_%'}), '0',
	'reference: the complete shape has no helper object');
check_rows($node, 'crash_ref', 'new', 'crash_ref', {}, 'reference');
check_foreign_keys($node, 'crash_ref', 'complete', 'reference');

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
# or at one of the named points below.  With three iterations or more, each named point once and
# iterations - 2 kills at random parts of the blocks, in random order (so three more iterations than
# the other phases); with fewer, a named point or a fraction at random.
my @bf_points = ('first index build', 'key index build', 'index build after the backfills',
	'foreign key added', 'foreign key validation');
my @bf_kills = map { rand() < 0.5 ? $bf_points[ int(rand(@bf_points)) ] : rand() } 1 .. $iterations;
@bf_kills = List::Util::shuffle(@bf_points, map { rand() } 3 .. $iterations) if $iterations >= 3;

# A session of its own, named $name, in a transaction (BEGIN issued), for take() and release():
# its locks are held, idle, until release() or the kill ends it.  Idle in a read committed
# transaction it holds no snapshot, which every CREATE INDEX CONCURRENTLY in the database would
# wait for (as they wait for the snapshot holder's), only its locks.  Connected beforehand, so that
# taking and releasing take a millisecond or two: some windows below last 200 ms.
sub holder
{
	my ($node, $name, $sql) = @_;
	my $h = $node->background_psql('postgres');
	$h->query_safe("SET application_name = '$name'");
	$h->{pid} = $h->query_safe('SELECT pg_backend_pid()');
	$h->query_safe('BEGIN');
	take($h, $sql) if $sql;
	return $h;
}

sub take
{
	my ($h, $sql) = @_;
	$h->query_safe($sql);
}

# Ends its transaction, and begins the next one.
sub release
{
	my ($h) = @_;
	$h->query_safe('COMMIT');
	$h->query_safe('BEGIN');
}

# After the kill: the holders' sessions are gone with the server.
sub quit_holders
{
	eval { $_->quit } for @_;
}

# Is the migration's worker waiting for a lock that holder $h holds, while it runs a statement like
# $like?
sub worker_waits_for
{
	my ($node, $h, $like) = @_;
	return qq{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'expand_contract backfill'
	    AND $h->{pid} = ANY (pg_blocking_pids(pid)) AND query LIKE '$like'};
}

# Polls $sql every 10 ms (wait_for's 100 ms is too coarse for the one-second windows below) until it
# returns $expected; returns whether it did within $secs seconds.
sub poll
{
	my ($node, $sql, $expected, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if q1($node, $sql) eq $expected;
		usleep(10_000);
	}
	return 0;
}

for my $i (1 .. scalar @bf_kills)
{
	my $s = sprintf('crash_bf%03d', $i);
	my $what = "backfill #$i";
	make_schema($node, $s);
	q1($node, 'CHECKPOINT');
	my %acked;
	my $settings = sprintf('{"batch_size": 100, "batch_delay_ms": %d}', rand() < 0.5 ? 0 : 2);
	# Where to kill: once the backfill has done a random part of its blocks, a few milliseconds
	# later; or at a named point:
	#  - in the middle of an index build: the first one (t1_label_key, a unique create_index, before
	#    the backfills) or the first one after the backfills and validations (t1_amount_idx), held
	#    there by a transaction with an older snapshot, which CREATE INDEX CONCURRENTLY waits for at
	#    its end with the index already in the catalog, INVALID; or the build of the new key's unique
	#    index (_ec_idx_accounts_pkey, the carried primary key), held at its start by a transaction
	#    holding ROW EXCLUSIVE on accounts, as any writer's does (the migration starts paused until
	#    it holds it).  The kill leaves the INVALID index behind, for the worker to clean up and
	#    build again.
	#  - foreign key added: between the worker's commit of ADD CONSTRAINT ... NOT VALID of the
	#    re-pointed foreign key and the commit that marks its task done.  A transaction holding ROW
	#    EXCLUSIVE on transfers holds up the ADD CONSTRAINT (which waits lock_timeout, 200 ms, and
	#    tries again a second later); meanwhile the test locks the task's row and lets the ADD
	#    CONSTRAINT through: marking the task done then waits for that row (the worker waits at
	#    most its lock_timeout of one second, hence the fast polls).
	#  - foreign key validation: from there, a transaction holding SHARE UPDATE EXCLUSIVE on transfers
	#    before the row is let go: the next task, VALIDATE CONSTRAINT, waits for it; it is let go
	#    in turn and the kill comes a few milliseconds later, in the validation or just after it.
	my $part = $bf_kills[ $i - 1 ];
	my $named = $part =~ /^[a-z]/;
	my $snapshot_holder = sub {
		my $job = bg_psql($node, "SET application_name = 'snapshot holder $s';\n"
			  . "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT 1;\nSELECT pg_sleep(150);\nCOMMIT;\n");
		wait_for($node, 'postgres', qq{SELECT count(*) FROM pg_stat_activity
		    WHERE application_name = 'snapshot holder $s' AND backend_xmin IS NOT NULL}, '1', 30, 'snapshot holder')
		  or die 'the snapshot holder did not take its snapshot';
		return $job;
	};
	my @snapshots;  # bg_psql jobs holding a snapshot
	my %holders;    # sessions of holder(), holding locks
	push @snapshots, $snapshot_holder->() if $part eq 'first index build';
	q1($node, start_sql($s, $settings, $part eq 'key index build' || $part eq 'index build after the backfills'));
	if ($part eq 'index build after the backfills')
	{
		$holders{'transfers row'} = holder($node, "locker of a transfers row $s",
			"SELECT 1 FROM $s.transfers WHERE id = 1 FOR UPDATE");
		q1($node, "SELECT ec_resume('$s')");
	}

	my $old = bg_psql($node, old_writer_sql($s, 100001, 3000));
	my $new = bg_psql($node, new_writer_sql($s, 200001, 3000));
	my $tasks = qq{FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
	    WHERE m.schema_name = '$s'};
	my $tasks_left = "SELECT count(*) $tasks AND t.state <> 'done'";
	my $deadline = time() + 120;
	my $blocks = q1($node, "SELECT sum(relpages) FROM pg_class WHERE relnamespace = '$s'::regnamespace
	    AND relname IN ('t1', 't2', 't3', 't4', 'accounts', 'transfers')");
	my $invalid = qq{SELECT coalesce(string_agg(c.relname, ','), '') FROM pg_index i
	    JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = '$s'::regnamespace AND NOT i.indisvalid};
	my $reached = '';    # what shows that the kill came at the named point
	if ($part eq 'first index build' || $part eq 'index build after the backfills')
	{
		if ($part eq 'index build after the backfills')
		{
			# The last backfill (transfers') is held at its first row, locked before the paused
			# migration was resumed (its batch waits lock_timeout and tries again), until every task before it
			# is done; then the snapshot is taken and the row let go, so that the index builds
			# queued after the backfills wait for the snapshot, whatever the machine's speed.
			usleep(10_000) while q1($node, qq{SELECT count(*) $tasks AND t.seq < (SELECT max(b.seq)
			    FROM expand_contract.tasks b WHERE b.migration_id = t.migration_id AND b.kind = 'backfill')
			    AND t.state <> 'done'}) ne '0' && time() < $deadline;
			push @snapshots, $snapshot_holder->();
			quit_holders(delete $holders{'transfers row'});
		}
		usleep(10_000)
		  while ($reached = q1($node, $invalid)) eq '' && q1($node, $tasks_left) ne '0' && time() < $deadline;
		usleep(int(rand(0.03) * 1e6));
	}
	elsif ($part eq 'key index build')
	{
		$holders{accounts} = holder($node, "writer of accounts $s", "LOCK TABLE $s.accounts IN ROW EXCLUSIVE MODE");
		q1($node, "SELECT ec_resume('$s')");
		usleep(10_000) while ($reached = q1($node, $invalid)) !~ /_ec_idx_accounts_pkey/ && time() < $deadline;
		$reached = '' unless $reached =~ /_ec_idx_accounts_pkey/;
	}
	elsif ($part =~ /^foreign key/)
	{
		my $add = "t.sql LIKE '%ADD CONSTRAINT $new_fk %'";
		my $lock_row = "SELECT FROM expand_contract.tasks t
		    WHERE (t.migration_id, t.seq) = (SELECT t.migration_id, t.seq $tasks AND $add) FOR UPDATE";
		$holders{row} = holder($node, "task row $s", $lock_row);
		$holders{transfers} = holder($node, "writer of transfers $s");
		$holders{validation} = holder($node, "validation blocker $s") if $part eq 'foreign key validation';
		# The ADD CONSTRAINT's task row is locked from the start (nothing but the worker's marking
		# of that task waits for it; a lock on transfers would hold up its index builds instead):
		# when the worker comes to mark it running, it waits there, up to its lock_timeout of a
		# second, while the writer of transfers takes its lock; then the row is let go.
		poll($node, worker_waits_for($node, $holders{row}, '%'), '1', 60)
		  or diag("$what: the worker did not come to the ADD CONSTRAINT: "
			. q1($node, "SELECT t.state || ' ' || coalesce(t.detail, '') $tasks AND $add"));
		take($holders{transfers}, "LOCK TABLE $s.transfers IN ROW EXCLUSIVE MODE");
		release($holders{row});
		# Each attempt of the ADD CONSTRAINT then waits 200 ms at most for the writer of transfers
		# (lock_timeout), and the next comes a second later.  Meanwhile the task's row is locked
		# again and the writer let go; when the row lock came too late (the attempt gave up, and
		# will mark the task again before the next one), it is let go at once, for the next attempt.
		my $attempts = 0;
		while ($attempts++ < 20)
		{
			last unless poll($node, worker_waits_for($node, $holders{transfers}, '%ADD CONSTRAINT%'), '1', 30);
			take($holders{row}, $lock_row);
			if (q1($node, worker_waits_for($node, $holders{transfers}, '%ADD CONSTRAINT%')) eq '1')
			{
				release($holders{transfers});
				last;
			}
			release($holders{row});
		}
		$reached = poll($node, qq{SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid = '$s.transfers'::regclass
		    AND conname = '$new_fk' AND NOT convalidated) || ' ' || (} . worker_waits_for($node, $holders{row}, '%') . ')',
			'1 1', 5)
		  ? "ADD CONSTRAINT committed, its task not marked done ($attempts attempts)" : '';
		# The worker commits asynchronously (synchronous_commit = off), so a kill this soon after the
		# ADD CONSTRAINT would often lose it, and the recovery would only find it not done yet.  The
		# synchronous commit of a write flushes the WAL up to its own commit record, the ADD
		# CONSTRAINT's commit included: the recovery finds the constraint there, its task not marked
		# done, and the worker must not add it twice.
		q1($node, 'UPDATE crashtest.flush SET n = n + 1') if $part eq 'foreign key added' && $reached;
		if ($part eq 'foreign key validation' && $reached)
		{
			take($holders{validation}, "LOCK TABLE $s.transfers IN SHARE UPDATE EXCLUSIVE MODE");
			release($holders{row});
			$reached = poll($node, worker_waits_for($node, $holders{validation}, "%VALIDATE CONSTRAINT $new_fk"), '1', 10)
			  ? 'VALIDATE CONSTRAINT under way' : '';
			release($holders{validation});
			usleep(int(rand(0.03) * 1e6));
		}
	}
	else
	{
		my $progress = "SELECT coalesce(sum(t.next_block), 0) $tasks";
		usleep(20_000) while q1($node, $progress) < $part * $blocks && time() < $deadline;
		usleep(int(rand(0.03) * 1e6));
	}
	my $before = q1($node, "SELECT string_agg(t.seq || ':' || t.state || ':' || t.next_block, ' ' ORDER BY t.seq) $tasks");
	note sprintf('%s (%s): kill %s; tasks seq:state:next_block %s', $what, $settings,
		$named ? "during the $part ($reached)" : sprintf('at %d%% of %d blocks', 100 * $part, $blocks), $before);
	crash_restart($node, $what);
	acked(\%acked, (bg_finish($old))[1]);
	acked(\%acked, (bg_finish($new))[1]);
	bg_finish($_) for @snapshots;
	quit_holders(values %holders);
	ok($reached ne '', "$what: the kill came during the $part"
		  . ($part =~ /index/ ? ' (an INVALID index in the catalog)' : ''))
	  if $named;
	is( q1($node, qq{SELECT string_agg(conname || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END, ', '
	                                   ORDER BY conname COLLATE "C")
	                      || ' ' || (SELECT t.state $tasks AND t.sql LIKE '%ADD CONSTRAINT $new_fk %')
	      FROM pg_constraint WHERE conrelid = '$s.transfers'::regclass AND contype = 'f'}),
		"$new_fk NOT VALID, transfers_account_id_fkey running",
		"$what: after the recovery the re-pointed foreign key is there, NOT VALID, and its ADD CONSTRAINT task not done")
	  if $part eq 'foreign key added' && $reached;

	is(check_consistent($node, $s, \%acked, $what, 1), 'active', "$what: still active");
	# The worker commits asynchronously (synchronous_commit = off): the last batches seen before
	# the kill may be lost with their progress, and are then done again.  Hence no comparison here;
	# rows_done, exact at the end, shows that no batch was counted twice.
	note "$what: tasks after the recovery "
	  . q1($node, "SELECT string_agg(t.seq || ':' || t.state || ':' || t.next_block, ' ' ORDER BY t.seq) $tasks")
	  . '; invalid indexes: ' . invalid_indexes($node, $s) . '; foreign keys of transfers: '
	  . q1($node, "SELECT string_agg(conname || CASE WHEN convalidated THEN '' ELSE ' (NOT VALID)' END, ', ' ORDER BY conname)
	      FROM pg_constraint WHERE conrelid = '$s.transfers'::regclass AND contype = 'f'");
	probe_writes($node, $s, \%acked, $what);
	drive_on($node, $s, \%acked, $what, 1);
}

############################################################################
# (c) kill during ec_complete
############################################################################

# With three iterations or more, one of them (and with fewer, now and then one) kills in the swap:
# once ec_complete holds every lock it takes up front, a random part of its reference time later,
# while it drops the old key column and foreign key and puts the new ones in their place (or just
# after it committed).
my $swap_at = $iterations >= 3 || rand() < 0.3 ? 1 + int(rand($iterations)) : 0;

for my $i (1 .. $iterations)
{
	my $s = sprintf('crash_co%03d', $i);
	my $what = "ec_complete #$i";
	make_schema($node, $s);
	my %acked;
	my $swap = $i == $swap_at;
	# Half the time the worker is still busy when the call is made: the call is then CALL ec_wait()
	# and ec_complete() (ec_complete cannot wait for the worker's CREATE INDEX CONCURRENTLY, which
	# waits for ec_complete's own snapshot), so the kill lands in the backfill, a validation, an
	# index build, the re-pointed foreign key's ADD CONSTRAINT or VALIDATE, or ec_complete.
	my $pending = !$swap && rand() < 0.5;
	q1($node, start_sql($s, '{"batch_size": 100, "batch_delay_ms": 2}'));
	q1($node, "CALL ec_wait('$s', '180s')") unless $pending;
	q1($node, 'CHECKPOINT');

	my $old = bg_psql($node, old_writer_sql($s, 100001, 3000));
	my $new = bg_psql($node, new_writer_sql($s, 200001, 3000));
	my ($holder, $hold, $held) = !$swap && rand() < 0.5 ? lock_holder($node, $s) : (undef, 0, '');
	my $call = bg_psql($node, "SET application_name = 'complete $s';\n"
		  . ($pending ? "CALL ec_wait('$s', '180s');\n" : '') . "SELECT ec_complete('$s');\n\\echo COMPLETED\n");
	my $delay;
	my $locked;
	if ($swap)
	{
		$locked = poll($node, qq{SELECT count(*) = cardinality(m.relids) FROM expand_contract.migrations m, pg_locks l
		    JOIN pg_stat_activity a ON a.pid = l.pid
		   WHERE m.schema_name = '$s' AND m.name = 'v1' AND a.application_name = 'complete $s' AND l.granted
		     AND l.mode = 'AccessExclusiveLock' AND l.relation = ANY (m.relids::oid[])
		   GROUP BY m.relids}, 't', 60);
		$delay = rand(0.2 * $t_complete);
	}
	else
	{
		$delay = rand(1.3 * $t_complete + $hold + ($pending ? $t_backfill : 0));
	}
	usleep(int($delay * 1e6));
	note sprintf('%s: kill %s%.3fs%s%s', $what, $swap ? 'in the swap, once it held its locks, ' : 'after ', $delay,
		$pending ? ', worker busy at the call (ec_wait first)' : '', $holder ? " ($held held for ${hold}s)" : '');
	crash_restart($node, $what);
	ok($locked, "$what: the kill came once ec_complete held every lock it takes up front") if $swap;

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

# A process's state letter from /proc (T: stopped), or '' once it is gone.
sub stopped_state
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return '';
	my $stat = <$fh> // '';
	close($fh);
	return $stat =~ /^\d+ \(.*\) (\S)/ ? $1 : '';
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
	# SIGSTOP takes effect asynchronously: the batches counted are those after it did.
	my $stop_deadline = time() + 5;
	usleep(1_000) while stopped_state($pid) ne 'T' && time() < $stop_deadline;
	my $killed_at = time();
	$node->kill9;
	# kill() returns before the postmaster is gone, and its children are told of its death (a signal,
	# PR_SET_PDEATHSIG) only when it has exited: let the worker go on only then, or it may do a few
	# batches more in between, the postmaster still being there.
	my $exit_deadline = time() + 30;
	usleep(1_000) while stopped_state($postmaster) !~ /^Z?$/ && time() < $exit_deadline;
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
	# The batch in flight, and one more at most (commit timestamps and the clock read here are not
	# one clock reading).  Without the postmaster check it was hundreds.
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
