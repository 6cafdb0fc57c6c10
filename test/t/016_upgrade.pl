# Extension upgrades: a migration started under 0.1.0's SQL objects (the library already the new one,
# as between a package upgrade and ALTER EXTENSION ... UPDATE) back-fills, survives
# ALTER EXTENSION expand_contract UPDATE half-way, and completes; and a database upgraded from 0.1.0
# ends with exactly the objects of a fresh install.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 'test/perl';
use ECTest;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "expand_contract.nice_ratio = 0\n");
$node->start;

my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'expand_contract'});
isnt($default, '0.1.0', "the default version ($default) is a later release than 0.1.0");

$node->safe_psql('postgres', q{
  CREATE EXTENSION expand_contract VERSION '0.1.0';
  CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL);
  INSERT INTO t SELECT g, g FROM generate_series(1, 20000) g;
  BEGIN;
  SELECT ec_start('v1', '{"operations": [{"alter_column": {"table": "t", "column": "a",
    "type": "bigint", "up": "a::bigint * 2", "down": "(a / 2)::int"}}]}');
  SELECT ec_configure('public', '{"batch_size": 500}');
  COMMIT;
});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'expand_contract'}),
	'0.1.0', 'created at 0.1.0');
ok(wait_for($node, 'postgres', q{SELECT count(*) > 0 FROM public_v1.t WHERE a = id * 2}, 't', 60),
	'the back-fill runs under 0.1.0');

$node->safe_psql('postgres', q{
  INSERT INTO t VALUES (20001, 5);
  SET search_path TO public_v1;
  INSERT INTO t VALUES (20002, 14);
});
$node->safe_psql('postgres', 'ALTER EXTENSION expand_contract UPDATE');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'expand_contract'}),
	$default, "updated to $default in the middle of the migration");
$node->safe_psql('postgres', q{
  UPDATE t SET a = a + 1 WHERE id = 1;
  SET search_path TO public_v1;
  UPDATE t SET a = 40 WHERE id = 2;
});
# The update's DDL guard covers the migration started before it.
my ($ret, $out, $err) = $node->psql('postgres', 'ALTER TABLE t RENAME COLUMN a TO b');
like($err, qr/cannot rename column "a" of table "t": migration "v1" of schema "public" is active/,
	'after the update, the DDL guard refuses plain DDL on the migration started before it');
$node->safe_psql('postgres', 'CALL ec_wait()');
is($node->safe_psql('postgres', q{SELECT count(*) FROM public_v1.t t1 JOIN t USING (id)
  WHERE t1.a <> t.a::bigint * 2 AND t.id <> 2}), '0', 'every row consistent between the versions');
$node->safe_psql('postgres', q{SELECT ec_complete()});
is($node->safe_psql('postgres', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
  WHERE attrelid = 't'::regclass AND attname = 'a'}), 'bigint', 'completed after the update');
is($node->safe_psql('postgres', q{SELECT count(*) FROM t WHERE a <> id * 2 AND id NOT IN (1, 2, 20001, 20002)}),
	'0', 'every back-filled row kept');
is($node->safe_psql('postgres', q{SELECT a FROM t WHERE id IN (1, 2, 20001, 20002) ORDER BY id}),
	"4\n40\n10\n14", 'the writes through both versions, before and after the update, kept');

# The same objects as a fresh install: functions with their signatures, results and volatility,
# the state tables' columns, event triggers.
my $objects = q{
  SELECT 'function ' || p.oid::regprocedure::text || ' ' || pg_get_function_result(p.oid) || ' ' || p.provolatile::text
    FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'expand_contract')
  UNION ALL
  SELECT 'column ' || c.oid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
   WHERE c.relnamespace = 'expand_contract'::regnamespace
  UNION ALL
  SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtfoid::regproc::text || ' ' || coalesce(evttags::text, '')
    FROM pg_event_trigger
  ORDER BY 1};
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION expand_contract');
is($node->safe_psql('postgres', $objects), $node->safe_psql('fresh', $objects),
	'upgraded from 0.1.0: the objects of a fresh install');

done_testing();
