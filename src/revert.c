/*
 * revert.c
 *	  Revert after complete, once ec_complete kept a window (revert_complete.c): owns
 *	  expand_contract.revert_windows' reads, and runs ec_revert, ec_cleanup and the migration's
 *	  worker during the window (its prepare steps, then the cleanup at the window's end).
 *
 *	  See revert_complete.c's header for what a window keeps aside and why ec_revert's undo steps
 *	  followed by the rollback steps leave the schema exactly as before ec_start.  Everything runs in
 *	  the caller's transaction (or one worker transaction for the cleanup), and the window's state is
 *	  a table: a crash at any point leaves the window open or closed, never half.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "access/htup_details.h"
#include "common/int.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "operations.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(ec_revert);
PG_FUNCTION_INFO_V1(ec_cleanup);

typedef struct Window
{
	EcMigrationRow *m;
	TimestampTz ends_at;
	List	   *revert_steps;
	List	   *cleanup_steps;
	bool		prepared;		/* its prepare steps are done */
	char	   *last_error;		/* of the window's worker, or NULL */
} Window;

/*
 * The SQL condition "the migration whose id is id_expr is in its revert window", for the queries of
 * the other state tables that count windows too (the guard's, the launcher's): revert_windows is
 * this file's table.  Only for a catalog at 0.2.0 or later, which has it.
 */
char *
ec_revert_window_exists_sql(const char *id_expr)
{
	return psprintf("EXISTS (SELECT FROM " EC_STATE_SCHEMA ".revert_windows w WHERE w.migration_id = %s)",
					id_expr);
}

/* The window of migration id, ending at ends_at, with the steps that revert, clean up and prepare it. */
void
ec_open_revert_window(int64 id, TimestampTz ends_at, List *revert_steps, List *cleanup_steps,
					  List *prepare_steps)
{
	Oid			types[5] = {INT8OID, TIMESTAMPTZOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[5];

	values[0] = Int64GetDatum(id);
	values[1] = TimestampTzGetDatum(ends_at);
	values[2] = ec_list_to_text_array(revert_steps);
	values[3] = ec_list_to_text_array(cleanup_steps);
	values[4] = ec_list_to_text_array(prepare_steps);
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".revert_windows"
						" (migration_id, ends_at, revert_steps, cleanup_steps, prepare_steps)"
						" VALUES ($1, $2, $3, $4, $5)", 5, types, values, NULL, SPI_OK_INSERT);
}

/* The window's prepare steps not done yet (keep_primary_key_aside). */
static List *
window_prepare_steps(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;

	if (ec_state_spi("SELECT prepare_steps FROM " EC_STATE_SCHEMA ".revert_windows"
					 " WHERE migration_id = $1", 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return NIL;
	return ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull));
}

/* The open window of the schema's latest migration, or NULL. */
static Window *
open_window(const char *schema)
{
	EcMigrationRow *m;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	Window	   *w;
	bool		isnull;

	if (!ec_catalog_at_least("0.2.0"))
		return NULL;
	m = ec_latest_completed_migration(schema);
	if (m == NULL)
		return NULL;
	values[0] = Int64GetDatum(m->id);
	if (ec_state_spi("SELECT ends_at, revert_steps, cleanup_steps, last_error FROM " EC_STATE_SCHEMA
					 ".revert_windows WHERE migration_id = $1", 1, types, values, NULL,
					 SPI_OK_SELECT) == 0)
		return NULL;
	w = palloc0(sizeof(Window));
	w->m = m;
	w->ends_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												   &isnull));
	w->revert_steps = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 2, &isnull));
	w->cleanup_steps = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 3, &isnull));
	w->last_error = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	w->prepared = window_prepare_steps(m->id) == NIL;
	return w;
}

/* Is the schema's latest migration in its revert window? */
bool
ec_in_revert_window(const char *schema)
{
	return open_window(schema) != NULL;
}

/* ec_start: no new migration while the latest one may still be reverted. */
void
ec_check_no_window(const char *schema)
{
	Window	   *w = open_window(schema);

	if (w)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" of schema \"%s\" is in its revert window", w->m->name,
						schema),
				 w->ends_at <= GetCurrentTimestamp() ?
				 errdetail("Its window ended at %s; its cleanup has not run yet.",
						   timestamptz_to_str(w->ends_at)) :
				 errdetail("Its window ends at %s.", timestamptz_to_str(w->ends_at)),
				 errhint("End the window first with ec_cleanup(%s), or revert it with ec_revert(%s).",
						 quote_literal_cstr(schema), quote_literal_cstr(schema))));
}

static Window *
require_window(const char *schema, const char *function)
{
	Window	   *w;

	ec_require_catalog("0.2.0", function);
	ec_lock_schema(get_namespace_oid(schema, false));
	w = open_window(schema);
	if (w == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s\" has no migration in a revert window", schema),
				 errdetail("Its latest migration was completed without a window, or its window has ended."),
				 errhint("A migration can be reverted only when ec_complete() kept a window (revert_window) and until ec_cleanup() or the window's end.")));
	/* Its end has passed and its cleanup is due (the worker's, or ec_cleanup's): no revert now. */
	if (strcmp(function, "ec_revert") == 0 && w->ends_at <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the revert window of migration \"%s\" of schema \"%s\" has ended", w->m->name,
						schema),
				 errdetail("It ended at %s; its cleanup has not run yet.", timestamptz_to_str(w->ends_at)),
				 errhint("Call ec_cleanup(%s) to finish it now.", quote_literal_cstr(schema))));
	if (strcmp(function, "ec_revert") == 0 && !w->prepared)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the revert of migration \"%s\" of schema \"%s\" is not ready yet", w->m->name,
						schema),
				 w->last_error ?
				 errdetail("Its worker builds the index of the old primary key and adds the foreign keys to it again, which the revert puts back; its last attempt failed (%s), and it tries again every 10 seconds.",
						   w->last_error) :
				 errdetail("Its worker is still building the index of the old primary key and adding the foreign keys to it, which the revert puts back."),
				 errhint("Try again once it is done: until then ec_status()'s tasks say \"preparing ec_revert\".")));
	return w;
}


/*
 * The migration's tables and their partitions, the views of a version schema and what the steps
 * name, exclusively.
 */
static void
lock_for(EcMigrationRow *m, const char *version_schema, List *steps)
{
	List	   *relids = list_copy(m->relids);
	List	   *modes = NIL;
	Oid			nspid = version_schema ? get_namespace_oid(version_schema, true) : InvalidOid;
	ListCell   *lc;

	foreach(lc, relids)
		modes = lappend_int(modes, AccessExclusiveLock);
	relids = ec_lock_partitions_too(relids, &modes);
	if (OidIsValid(nspid))
	{
		foreach(lc, ec_schema_relations(nspid, true))
		{
			relids = lappend_oid(relids, lfirst_oid(lc));
			modes = lappend_int(modes, AccessExclusiveLock);
		}
	}
	ec_relations_named_by(steps, &relids, &modes);
	ec_lock_with_retry(relids, modes);
}


/* The version schema of the migration's parent, which the cleanup drops. */
static char *
parent_version_schema(const char *schema, const char *parent)
{
	if (parent == NULL)
		return NULL;
	return ec_migration_version_schema(schema, parent);
}

/* The window's end: what complete would have dropped, dropped now. */
static void
cleanup_window(Window *w, const char *schema)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(w->m->id)};
	int			nestlevel = ec_push_step_settings(schema);

	lock_for(w->m, parent_version_schema(schema, w->m->parent), w->cleanup_steps);
	ec_exec_contract_steps(w->m->started_by, schema, w->cleanup_steps, false);
	ec_delete_dual_writes(w->m->id);
	(void) ec_state_spi("DELETE FROM " EC_STATE_SCHEMA ".revert_windows WHERE migration_id = $1",
						1, types, values, NULL, SPI_OK_DELETE);
	ec_notify(schema, w->m->name, EC_EVENT_CLEANED_UP, NULL, NULL, NULL);
	ec_usage_retire_at_commit(w->m->id);
	ec_guc_pop(nestlevel);
}

Datum
ec_revert(PG_FUNCTION_ARGS)
{
	char	   *schema;
	Window	   *w;
	int			nestlevel;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schema must not be null")));
	schema = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PreventCommandDuringRecovery("ec_revert()");
	SPI_connect();
	w = require_window(schema, "ec_revert");
	ec_check_migration_privilege(w->m, "revert");
	/* Its worker waits for the window's end, or is running the cleanup: stop it first. */
	ec_stop_worker(w->m->id);

	nestlevel = ec_push_step_settings(schema);
	lock_for(w->m, w->m->version_schema, w->revert_steps);
	/* Back to the shape before ec_complete, then to the one before ec_start. */
	ec_exec_contract_steps(w->m->started_by, schema, w->revert_steps, false);
	ec_exec_contract_steps(w->m->started_by, schema, w->m->rollback_steps, true);
	/* With its dual_writes, tasks and window rows. */
	ec_delete_migration(w->m->id);
	ec_cancel_launch(w->m->id);
	ec_notify(schema, w->m->name, EC_EVENT_REVERTED, NULL, NULL, NULL);
	ec_usage_retire_at_commit(w->m->id);
	ec_guc_pop(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}

Datum
ec_cleanup(PG_FUNCTION_ARGS)
{
	char	   *schema;
	Window	   *w;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schema must not be null")));
	schema = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PreventCommandDuringRecovery("ec_cleanup()");
	SPI_connect();
	w = require_window(schema, "ec_cleanup");
	ec_check_migration_privilege(w->m, "clean up");
	ec_stop_worker(w->m->id);
	cleanup_window(w, schema);
	SPI_finish();
	PG_RETURN_VOID();
}

/* Is the index of that qualified name there and valid?  In a transaction of its own. */
static bool
valid_index(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		valid;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	valid = ec_spi("SELECT FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass($1)"
				   "   AND indisvalid", 1, types, values, NULL, SPI_OK_SELECT) > 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return valid;
}

/*
 * Sets (message NULL: clears) revert_windows.last_error of migration id, in the caller's
 * transaction; a new message is a task_failed event too (a failure repeated every 10 seconds is one).
 */
static void
set_window_error(int64 id, const char *message)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(id), message ? CStringGetTextDatum(message) : (Datum) 0};
	char		nulls[2] = {' ', message ? ' ' : 'n'};

	if (ec_state_spi("UPDATE " EC_STATE_SCHEMA ".revert_windows SET last_error = $2"
					 " WHERE migration_id = $1 AND last_error IS DISTINCT FROM $2",
					 2, types, values, nulls, SPI_OK_UPDATE) > 0 && message != NULL)
		ec_notify_migration(id, EC_EVENT_TASK_FAILED, NULL, "error", message);
}

/*
 * In the window's worker, after an error in `what` ("preparing", "the end of") the window of
 * migration id: the transaction aborted, the error logged and kept in revert_windows.last_error
 * (ec_status shows it), to be tried again in 10 seconds.
 */
static void
log_window_failure(MemoryContext cxt, int64 id, const char *what)
{
	ErrorData  *edata;
	char	   *message;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	ereport(LOG,
			(errmsg("expand_contract: %s the revert window of migration " INT64_FORMAT " failed: %s",
					what, id, edata->message),
			 errdetail("It is tried again in 10 seconds.")));
	message = psprintf("%s the revert window failed: %s", what, edata->message);
	FreeErrorData(edata);

	/* Shown by ec_status until the next attempt succeeds; if even this fails, the LOG says it all. */
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		set_window_error(id, message);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pfree(message);
}

/* Has the window of migration id ended (or gone)? */
static bool
window_ended(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	return ec_state_spi("SELECT FROM " EC_STATE_SCHEMA ".revert_windows WHERE migration_id = $1"
						"   AND ends_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()",
						1, types, values, NULL, SPI_OK_SELECT) == 0;
}

/*
 * In the migration's worker, at the window's start: runs the prepare steps, each a top-level
 * statement in its own transactions (CREATE INDEX CONCURRENTLY), and empties them once all ran.
 * They can all run again: a failure (a lock timeout, a crash) starts them over 10 seconds later,
 * until the window ends (its cleanup then drops what they built, and ec_revert is over anyway).
 */
static void
window_prepare(int64 id)
{
	for (;;)
	{
		List	   *steps;
		ListCell   *lc;
		MemoryContext cxt = CurrentMemoryContext;
		bool		done = false;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		steps = ec_catalog_at_least("0.2.0") && !window_ended(id) ? window_prepare_steps(id) : NIL;
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);
			List	   *copy = NIL;

			foreach(lc, steps)
				copy = lappend(copy, pstrdup(lfirst(lc)));
			steps = copy;
			MemoryContextSwitchTo(old);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		if (steps == NIL)
			return;
		pgstat_report_activity(STATE_RUNNING, "expand_contract: preparing a revert window");
		PG_TRY();
		{
			Oid			types[1] = {INT8OID};
			Datum		values[1] = {Int64GetDatum(id)};

			foreach(lc, steps)
			{
				if (strncmp(lfirst(lc), EC_DROP_INVALID_PREFIX, strlen(EC_DROP_INVALID_PREFIX)) == 0 &&
					valid_index((char *) lfirst(lc) + strlen(EC_DROP_INVALID_PREFIX)))
					continue;
				run_toplevel(lfirst(lc));
			}
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".revert_windows SET prepare_steps = '{}'"
								" WHERE migration_id = $1", 1, types, values, NULL, SPI_OK_UPDATE);
			set_window_error(id, NULL);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			done = true;
		}
		PG_CATCH();
		{
			log_window_failure(cxt, id, "preparing");
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (done)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * In the migration's worker: if the migration is in a revert window, waits for its end (the slot
 * stays taken meanwhile) and then runs the cleanup, retrying after a lock timeout.  Returns false
 * at once if the migration has no window.  ec_revert and ec_cleanup stop this worker before they
 * act, and ec_ensure_workers starts it again after a restart.
 */
bool
ec_window_worker(int64 id)
{
	window_prepare(id);
	for (;;)
	{
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(id)};
		bool		found = false;
		bool		due = false;
		long		wait_ms = 0;
		MemoryContext cxt = CurrentMemoryContext;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "expand_contract: waiting for a revert window's end");
		PG_TRY();
		{
			if (ec_catalog_at_least("0.2.0") &&
				ec_state_spi("SELECT m.schema_name::text,"
							 "       pg_catalog.ceil(extract(epoch FROM w.ends_at"
							 "             OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) * 1000)::bigint"
							 "  FROM " EC_STATE_SCHEMA ".revert_windows w"
							 "  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = w.migration_id"
							 " WHERE w.migration_id = $1", 1, types, values, NULL,
							 SPI_OK_SELECT) == 1)
			{
				bool		isnull;
				char	   *schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
				int64		left = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
															   SPI_tuptable->tupdesc, 2, &isnull));

				found = true;
				if (left <= 0)
				{
					Window	   *w;

					due = true;
					pgstat_report_activity(STATE_RUNNING, "expand_contract: ending a revert window");
					ec_lock_schema(get_namespace_oid(schema, false));
					w = open_window(schema);
					if (w && w->m->id == id)
						cleanup_window(w, schema);
				}
				else
					wait_ms = (long) Min(left, 10000);
			}
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			log_window_failure(cxt, id, "the end of");
			found = true;
			due = false;
			wait_ms = 10000;
		}
		PG_END_TRY();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (!found)
			return false;
		if (due)
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
