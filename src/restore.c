/*
 * restore.c
 *	  Migrations that pg_dump and pg_restore (or pg_upgrade) carried into another database.
 *
 * Two things that ec_start stores only mean something in the database it ran in: the backfill's
 * horizon (migrations.trigger_xid and in_progress_xids) is a point in that database's history of
 * transaction ids, and the dual-write expressions' node trees (dual_writes.up_exprs, down_exprs,
 * old_attnums, new_attnums) hold OIDs and attribute numbers, which a dump does not keep (a restored
 * table has no dropped columns, a restored function has a new OID) and another major version may not
 * read.  migrations.origin says where they were taken: the cluster's system identifier, the
 * database's OID and the catalog version.  Everything else travels as names (regclass, regrole, SQL
 * text), so the stored steps of complete and rollback still apply.
 *
 * A migration whose origin is not the current one was restored.  Until it is adopted, the trigger
 * re-analyses the expressions from their SQL text (dual_writes.up_sources, down_sources, over the
 * column names in old_columns, new_columns) and takes every row of a table whose backfill had not
 * finished for one still to fill.  Adopting it (the first ec_status(), ec_resume(), ec_complete(),
 * ec_rollback() or worker after the restore) rewrites the node trees and attribute numbers, takes a
 * new horizon, and starts unfinished backfills again from the first block: every restored row was
 * written before that horizon, so none is skipped.  A backfill that had finished stays finished.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/catversion.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "expand_contract.h"

/* "<system identifier>/<database OID>/<catalog version>" of where we run now. */
char *
ec_current_origin(void)
{
	return psprintf(UINT64_FORMAT "/%u/%u", GetSystemIdentifier(), MyDatabaseId,
					(unsigned) CATALOG_VERSION_NO);
}

bool
ec_origin_is_current(const char *origin)
{
	return origin != NULL && strcmp(origin, ec_current_origin()) == 0;
}

/* The column a restored plan names, by name; "" (no column) is 0. */
AttrNumber
ec_restored_attnum(Oid relid, const char *name)
{
	AttrNumber	attnum;

	if (name[0] == '\0')
		return InvalidAttrNumber;
	attnum = get_attnum(relid, name);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("column \"%s\" of table \"%s\" under migration does not exist", name,
						get_rel_name(relid)),
				 errdetail("The migration was restored from another database, whose table had it."),
				 errhint("Restore the column, or roll the migration back with ec_rollback().")));
	return attnum;
}

/*
 * An expression of a restored plan, analysed again from its SQL text: column references are the
 * table's physical names and every object outside pg_catalog is schema-qualified (ec_deparse), so
 * nothing but pg_catalog needs to be on the search_path.  Coerced to the type of column target.
 */
Node *
ec_reanalyze(Oid relid, const char *source, AttrNumber target, const char *what)
{
	Oid			typid;
	int32		typmod;
	Oid			collid;
	Node	   *expr;
	int			nestlevel;

	get_atttypetypmodcoll(relid, target, &typid, &typmod, &collid);
	nestlevel = ec_guc_push("search_path", "pg_catalog");
	expr = ec_analyze_row_expression(source, what, relid, NULL, 0, typid, typmod, false);
	ec_guc_pop(nestlevel);
	return expr;
}

/* One table's plan as stored, read before it is rewritten. */
typedef struct StoredPlan
{
	Oid			relid;
	List	   *old_columns;
	List	   *new_columns;
	List	   *up_sources;
	List	   *down_sources;
} StoredPlan;

/* Node trees and attribute numbers for one table, from the names and SQL text of its plan. */
static void
rewrite_plan(int64 id, StoredPlan *plan)
{
	int			n = list_length(plan->old_columns);
	Datum	   *old_attnums = palloc(sizeof(Datum) * (n + 1));
	Datum	   *new_attnums = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ups = palloc(sizeof(Datum) * (n + 1));
	Datum	   *downs = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		AttrNumber	old_attnum = ec_restored_attnum(plan->relid, list_nth(plan->old_columns, i));
		AttrNumber	new_attnum = ec_restored_attnum(plan->relid, list_nth(plan->new_columns, i));
		char	   *up = list_nth(plan->up_sources, i);
		char	   *down = list_nth(plan->down_sources, i);

		old_attnums[i] = Int16GetDatum(old_attnum);
		new_attnums[i] = Int16GetDatum(new_attnum);
		ups[i] = CStringGetTextDatum(up[0] && new_attnum ?
									 nodeToString(ec_reanalyze(plan->relid, up, new_attnum,
															   "up expression")) : "");
		downs[i] = CStringGetTextDatum(down[0] && old_attnum ?
									   nodeToString(ec_reanalyze(plan->relid, down, old_attnum,
																 "down expression")) : "");
	}
	ec_set_dual_write_trees(id, plan->relid,
							PointerGetDatum(construct_array(old_attnums, n, INT2OID, 2, true, TYPALIGN_SHORT)),
							PointerGetDatum(construct_array(new_attnums, n, INT2OID, 2, true, TYPALIGN_SHORT)),
							PointerGetDatum(construct_array(ups, n, TEXTOID, -1, false, TYPALIGN_INT)),
							PointerGetDatum(construct_array(downs, n, TEXTOID, -1, false, TYPALIGN_INT)));
	/* Writers drop the plan they re-analysed and read the stored one. */
	CacheInvalidateRelcacheByRelid(plan->relid);
}

/* Makes migration id, restored from a database at origin, one of this database. */
static void
adopt(int64 id, const char *schema, const char *origin)
{
	List	   *plans = NIL;
	ListCell   *lc;
	EcXidList	in_progress;
	TransactionId horizon;
	uint64		n;

	n = ec_stored_dual_writes(id);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StoredPlan *plan = palloc0(sizeof(StoredPlan));
		bool		isnull;

		plan->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		plan->old_columns = ec_name_array_to_list(SPI_getbinval(tuple, desc, 2, &isnull));
		plan->new_columns = ec_name_array_to_list(SPI_getbinval(tuple, desc, 3, &isnull));
		plan->up_sources = ec_text_array_to_list(SPI_getbinval(tuple, desc, 4, &isnull));
		plan->down_sources = ec_text_array_to_list(SPI_getbinval(tuple, desc, 5, &isnull));
		plans = lappend(plans, plan);
	}
	foreach(lc, plans)
	{
		StoredPlan *plan = lfirst(lc);

		/* A table dropped since: its backfill fails, visibly, when the worker reaches it. */
		if (get_rel_name(plan->relid) != NULL)
			rewrite_plan(id, plan);
	}

	/*
	 * The restore wrote every row without the trigger, and has finished: the horizon taken now is
	 * above all of them, and every later writer goes through the trigger.
	 */
	horizon = ec_write_horizon(&in_progress);
	ec_set_migration_origin(id, ec_current_origin(), horizon, &in_progress);
	ec_restart_backfills(id);
	ereport(NOTICE,
			(errmsg("migration of schema \"%s\" was restored from another database", schema),
			 errdetail("It was started in database %s; its unfinished backfills start again from "
					   "the first row.", origin)));
}

/*
 * adopt() in a subtransaction: a migration that cannot be adopted (an expression whose function
 * the restore lacks, say) must not make ec_status() fail for every schema.  Its writes fail with
 * the same error, so it does not go unnoticed.
 */
typedef struct Adoption
{
	int64		id;
	const char *schema;
	const char *origin;
} Adoption;

static void
run_adopt(void *arg)
{
	Adoption   *a = arg;

	adopt(a->id, a->schema, a->origin);
}

static void
adopt_or_warn(int64 id, const char *schema, const char *origin)
{
	Adoption	a = {id, schema, origin};
	ErrorData  *edata = ec_in_subtransaction(run_adopt, &a, true);

	if (edata == NULL)
		return;
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("could not adopt the restored migration of schema \"%s\": %s", schema,
					edata->message),
			 edata->detail ? errdetail("%s", edata->detail) : 0,
			 edata->hint ? errhint("%s", edata->hint) : 0));
	FreeErrorData(edata);
}

/*
 * Adopts migration_id (0: every active migration of this database) if it was restored from another
 * database.  Cheap when there is nothing to do: one indexed look-up.
 */
void
ec_adopt_restored(int64 migration_id)
{
	List	   *ids = NIL;
	List	   *schemas = NIL;
	ListCell   *lc1,
			   *lc2;

	if (RecoveryInProgress())
		return;
	ec_migrations_from_elsewhere(ec_current_origin(), migration_id, &ids, &schemas);
	forboth(lc1, ids, lc2, schemas)
	{
		int64		id = *(int64 *) lfirst(lc1);
		Oid			nspid = get_namespace_oid(lfirst(lc2), true);
		char	   *origin;

		if (!OidIsValid(nspid))
			continue;
		/* Against another adopter, and against ec_start/complete/rollback of the schema. */
		ec_lock_schema(nspid);
		if (!ec_active_migration_origin(id, &origin))
			continue;
		if (!ec_origin_is_current(origin))
			adopt_or_warn(id, lfirst(lc2), origin);
	}
}
