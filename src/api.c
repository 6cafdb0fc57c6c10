/*
 * api.c
 *	  SQL entry points: ec_start, ec_complete, ec_rollback.
 *
 * Each runs in the caller's transaction, so an error anywhere undoes all of it.  Each first takes
 * the schema's migration lock (only other migration calls wait on it), then the table locks it
 * needs with a short timeout and retries, then runs its DDL.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "expand_contract.h"

PG_FUNCTION_INFO_V1(ec_start);
PG_FUNCTION_INFO_V1(ec_complete);
PG_FUNCTION_INFO_V1(ec_rollback);

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* The schema to migrate: must exist and be an ordinary schema. */
static Oid
target_schema(const char *schema)
{
	Oid			nspid = get_namespace_oid(schema, false);

	if (IsCatalogNamespace(nspid) || IsToastNamespace(nspid) || isAnyTempNamespace(nspid) ||
		strcmp(schema, EC_STATE_SCHEMA) == 0 || strcmp(schema, "information_schema") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_SCHEMA_NAME),
				 errmsg("cannot migrate schema \"%s\"", schema),
				 errdetail("System schemas and expand_contract's own schema are not migrated.")));
	return nspid;
}

typedef struct OperationContext
{
	const char *migration;
	EcOperation *op;
} OperationContext;

static void
operation_error_context(void *arg)
{
	OperationContext *oc = arg;

	if (oc->op)
		errcontext("operation %d (%s) of migration \"%s\"", oc->op->position, oc->op->kind_name,
				   oc->migration);
}

/* The views of a version schema: dropping the schema needs them locked. */
static List *
version_schema_views(const char *version_schema, List **relids, List **modes)
{
	Oid			nspid = version_schema ? get_namespace_oid(version_schema, true) : InvalidOid;
	ListCell   *lc;

	if (!OidIsValid(nspid))
		return *relids;
	foreach(lc, ec_schema_relations(nspid, true))
	{
		*relids = lappend_oid(*relids, lfirst_oid(lc));
		*modes = lappend_int(*modes, AccessExclusiveLock);
	}
	return *relids;
}

static List *
exclusive_modes(List *relids)
{
	List	   *modes = NIL;

	for (int i = 0; i < list_length(relids); i++)
		modes = lappend_int(modes, AccessExclusiveLock);
	return modes;
}

/*
 * Re-runs.  A migration file is typically "SELECT ec_start(...); SELECT ec_complete();".  Run a
 * second time, its ec_start does nothing (the same document) and its ec_complete must not complete
 * whatever else is active on the schema by then: the session remembers the migration that its
 * last ec_start met again, and the next ec_complete or ec_rollback of that schema in the session
 * acts only on that migration.  Any other ec_start of the session forgets it.
 */
static char *rerun_schema = NULL;
static char *rerun_name = NULL;

static void
forget_rerun(void)
{
	if (rerun_schema)
		pfree(rerun_schema);
	if (rerun_name)
		pfree(rerun_name);
	rerun_schema = rerun_name = NULL;
}

static void
remember_rerun(const char *schema, const char *name)
{
	forget_rerun();
	rerun_schema = MemoryContextStrdup(TopMemoryContext, schema);
	rerun_name = MemoryContextStrdup(TopMemoryContext, name);
}

/*
 * Before ec_complete or ec_rollback: is there anything to do?  Not when the schema has no active
 * migration, nor when this session's last ec_start on it met a migration again that is not the
 * active one: then a NOTICE says so and the caller returns.  A schema that never had a migration
 * is an error (a wrong schema name, which a tool must hear about).
 */
static bool
nothing_to_do(const char *schema, const char *what)
{
	EcMigrationRow *active = ec_active_migration(schema);
	char	   *rerun = NULL;
	EcMigrationRow *latest;

	if (rerun_schema && strcmp(rerun_schema, schema) == 0)
	{
		rerun = pstrdup(rerun_name);
		forget_rerun();
	}
	if (active && (rerun == NULL || strcmp(active->name, rerun) == 0))
		return false;
	if (active)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" of schema \"%s\" is not the active migration, nothing to %s",
						rerun, schema, what),
				 errdetail("This session's last ec_start found it already there; migration \"%s\", "
						   "active on the schema, is left alone.", active->name),
				 errhint("Call ec_%s(%s) again to %s \"%s\".",
						 strcmp(what, "complete") == 0 ? "complete" : "rollback",
						 quote_literal_cstr(schema), what, active->name)));
		return true;
	}
	latest = ec_latest_completed_migration(schema);
	if (latest == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s\" has no active migration", schema),
				 errhint("Start one with ec_start().")));
	if (ec_in_revert_window(schema))
		ereport(NOTICE,
				(errmsg("schema \"%s\" has no active migration, nothing to %s", schema, what),
				 errdetail("Its latest migration, \"%s\", is complete and in its revert window.",
						   latest->name),
				 errhint("ec_revert(%s) undoes it; ec_cleanup(%s) ends the window.",
						 quote_literal_cstr(schema), quote_literal_cstr(schema))));
	else
		ereport(NOTICE,
				(errmsg("schema \"%s\" has no active migration, nothing to %s", schema, what),
				 errdetail("Its latest migration, \"%s\", is complete.", latest->name)));
	return true;
}

/*
 * ec_start's work, and ec_plan's rehearsal of it (planning: ec_plan runs it inside a subtransaction
 * that it rolls back, with ec_exec and the locks recording what they do, dryrun.c): the same code, so
 * ec_plan raises every error that ec_start would.  Returns the version schema.
 */
char *
ec_start_internal(FunctionCallInfo fcinfo, bool planning)
{
	char	   *name = text_arg(fcinfo, 0, "migration name");
	Jsonb	   *doc;
	char	   *schema = text_arg(fcinfo, 2, "schema");
	Oid			nspid;
	EcMigration *migration;
	char	   *version_schema;
	MemoryContext caller_cxt;
	EcMigrationRow *active;
	EcMigrationRow *parent;
	EcMigrationRerun *rerun;
	const char *old_schema = NULL;
	EcStartContext cxt;
	OperationContext oc;
	ErrorContextCallback callback;
	List	   *relids;
	List	   *modes = NIL;
	List	   *validate_steps = NIL;
	List	   *complete_steps = NIL;
	List	   *locked = NIL;
	ListCell   *lc;
	char		timeout[32];
	int			nestlevel;
	TransactionId trigger_xid;
	EcXidList	in_progress;
	List	   *published;

	PreventCommandDuringRecovery(planning ? "ec_plan()" : "ec_start()");
	if (!planning)
		forget_rerun();
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration must not be null")));
	doc = PG_GETARG_JSONB_P(1);
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration name must not be empty")));
	nspid = target_schema(schema);
	migration = ec_read_migration(doc);

	version_schema = psprintf("%s_%s", schema,
							  migration->version_schema ? migration->version_schema : name);
	if (strlen(version_schema) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("version schema name \"%s\" is too long", version_schema),
				 errdetail("Names are limited to %d bytes.", NAMEDATALEN - 1),
				 errhint("Set a shorter \"version_schema\" in the migration.")));

	caller_cxt = CurrentMemoryContext;
	SPI_connect();
	ec_lock_schema(nspid);

	rerun = ec_migration_rerun(schema, name, doc);
	if (rerun && rerun->same)
	{
		/* A migration file run again: the same call has been made before. */
		ereport(NOTICE,
				(errmsg("migration \"%s\" of schema \"%s\" is already %s, nothing to do", name,
						schema, rerun->done ? "complete" : "active"),
				 errdetail("ec_start was called again with the document it started with.")));
		if (!planning)
			remember_rerun(schema, name);
		/* Read in SPI's memory, which SPI_finish frees. */
		version_schema = MemoryContextStrdup(caller_cxt, rerun->version_schema);
		SPI_finish();
		return version_schema;
	}
	if (rerun)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("migration \"%s\" of schema \"%s\" already exists with another document",
						name, schema),
				 errdetail("%s", rerun->difference),
				 rerun->done ?
				 errhint("It is complete; migration names are unique per schema.") :
				 errhint("It is active: roll it back with ec_rollback(%s) to start it with this "
						 "document, or give this migration a name of its own.",
						 quote_literal_cstr(schema))));
	active = ec_active_migration(schema);
	if (active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is already active on schema \"%s\"", active->name, schema),
				 errhint("Complete it with ec_complete(%s) or roll it back with ec_rollback(%s).",
						 quote_literal_cstr(schema), quote_literal_cstr(schema))));
	ec_check_no_window(schema);
	if (OidIsValid(get_namespace_oid(version_schema, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", version_schema),
				 errhint("Choose another migration name or \"version_schema\".")));

	parent = ec_latest_completed_migration(schema);
	if (parent && OidIsValid(get_namespace_oid(parent->version_schema, true)))
		old_schema = parent->version_schema;

	ec_check_operation_owners(nspid, migration->operations);
	/* ec_plan's rehearsal never queues for a lock: see ec_lock_with_retry. */
	snprintf(timeout, sizeof(timeout), "%d", planning ? 1 : ec_lock_timeout_ms);
	nestlevel = ec_guc_push("lock_timeout", timeout);
	/*
	 * Names in the migration (types, functions in expressions, "sql") mean what they mean in the
	 * schema being migrated, pg_catalog first, whatever the caller's search_path.
	 */
	(void) ec_guc_push("search_path", quote_identifier(schema));
	relids = ec_relations_to_lock(nspid, migration->operations, &modes);
	ec_lock_with_retry(relids, modes);

	trigger_xid = ec_write_horizon(&in_progress);

	memset(&cxt, 0, sizeof(cxt));
	cxt.migration_name = name;
	cxt.version_schema = version_schema;
	cxt.migration_id = ec_insert_migration(schema, name, parent ? parent->name : NULL,
										   version_schema, doc, trigger_xid, &in_progress);
	cxt.model = ec_model_load(nspid);
	cxt.old_version_nspid = old_schema ? get_namespace_oid(old_schema, false) : InvalidOid;
	published = ec_publications_snapshot(nspid);

	oc.migration = name;
	oc.op = NULL;
	callback.callback = operation_error_context;
	callback.arg = &oc;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	foreach(lc, migration->operations)
	{
		oc.op = lfirst(lc);
		ec_model_begin_operation(cxt.model);
		ec_apply_operation(&cxt, oc.op);
	}
	error_context_stack = callback.previous;
	ec_publications_apply(&cxt, published);

	ec_setup_dual_writes(&cxt, version_schema, old_schema, parent ? parent->name : NULL);
	ec_create_version_schema(cxt.model, version_schema);
	cxt.rollback_steps = lappend(cxt.rollback_steps,
								 psprintf("DROP SCHEMA %s CASCADE", quote_identifier(version_schema)));
	ec_finish_plan(&cxt, &validate_steps, &complete_steps, &locked);
	ec_save_plan(cxt.migration_id, validate_steps, complete_steps, cxt.rollback_steps, locked);
	if (planning)
		ec_plan_capture(cxt.migration_id, schema);
	else if (cxt.ntasks > 0)
		ec_launch_after_commit(cxt.migration_id);
	ec_notify(schema, name, EC_EVENT_STARTED, NULL, NULL, NULL);

	ec_guc_pop(nestlevel);
	SPI_finish();
	return version_schema;
}

Datum
ec_start(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(ec_start_internal(fcinfo, false)));
}

/*
 * Settings for running complete or rollback steps, until ec_guc_pop of the returned level: lock
 * waits bounded, the schema as search_path (for "sql" operations), and no NOTICE for each view that
 * DROP SCHEMA ... CASCADE drops: that is our business, not the caller's.
 */

static EcMigrationRow *
require_active(const char *schema, Oid nspid)
{
	EcMigrationRow *m;

	ec_lock_schema(nspid);
	m = ec_active_migration(schema);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s\" has no active migration", schema),
				 errhint("Start one with ec_start().")));
	return m;
}


typedef struct CompleteViews
{
	Oid			nspid;
	const char *version_schema;
} CompleteViews;

static void
complete_version_schema(void *arg)
{
	CompleteViews *cv = arg;

	ec_complete_version_schema(cv->nspid, cv->version_schema);
}

/*
 * ec_complete's argument require_quiet: after wait and (from the revert-window work) revert_window.
 * Absent on a 0.1.0 catalog, and NULL: the setting expand_contract.require_quiet.
 */
#define COMPLETE_ARG_REQUIRE_QUIET 3

/* expand_contract.quiet_period as it was set ("5min"). */
static const char *
quiet_period_text(void)
{
	return GetConfigOptionByName("expand_contract.quiet_period", NULL, false);
}

/*
 * Has the old version of migration m been quiet for expand_contract.quiet_period?  Warns if it
 * wrote within it, or if that cannot be told; refuses instead with require_quiet, so that a
 * pipeline can gate the contract on it.
 */
static void
check_old_version_quiet(EcMigrationRow *m, const char *schema, bool require_quiet, bool window)
{
	TimestampTz last;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz since;
	int64		recent;
	EcUsageState state;
	int			elevel = require_quiet ? ERROR : WARNING;
	EcMigrationRow *parent;
	const char *old_version;

	if (ec_quiet_period_ms == 0)
		return;
	parent = ec_latest_completed_migration(schema);
	old_version = parent ? parent->version_schema : schema;
	state = ec_usage_read(m->id, m->started_at, 0, &last, &recent);
	if (state != EC_USAGE_TRACKED)
	{
		/* Without counting there is nothing to warn about, but a required check cannot pass. */
		if (!require_quiet)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot tell whether the old version of migration \"%s\" is quiet", m->name),
				 errdetail("Writes are %s.", state == EC_USAGE_NOT_PRELOADED ?
						   "counted only when expand_contract is in shared_preload_libraries" :
						   "not counted for this migration: every slot of expand_contract.usage_slots was taken"),
				 errhint("Add expand_contract to shared_preload_libraries (or raise expand_contract.usage_slots) "
						 "and restart the server, or call ec_complete without require_quiet.")));
	}
	if (last != 0 && now - last < (int64) ec_quiet_period_ms * 1000)
		ereport(elevel,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("the old version of migration \"%s\" wrote %.1f s ago", m->name,
						(double) (now - last) / USECS_PER_SEC),
				 errdetail("%lld row(s) were written through the old version (\"%s\") in the last %d "
						   "minutes; expand_contract.quiet_period is %s.",
						   (long long) recent, old_version, EC_USAGE_MINUTES - 1,
						   quiet_period_text()),
				 require_quiet ?
				 errhint("Move the code that still uses \"%s\" to \"%s\" (ec_status() shows the writes "
						 "per version), then call ec_complete(%s) again once the old version has "
						 "been quiet for the quiet period.", old_version, m->version_schema,
						 quote_literal_cstr(schema)) :
				 window ?
				 errhint("Its revert window keeps the old version working until ec_cleanup() or the "
						 "window's end, which drop its columns and tables.") :
				 errhint("Its columns and tables are dropped now; code still using it will fail.")));
	/* Counting began at the server's start: a restart within the quiet period hides writes. */
	since = ec_usage_counting_since();
	if (last == 0 && m->started_at < since && now - since < (int64) ec_quiet_period_ms * 1000)
		ereport(elevel,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot tell whether the old version of migration \"%s\" is quiet", m->name),
				 errdetail("Writes are counted only since the server started, %.0f s ago, after the "
						   "migration: less than expand_contract.quiet_period (%s).",
						   (double) (now - since) / USECS_PER_SEC, quiet_period_text()),
				 errhint("Call ec_complete(%s) again once the quiet period has passed since the start.",
						 quote_literal_cstr(schema))));
}

Datum
ec_complete(PG_FUNCTION_ARGS)
{
	char	   *schema = text_arg(fcinfo, 0, "schema");
	bool		wait = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	/* Read only when the 0.2.0 signature passes it. */
	int64		window = ec_revert_window_arg(fcinfo, 2);
	bool		require_quiet = PG_NARGS() > COMPLETE_ARG_REQUIRE_QUIET &&
		!PG_ARGISNULL(COMPLETE_ARG_REQUIRE_QUIET) ?
		PG_GETARG_BOOL(COMPLETE_ARG_REQUIRE_QUIET) : ec_require_quiet;
	Oid			nspid = target_schema(schema);
	EcMigrationRow *m;
	EcMigrationRow *parent;
	List	   *relids;
	List	   *modes;
	List	   *steps;
	CompleteViews cv;
	int			nestlevel;
	uint64		skipped;

	PreventCommandDuringRecovery("ec_complete()");
	SPI_connect();
	if (nothing_to_do(schema, "complete"))
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (wait)
	{
		/* Wait first, without the schema's migration lock, so the worker can still be steered. */
		m = ec_active_migration(schema);
		if (m != NULL)
		{
			EcWaitFor	w = {0};

			ec_check_migration_privilege(m, "complete");
			w.schema = schema;
			w.migration_id = m->id;
			ec_wait_for_work(&w);
		}
	}
	m = require_active(schema, nspid);
	ec_check_migration_privilege(m, "complete");
	{
		char	   *failure;
		int			unfinished = ec_task_summary(m->id, false, &failure, NULL);

		if (unfinished > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("backfill of migration \"%s\" has not finished", m->name),
					 errdetail("%d task(s) of its background worker are unfinished.", unfinished),
					 errhint("Call ec_complete(%s) without wait => false to wait for them, or "
							 "wait until ec_status() shows the backfill done.",
							 quote_literal_cstr(schema))));
	}
	check_old_version_quiet(m, schema, require_quiet, window > 0);
	/* Its work is done; keep a late or lingering worker from running a step while we contract. */
	ec_stop_worker(m->id);

	nestlevel = ec_push_step_settings(schema);

	parent = ec_latest_completed_migration(schema);
	relids = list_copy(m->relids);
	modes = exclusive_modes(relids);
	/* Their steps' DDL on a partitioned table takes each partition's lock too: up front here. */
	relids = ec_lock_partitions_too(relids, &modes);
	version_schema_views(parent ? parent->version_schema : NULL, &relids, &modes);
	ec_relations_named_by(m->complete_steps, &relids, &modes);
	ec_lock_with_retry(relids, modes);
	skipped = ec_skip_compaction(m->id);

	/* The worker validated already; this is a no-op unless something invalidated them since. */
	steps = list_copy(m->validate_steps);
	if (parent && OidIsValid(get_namespace_oid(parent->version_schema, true)))
		steps = lappend(steps, psprintf("DROP SCHEMA %s CASCADE",
										quote_identifier(parent->version_schema)));
	steps = list_concat(steps, m->complete_steps);
	if (window > 0)
	{
		/* The old structure kept aside until the window ends (revert.c); no partitions there. */
		ec_complete_with_window(m, schema, steps, window);
	}
	else
	{
		ec_exec_contract_steps(m->started_by, schema, steps, false);
		/* Views for what the steps created ("onComplete" sql), owned like the others. */
		cv.nspid = nspid;
		cv.version_schema = m->version_schema;
		ec_run_as(OidIsValid(m->started_by) ? m->started_by : GetUserId(), quote_identifier(schema),
				  complete_version_schema, &cv);
		ec_finish_migration(m->id);
		ec_usage_retire_at_commit(m->id);
	}
	ec_notify(schema, m->name, EC_EVENT_COMPLETED, NULL, NULL, NULL);

	ec_guc_pop(nestlevel);
	if (skipped > 0)
		ereport(NOTICE,
				(errmsg("%llu compaction task(s) of the migration skipped",
						(unsigned long long) skipped),
				 errdetail("ec_complete ran before the background worker had vacuumed the tables and "
						   "rebuilt their indexes."),
				 errhint("Run CALL ec_wait() before ec_complete() to let them finish, or VACUUM the "
						 "tables and REINDEX INDEX CONCURRENTLY their indexes yourself.")));
	SPI_finish();
	PG_RETURN_VOID();
}

Datum
ec_rollback(PG_FUNCTION_ARGS)
{
	char	   *schema = text_arg(fcinfo, 0, "schema");
	Oid			nspid = target_schema(schema);
	EcMigrationRow *m;
	List	   *relids;
	List	   *modes;
	int			nestlevel;

	PreventCommandDuringRecovery("ec_rollback()");
	SPI_connect();
	if (nothing_to_do(schema, "roll back"))
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	m = require_active(schema, nspid);
	ec_check_migration_privilege(m, "roll back");
	/* Its batches hold row locks on the tables and on its tasks; stop it before touching either. */
	ec_stop_worker(m->id);

	nestlevel = ec_push_step_settings(schema);

	relids = list_copy(m->relids);
	modes = exclusive_modes(relids);
	relids = ec_lock_partitions_too(relids, &modes);
	version_schema_views(m->version_schema, &relids, &modes);
	ec_lock_with_retry(relids, modes);

	ec_exec_contract_steps(m->started_by, schema, m->rollback_steps, true);
	ec_delete_migration(m->id);
	ec_cancel_launch(m->id);
	ec_usage_retire_at_commit(m->id);
	ec_notify(schema, m->name, EC_EVENT_ROLLED_BACK, NULL, NULL, NULL);

	ec_guc_pop(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}
