# The headline migration of issue 10: accounts.id integer, the primary key, referenced by
# transfers.account_id through a foreign key, widened to bigint under pgbench clients of both
# versions: old-version clients write the base tables (search_path public), new-version clients the
# version schema (search_path public_v2), both inserting, updating and deleting accounts and
# transfers (transfers referencing existing accounts), through the backfill, the worker's concurrent
# index builds, the foreign key's NOT VALID add and its validation, and the contract phase.
#
# Tables (the same in a twin schema that is changed offline with ALTER TABLE ... TYPE bigint):
#   accounts  (id int PRIMARY KEY, email UNIQUE, branch, balance, writer, nw)
#             accounts_branch_idx (branch) INCLUDE (id): rebuilt on the new key
#   transfers (id int PRIMARY KEY, account_id int REFERENCES accounts, amount, created, ref UNIQUE,
#              writer, nw; UNIQUE (account_id, ref))
#             transfers_account_id_idx (account_id), transfers_account_created_idx (account_id,
#             created DESC), transfers_large_idx (account_id) WHERE amount > 900
# Migrations (pgroll documents):
#   key   accounts.id to bigint (up "id", down "id"): only the key; transfers keeps its integer
#         column, its foreign key re-pointed to the new key;
#   both  accounts.id and transfers.account_id to bigint in one migration (offline: ALTER TABLE of
#         both tables), transfers' indexes and its unique constraint rebuilt too.
# Variants (one database each): key:complete, both:complete, both:rollback.
#
# Keys: every client owns the keys k with (k - 1) % nslots = its slot, so no two clients ever write
# one row and no write fails on another client's row.  Band index (k - 1) / nslots even: a savings
# account (inserted, updated, its key moved between k and k + koff, deleted; never referenced, so
# its delete and key move always pass the foreign key's check); odd: a checking account (always at
# id k, never deleted: what transfers reference).  Clients find accounts by email, which the
# migration does not rebuild: through the new version, the key of a row the backfill has not reached
# reads NULL (README, Choosing a version).  Transfers (keys owned the same way) are inserted
# (debiting a checking account in the same statement, with the id that update returned), updated,
# re-pointed to another checking account, deleted.  Each write appends what it changed and the row
# it returned to aux.ledger in the same statement (a data-modifying CTE), only if it changed a row.
#
# Proves, for each variant:
#   - no client saw an error: every pgbench exits 0, reports 0 failed transactions, nothing aborted;
#   - ec_status() showed the backfill of each rebuilt table running (rows_done growing) while both
#     versions committed writes, and showed the worker's other tasks (index builds, validations,
#     the foreign key's add) while they were queued or running (issue 10: whatever the worker
#     builds shows in ec_status with progress);
#   - every task of the worker (the unique index on the new key, the backfills, the NOT NULL
#     validations, the rebuilt indexes, the new foreign key NOT VALID and its validation) ran while
#     both versions' clients were writing: writes of both versions committed before it started and
#     after it finished (the clients' run is extended until the work is done);
#   - with the clients stopped before the contract phase: count(*) of each table = the ledger's sum;
#     every row equals the row its last write returned, in every column; both versions show the same
#     rows with the same values; no transfer without its account, through either version; every kind
#     of write of both versions took effect;
#   - complete: ec_complete succeeds while new-version clients write (they commit before and after);
#     then accounts.id is bigint (transfers.account_id too for "both"); accounts_pkey is the primary
#     key, valid, on the bigint id; transfers_account_id_fkey is the only foreign key, validated, from
#     account_id to the rebuilt id; every constraint and index (names, definitions, validity) and
#     every column equals the twin changed offline; no helper object left; amcheck finds every btree
#     index consistent with every row; counts and rows match the ledger again; no orphan; the
#     foreign key still refuses an unknown account and the delete of a referenced one; an id beyond
#     the integer range can be stored;
#   - rollback (after the background work is done, the new foreign key in place): ec_rollback
#     succeeds while old-version clients write; the schema's catalog is exactly as before ec_start
#     (the foreign key the only one, validated); counts, rows and amcheck as above.
#
# Default about a minute on 2 cores.  Environment, for a longer run:
#   EC_I2B_ROWS              accounts at ec_start (default 30000; transfers about two thirds of that)
#   EC_I2B_SECONDS           how long the clients write during the background work (default 8; longer
#                            if the work is not done by then)
#   EC_I2B_CONTRACT_SECONDS  how long clients write around ec_complete/ec_rollback (default 5)
#   EC_I2B_CLIENTS           pgbench clients per version (default 2)
#   EC_I2B_BATCH_SIZE        backfill batch size (default 1000); the delay between batches spreads
#                            the backfills over about a quarter of EC_I2B_SECONDS
#   EC_I2B_PROTOCOL          pgbench -M (default prepared)
#   EC_I2B_VARIANTS          default key:complete,both:complete,both:rollback
# e.g. EC_I2B_ROWS=500000 EC_I2B_SECONDS=60 make installcheck PROVE_TESTS=test/t/011_int_to_bigint.pl
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;
use Time::HiRes qw(time usleep);
use File::Basename qw(dirname);
use IPC::Run;

my $rows = $ENV{EC_I2B_ROWS} // 30000;
my $seconds = $ENV{EC_I2B_SECONDS} // 8;
my $contract_seconds = $ENV{EC_I2B_CONTRACT_SECONDS} // 5;
my $clients = $ENV{EC_I2B_CLIENTS} // 2;
my $batch_size = $ENV{EC_I2B_BATCH_SIZE} // 1000;
my $protocol = $ENV{EC_I2B_PROTOCOL} // 'prepared';
my @variants = split /,/, ($ENV{EC_I2B_VARIANTS} // 'key:complete,both:complete,both:rollback');

# Key space: every checking account and 4 in 5 savings accounts exist at the start, so about 9/10
# of the keys; a multiple of two bands of client slots.
my $nslots = 2 * $clients;
my $nkeys = 2 * $nslots * int(($rows * 10 / 9 + 2 * $nslots - 1) / (2 * $nslots));
my $ntkeys = $nkeys;
my $koff = 10 * $nkeys;
my $scripts = dirname(__FILE__) . '/../int_to_bigint';
my @script_weights = qw(sav_insert@2 sav_update@2 sav_keymove@1 sav_delete@2 chk_update@1
  xfer_insert@3 xfer_update@2 xfer_repoint@1 xfer_delete@2);
my @kinds = qw(sav_insert sav_update sav_keymove sav_delete chk_update xfer_debit xfer_insert
  xfer_update xfer_repoint xfer_delete);

my %migration = (
	key => q[{"operations": [
	  {"alter_column": {"table": "accounts", "column": "id", "type": "bigint", "up": "id", "down": "id"}}]}],
	both => q[{"operations": [
	  {"alter_column": {"table": "accounts", "column": "id", "type": "bigint", "up": "id", "down": "id"}},
	  {"alter_column": {"table": "transfers", "column": "account_id", "type": "bigint",
	                    "up": "account_id", "down": "account_id"}}]}]);
my %offline = (
	key => 'ALTER TABLE twin.accounts ALTER COLUMN id TYPE bigint;',
	both => 'ALTER TABLE twin.accounts ALTER COLUMN id TYPE bigint;
	         ALTER TABLE twin.transfers ALTER COLUMN account_id TYPE bigint;');

note "int_to_bigint: $rows accounts ($nkeys keys), ${seconds}s of traffic, ${contract_seconds}s around "
  . "the contract phase, $clients clients per version, batches of $batch_size, pgbench -M $protocol";

my $node = PostgreSQL::Test::Cluster->new('int_to_bigint');
$node->init;
$node->append_conf('postgresql.conf', qq{
expand_contract.batch_size = $batch_size
lc_messages = 'C'
log_lock_waits = on
});
$node->start;

sub setup
{
	my ($db, $mig) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
	  CREATE EXTENSION expand_contract;
	  CREATE EXTENSION amcheck;
	  CREATE SCHEMA twin;
	  CREATE SCHEMA aux;
	  CREATE FUNCTION aux.bank() RETURNS void LANGUAGE plpgsql AS \$\$
	  BEGIN
	    CREATE TABLE accounts (id integer PRIMARY KEY, email text NOT NULL UNIQUE, branch int NOT NULL,
	                           balance bigint NOT NULL, writer text NOT NULL, nw int NOT NULL DEFAULT 0);
	    CREATE INDEX accounts_branch_idx ON accounts (branch) INCLUDE (id);
	    CREATE TABLE transfers (id integer PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts (id),
	                            amount int NOT NULL, created timestamptz NOT NULL DEFAULT now(),
	                            ref text NOT NULL UNIQUE, writer text NOT NULL, nw int NOT NULL DEFAULT 0,
	                            CONSTRAINT transfers_account_ref_key UNIQUE (account_id, ref));
	    CREATE INDEX transfers_account_id_idx ON transfers (account_id);
	    CREATE INDEX transfers_account_created_idx ON transfers (account_id, created DESC);
	    CREATE INDEX transfers_large_idx ON transfers (account_id) WHERE amount > 900;
	  END \$\$;
	  SET search_path = public;
	  SELECT aux.bank();
	  SET search_path = twin;
	  SELECT aux.bank();
	  RESET search_path;
	  $offline{$mig}

	  -- One row per write that changed a row: the table ('a' or 't'), the logical key (an account
	  -- keeps its key k when its id moves to k + koff), the row's id after the write, +1/-1/0, and
	  -- the row the write returned (a delete's: the row before it; its id is NULL when the new
	  -- version deleted an account the backfill had not reached, whose new columns read NULL).
	  CREATE TABLE aux.ledger (id bigserial PRIMARY KEY, tbl text NOT NULL, k bigint NOT NULL,
	                           rid bigint, delta int NOT NULL, how text NOT NULL, phase int NOT NULL,
	                           r_email text, r_branch int, r_balance bigint, r_account bigint, r_amount int,
	                           r_ref text, r_created timestamptz, r_writer text, r_nw int,
	                           at timestamptz NOT NULL DEFAULT clock_timestamp());
	  CREATE INDEX ON aux.ledger (tbl, k, id);

	  INSERT INTO accounts (id, email, branch, balance, writer, nw)
	  SELECT k, 'a' || k || '\@bank.test', k % 50, 1000, 'init', 0 FROM generate_series(1, $nkeys) k
	   WHERE ((k - 1) / $nslots) % 2 = 1 OR k % 5 <> 0;
	  -- Transfer t, of slot (t - 1) % nslots, references a checking account of the same slot.
	  INSERT INTO transfers (id, account_id, amount, created, ref, writer, nw)
	  SELECT t, (2 * ((((t - 1) / $nslots) * 7) % ($nkeys / $nslots / 2)) + 1) * $nslots + (t - 1) % $nslots + 1,
	         (t * 37) % 1000 + 1, timestamptz '2024-01-01 00:00+00' + t * interval '1 minute', 't' || t, 'init', 0
	    FROM generate_series(1, $ntkeys) t WHERE ((t - 1) / $nslots) % 3 <> 0;
	  INSERT INTO aux.ledger (tbl, k, rid, delta, how, phase, r_email, r_branch, r_balance, r_writer, r_nw)
	  SELECT 'a', id, id, 1, 'init', 0, email, branch, balance, writer, nw FROM accounts;
	  INSERT INTO aux.ledger (tbl, k, rid, delta, how, phase, r_account, r_amount, r_ref, r_created, r_writer, r_nw)
	  SELECT 't', id, id, 1, 'init', 0, account_id, amount, ref, created, writer, nw FROM transfers;
	  VACUUM ANALYZE accounts;
	  VACUUM ANALYZE transfers;

	  -- Constraints, indexes, columns and relations of a schema's two tables, the schema's name left
	  -- out: the migrated tables against their twins changed offline.  (pg_catalog alone on the
	  -- search_path, so that both schemas' names are printed, then removed.)
	  CREATE FUNCTION aux.shape(nsp text) RETURNS SETOF text LANGUAGE sql SET search_path = pg_catalog AS \$\$
	    SELECT format('constraint %s on %s %s: %s%s%s', conname, c.relname, contype,
	                  regexp_replace(pg_get_constraintdef(k.oid), '\\m(public|twin)\\.', '', 'g'),
	                  CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END,
	                  CASE WHEN condeferrable THEN ' deferrable' ELSE '' END)
	      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.connamespace = nsp::regnamespace
	    UNION ALL
	    SELECT format('index %s: %s%s%s', ic.relname,
	                  regexp_replace(pg_get_indexdef(i.indexrelid), '\\m(public|twin)\\.', '', 'g'),
	                  CASE WHEN i.indisvalid AND i.indisready THEN '' ELSE ' INVALID' END,
	                  CASE WHEN i.indisprimary THEN ' primary' ELSE '' END)
	      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE ic.relnamespace = nsp::regnamespace
	    UNION ALL
	    SELECT format('column %s.%s %s%s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
	                  CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, pg_get_expr(d.adbin, d.adrelid))
	      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
	     WHERE c.relnamespace = nsp::regnamespace AND c.relkind = 'r'
	    UNION ALL
	    SELECT format('relation %s %s', relname, relkind) FROM pg_class WHERE relnamespace = nsp::regnamespace
	  \$\$;
	});
}

# Everything rollback must restore, exactly: the two tables' columns in order, constraints,
# relations, index definitions and validity, triggers (the foreign keys' internal ones counted), the
# version schemas, and no active migration.
my $catalog_query = q{
  SELECT string_agg(x, E'\n' ORDER BY x) FROM (
    SELECT format('column %s.%s %s %s %s default %s', c.relname, a.attnum, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) x
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('constraint %s %s %s %s %s', conname, conrelid::regclass, pg_get_constraintdef(oid),
                            convalidated, conindid::regclass)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT format('relation %s %s', relname, relkind) FROM pg_class
     WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('index %s %s %s', pg_get_indexdef(indexrelid), indisvalid, indisready) FROM pg_index
     WHERE indrelid IN ('public.accounts'::regclass, 'public.transfers'::regclass)
    UNION ALL SELECT format('trigger %s on %s', tgname, tgrelid::regclass) FROM pg_trigger
     WHERE tgrelid IN ('public.accounts'::regclass, 'public.transfers'::regclass) AND NOT tgisinternal
    UNION ALL SELECT format('internal triggers on %s: %s', tgrelid::regclass, count(*)) FROM pg_trigger
     WHERE tgrelid IN ('public.accounts'::regclass, 'public.transfers'::regclass) AND tgisinternal GROUP BY tgrelid
    UNION ALL SELECT format('schema %s', nspname) FROM pg_namespace WHERE nspname LIKE 'public\_%'
    UNION ALL SELECT format('active migration %s', name) FROM expand_contract.migrations WHERE NOT done) s};

# Helper objects only an active migration may have.
my $leftovers_query = q{
  SELECT coalesce(string_agg(x, ', '), '') FROM (
    SELECT format('column %s.%s', attrelid::regclass, attname) x FROM pg_attribute
     WHERE attrelid IN ('public.accounts'::regclass, 'public.transfers'::regclass)
       AND attname LIKE '\_ec\_%' AND NOT attisdropped
    UNION ALL SELECT format('trigger %s', tgname) FROM pg_trigger
     WHERE tgrelid IN ('public.accounts'::regclass, 'public.transfers'::regclass) AND NOT tgisinternal
    UNION ALL SELECT format('constraint %s', conname) FROM pg_constraint WHERE conname LIKE '\_ec\_%'
    UNION ALL SELECT format('relation %s', relname) FROM pg_class WHERE relname LIKE '\_ec\_%'
    UNION ALL SELECT format('dual_write %s', relid) FROM expand_contract.dual_writes
    UNION ALL SELECT format('active migration %s', name) FROM expand_contract.migrations WHERE NOT done) s};

# The foreign keys on transfers: name, validated, referencing column and type, referenced column and type.
my $fk_query = q{
  SELECT coalesce(string_agg(format('%s %s %s %s -> %s.%s %s', c.conname, c.convalidated, fa.attname,
                                    format_type(fa.atttypid, fa.atttypmod), c.confrelid::regclass, ta.attname,
                                    format_type(ta.atttypid, ta.atttypmod)), '; ' ORDER BY c.conname), '')
    FROM pg_constraint c
    JOIN pg_attribute fa ON fa.attrelid = c.conrelid AND fa.attnum = c.conkey[1]
    JOIN pg_attribute ta ON ta.attrelid = c.confrelid AND ta.attnum = c.confkey[1]
   WHERE c.conrelid = 'public.transfers'::regclass AND c.contype = 'f'};

# The primary key of accounts: constraint name, its index's name, validity, the column and its type.
my $pk_query = q{
  SELECT string_agg(format('%s index %s valid %s primary %s on %s %s', c.conname, c.conindid::regclass,
                           i.indisvalid AND i.indisready, i.indisprimary, a.attname,
                           format_type(a.atttypid, a.atttypmod)), '; ')
    FROM pg_constraint c JOIN pg_index i ON i.indexrelid = c.conindid
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
   WHERE c.conrelid = 'public.accounts'::regclass AND c.contype = 'p'};

# pgbench clients of version $ver ('old' or 'new') writing for $secs s.
sub start_clients
{
	my ($db, $ver, $phase, $secs) = @_;
	my @cmd = (
		'pgbench', '-n', '-M', $protocol, '-c', $clients, '-j', 1, '-T', $secs,
		'-D', "nkeys=$nkeys", '-D', "ntkeys=$ntkeys", '-D', "nslots=$nslots", '-D', "koff=$koff",
		'-D', "phase=$phase", '-D', 'slot0=' . ($ver eq 'old' ? 0 : $clients),
		(map { ('-f', "$scripts/$_") } map { s/@/.sql@/r } @script_weights),
		'-h', $node->host, '-p', $node->port, $db);
	# The new version's clients set search_path for their whole session, as an application would
	# in its connection string; aux.writer only tells the scripts which version they are.
	return start_pgbench(\@cmd, "-c aux.writer=$ver" . ($ver eq 'new' ? ' -c search_path=public_v2' : ''),
		ver => $ver, phase => $phase, db => $db);
}

# Counts against the ledger, rows against what their last write returned, and no orphan transfer.
sub check_rows
{
	my ($db, $what) = @_;
	for my $t ([ 'a', 'accounts' ], [ 't', 'transfers' ])
	{
		my ($tbl, $table) = @$t;
		my ($count, $sum) = split /\|/, $node->safe_psql($db, qq{
		  SELECT (SELECT count(*) FROM public.$table) || '|' || (SELECT sum(delta) FROM aux.ledger WHERE tbl = '$tbl')});
		is($count, $sum, "$what: count(*) of $table ($count) = what the clients committed (ledger sum $sum)");
	}
	my %diff = (
		accounts => q{
		  FROM (SELECT DISTINCT ON (k) * FROM aux.ledger WHERE tbl = 'a' ORDER BY k, id DESC) l
		  FULL JOIN public.accounts r ON r.id = l.rid AND l.delta >= 0
		 WHERE (l.delta >= 0 OR r.id IS NOT NULL)
		   AND (l.id IS NULL OR r.id IS NULL OR l.delta < 0
		        OR (r.email, r.branch, r.balance, r.writer, r.nw)
		           IS DISTINCT FROM (l.r_email, l.r_branch, l.r_balance, l.r_writer, l.r_nw))},
		transfers => q{
		  FROM (SELECT DISTINCT ON (k) * FROM aux.ledger WHERE tbl = 't' ORDER BY k, id DESC) l
		  FULL JOIN public.transfers r ON r.id = l.rid AND l.delta >= 0
		 WHERE (l.delta >= 0 OR r.id IS NOT NULL)
		   AND (l.id IS NULL OR r.id IS NULL OR l.delta < 0
		        OR (r.account_id, r.amount, r.ref, r.created, r.writer, r.nw)
		           IS DISTINCT FROM (l.r_account, l.r_amount, l.r_ref, l.r_created, l.r_writer, l.r_nw))});
	for my $table (qw(accounts transfers))
	{
		is($node->safe_psql($db, "SELECT count(*) $diff{$table}"), '0',
			"$what: every row of $table is there and equals what its last write returned, in every column")
		  or diag("examples (last ledger row | table row):\n"
			  . $node->safe_psql($db, "SELECT format('%s | %s', row(l.*), row(r.*)) $diff{$table} LIMIT 8"));
	}
	is($node->safe_psql($db, q{SELECT count(*) FROM public.transfers t
	                          WHERE NOT EXISTS (SELECT FROM public.accounts a WHERE a.id = t.account_id)}),
		'0', "$what: no transfer without its account");
}

# What the ledger says each kind of write did, by version, in a phase.
sub write_counts
{
	my ($db, $phase) = @_;
	my %c = map { split /=/ } split /\n/, $node->safe_psql($db,
		qq{SELECT how || '=' || count(*) FROM aux.ledger WHERE phase = $phase GROUP BY how ORDER BY how});
	return \%c;
}

############################################################################
# One variant: traffic of both versions over the expand phase and the background work, then the
# contract phase under the traffic of the version that stays.
############################################################################

sub run_variant
{
	my ($mig, $end) = split /:/, shift;
	my $v = "$mig:$end";
	my $db = "i2b_${mig}_$end";
	my $t0 = time();
	setup($db, $mig);
	my ($naccounts, $ntransfers) = split /\|/,
	  $node->safe_psql($db, q{SELECT (SELECT count(*) FROM accounts) || '|' || (SELECT count(*) FROM transfers)});
	my $catalog_before = $node->safe_psql($db, $catalog_query);
	note sprintf('%s: %d accounts, %d transfers loaded in %.1f s', $v, $naccounts, $ntransfers, time() - $t0);

	# Old-version clients first; ec_start under their writes, its background work held back until
	# the new version's clients write too, so that every task of the worker runs under both.  The
	# delay between batches spreads the backfills over about a quarter of the traffic.
	my %run = (old => start_clients($db, 'old', 1, $seconds + 2));
	ok(wait_for($node, $db, q{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 1}, 't', 30, 'old clients'),
		"$v: old-version clients are writing before ec_start");
	my ($ret, $out, $err) = $node->psql($db,
		"SET expand_contract.start_paused = on; SELECT ec_start('v2', \$doc\$$migration{$mig}\$doc\$)");
	is($ret . ' ' . $out, '0 public_v2', "$v: ec_start under old-version traffic") or diag($err);
	$run{new} = start_clients($db, 'new', 1, $seconds);
	ok(wait_for($node, $db, q{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 1 AND how LIKE 'new%'}, 't', 30,
			'new clients'),
		"$v: new-version clients are writing");
	# Samples of ec_status(), the worker's tasks and the last write of each version; the first one
	# while the work waits for ec_resume, every task queued.
	my $sampler = $node->background_psql($db);
	my (@samples, $work_done, %rounds);
	my $take_sample = sub {
		my ($both) = @_;
		my %s = (status => [], tasks => {}, both => $both);
		for my $line (split /\n/, $sampler->query_safe(q{
		  SELECT 'S|' || coalesce(s.table_name, '') || '|' || s.backfill_state || '|' || coalesce(s.rows_done, 0)
		         || '|' || row(s.*)::text FROM ec_status('public') s
		  UNION ALL
		  SELECT 'T|' || t.seq || '|' || t.state FROM expand_contract.tasks t
		    JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE NOT m.done
		  UNION ALL
		  SELECT 'L|' || (SELECT coalesce(max(id), 0) FROM aux.ledger WHERE phase = 1 AND how LIKE 'old%')
		         || '|' || (SELECT coalesce(max(id), 0) FROM aux.ledger WHERE phase = 1 AND how LIKE 'new%')
		  UNION ALL
		  SELECT 'A|' || coalesce((NOT bool_or(t.state <> 'done')
		                  AND EXISTS (SELECT FROM aux.ledger l WHERE l.phase = 1 AND l.how LIKE 'old%'
		                                 AND l.at > max(t.finished_at))
		                  AND EXISTS (SELECT FROM aux.ledger l WHERE l.phase = 1 AND l.how LIKE 'new%'
		                                 AND l.at > max(t.finished_at)))::text, 'false')
		    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
		   WHERE NOT m.done}))
		{
			my ($kind, @f) = split /\|/, $line, 5;
			if ($kind eq 'S')
			{
				push @{ $s{status} }, { table => $f[0], state => $f[1], rows => $f[2], text => $f[3] };
			}
			elsif ($kind eq 'T') { $s{tasks}{ $f[0] } = $f[1]; }
			elsif ($kind eq 'A') { $s{written_after} = ($f[0] // '') eq 'true'; }
			else { @s{qw(old new)} = @f; }
		}
		push @samples, \%s;
		return \%s;
	};
	$take_sample->(0);

	my $nbatches = ($naccounts + ($mig eq 'both' ? $ntransfers : 0)) / $batch_size;
	my $delay = int(1000 * $seconds / 4 / ($nbatches > 1 ? $nbatches : 1));
	# The time just before ec_resume: the worker starts at its commit, before a later statement runs.
	my $resumed_at = $node->safe_psql($db, qq{
	  SELECT clock_timestamp();
	  SELECT ec_configure('public', '{"batch_delay_ms": $delay}');
	  SELECT ec_resume('public')});
	$resumed_at = (split /\n/, $resumed_at)[0];

	# Until the clients are done; a version whose clients end before the background work does
	# gets another round.
	my $deadline = time() + 3 * $seconds + 120;
	while (1)
	{
		my $both_before = running($run{old}) && running($run{new});
		my $sample = $take_sample->($both_before);
		# Done once both versions have committed writes after the last task finished (clients
		# still running when it finished may have been in their last moments).
		$work_done ||= $sample->{written_after};
		for my $ver (qw(old new))
		{
			next if $run{$ver}{done} || running($run{$ver});
			finish_clients($run{$ver}, "$v, $ver-version clients during the background work"
				  . ($rounds{$ver} ? " (round " . ($rounds{$ver} + 1) . ")" : ''));
			next if $work_done || time() > $deadline;
			$run{$ver} = start_clients($db, $ver, 1, 2);
			$rounds{$ver}++;
		}
		last if $run{old}{done} && $run{new}{done};
		usleep(250_000);
	}
	$sampler->quit;
	note "$v: the clients wrote " . join(', ', map { "$_ " . (($rounds{$_} // 0) + 1) . ' round(s)' } qw(old new))
	  . ', the background work took ' . $node->safe_psql($db, qq{
	    SELECT round(extract(epoch FROM max(t.finished_at) - '$resumed_at'), 1) FROM expand_contract.tasks t
	      JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE NOT m.done}) . ' s after ec_resume';
	ok($work_done, "$v: the worker's background work was done while both versions' clients still wrote");
	($ret, $out, $err) = $node->psql($db, q{CALL ec_wait('public', '60s')}, timeout => 90);
	is($ret, 0, "$v: CALL ec_wait returns: the indexes built, the foreign key added and validated") or diag($err);

	# The backfill of each rebuilt table ran while both versions committed writes.
	for my $table ($mig eq 'both' ? qw(accounts transfers) : qw(accounts))
	{
		my @seen;
		for my $s (grep { $_->{both} } @samples)
		{
			push @seen, map { +{ %$_, old => $s->{old}, new => $s->{new} } }
			  grep { $_->{table} eq $table } @{ $s->{status} };
		}
		my $overlap;
		for my $i (0 .. $#seen)
		{
			my $a = $seen[$i];
			next unless $a->{state} eq 'running' && $a->{rows} > 0;
			for my $b (@seen[ $i + 1 .. $#seen ])
			{
				$overlap //= [ $a, $b ] if $b->{state} eq 'running' && $b->{rows} > $a->{rows}
				  && $b->{old} > $a->{old} && $b->{new} > $a->{new};
			}
		}
		ok($overlap, "$v: ec_status showed the backfill of $table running, rows_done growing, while both "
			  . 'versions committed writes')
		  or diag("$table in ec_status: " . join(', ', map { "$_->{state}:$_->{rows}" } @seen));
	}

	# Every other task showed in ec_status while it was queued or running: a row naming the index or
	# constraint it builds (the name it will have, or its helper name) or the statement.
	my @tasks = map { [ split /\|/, $_, 3 ] } split /\n/, $node->safe_psql($db, q{
	  SELECT t.seq || '|' || t.kind || '|' || coalesce(t.sql, t.table_name) FROM expand_contract.tasks t
	    JOIN expand_contract.migrations m ON m.id = t.migration_id WHERE NOT m.done ORDER BY t.seq});
	my @not_shown;
	for my $task (grep { $_->[1] eq 'sql' } @tasks)
	{
		my ($seq, undef, $sql) = @$task;
		my ($object) = $sql =~ /(?:INDEX CONCURRENTLY|CONSTRAINT) (\S+)/;
		my $name = ($object // $sql) =~ s/^_ec_(?:idx|con)_//r;
		push @not_shown, $sql unless grep {
			my $s = $_;
			($s->{tasks}{$seq} // 'done') ne 'done'
			  && grep { index($_->{text}, $name) >= 0 || index($_->{text}, $sql) >= 0 } @{ $s->{status} }
		} @samples;
	}
	is(join("\n", @not_shown), '', "$v: ec_status showed each of the worker's index builds and validations "
		  . 'while it was queued or running');

	# Nothing ran before ec_resume: a task's started_at is when it began (ec_status() derives the
	# rate and the ETA from it), not when the worker first found the migration paused.
	is($node->safe_psql($db, qq{
	  SELECT coalesce(string_agg(format('%s %s: started_at %s', t.seq, coalesce(t.sql, 'backfill ' || t.table_name),
	                                    t.started_at), E'\n' ORDER BY t.seq), '')
	    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id
	   WHERE NOT m.done AND t.started_at < '$resumed_at'}),
		'', "$v: no task of the migration started paused is recorded as started before ec_resume");

	# Every task ran under the writes of both versions (none can have begun before ec_resume, which
	# came after both versions' first writes, whatever started_at says).
	my $spans = $node->safe_psql($db, qq{
	  SELECT coalesce(string_agg(format('%s %s', t.seq, coalesce(t.sql, 'backfill ' || t.table_name)), E'\n'
	                             ORDER BY t.seq), '')
	    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id,
	         LATERAL (SELECT greatest(t.started_at, '$resumed_at') AS began) b
	   WHERE NOT m.done AND NOT (
	         EXISTS (SELECT FROM aux.ledger l WHERE l.phase = 1 AND l.how LIKE 'old%' AND l.at < b.began)
	     AND EXISTS (SELECT FROM aux.ledger l WHERE l.phase = 1 AND l.how LIKE 'old%' AND l.at > t.finished_at)
	     AND EXISTS (SELECT FROM aux.ledger l WHERE l.phase = 1 AND l.how LIKE 'new%' AND l.at < b.began)
	     AND EXISTS (SELECT FROM aux.ledger l WHERE l.phase = 1 AND l.how LIKE 'new%' AND l.at > t.finished_at))});
	is($spans, '', "$v: every task of the worker ran while clients of both versions wrote (writes of both "
		  . 'before it started and after it finished)');
	note "$v: the worker's tasks, and the writes committed while each ran:\n" . $node->safe_psql($db, qq{
	  SELECT string_agg(format('  %s %s: %s s, old %s, new %s', t.seq, coalesce(t.sql, 'backfill ' || t.table_name),
	                           round(extract(epoch FROM t.finished_at - b.began), 2),
	                           (SELECT count(*) FROM aux.ledger l WHERE l.how LIKE 'old%'
	                               AND l.at BETWEEN b.began AND t.finished_at),
	                           (SELECT count(*) FROM aux.ledger l WHERE l.how LIKE 'new%'
	                               AND l.at BETWEEN b.began AND t.finished_at)), E'\n' ORDER BY t.seq)
	    FROM expand_contract.tasks t JOIN expand_contract.migrations m ON m.id = t.migration_id,
	         LATERAL (SELECT greatest(t.started_at, '$resumed_at') AS began) b
	   WHERE NOT m.done});

	############################################################################
	# Traffic stopped, before the contract phase.
	############################################################################

	check_rows($db, "$v, before the contract phase");
	is($node->safe_psql($db, q{
	     SELECT count(*) FROM public.accounts b FULL JOIN public_v2.accounts n USING (email)
	      WHERE b.email IS NULL OR n.email IS NULL
	         OR (b.id, b.branch, b.balance, b.writer, b.nw)
	            IS DISTINCT FROM (n.id, n.branch, n.balance, n.writer, n.nw)}),
		'0', "$v: both versions show the same accounts with the same id and values");
	is($node->safe_psql($db, q{
	     SELECT count(*) FROM public.transfers b FULL JOIN public_v2.transfers n USING (id)
	      WHERE b.id IS NULL OR n.id IS NULL
	         OR (b.account_id, b.amount, b.ref, b.created, b.writer, b.nw)
	            IS DISTINCT FROM (n.account_id, n.amount, n.ref, n.created, n.writer, n.nw)}),
		'0', "$v: both versions show the same transfers with the same account_id and values");
	is($node->safe_psql($db, q{SELECT count(*) FROM public_v2.transfers t
	                          WHERE NOT EXISTS (SELECT FROM public_v2.accounts a WHERE a.id = t.account_id)}),
		'0', "$v: no transfer without its account in the new version");
	is($node->safe_psql($db, $fk_query),
		'_ec_con_transfers_account_id_fkey t ' . ($mig eq 'both' ? '_ec_new_account_id bigint' : 'account_id integer')
		  . ' -> accounts._ec_new_id bigint; transfers_account_id_fkey t account_id integer -> accounts.id integer',
		"$v: before the contract phase, the old foreign key and the new one on the new key, both validated");
	my $w = write_counts($db, 1);
	note "$v: effective writes during the background work: " . join(', ', map { "$_ $w->{$_}" } sort keys %$w);
	my @missing = grep { !$w->{$_} } map { my $k = $_; map { "${_}_$k" } qw(old new) } @kinds;
	is("@missing", '', "$v: every kind of write of both versions took effect during the background work");

	############################################################################
	# Contract phase under the traffic of the version that stays.
	############################################################################

	my $ver = $end eq 'complete' ? 'new' : 'old';
	my $contract = start_clients($db, $ver, 3, $contract_seconds);
	ok(wait_for($node, $db, q{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 3}, 't', 30, "$ver clients"),
		"$v: $ver-version clients are writing before ec_$end");
	my $c0 = time();
	($ret, $out, $err) = $node->psql($db, "SELECT ec_$end()", timeout => 60 + $contract_seconds);
	is($ret, 0, "$v: ec_$end succeeds while $ver-version clients write") or diag($err);
	note sprintf('%s: ec_%s took %.2f s', $v, $end, time() - $c0);
	my $after = $node->safe_psql($db, 'SELECT coalesce(max(id), 0) FROM aux.ledger');
	my $kept_on = wait_for($node, $db, qq{SELECT count(*) > 0 FROM aux.ledger WHERE phase = 3 AND id > $after},
		't', 30, "$ver writes after ec_$end");
	finish_clients($contract, "$v, $ver-version clients around ec_$end");
	ok($kept_on, "$v: $ver-version clients committed writes after ec_$end returned");
	$w = write_counts($db, 3);
	note "$v: effective writes around ec_$end: " . join(', ', map { "$_ $w->{$_}" } sort keys %$w);

	############################################################################
	# After the contract phase.
	############################################################################

	check_rows($db, "$v, after ec_$end");
	is($node->safe_psql($db, $leftovers_query), '', "$v: no helper object left");
	my ($aret, $aout, $aerr) = $node->psql($db, q{
	  SELECT bt_index_check(i.indexrelid, heapallindexed => true)
	    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
	   WHERE i.indrelid IN ('public.accounts'::regclass, 'public.transfers'::regclass) AND am.amname = 'btree'});
	is($aret == 0 ? $aerr : "psql exit $aret: $aerr", '',
		"$v: amcheck finds every index of both tables consistent, with every row in it");
	my $id_type = $end eq 'complete' ? 'bigint' : 'integer';
	my $ref_type = $end eq 'complete' && $mig eq 'both' ? 'bigint' : 'integer';
	is($node->safe_psql($db, $pk_query), "accounts_pkey index accounts_pkey valid t primary t on id $id_type",
		"$v: accounts_pkey is the primary key, valid, under its name, on the $id_type id");
	is($node->safe_psql($db, $fk_query), "transfers_account_id_fkey t account_id $ref_type -> accounts.id $id_type",
		"$v: transfers_account_id_fkey is the only foreign key, validated, from account_id ($ref_type) to "
		  . "accounts.id ($id_type)");
	if ($end eq 'complete')
	{
		cmp_ok($node->safe_psql($db, q{SELECT count(*) FROM aux.shape('public')}), '>=', 39,
			"$v: the comparison with the twin covers every constraint, index, column and relation");
		is( $node->safe_psql($db, q{
			  SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '') FROM (
			    (SELECT '- ' || x FROM aux.shape('twin') x EXCEPT SELECT '- ' || y FROM aux.shape('public') y)
			    UNION ALL
			    (SELECT '+ ' || y FROM aux.shape('public') y EXCEPT SELECT '+ ' || x FROM aux.shape('twin') x)) d(x)}),
			'', "$v: every constraint, index and column of both tables equals the twin changed offline "
			  . '(names, definitions, validity)');
		is($node->safe_psql($db, q{SELECT string_agg(DISTINCT phase, ',') FROM ec_status('public')}), 'complete',
			"$v: ec_status shows the migration complete");
		# The point of the migration: a key beyond the integer range, through either version.
		my $big = 3_000_000_000;
		($ret, $out, $err) = $node->psql($db, qq{
		  INSERT INTO public.accounts (id, email, branch, balance, writer) VALUES ($big, 'big\@bank.test', 1, 0, 'old');
		  SET search_path = public_v2;
		  INSERT INTO accounts (id, email, branch, balance, writer) VALUES ($big + 1, 'big1\@bank.test', 1, 0, 'new');
		  RESET search_path;
		  SELECT string_agg(id::text, ',' ORDER BY id) FROM public_v2.accounts WHERE id >= $big;});
		is("$ret $out", "0 $big," . ($big + 1), "$v: ids beyond the integer range can be stored, through either version")
		  or diag($err);
		if ($mig eq 'both')
		{
			($ret, $out, $err) = $node->psql($db, qq{
			  INSERT INTO public.transfers (id, account_id, amount, ref, writer) VALUES (-1, $big, 1, 'big', 'old');
			  SELECT account_id FROM public_v2.transfers WHERE id = -1;});
			is("$ret $out", "0 $big", "$v: a transfer can reference such an account") or diag($err);
		}
	}
	else
	{
		is($node->safe_psql($db, $catalog_query), $catalog_before,
			"$v: the schema's catalog is exactly as before ec_start");
	}
	# The foreign key still holds, whichever way it ended.
	($ret, $out, $err) = $node->psql($db, q{
	  INSERT INTO public.transfers (id, account_id, amount, ref, writer) VALUES (-2, -5, 1, 'orphan', 'old')});
	like($err, qr/violates foreign key constraint "transfers_account_id_fkey"/,
		"$v: the foreign key refuses a transfer of an unknown account");
	($ret, $out, $err) = $node->psql($db, q{
	  DELETE FROM public.accounts WHERE id = (SELECT account_id FROM public.transfers WHERE id > 0 LIMIT 1)});
	like($err, qr/violates foreign key constraint "transfers_account_id_fkey"/,
		"$v: the foreign key refuses to delete an account that transfers reference");
	note sprintf('%s: %.0f s', $v, time() - $t0);
}

run_variant($_) for @variants;

$node->stop;
done_testing();
