/*
 * ops/drop_index.c
 *	  drop_index: the index stays until complete, which drops it.
 *
 * Never at start: code of the old version may rely on the index (its plans, or a unique index's
 * guarantee), and rollback then has nothing to undo.  At complete, a plain DROP INDEX in complete's
 * transaction, after complete has taken its table locks up front (with lock_timeout and retries,
 * like every other complete step): the table is marked changed so that it is among the
 * migration's locked relations.  With that lock held the drop waits for nobody and is a catalog
 * change (the files go at commit), so no application query queues behind it for longer than one
 * lock attempt.  DROP INDEX CONCURRENTLY, as pgroll runs it, cannot run in a transaction; as a
 * worker task after complete it would leave complete's outcome pending, and the worker serves
 * active migrations only.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "operations.h"

typedef struct DropIndexOp
{
	EcOperation base;
	char	   *name;
} DropIndexOp;

static void
drop_index_read(EcOperation *base, EcDocObject *o)
{
	((DropIndexOp *) base)->name = ec_doc_identifier(o, "name", true);
}

/*
 * The index's owner (its table's) may drop it: the check resolves the name in the schema, as an
 * index.  It needs no lock at start; complete locks its table (see above).
 */
static void
drop_index_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((DropIndexOp *) base)->name, AccessShareLock, true);
}

static bool
is_replica_identity(Oid indexid)
{
	HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
	bool		result;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_internal("cache lookup failed for index %u", indexid)));
	result = ((Form_pg_index) GETSTRUCT(tuple))->indisreplident;
	ReleaseSysCache(tuple);
	return result;
}

/* An object that DROP INDEX without CASCADE would refuse to drop with it (a foreign key), or NULL. */
static char *
dependent_object(Oid indexid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(indexid)};

	(void) ec_spi("SELECT pg_catalog.pg_describe_object(classid, objid, objsubid)"
				  "  FROM pg_catalog.pg_depend"
				  " WHERE refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND refobjid = $1"
				  "   AND deptype = 'n' ORDER BY 1 LIMIT 1",
				  1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static EcTable *
model_table_by_relid(EcModel *model, Oid relid)
{
	ListCell   *lc;

	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);

		if (table->relid == relid)
			return table;
	}
	return NULL;
}

static void
drop_index_start(EcStartContext *cxt, EcOperation *base)
{
	DropIndexOp *op = (DropIndexOp *) base;
	EcModel    *model = cxt->model;
	Oid			indexid = get_relname_relid(op->name, model->nspid);
	char		relkind;
	Oid			heapid;
	Oid			conid;
	EcTable    *table;
	char	   *dependent;
	char	   *step;
	ListCell   *lc;

	if (!OidIsValid(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"%s\" does not exist in schema \"%s\"", op->name, model->schema)));
	relkind = get_rel_relkind(indexid);
	if (relkind != RELKIND_INDEX && relkind != RELKIND_PARTITIONED_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", op->name)));
	heapid = IndexGetRelation(indexid, false);
	table = model_table_by_relid(model, heapid);
	if (table == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot drop index \"%s\" of \"%s\", which is not a table", op->name,
						get_rel_name(heapid)),
				 errhint("Use a \"sql\" operation.")));
	ec_op_require_owner(table);

	conid = get_index_constraint(indexid);
	if (OidIsValid(conid))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop index \"%s\": constraint \"%s\" of table \"%s\" requires it",
						op->name, get_constraint_name(conid), get_rel_name(heapid)),
				 errhint("Use a \"drop_constraint\" operation on constraint \"%s\"; its index goes "
						 "with it.", get_constraint_name(conid))));
	if (get_rel_relispartition(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop index \"%s\": it is a partition of index \"%s\"", op->name,
						get_rel_name(get_partition_parent(indexid, false))),
				 errhint("Drop the partitioned index instead; its partitions go with it.")));
	if (is_replica_identity(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot drop index \"%s\": it is the replica identity of table \"%s\"",
						op->name, get_rel_name(heapid)),
				 errdetail("Without it, logical replication could no longer identify the rows "
						   "that updates and deletes change."),
				 errhint("Change the table's replica identity first.")));
	dependent = dependent_object(indexid);
	if (dependent)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop index \"%s\": %s depends on it", op->name, dependent),
				 errhint("Drop the dependent object first, in an earlier migration.")));

	step = psprintf("DROP INDEX IF EXISTS %s", ec_qualified(model->schema, op->name));
	foreach(lc, cxt->complete_tail)
	{
		if (strcmp(lfirst(lc), step) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("index \"%s\" is already dropped by an earlier operation of this "
							"migration", op->name)));
	}

	/*
	 * Complete locks the index's table, and for a partitioned index every partition, which DROP
	 * INDEX locks as well.  IF EXISTS: an operation of this migration may drop the index's table or
	 * column at complete, and the index with it.
	 */
	table->changed = true;
	if (relkind == RELKIND_PARTITIONED_INDEX)
	{
		foreach(lc, find_all_inheritors(heapid, NoLock, NULL))
		{
			EcTable    *partition = model_table_by_relid(model, lfirst_oid(lc));

			if (partition == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot drop index \"%s\": partition \"%s\" of its table is in "
								"another schema", op->name, get_rel_name(lfirst_oid(lc)))));
			partition->changed = true;
		}
	}
	cxt->complete_tail = lappend(cxt->complete_tail, step);
}

const EcOpRoutine ec_op_drop_index = {
	.name = "drop_index",
	.size = sizeof(DropIndexOp),
	.read = drop_index_read,
	.touches = drop_index_touches,
	.start = drop_index_start,
};
