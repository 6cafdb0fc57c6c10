/*
 * wait.c
 *	  Waiting for a migration's background work: ec_complete's wait, and CALL ec_wait(), which
 *	  commits between polls so that it holds no snapshot (CREATE INDEX CONCURRENTLY and REINDEX
 *	  CONCURRENTLY, which the worker may be running, wait for every transaction that has one).
 *
 * One loop for both.  It errors rather than wait for something that will not happen: work failed or
 * paused, work this transaction changed (invisible to the worker until it commits), a worker that
 * waits for this very transaction, or one that keeps exiting without progress.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "expand_contract.h"

/* Did this transaction (or a subtransaction of it) start, resume or reconfigure the migration? */
static bool
changed_in_this_transaction(int64 id)
{
	TransactionId xmin;

	return ec_migration_row_xmin(id, &xmin) && TransactionIdIsCurrentTransactionId(xmin);
}

/* Is the migration's worker waiting for this transaction (CREATE INDEX CONCURRENTLY does)? */
static bool
worker_waits_for_us(int64 id)
{
	Oid			types[3] = {OIDOID, OIDOID, INT4OID};
	Datum		values[3];

	values[0] = ObjectIdGetDatum((Oid) (uint32) (id >> 32));
	values[1] = ObjectIdGetDatum((Oid) (uint32) id);
	values[2] = Int32GetDatum(MyProcPid);
	return ec_catalog_spi("SELECT FROM pg_catalog.pg_locks w"
				  "  JOIN pg_catalog.pg_locks worker ON worker.pid = w.pid"
				  "   AND worker.locktype = 'advisory' AND worker.classid = $1"
				  "   AND worker.objid = $2 AND worker.objsubid = 4 AND worker.granted"
				  "  JOIN pg_catalog.pg_locks h ON h.locktype = w.locktype"
				  "   AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid"
				  "   AND h.transactionid IS NOT DISTINCT FROM w.transactionid"
				  "   AND h.granted AND h.pid = $3"
				  " WHERE NOT w.granted AND w.locktype IN ('virtualxid', 'transactionid')"
				  " LIMIT 1", 3, types, values, NULL, SPI_OK_SELECT) > 0;
}

/* What failed or stopped, in the words of the call that waited. */
static void
report_failure(const EcWaitFor *w, const char *name, const char *failure)
{
	if (w->for_call)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("background work of the migration of schema \"%s\" failed", w->schema),
				 errdetail("%s", failure),
				 errhint("Fix the cause, then call ec_resume(%s), or ec_rollback(%s).",
						 quote_literal_cstr(w->schema), quote_literal_cstr(w->schema))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("backfill of migration \"%s\" failed", name),
			 errdetail("%s", failure),
			 errhint("Fix the cause, then call ec_resume(%s) and ec_complete(%s) again; or "
					 "call ec_rollback(%s).", quote_literal_cstr(w->schema),
					 quote_literal_cstr(w->schema), quote_literal_cstr(w->schema))));
}

static void
report_paused(const EcWaitFor *w, const char *name)
{
	if (w->for_call)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("background work of the migration of schema \"%s\" is paused", w->schema),
				 errhint("Resume it with ec_resume(%s).", quote_literal_cstr(w->schema))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("backfill of migration \"%s\" is paused", name),
			 errhint("Resume it with ec_resume(%s).", quote_literal_cstr(w->schema))));
}

/*
 * Waits until the schema's active migration (the one with id w->migration_id, or whichever is
 * active when that is 0) has done its work, holding no lock but AccessShare on the extension's own
 * tables (not even the schema's migration lock, so ec_pause and ec_configure work meanwhile).
 * Returns when the work is done, or when the migration is no longer active (completed or rolled
 * back meanwhile: the caller finds out).  The caller has connected SPI, non-atomic when
 * w->commit_between_polls.
 */
void
ec_wait_for_work(const EcWaitFor *w)
{
	const char *caller = w->for_call ? "ec_wait" : "ec_complete";
	MemoryContext poll_cxt = AllocSetContextCreate(CurrentMemoryContext, "expand_contract wait",
												   ALLOCSET_SMALL_SIZES);
	MemoryContext old = CurrentMemoryContext;
	int64		last_progress = -1;
	int			fruitless_launches = 0;

	if (!w->commit_between_polls && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot wait for the backfill in a REPEATABLE READ or "
						"SERIALIZABLE transaction", caller),
				 errdetail("Its snapshot would never show the work finishing."),
				 w->for_call ?
				 errhint("Call it outside a transaction block.") :
				 errhint("Call it in a READ COMMITTED transaction, or with wait => false once "
						 "ec_status() shows the backfill done.")));

	for (int tick = 0;; tick++)
	{
		EcMigrationRow *m;
		char	   *failure;
		int64		progress;
		int			unfinished;

		MemoryContextReset(poll_cxt);
		MemoryContextSwitchTo(poll_cxt);
		/*
		 * A connection of its own for each poll: SPI keeps every query's result until its
		 * connection ends, and ec_complete may wait for hours (about 10 MB a minute, before).
		 */
		SPI_connect();
		m = ec_active_migration(w->schema);
		if (m == NULL || (w->migration_id != 0 && m->id != w->migration_id))
		{
			SPI_finish();
			break;
		}
		/* ec_complete checked already; CALL ec_wait steers the worker too (ec_ensure_worker). */
		if (tick == 0 && w->for_call)
			ec_check_migration_privilege(m, "wait for");
		unfinished = ec_task_summary(m->id, w->include_compaction, &failure, &progress);
		if (failure != NULL)
			report_failure(w, m->name, failure);
		if (unfinished == 0)
		{
			SPI_finish();
			break;
		}
		if (m->paused)
			report_paused(w, m->name);
		if (w->deadline != 0 && GetCurrentTimestamp() > w->deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("background work of the migration of schema \"%s\" did not finish within %s",
							w->schema, w->timeout_text)));
		if (!w->commit_between_polls)
		{
			if (tick == 0 && changed_in_this_transaction(m->id))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("%s cannot wait for work that this transaction started or changed",
								caller),
						 errdetail("The background worker cannot see it before this transaction commits."),
						 errhint("Commit first, then call %s(%s).", caller,
								 quote_literal_cstr(w->schema))));
			/* Three joins of pg_locks: once a second is soon enough. */
			if (tick % 10 == 0 && worker_waits_for_us(m->id))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("%s cannot wait for migration \"%s\" in this transaction", caller,
								m->name),
						 errdetail("Its background worker is building an index concurrently, which "
								   "waits for this transaction to end."),
						 w->for_call ?
						 errhint("Run CALL ec_wait(%s) outside a transaction block.",
								 quote_literal_cstr(w->schema)) :
						 errhint("Run CALL ec_wait(%s) outside a transaction block, then ec_complete(%s).",
								 quote_literal_cstr(w->schema), quote_literal_cstr(w->schema))));
		}
		if (progress != last_progress)
		{
			last_progress = progress;
			fruitless_launches = 0;
		}
		if (tick % 10 == 0 && ec_ensure_worker(m->id, !w->for_call) && ++fruitless_launches > 5)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the background worker of migration \"%s\" keeps exiting without progress",
							m->name),
					 errhint("See the server log; the worker connects as the role that called "
							 "ec_start (its session user).")));
		SPI_finish();
		MemoryContextSwitchTo(old);
		if (w->commit_between_polls)
			SPI_commit();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(poll_cxt);
}

/*
 * CALL ec_wait(schema, timeout): waits for the active migration's background work, compaction
 * included.  Called with CALL outside a transaction block it commits between polls; inside one it
 * waits as ec_complete does, in the caller's transaction.
 */
PG_FUNCTION_INFO_V1(ec_wait);
Datum
ec_wait(PG_FUNCTION_ARGS)
{
	EcWaitFor	w = {0};
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute ec_wait() during recovery"),
				 errhint("The background work runs on the primary; wait there.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schema must not be null")));
	w.schema = text_to_cstring(PG_GETARG_TEXT_PP(0));
	(void) get_namespace_oid(w.schema, false);	/* a wrong schema name is an error, as for ec_complete */
	w.for_call = true;
	w.include_compaction = true;
	w.commit_between_polls = nonatomic;
	if (!PG_ARGISNULL(1))
	{
		Datum		timeout = PG_GETARG_DATUM(1);

		w.timeout_text = DatumGetCString(DirectFunctionCall1(interval_out, timeout));
		w.deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
															 TimestampTzGetDatum(GetCurrentTimestamp()),
															 timeout));
	}
	SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0);
	ec_wait_for_work(&w);
	SPI_finish();
	PG_RETURN_VOID();
}
