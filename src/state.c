/*
 * state.c
 *	  The extension's own tables in schema expand_contract: migration history, dual-write plans,
 *	  backfill work.  All access through SPI with bound parameters.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "utils/fmgroids.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodes.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "expand_contract.h"

/* Advisory lock space: field4 values 1 and 2 are taken by pg_advisory_lock's two key forms. */
#define EC_LOCK_FIELD2	0x45435F4D		/* "EC_M" */

/*
 * Serialises ec_start/ec_complete/ec_rollback per schema, until the end of the transaction.  Only
 * other migration calls wait on it; application queries never do.
 */
void
ec_lock_schema(Oid nspid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, EC_LOCK_FIELD2, nspid, EC_SCHEMA_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * The version of the extension's SQL objects in this database (pg_extension.extversion), which lags
 * the library's between a package upgrade and ALTER EXTENSION ... UPDATE.  Versions are compared
 * as dotted numbers.
 */
static int
compare_versions(const char *a, const char *b)
{
	while (*a || *b)
	{
		long		x = strtol(a, (char **) &a, 10);
		long		y = strtol(b, (char **) &b, 10);

		if (x != y)
			return x < y ? -1 : 1;
		if (*a == '.')
			a++;
		if (*b == '.')
			b++;
		if ((*a && !isdigit((unsigned char) *a)) || (*b && !isdigit((unsigned char) *b)))
			return strcmp(a, b);
	}
	return 0;
}

char *
ec_catalog_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("expand_contract"));
	rel = table_open(ExtensionRelationId, AccessShareLock);
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(rel),
									 &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

bool
ec_catalog_at_least(const char *version)
{
	char	   *current = ec_catalog_version();

	return current != NULL && compare_versions(current, version) >= 0;
}

/* For what the 0.2.0 library does only once the SQL objects are updated too. */
void
ec_require_catalog(const char *version, const char *feature)
{
	char	   *current = ec_catalog_version();

	if (current == NULL || compare_versions(current, version) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s needs version %s of extension \"expand_contract\"", feature, version),
				 errdetail("The extension's SQL objects in this database are at version %s.",
						   current ? current : "(none)"),
				 errhint("Run ALTER EXTENSION expand_contract UPDATE.")));
}

/* The elements of a text[] datum as a List of C strings. */
List *
ec_text_array_to_list(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		result = lappend(result, TextDatumGetCString(elems[i]));
	return result;
}

/* The elements of a name[] datum as a List of C strings. */
List *
ec_name_array_to_list(Datum d)
{
	Datum	   *elems;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &elems,
					  NULL, &n);
	for (int i = 0; i < n; i++)
		result = lappend(result, pstrdup(NameStr(*DatumGetName(elems[i]))));
	return result;
}

static List *
oid_array_to_list(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT, &elems,
					  &nulls, &n);
	for (int i = 0; i < n; i++)
		result = lappend_oid(result, DatumGetObjectId(elems[i]));
	return result;
}

Datum
ec_list_to_text_array(List *list)
{
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(list) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, list)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

Datum
ec_list_to_oid_array(List *list)
{
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(list) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, list)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

static char *
getstring(int column)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column);
}

/*
 * The role in a regrole column, read as its OID: InvalidOid (or an error, unless missing_ok) when
 * that role no longer exists.
 */
Oid
ec_existing_role(HeapTuple tuple, TupleDesc desc, int column, bool missing_ok)
{
	bool		isnull;
	Oid			roleid = DatumGetObjectId(SPI_getbinval(tuple, desc, column, &isnull));

	if (!isnull && SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(roleid)))
		return roleid;
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u of the migration does not exist", roleid)));
	return InvalidOid;
}

static EcMigrationRow *
fetch_migration(const char *where, const char *schema)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(schema)};
	EcMigrationRow *row;
	bool		isnull;

	(void) ec_state_spi(psprintf("SELECT id, name, parent, version_schema::text, done,"
								 "       validate_steps, complete_steps, rollback_steps, relids,"
								 "       paused, started_by::pg_catalog.oid, started_at"
								 "  FROM " EC_STATE_SCHEMA ".migrations"
								 " WHERE schema_name = $1 AND %s ORDER BY id DESC LIMIT 1", where),
						1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;

	row = palloc0(sizeof(EcMigrationRow));
	row->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	row->name = getstring(2);
	row->parent = getstring(3);
	row->version_schema = getstring(4);
	row->done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	row->validate_steps = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 6, &isnull));
	row->complete_steps = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 7, &isnull));
	row->rollback_steps = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 8, &isnull));
	row->relids = oid_array_to_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 9,
												  &isnull));
	row->paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 10,
											 &isnull));
	/* InvalidOid once that role has been dropped (after REASSIGN OWNED, say). */
	row->started_by = ec_existing_role(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 11, true);
	row->started_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 12, &isnull));
	return row;
}

EcMigrationRow *
ec_active_migration(const char *schema)
{
	return fetch_migration("NOT done", schema);
}

EcMigrationRow *
ec_latest_completed_migration(const char *schema)
{
	return fetch_migration("done", schema);
}

/*
 * Only a role with the privileges of the role that started a migration may steer, complete or roll
 * it back: its stored steps and its worker act with that role's rights.
 */
void
ec_check_migration_privilege(EcMigrationRow *m, const char *action)
{
	if (!OidIsValid(m->started_by))
	{
		if (!superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to %s migration \"%s\"", action, m->name),
					 errdetail("The role that started it no longer exists; only a superuser may do so.")));
		return;
	}
	if (!has_privs_of_role(GetUserId(), m->started_by))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s migration \"%s\"", action, m->name),
				 errdetail("Only roles with the privileges of role \"%s\", which started it, may do so.",
						   GetUserNameFromId(m->started_by, false))));
}

bool
ec_migration_exists(const char *schema, const char *name)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(schema), CStringGetTextDatum(name)};

	(void) ec_state_spi("SELECT 1 FROM " EC_STATE_SCHEMA ".migrations WHERE schema_name = $1 AND name = $2",
						2, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * The migration of that name in the schema's history, compared with the document of a new call of
 * ec_start: NULL when there is none.  What differs is told by the first operation that does (its
 * position and kind, and the first key that differs in it), or else the first top-level key.
 */
EcMigrationRerun *
ec_migration_rerun(const char *schema, const char *name, Jsonb *doc)
{
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		values[3] = {CStringGetTextDatum(schema), CStringGetTextDatum(name),
	JsonbPGetDatum(doc)};
	EcMigrationRerun *rerun;
	bool		isnull;

	(void) ec_state_spi(
		"WITH stored AS (SELECT * FROM " EC_STATE_SCHEMA ".migrations"
		"                 WHERE schema_name = $1 AND name = $2),"
		" old_ops AS (SELECT x.n, x.op FROM stored,"
		"             jsonb_array_elements(coalesce(stored.migration -> 'operations', '[]'))"
		"             WITH ORDINALITY AS x(op, n)),"
		" new_ops AS (SELECT x.n, x.op FROM"
		"             jsonb_array_elements(coalesce($3 -> 'operations', '[]'))"
		"             WITH ORDINALITY AS x(op, n)),"
		" diff AS (SELECT coalesce(o.n, p.n) AS n, o.op AS old_op, p.op AS new_op,"
		"                 (SELECT min(k) FROM jsonb_object_keys(o.op) k) AS old_kind,"
		"                 (SELECT min(k) FROM jsonb_object_keys(p.op) k) AS new_kind"
		"            FROM old_ops o FULL JOIN new_ops p ON o.n = p.n"
		"           WHERE o.op IS DISTINCT FROM p.op ORDER BY 1 LIMIT 1)"
		" SELECT s.version_schema::text, s.done, s.migration = $3,"
		"   coalesce((SELECT CASE"
		"     WHEN d.new_op IS NULL OR d.old_op IS NULL THEN"
		"          format('The stored migration has %s operation(s), this one %s.',"
		"                 (SELECT count(*) FROM old_ops), (SELECT count(*) FROM new_ops))"
		"     WHEN d.old_kind IS DISTINCT FROM d.new_kind THEN"
		"          format('Operation %s is \"%s\" here and \"%s\" in the stored migration.',"
		"                 d.n, d.new_kind, d.old_kind)"
		"     ELSE format('Operation %s (\"%s\") differs in \"%s\".', d.n, d.new_kind,"
		"                 (SELECT min(k) FROM (SELECT jsonb_object_keys(CASE jsonb_typeof(d.old_op -> d.old_kind)"
		"                                        WHEN 'object' THEN d.old_op -> d.old_kind ELSE '{}' END)"
		"                                      UNION"
		"                                      SELECT jsonb_object_keys(CASE jsonb_typeof(d.new_op -> d.new_kind)"
		"                                        WHEN 'object' THEN d.new_op -> d.new_kind ELSE '{}' END)) AS x(k)"
		"                   WHERE (d.old_op -> d.old_kind -> k) IS DISTINCT FROM (d.new_op -> d.new_kind -> k)))"
		"     END FROM diff d),"
		"     (SELECT format('Its \"%s\" differs.', min(k))"
		"        FROM (SELECT jsonb_object_keys(s.migration) UNION SELECT jsonb_object_keys($3)) AS x(k)"
		"       WHERE k <> 'operations' AND (s.migration -> k) IS DISTINCT FROM ($3 -> k)"
		"      HAVING count(*) > 0),"
		"     'The documents differ.')"
		" FROM stored s",
		3, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	rerun = palloc0(sizeof(EcMigrationRerun));
	rerun->version_schema = getstring(1);
	rerun->done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
											 &isnull));
	rerun->same = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3,
											 &isnull));
	rerun->difference = getstring(4);
	return rerun;
}

int64
ec_insert_migration(const char *schema, const char *name, const char *parent,
					const char *version_schema, Jsonb *doc, TransactionId trigger_xid,
					EcXidList *in_progress)
{
	Oid			types[11] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, XIDOID, BOOLOID,
	OIDOID, OIDOID, XIDARRAYOID, TEXTOID};
	Datum		values[11];
	char		nulls[11] = {' ', ' ', parent ? ' ' : 'n', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = CStringGetTextDatum(schema);
	values[1] = CStringGetTextDatum(name);
	values[2] = parent ? CStringGetTextDatum(parent) : (Datum) 0;
	values[3] = CStringGetTextDatum(version_schema);
	values[4] = JsonbPGetDatum(doc);
	values[5] = TransactionIdGetDatum(trigger_xid);
	values[6] = BoolGetDatum(ec_start_paused);
	/* Who we are now, not who runs the INSERT (the tables' owner). */
	values[7] = ObjectIdGetDatum(GetUserId());
	values[8] = ObjectIdGetDatum(GetSessionUserId());
	values[9] = ec_xid_array(in_progress);
	values[10] = CStringGetTextDatum(ec_current_origin());
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".migrations"
						" (schema_name, name, parent, version_schema, migration, trigger_xid, paused,"
						"  started_by, login_role, in_progress_xids, origin)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::pg_catalog.regrole,"
						"         $9::pg_catalog.regrole, $10, $11) RETURNING id",
						11, types, values, nulls, SPI_OK_INSERT_RETURNING);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* A list of transaction ids as an xid[] datum. */
Datum
ec_xid_array(EcXidList *xids)
{
	Datum	   *elems = palloc(sizeof(Datum) * (xids->n + 1));

	for (int i = 0; i < xids->n; i++)
		elems[i] = TransactionIdGetDatum(xids->xids[i]);
	return PointerGetDatum(construct_array(elems, xids->n, XIDOID, sizeof(TransactionId), true,
										   TYPALIGN_INT));
}

void
ec_save_plan(int64 id, List *validate_steps, List *complete_steps, List *rollback_steps,
			 List *relids)
{
	Oid			types[5] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, OIDARRAYOID};
	Datum		values[5];

	values[0] = Int64GetDatum(id);
	values[1] = ec_list_to_text_array(validate_steps);
	values[2] = ec_list_to_text_array(complete_steps);
	values[3] = ec_list_to_text_array(rollback_steps);
	values[4] = ec_list_to_oid_array(relids);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations SET validate_steps = $2, complete_steps = $3,"
						" rollback_steps = $4, relids = $5::pg_catalog.regclass[] WHERE id = $1",
						5, types, values, NULL, SPI_OK_UPDATE);
}

static Datum
name_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

static Datum
column_name(Oid relid, AttrNumber attnum)
{
	return DirectFunctionCall1(namein, CStringGetDatum(attnum ? get_attname(relid, attnum, false) : ""));
}

/*
 * The table's dual-write plan: per column pair the physical columns and the "up"/"down" expressions,
 * each both as a node tree (what the trigger runs) and as SQL text over the columns' names (what a
 * restored database re-analyses, see restore.c).
 */
void
ec_save_dual_write(int64 id, EcTable *table, const char *new_schema, const char *new_migration,
				   const char *old_schema, const char *old_migration)
{
	Oid			types[14] = {INT8OID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		INT2ARRAYOID, INT2ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	NAMEARRAYOID, NAMEARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[14];
	char		nulls[14] = {' ', ' ', ' ', ' ', old_schema ? ' ' : 'n', old_migration ? ' ' : 'n',
	' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			n = list_length(table->columns);
	Datum	   *old_attnums = palloc(sizeof(Datum) * (n + 1));
	Datum	   *new_attnums = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ups = palloc(sizeof(Datum) * (n + 1));
	Datum	   *downs = palloc(sizeof(Datum) * (n + 1));
	Datum	   *old_names = palloc(sizeof(Datum) * (n + 1));
	Datum	   *new_names = palloc(sizeof(Datum) * (n + 1));
	Datum	   *up_sources = palloc(sizeof(Datum) * (n + 1));
	Datum	   *down_sources = palloc(sizeof(Datum) * (n + 1));
	int			npairs = 0;
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (!col->moves_data)
			continue;
		old_attnums[npairs] = Int16GetDatum(col->old_attnum);
		new_attnums[npairs] = Int16GetDatum(col->new_attnum);
		ups[npairs] = CStringGetTextDatum(col->up ? nodeToString(col->up) : "");
		downs[npairs] = CStringGetTextDatum(col->down ? nodeToString(col->down) : "");
		old_names[npairs] = column_name(table->relid, col->old_attnum);
		new_names[npairs] = column_name(table->relid, col->new_attnum);
		up_sources[npairs] = CStringGetTextDatum(col->up ? ec_deparse(col->up, table->relid) : "");
		down_sources[npairs] = CStringGetTextDatum(col->down ? ec_deparse(col->down, table->relid) : "");
		npairs++;
	}
	values[0] = Int64GetDatum(id);
	values[1] = ObjectIdGetDatum(table->relid);
	values[2] = CStringGetTextDatum(new_schema);
	values[3] = CStringGetTextDatum(new_migration);
	values[4] = old_schema ? CStringGetTextDatum(old_schema) : (Datum) 0;
	values[5] = old_migration ? CStringGetTextDatum(old_migration) : (Datum) 0;
	values[6] = PointerGetDatum(construct_array(old_attnums, npairs, INT2OID, 2, true, TYPALIGN_SHORT));
	values[7] = PointerGetDatum(construct_array(new_attnums, npairs, INT2OID, 2, true, TYPALIGN_SHORT));
	values[8] = PointerGetDatum(construct_array(ups, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	values[9] = PointerGetDatum(construct_array(downs, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	values[10] = name_array(old_names, npairs);
	values[11] = name_array(new_names, npairs);
	values[12] = PointerGetDatum(construct_array(up_sources, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	values[13] = PointerGetDatum(construct_array(down_sources, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".dual_writes (migration_id, relid, new_version_schema,"
						" new_migration, old_version_schema, old_migration, old_attnums, new_attnums, up_exprs,"
						" down_exprs, old_columns, new_columns, up_sources, down_sources)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
						14, types, values, nulls, SPI_OK_INSERT);
}

/* Appends a task to the migration's work queue, done in seq order by its background worker. */
void
ec_add_task(int64 id, int seq, const char *kind, Oid relid, List *columns, const char *sql)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTOID, OIDOID, TEXTARRAYOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', OidIsValid(relid) ? ' ' : 'n', columns ? ' ' : 'n',
	sql ? ' ' : 'n'};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(kind);
	values[3] = ObjectIdGetDatum(relid);
	values[4] = columns ? ec_list_to_text_array(columns) : (Datum) 0;
	values[5] = sql ? CStringGetTextDatum(sql) : (Datum) 0;
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".tasks"
						" (migration_id, seq, kind, relid, table_name, columns, sql, rows_estimated)"
						" SELECT $1, $2, $3, $4,"
						"        (SELECT pg_catalog.quote_ident(relname) FROM pg_catalog.pg_class WHERE oid = $4),"
						"        $5::name[], $6,"
						"        CASE WHEN $3 = 'backfill' THEN"
						"             (SELECT nullif(GREATEST(reltuples, 0), 0)::bigint FROM pg_catalog.pg_class WHERE oid = $4)"
						"        END",
						6, types, values, nulls, SPI_OK_INSERT);
}

/* What the worker runs before it tries the task again, and after it failed (see worker.c). */
void
ec_set_task_cleanup(int64 id, int seq, const char *cleanup)
{
	Oid			types[3] = {INT8OID, INT4OID, TEXTOID};
	Datum		values[3];

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(cleanup);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET cleanup = $3"
						" WHERE migration_id = $1 AND seq = $2",
						3, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Where the migration's work stands: how many tasks are unfinished, and the first failure (as
 * "table: error (row ...)"), or NULL.  Compaction is not work complete waits for (it skips what is
 * left of it, compact.c); ec_wait waits for it too.
 */
int
ec_task_summary(int64 id, bool include_compaction, char **failure, int64 *progress)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(id), BoolGetDatum(include_compaction)};
	bool		isnull;

	(void) ec_state_spi("SELECT count(*) FILTER (WHERE state <> 'done'),"
						"       coalesce(sum(batches) + count(*) FILTER (WHERE state = 'done'), 0)::bigint,"
						"       (SELECT coalesce(table_name || ': ', '') || last_error"
			      "               || coalesce(' (row ' || error_row || ')', '')"
			      "          FROM " EC_STATE_SCHEMA ".tasks f"
			      "         WHERE f.migration_id = $1 AND f.state = 'failed' AND ($2 OR f.kind <> 'compact')"
			      "         ORDER BY seq LIMIT 1)"
						"  FROM " EC_STATE_SCHEMA ".tasks WHERE migration_id = $1 AND ($2 OR kind <> 'compact')",
						2, types, values, NULL, SPI_OK_SELECT);
	*failure = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	if (progress)
		*progress = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
												&isnull));
	return (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &isnull));
}

void
ec_finish_migration(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	(void) ec_state_spi("DELETE FROM " EC_STATE_SCHEMA ".dual_writes WHERE migration_id = $1",
						1, types, values, NULL, SPI_OK_DELETE);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations SET done = true, completed_at = now()"
						" WHERE id = $1", 1, types, values, NULL, SPI_OK_UPDATE);
}

void
ec_delete_migration(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	(void) ec_state_spi("DELETE FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
						1, types, values, NULL, SPI_OK_DELETE);
}

/* ---- steering: pause, resume, configure (control.c), and who needs a worker (launcher.c) ---- */

void
ec_set_paused(int64 id, bool paused)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(id), BoolGetDatum(paused)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations SET paused = $2 WHERE id = $1",
						2, types, values, NULL, SPI_OK_UPDATE);
}

/* Failed or stalled tasks back in the queue, from where they stopped (their progress is kept). */
void
ec_requeue_tasks(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'pending', detail = NULL,"
						" last_error = NULL, error_row = NULL"
						" WHERE migration_id = $1 AND state IN ('failed', 'paused', 'throttled')",
						1, types, values, NULL, SPI_OK_UPDATE);
}

/* The migration's overrides merged with settings (a JSON null removes one); returns the result. */
Jsonb *
ec_merge_settings(int64 id, Jsonb *settings)
{
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2] = {Int64GetDatum(id), JsonbPGetDatum(settings)};
	bool		isnull;

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations"
						" SET settings = pg_catalog.jsonb_strip_nulls(settings || $2)"
						" WHERE id = $1 RETURNING settings",
						2, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	return DatumGetJsonbP(SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 1, &isnull),
											false, -1));
}

/*
 * "migration "v2" of schema "public"", and the roles its worker logs in as and acts as; NULL if
 * the migration is gone.
 */
char *
ec_migration_description(int64 id, Oid *login_roleid, Oid *roleid)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	(void) ec_state_spi("SELECT format('migration %I of schema %I', name, schema_name),"
						"       started_by::pg_catalog.oid, login_role::pg_catalog.oid"
						"  FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
						1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	*roleid = ec_existing_role(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, false);
	*login_roleid = ec_existing_role(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, false);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * The migrations of this database that need a worker, as int64 * (palloc'd): active, not paused,
 * with work left; and those in a revert window, whose worker ends it (revert.c).
 */
List *
ec_migrations_wanting_workers(void)
{
	List	   *ids = NIL;

	(void) ec_state_spi(psprintf("SELECT m.id FROM " EC_STATE_SCHEMA ".migrations m"
								 " WHERE NOT m.done AND NOT m.paused AND EXISTS (SELECT FROM " EC_STATE_SCHEMA
								 ".tasks t WHERE t.migration_id = m.id AND t.state NOT IN ('done', 'failed'))"
								 "%s ORDER BY m.id",
								 ec_catalog_at_least("0.2.0") ?
								 " OR m.id IN (SELECT migration_id FROM " EC_STATE_SCHEMA ".revert_windows)" :
								 ""),
						0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64	   *id = palloc(sizeof(int64));

		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		ids = lappend(ids, id);
	}
	return ids;
}

/* ---- the worker's queue (worker.c, backfill.c, toplevel.c) ---- */

/* What the worker reads of its migration before each step; false if it is gone or complete. */
bool
ec_worker_migration(int64 id, bool *paused, Jsonb **settings, TransactionId *trigger_xid)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;

	(void) ec_state_spi("SELECT paused, settings, trigger_xid FROM " EC_STATE_SCHEMA ".migrations"
						" WHERE id = $1 AND NOT done", 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*settings = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*trigger_xid = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 3, &isnull));
	return true;
}

/*
 * The migration's unfinished tasks in queue order (seq, part), in SPI_tuptable: seq, kind, relid,
 * sql, next_block, total_blocks, state, rows_done, cleanup, started, part, first_block (the
 * columns worker.c's task_from_row reads).  Returns how many.
 */
uint64
ec_unfinished_tasks(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	return ec_state_spi("SELECT seq, kind, relid, sql, next_block, total_blocks, state, rows_done,"
						"       cleanup, started_at IS NOT NULL, part, first_block"
						"  FROM " EC_STATE_SCHEMA ".tasks WHERE migration_id = $1 AND state <> 'done'"
						" ORDER BY seq, part", 1, types, values, NULL, SPI_OK_SELECT);
}

/*
 * A task's (one part's) state and detail; started_at when it first runs, finished_at when done.
 */
void
ec_set_task_state(int64 id, int seq, int part, const char *state, const char *detail)
{
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', detail ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(state);
	values[3] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	values[4] = Int32GetDatum(part);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = $3, detail = $4,"
						" updated_at = pg_catalog.clock_timestamp(),"
	/* Found paused or held back, a task has not started: its rate and ETA would count the wait. */
						" started_at = CASE WHEN $3 IN ('paused', 'pending', 'throttled') THEN started_at"
						"              ELSE coalesce(started_at, pg_catalog.clock_timestamp()) END,"
						" finished_at = CASE WHEN $3 = 'done' THEN pg_catalog.clock_timestamp() END"
						" WHERE migration_id = $1 AND seq = $2 AND part = $5", 5, types, values, nulls,
						SPI_OK_UPDATE);
}

/* A task failed: its error and the failing row's key (or NULL); the worker has stopped at it. */
void
ec_record_task_failure(int64 id, int seq, int part, const char *message, const char *row)
{
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', row ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(message);
	values[3] = row ? CStringGetTextDatum(row) : (Datum) 0;
	values[4] = Int32GetDatum(part);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'failed', last_error = $3,"
						" error_row = $4, detail = NULL, updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $5", 5, types, values, nulls,
						SPI_OK_UPDATE);
}

/* The table of task seq (InvalidOid: none, or no such task). */
Oid
ec_task_relid(int64 id, int seq)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};
	bool		isnull;

	if (ec_state_spi("SELECT coalesce(relid::pg_catalog.oid, 0) FROM " EC_STATE_SCHEMA ".tasks"
					 " WHERE migration_id = $1 AND seq = $2 LIMIT 1", 2, types, values, NULL,
					 SPI_OK_SELECT) != 1)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The statement and cleanup (NULL: none) of task seq when it is an "sql" or "compact" task, in SPI's
 * memory; false if it is not one.
 */
bool
ec_task_statement(int64 id, int seq, char **sql, char **cleanup, bool *compaction)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};

	(void) ec_state_spi("SELECT sql, cleanup, kind = 'compact' FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE migration_id = $1 AND seq = $2 AND kind IN ('sql', 'compact')",
						2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;
	*sql = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*cleanup = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*compaction = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "t") == 0;
	return true;
}

/* A backfill task's (part's) clock starts before its first batch, for its rate and ETA. */
void
ec_task_started(int64 id, int seq, int part)
{
	Oid			types[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3] = {Int64GetDatum(id), Int32GetDatum(seq), Int32GetDatum(part)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET started_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $3 AND started_at IS NULL",
						3, types, values, NULL, SPI_OK_UPDATE);
}

/* A backfill part reached its last block (total_blocks, fixed when it began). */
void
ec_task_filled(int64 id, int seq, int part, int64 total_blocks)
{
	Oid			types[4] = {INT8OID, INT4OID, INT8OID, INT4OID};
	Datum		values[4] = {Int64GetDatum(id), Int32GetDatum(seq), Int64GetDatum(total_blocks),
	Int32GetDatum(part)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET total_blocks = $3, next_block = $3"
						" WHERE migration_id = $1 AND seq = $2 AND part = $4", 4, types, values, NULL,
						SPI_OK_UPDATE);
}

/*
 * A batch committed with the part's progress: the next block, the rows it filled, and the part's
 * state; without statistics, the estimate is what the blocks filled so far promise for the rest.
 */
void
ec_record_batch(int64 id, int seq, int part, int64 next_block, uint64 rows, int64 total_blocks,
				const char *detail)
{
	Oid			types[7] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', detail ? ' ' : 'n'};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = Int64GetDatum(next_block);
	values[3] = Int64GetDatum((int64) rows);
	values[4] = Int64GetDatum(total_blocks);
	values[5] = Int32GetDatum(part);
	values[6] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET next_block = $3, rows_done = rows_done + $4,"
						" rows_estimated = CASE WHEN rows_estimated > 0 AND (SELECT reltuples > 0 FROM"
						"   pg_catalog.pg_class WHERE oid = relid) THEN rows_estimated"
						"   ELSE ((rows_done + $4)::float8 / ($3 - first_block) * ($5 - first_block))::bigint END,"
						" batches = batches + 1, total_blocks = $5, state = 'running', detail = $7,"
						" last_error = NULL, error_row = NULL,"
						" started_at = coalesce(started_at, pg_catalog.clock_timestamp()),"
						" updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $6", 7, types, values, nulls,
						SPI_OK_UPDATE);
}

/*
 * A backfill task cut into parts of size blocks: part 0 keeps the first, parts 1 .. parts - 1 are
 * inserted, each with its share of the row estimate.
 */
void
ec_split_task(int64 id, int seq, int64 size, int64 nblocks, int64 parts)
{
	Oid			types[5] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID};
	Datum		values[5];

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = Int64GetDatum(size);
	values[3] = Int64GetDatum(nblocks);
	values[4] = Int64GetDatum(parts);
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".tasks (migration_id, seq, part, kind, relid,"
						"        table_name, columns, first_block, next_block, total_blocks, rows_estimated)"
						" SELECT migration_id, seq, p, kind, relid, table_name, columns, p * $3, p * $3,"
						"        LEAST($4, (p + 1) * $3),"
						"        (rows_estimated * (LEAST($4, (p + 1) * $3) - p * $3)::float8 / $4)::bigint"
						"   FROM " EC_STATE_SCHEMA ".tasks, pg_catalog.generate_series(1::bigint, $5 - 1) p"
						"  WHERE migration_id = $1 AND seq = $2 AND part = 0",
						5, types, values, NULL, SPI_OK_INSERT);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET total_blocks = $3,"
						" rows_estimated = (rows_estimated * $3::float8 / $4)::bigint"
						" WHERE migration_id = $1 AND seq = $2 AND part = 0",
						4, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Are all parts of backfill task seq done?  Asked by the worker that finished part: a part other
 * than 0 first locks part 0's row, so that of workers finishing parts at once exactly one sees all
 * done once the others' "done" committed (part 0's own worker holds that lock by its update).
 */
bool
ec_task_all_parts_done(int64 id, int seq, int part)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};

	if (part != 0)
		(void) ec_state_spi("SELECT FROM " EC_STATE_SCHEMA ".tasks"
							" WHERE migration_id = $1 AND seq = $2 AND part = 0 FOR UPDATE",
							2, types, values, NULL, SPI_OK_SELECT);
	return ec_state_spi("SELECT FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE migration_id = $1 AND seq = $2 AND state <> 'done' LIMIT 1",
						2, types, values, NULL, SPI_OK_SELECT) == 0;
}

/* ---- the dual-write plans (dual_writes) ---- */

/*
 * What the backfill of relid sets: its new columns (name[]) and their "up" as SQL text (text[]),
 * n of each, and the migration's in-progress xids as text ("{...}"); false without a plan.
 */
bool
ec_backfill_sources(Oid relid, Datum **new_columns, Datum **ups, int *n, char **in_progress)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;

	(void) ec_state_spi("SELECT d.new_columns, d.up_sources, m.in_progress_xids::text"
						"  FROM " EC_STATE_SCHEMA ".dual_writes d"
						"  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = d.migration_id"
						" WHERE d.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
						1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													   1, &isnull)),
					  NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, new_columns, NULL, n);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													   2, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, ups, NULL, n);
	*in_progress = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return true;
}

/* ---- lookups for the event triggers, events and waits ---- */

/* The migration moving relid's data (its dual-write plan is there, not complete), or NULL. */
char *
ec_migration_moving_data(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	if (ec_state_spi("SELECT m.name FROM " EC_STATE_SCHEMA ".dual_writes d"
					 "  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = d.migration_id"
					 " WHERE d.relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND NOT m.done",
					 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* The first of relids (an oid[] datum) that has a dual-write plan, by name, or NULL. */
char *
ec_first_with_dual_writes(Datum relids)
{
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1] = {relids};

	if (ec_state_spi("SELECT d.relid::pg_catalog.text FROM " EC_STATE_SCHEMA ".dual_writes d"
					 " WHERE d.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
					 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* The schema and name of migration id; false if it is gone. */
bool
ec_migration_names(int64 id, char **schema, char **name)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	if (ec_state_spi("SELECT schema_name::pg_catalog.text, name FROM " EC_STATE_SCHEMA ".migrations"
					 " WHERE id = $1", 1, types, values, NULL, SPI_OK_SELECT) != 1)
		return false;
	*schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return true;
}

/* The xmin of the migration's row: who started, resumed or reconfigured it last. */
bool
ec_migration_row_xmin(int64 id, TransactionId *xmin)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;

	if (ec_state_spi("SELECT xmin FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
					 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	*xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												&isnull));
	return true;
}

/* The cleanups of the migration's compaction tasks not done yet, in queue order. */
List *
ec_compaction_cleanups(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	List	   *cleanups = NIL;
	uint64		n;

	n = ec_state_spi("SELECT cleanup FROM " EC_STATE_SCHEMA ".tasks"
					 " WHERE migration_id = $1 AND kind = 'compact' AND state <> 'done'"
					 "   AND cleanup IS NOT NULL ORDER BY seq",
					 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
		cleanups = lappend(cleanups, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return cleanups;
}

/* The compaction tasks not done yet marked done as skipped by ec_complete; returns how many. */
uint64
ec_skip_compaction_tasks(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	return ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'done',"
						" detail = 'skipped: ec_complete ran before it',"
						" finished_at = pg_catalog.clock_timestamp(), updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND kind = 'compact' AND state <> 'done'",
						1, types, values, NULL, SPI_OK_UPDATE);
}

/* The seq of the migration's VACUUM task of relid (compact.c), 0 when it has none. */
int
ec_vacuum_task_seq(int64 id, Oid relid)
{
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2] = {Int64GetDatum(id), ObjectIdGetDatum(relid)};
	bool		isnull;
	Datum		d;

	if (ec_state_spi("SELECT seq FROM " EC_STATE_SCHEMA ".tasks"
					 " WHERE migration_id = $1 AND relid = $2 AND kind = 'compact' AND part = 0"
					 "   AND sql LIKE 'VACUUM %' ORDER BY seq LIMIT 1",
					 2, types, values, NULL, SPI_OK_SELECT) == 0)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * A VACUUM of the VACUUM task seq run during the backfill, before (running) and after it: counted
 * in its batches, shown as running while it runs and queued (for its last run) after.  A task
 * that failed or was skipped keeps its state.
 */
void
ec_record_backfill_vacuum(int64 id, int seq, bool running)
{
	Oid			types[3] = {INT8OID, INT4OID, BOOLOID};
	Datum		values[3] = {Int64GetDatum(id), Int32GetDatum(seq), BoolGetDatum(running)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks"
						" SET state = CASE WHEN $3 THEN 'running' ELSE 'pending' END,"
						"     batches = batches + CASE WHEN $3 THEN 1 ELSE 0 END,"
						"     detail = CASE WHEN $3 THEN 'vacuuming the blocks filled so far'"
						"              ELSE 'vacuumed ' || batches || ' time(s) during the backfill;"
						" vacuums once more after it' END,"
						"     started_at = coalesce(started_at, pg_catalog.clock_timestamp()),"
						"     updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = 0"
						"   AND state IN ('pending', 'running', 'throttled')",
						3, types, values, NULL, SPI_OK_UPDATE);
}

/* relid and, for a partition, its ancestors, as an oid[] (what covers a partition covers it). */
Datum
ec_relation_and_ancestors(Oid relid)
{
	return ec_list_to_oid_array(lcons_oid(relid, get_rel_relispartition(relid) ?
										  get_partition_ancestors(relid) : NIL));
}
