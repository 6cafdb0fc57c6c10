/*
 * partitions.c
 *	  Partitions added to or removed from a partitioned table while a migration moves its data.
 *
 * A migration treats a partitioned table and its partitions as one table (plan.c): each leaf has
 * its dual-write plan (expand_contract.dual_writes, under its own attribute numbers) and its
 * backfill task, made at ec_start.  A partition that arrives later, by CREATE TABLE ... PARTITION
 * OF or ALTER TABLE ... ATTACH PARTITION, would get the cloned dual-write triggers but no plan, and
 * its rows (an attached table's existing ones, and every write to it) would stay unconverted; a
 * partition detached meanwhile would keep the helper columns that complete and rollback drop
 * through the parent only; a partition dropped meanwhile would leave its backfill task failing,
 * which complete waits for.  Rather than leave rows silently wrong, the event trigger below refuses
 * those commands until the migration is completed or rolled back.  Other DDL on the hierarchy is
 * the DDL guard's business (ddl_guard.c), which runs this check first.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "expand_contract.h"

PG_FUNCTION_INFO_V1(ec_partition_ddl);

/*
 * Set while ec_complete or ec_rollback run their steps: by the time their "sql" operations run
 * ("onComplete" ones last at complete, "down" ones after the triggers and helper columns are gone
 * at rollback), the migration no longer covers the table, and a partition may come or go.
 */
bool		ec_partition_ddl_allowed = false;

/* The partitioned table relid, or one of its ancestors, has a dual-write plan: its name, or NULL. */
static char *
migrated_ancestor(Oid relid)
{
	char	   *result = NULL;

	if (!OidIsValid(relid))
		return NULL;
	SPI_connect();
	result = ec_first_with_dual_writes(ec_relation_and_ancestors(relid));
	if (result)
		result = MemoryContextStrdup(TopTransactionContext, result);
	SPI_finish();
	return result;
}

static void
refuse(const char *what, const char *table)
{
	bool		dropping = strncmp(what, "drop", 4) == 0;

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s table \"%s\" while a migration moves its data", what, table),
			 dropping ?
			 errdetail("The migration has a backfill task for each partition that existed at "
					   "ec_start, which complete waits for.") :
			 errdetail("The migration's dual-write plans and backfill cover the partitions that "
					   "existed at ec_start only."),
			 errhint("Complete the migration with ec_complete() or roll it back with "
					 "ec_rollback() first.")));
}

/*
 * The check, run by the event trigger of 0.2.0 (expand_contract.ddl_guard(), ddl_guard.c) and by
 * 0.1.0's own (below) on CREATE TABLE, ALTER TABLE and DROP TABLE.
 */
void
ec_check_partition_ddl(Node *parsetree)
{
	if (ec_partition_ddl_allowed)
		return;

	if (IsA(parsetree, CreateStmt))
	{
		CreateStmt *stmt = (CreateStmt *) parsetree;
		char	   *table;

		if (stmt->partbound != NULL && list_length(stmt->inhRelations) == 1 &&
			(table = migrated_ancestor(RangeVarGetRelid(linitial(stmt->inhRelations), NoLock,
														true))) != NULL)
			refuse("create a partition of", table);
	}
	else if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
	{
		ListCell   *lc;

		/* A dropped leaf's backfill task would fail, and complete wait for it: refused too. */
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)), NoLock, true);
			char	   *table;

			if (OidIsValid(relid) && get_rel_relispartition(relid) &&
				(table = migrated_ancestor(get_partition_parent(relid, false))) != NULL)
				refuse("drop a partition of", table);
		}
	}
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		ListCell   *lc;

		if (stmt->objtype != OBJECT_TABLE)
			return;
		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);
			char	   *table;

			if (cmd->subtype != AT_AttachPartition && cmd->subtype != AT_DetachPartition &&
				cmd->subtype != AT_DetachPartitionFinalize)
				continue;
			table = migrated_ancestor(RangeVarGetRelid(stmt->relation, NoLock, true));
			if (table != NULL)
				refuse(cmd->subtype == AT_AttachPartition ? "attach a partition to" :
					   "detach a partition from", table);
		}
	}
}

/*
 * 0.1.0's event trigger expand_contract_partition_ddl, kept for a 0.1.0 catalog: 0.2.0's update
 * replaces it with expand_contract.ddl_guard().
 */
Datum
ec_partition_ddl(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"ec_partition_ddl\" must be called as an event trigger")));
	ec_check_partition_ddl(((EventTriggerData *) fcinfo->context)->parsetree);
	PG_RETURN_NULL();
}
