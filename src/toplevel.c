/*
 * toplevel.c
 *	  The statements of the worker's "sql" and "compact" tasks (CREATE INDEX CONCURRENTLY, REINDEX
 *	  CONCURRENTLY, VALIDATE CONSTRAINT, ADD CONSTRAINT, VACUUM, REFRESH MATERIALIZED VIEW), run as
 *	  top-level statements outside any transaction block, as a client's simple query would, and the
 *	  cleanups of failed ones.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "access/table.h"

#include "expand_contract.h"

#include "worker.h"


/*
 * ADD CONSTRAINT (a foreign key re-pointed at a rebuilt column, carry_foreign_keys.c) takes SHARE
 * ROW EXCLUSIVE on the referencing and the referenced table: unlike the other statements of "sql"
 * tasks, it blocks their writers while it waits.  So it waits expand_contract.lock_timeout at most,
 * and a timeout only retries the task a second later (transient).
 */
static bool
adds_constraint(Node *parsetree)
{
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return false;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		if (IsA(lfirst(lc), AlterTableCmd) &&
			((AlterTableCmd *) lfirst(lc))->subtype == AT_AddConstraint)
			return true;
	}
	return false;
}

/*
 * The constraint that ADD CONSTRAINT parsetree adds exists already: an attempt committed it before
 * a crash or a stop kept the task from being marked done.  The task's names are the extension's
 * own (_ec_con_...), so it is that attempt's, and running the statement again is skipped instead of
 * failing the task on the name.
 */
static bool
constraint_added(Node *parsetree)
{
	AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	ListCell   *lc;

	if (!OidIsValid(relid))
		return false;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		Constraint *con = (Constraint *) cmd->def;

		if (cmd->subtype != AT_AddConstraint || con == NULL || !IsA(con, Constraint) ||
			con->conname == NULL ||
			!OidIsValid(get_relation_constraint_oid(relid, con->conname, true)))
			return false;
	}
	return true;
}

/*
 * Locks the tables an ADD CONSTRAINT of a foreign key takes (SHARE ROW EXCLUSIVE on the table and
 * on the referenced one) before it runs, the way ec_start does: never waiting for one while holding
 * the other, which with the application's writers of one that then check the other is a lock
 * cycle (see ec_lock_with_retry).
 */
static void
lock_constraint_tables(Node *parsetree)
{
	AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
	List	   *relids = list_make1_oid(RangeVarGetRelid(stmt->relation, NoLock, false));
	List	   *modes = list_make1_int(ShareRowExclusiveLock);
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		Constraint *con = (Constraint *) cmd->def;

		if (cmd->subtype == AT_AddConstraint && con != NULL && IsA(con, Constraint) &&
			con->contype == CONSTR_FOREIGN && con->pktable != NULL)
		{
			relids = lappend_oid(relids, RangeVarGetRelid(con->pktable, NoLock, false));
			modes = lappend_int(modes, ShareRowExclusiveLock);
		}
	}
	if (list_length(relids) > 1)
		ec_lock_with_retry(relids, modes);
}

static const char *
lock_timeout_text(void)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "%d", ec_lock_timeout_ms);
	return buf;
}

static void
run_statements(const char *sql)
{
	/*
	 * The statements and their parse trees must outlive transactions: CREATE INDEX CONCURRENTLY
	 * commits and starts transactions of its own while it runs (exec_simple_query keeps them in
	 * MessageContext for the same reason).  A run that failed left its context behind: it goes
	 * now, so that a task tried again and again does not leak one per attempt.
	 */
	static MemoryContext cxt = NULL;
	MemoryContext old;
	char	   *text;
	List	   *parsetrees;
	ListCell   *lc;

	if (cxt != NULL)
		MemoryContextDelete(cxt);
	cxt = AllocSetContextCreate(TopMemoryContext, "expand_contract task statement",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	text = pstrdup(sql);
	parsetrees = pg_parse_query(text);

	foreach(lc, parsetrees)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);
		PlannedStmt *stmt;
		bool		snapshot;
		bool		bounded;

		if (!IsA(raw->stmt, IndexStmt) && !IsA(raw->stmt, AlterTableStmt) &&
			!IsA(raw->stmt, DropStmt) && !IsA(raw->stmt, RefreshMatViewStmt) &&
			!IsA(raw->stmt, VacuumStmt) && !IsA(raw->stmt, ReindexStmt))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("background task statements must be CREATE INDEX, DROP INDEX, ALTER TABLE, REFRESH MATERIALIZED VIEW, VACUUM or REINDEX")));
		StartTransactionCommand();
		MemoryContextSwitchTo(cxt);
		stmt = makeNode(PlannedStmt);
		stmt->commandType = CMD_UTILITY;
		stmt->canSetTag = true;
		stmt->utilityStmt = raw->stmt;
		stmt->stmt_location = raw->stmt_location;
		stmt->stmt_len = raw->stmt_len;
		snapshot = PlannedStmtRequiresSnapshot(stmt);
		if (snapshot)
			PushActiveSnapshot(GetTransactionSnapshot());
		bounded = adds_constraint(raw->stmt);
		if (bounded)
			SetConfigOption("lock_timeout", lock_timeout_text(), PGC_SUSET, PGC_S_OVERRIDE);
		if (!bounded || !constraint_added(raw->stmt))
		{
			if (bounded)
				lock_constraint_tables(raw->stmt);
			ProcessUtility(stmt, text, false, PROCESS_UTILITY_TOPLEVEL, NULL, NULL, None_Receiver,
						   NULL);
		}
		if (bounded)
			SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
		if (snapshot && ActiveSnapshotSet())
			PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	cxt = NULL;
}

/*
 * Runs a statement the way a client's would run, as a top-level command in its own transaction,
 * so that commands which refuse transaction blocks (CREATE INDEX CONCURRENTLY) work.
 *
 * Without lock_timeout: the statements of "sql" tasks (CREATE INDEX CONCURRENTLY, DROP INDEX
 * CONCURRENTLY, VALIDATE CONSTRAINT) take SHARE UPDATE EXCLUSIVE on their table, which no read or
 * write of the application waits for, even while the request is queued, and then wait for the
 * transactions that predate them.  Bounded by the batches' second, any transaction older than that
 * at one of those waits would cancel a CREATE INDEX CONCURRENTLY after its whole build, and the
 * retry would build it again, as long as the workload has such transactions.  ec_rollback still
 * interrupts the wait (it stops the worker); ec_complete notices when it is the one waited for.
 * Set outside any transaction, so that it lasts; after a failure the main loop sets the batches'
 * value back before the next step.
 */
void
run_toplevel(const char *sql)
{
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	run_statements(sql);
	SetConfigOption("lock_timeout", BATCH_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);
}

/* How often a failed task's cleanup is tried, a second apart, while it meets contention. */
#define CLEANUP_ATTEMPTS	30

/*
 * Runs a failed "sql" task's cleanup (without lock_timeout, see run_toplevel), retrying a deadlock
 * for a while.  Returns NULL when it ran, else the error that stopped it.
 */
char *
run_cleanup(const char *cleanup)
{
	MemoryContext cxt = CurrentMemoryContext;

	for (int attempt = 1;; attempt++)
	{
		ErrorData  *edata = NULL;

		PG_TRY();
		{
			pgstat_report_activity(STATE_RUNNING, cleanup);
			run_toplevel(cleanup);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			MemoryContextSwitchTo(cxt);
		}
		PG_END_TRY();
		if (edata == NULL)
			return NULL;
		if (!ec_worker_transient(edata->sqlerrcode) || attempt >= CLEANUP_ATTEMPTS)
			return edata->message;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

