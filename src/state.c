/*
 * state.c
 *	  Owns expand_contract.migrations, the migration history: every query of that table is a named
 *	  function here, called by the rest of the code.  Also the catalog version checks, the schema
 *	  lock and the array helpers the state files share.  The work queue (tasks) is state_tasks.c's,
 *	  the dual-write plans (dual_writes) state_dual_writes.c's, the revert windows revert.c's.  All
 *	  access through SPI with bound parameters.
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

/* ec_state_spi of a query whose one parameter, $1, is migration id (bigint). */
uint64
ec_state_spi_id(const char *sql, int64 id, int expected)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	return ec_state_spi(sql, 1, types, values, NULL, expected);
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

/* Migration id is complete (its completed_at: the transaction's start). */
void
ec_mark_migration_done(int64 id)
{
	(void) ec_state_spi_id("UPDATE " EC_STATE_SCHEMA ".migrations SET done = true, completed_at = now()"
						   " WHERE id = $1", id, SPI_OK_UPDATE);
}

/* Migration id is complete, without dual-write plans. */
void
ec_finish_migration(int64 id)
{
	ec_delete_dual_writes(id);
	ec_mark_migration_done(id);
}

/* The version schema of the migration of that name in the schema's history, or NULL. */
char *
ec_migration_version_schema(const char *schema, const char *name)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(schema), CStringGetTextDatum(name)};

	if (ec_state_spi("SELECT version_schema::text FROM " EC_STATE_SCHEMA ".migrations"
					 " WHERE schema_name = $1 AND name = $2", 2, types, values, NULL,
					 SPI_OK_SELECT) == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

void
ec_delete_migration(int64 id)
{
	(void) ec_state_spi_id("DELETE FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
						   id, SPI_OK_DELETE);
}

void
ec_set_paused(int64 id, bool paused)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(id), BoolGetDatum(paused)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations SET paused = $2 WHERE id = $1",
						2, types, values, NULL, SPI_OK_UPDATE);
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
	(void) ec_state_spi_id("SELECT format('migration %I of schema %I', name, schema_name),"
						   "       started_by::pg_catalog.oid, login_role::pg_catalog.oid"
						   "  FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
						   id, SPI_OK_SELECT);
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
								 psprintf(" OR %s", ec_revert_window_exists_sql("m.id")) : ""),
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

/* What the worker reads of its migration before each step; false if it is gone or complete. */
bool
ec_worker_migration(int64 id, bool *paused, Jsonb **settings, TransactionId *trigger_xid)
{
	bool		isnull;

	(void) ec_state_spi_id("SELECT paused, settings, trigger_xid FROM " EC_STATE_SCHEMA ".migrations"
						   " WHERE id = $1 AND NOT done", id, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*settings = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*trigger_xid = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 3, &isnull));
	return true;
}

/* The schema and name of migration id; false if it is gone. */
bool
ec_migration_names(int64 id, char **schema, char **name)
{
	if (ec_state_spi_id("SELECT schema_name::pg_catalog.text, name FROM " EC_STATE_SCHEMA ".migrations"
						" WHERE id = $1", id, SPI_OK_SELECT) != 1)
		return false;
	*schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return true;
}

/* The xmin of the migration's row: who started, resumed or reconfigured it last. */
bool
ec_migration_row_xmin(int64 id, TransactionId *xmin)
{
	bool		isnull;

	if (ec_state_spi_id("SELECT xmin FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
						id, SPI_OK_SELECT) == 0)
		return false;
	*xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												&isnull));
	return true;
}

/*
 * Migration id's saved steps, in SPI_tuptable: validate_steps, complete_steps, rollback_steps
 * (text[]) and relids (oid[]).  Returns how many (0: it is gone).
 */
uint64
ec_saved_steps(int64 id)
{
	return ec_state_spi_id("SELECT validate_steps, complete_steps, rollback_steps, relids::pg_catalog.oid[]"
						   "  FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
						   id, SPI_OK_SELECT);
}

/* ---- restored migrations (restore.c) ---- */

/*
 * The active migrations of this database whose origin is not `origin` (migration_id 0: all of
 * them, else only that one), in id order: their ids (int64 *, palloc'd) and schemas.
 */
void
ec_migrations_from_elsewhere(const char *origin, int64 migration_id, List **ids, List **schemas)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(origin), Int64GetDatum(migration_id)};

	(void) ec_state_spi("SELECT id, schema_name::text FROM " EC_STATE_SCHEMA ".migrations"
						" WHERE NOT done AND origin <> $1 AND ($2 = 0 OR id = $2) ORDER BY id",
						2, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64	   *id = palloc(sizeof(int64));

		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		*ids = lappend(*ids, id);
		*schemas = lappend(*schemas, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
	}
}

/* The origin of active migration id (NULL if it has none) in *origin; false if it is not active. */
bool
ec_active_migration_origin(int64 id, char **origin)
{
	(void) ec_state_spi_id("SELECT origin FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1 AND NOT done",
						   id, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*origin = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return true;
}

/* An adopted migration's new origin and backfill horizon (trigger_xid and its in-progress xids). */
void
ec_set_migration_origin(int64 id, const char *origin, TransactionId horizon, EcXidList *in_progress)
{
	Oid			types[4] = {INT8OID, TEXTOID, XIDOID, XIDARRAYOID};
	Datum		values[4];

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(origin);
	values[2] = TransactionIdGetDatum(horizon);
	values[3] = ec_xid_array(in_progress);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations SET origin = $2, trigger_xid = $3,"
						" in_progress_xids = $4 WHERE id = $1", 4, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Which migrations the DDL guard covers (ddl_guard.c): the active ones, and those in a revert
 * window, whose kept-aside columns, tables, triggers and previous version schema ec_revert and
 * ec_cleanup still need.  A condition on migrations m.
 */
static char *
guarded_migration_sql(void)
{
	return psprintf("(NOT m.done OR %s)", ec_revert_window_exists_sql("m.id"));
}

/*
 * The migrations the DDL guard covers, in SPI_tuptable: schema_name, name, version_schema, the
 * parent's version_schema, done.  Returns how many.
 */
uint64
ec_guarded_migrations(void)
{
	return ec_state_spi(psprintf("SELECT m.schema_name::pg_catalog.text, m.name, m.version_schema::pg_catalog.text,"
								 "       p.version_schema::pg_catalog.text, m.done"
								 "  FROM " EC_STATE_SCHEMA ".migrations m"
								 "  LEFT JOIN " EC_STATE_SCHEMA ".migrations p"
								 "    ON p.schema_name = m.schema_name AND p.name = m.parent"
								 " WHERE %s", guarded_migration_sql()),
						0, NULL, NULL, NULL, SPI_OK_SELECT);
}

/*
 * The migration the DDL guard covers that covers one of relids (an oid[]: a relation and its
 * ancestors) by its relids, its dual-write plans or its version schemas' views, in SPI_tuptable:
 * schema_name, name, done.  Returns how many (0 or 1).
 */
uint64
ec_migration_guarding_relation(Datum relids)
{
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1] = {relids};

	return ec_state_spi(psprintf("SELECT m.schema_name::pg_catalog.text, m.name, m.done"
								 "  FROM " EC_STATE_SCHEMA ".migrations m"
								 "  LEFT JOIN " EC_STATE_SCHEMA ".migrations p"
								 "    ON p.schema_name = m.schema_name AND p.name = m.parent"
								 " WHERE %s AND (m.relids::pg_catalog.oid[] OPERATOR(pg_catalog.&&) $1"
								 "    OR EXISTS (SELECT FROM " EC_STATE_SCHEMA ".dual_writes d"
								 "                WHERE d.migration_id = m.id"
								 "                  AND d.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1))"
								 "    OR EXISTS (SELECT FROM pg_catalog.pg_depend dep"
								 "                 JOIN pg_catalog.pg_rewrite r ON r.oid = dep.objid"
								 "                 JOIN pg_catalog.pg_class v ON v.oid = r.ev_class"
								 "                 JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace"
								 "                WHERE dep.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
								 "                  AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
								 "                  AND dep.refobjid OPERATOR(pg_catalog.=) ANY ($1)"
								 "                  AND n.nspname IN (m.version_schema, p.version_schema)))"
								 " LIMIT 1", guarded_migration_sql()),
						1, types, values, NULL, SPI_OK_SELECT);
}

/* relid and, for a partition, its ancestors, as an oid[] (what covers a partition covers it). */
Datum
ec_relation_and_ancestors(Oid relid)
{
	return ec_list_to_oid_array(lcons_oid(relid, get_rel_relispartition(relid) ?
										  get_partition_ancestors(relid) : NIL));
}
