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
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

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

Datum
ec_start(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg(fcinfo, 0, "migration name");
	Jsonb	   *doc;
	char	   *schema = text_arg(fcinfo, 2, "schema");
	Oid			nspid;
	EcMigration *migration;
	char	   *version_schema;
	EcMigrationRow *active;
	EcMigrationRow *parent;
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

	PreventCommandDuringRecovery("ec_start()");
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

	SPI_connect();
	ec_lock_schema(nspid);

	active = ec_active_migration(schema);
	if (active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is already active on schema \"%s\"", active->name, schema),
				 errhint("Complete it with ec_complete(%s) or roll it back with ec_rollback(%s).",
						 quote_literal_cstr(schema), quote_literal_cstr(schema))));
	if (ec_migration_exists(schema, name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("migration \"%s\" of schema \"%s\" already exists", name, schema),
				 errdetail("It is complete; migration names are unique per schema.")));
	if (OidIsValid(get_namespace_oid(version_schema, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", version_schema),
				 errhint("Choose another migration name or \"version_schema\".")));

	parent = ec_latest_completed_migration(schema);
	if (parent && OidIsValid(get_namespace_oid(parent->version_schema, true)))
		old_schema = parent->version_schema;

	ec_check_operation_owners(nspid, migration->operations);
	snprintf(timeout, sizeof(timeout), "%d", ec_lock_timeout_ms);
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

	ec_setup_dual_writes(&cxt, version_schema, old_schema, parent ? parent->name : NULL);
	ec_create_version_schema(cxt.model, version_schema);
	cxt.rollback_steps = lappend(cxt.rollback_steps,
								 psprintf("DROP SCHEMA %s CASCADE", quote_identifier(version_schema)));
	ec_finish_plan(&cxt, &validate_steps, &complete_steps, &locked);
	ec_save_plan(cxt.migration_id, validate_steps, complete_steps, cxt.rollback_steps, locked);
	if (cxt.ntasks > 0)
		ec_launch_after_commit(cxt.migration_id);
	ec_notify(schema, name, EC_EVENT_STARTED, NULL, NULL, NULL);

	ec_guc_pop(nestlevel);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(version_schema));
}

/* Did this transaction (or a subtransaction of it) start, resume or reconfigure the migration? */
static bool
changed_in_this_transaction(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;

	if (ec_state_spi("SELECT xmin FROM " EC_STATE_SCHEMA ".migrations WHERE id = $1",
					 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	return TransactionIdIsCurrentTransactionId(
		DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&isnull)));
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
	return ec_spi("SELECT FROM pg_catalog.pg_locks w"
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

/*
 * Waits until the migration's worker has done all its work, holding no lock but AccessShare on the
 * extension's own tables (not even the schema's migration lock, so ec_pause and ec_configure work
 * meanwhile).  Errors rather than waiting for something that will not happen: work failed,
 * paused, invisible to the worker, or a worker that keeps dying.
 */
static void
wait_for_worker(int64 id, const char *name, const char *schema)
{
	int64		last_progress = -1;
	int			fruitless_launches = 0;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ec_complete cannot wait for the backfill in a REPEATABLE READ or "
						"SERIALIZABLE transaction"),
				 errdetail("Its snapshot would never show the work finishing."),
				 errhint("Call it in a READ COMMITTED transaction, or with wait => false once "
						 "ec_status() shows the backfill done.")));

	for (int tick = 0;; tick++)
	{
		char	   *failure;
		int64		progress;
		int			unfinished = ec_task_summary(id, &failure, &progress);
		EcMigrationRow *now;

		if (failure != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("backfill of migration \"%s\" failed", name),
					 errdetail("%s", failure),
					 errhint("Fix the cause, then call ec_resume(%s) and ec_complete(%s) again; or "
							 "call ec_rollback(%s).", quote_literal_cstr(schema),
							 quote_literal_cstr(schema), quote_literal_cstr(schema))));
		if (unfinished == 0)
			return;
		if (tick == 0 && changed_in_this_transaction(id))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ec_complete cannot wait for work that this transaction started or changed"),
					 errdetail("The background worker cannot see it before this transaction commits."),
					 errhint("Commit first, then call ec_complete(%s).", quote_literal_cstr(schema))));
		now = ec_active_migration(schema);
		if (now == NULL || now->id != id)
			return;				/* rolled back meanwhile: the caller finds out */
		if (now->paused)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("backfill of migration \"%s\" is paused", name),
					 errhint("Resume it with ec_resume(%s).", quote_literal_cstr(schema))));

		if (progress != last_progress)
		{
			last_progress = progress;
			fruitless_launches = 0;
		}
		if (worker_waits_for_us(id))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ec_complete cannot wait for migration \"%s\" in this transaction", name),
					 errdetail("Its background worker is building an index concurrently, which waits "
							   "for this transaction to end."),
					 errhint("Run CALL ec_wait(%s) outside a transaction block, then ec_complete(%s).",
							 quote_literal_cstr(schema), quote_literal_cstr(schema))));
		if (tick % 10 == 0 && ec_ensure_worker(id, true) && ++fruitless_launches > 5)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the background worker of migration \"%s\" keeps exiting without progress",
							name),
					 errhint("See the server log; the worker connects as the role that called "
							 "ec_start (its session user).")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Settings for running complete or rollback steps, until ec_guc_pop of the returned level: lock
 * waits bounded, the schema as search_path (for "sql" operations), and no NOTICE for each view that
 * DROP SCHEMA ... CASCADE drops: that is our business, not the caller's.
 */
static int
push_step_settings(const char *schema)
{
	char		timeout[32];
	int			nestlevel;

	snprintf(timeout, sizeof(timeout), "%d", ec_lock_timeout_ms);
	nestlevel = ec_guc_push("lock_timeout", timeout);
	(void) ec_guc_push("search_path", quote_identifier(schema));
	(void) ec_guc_push("client_min_messages", "warning");
	return nestlevel;
}

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

/* Complete's or rollback's steps, which may create, attach or detach partitions (partitions.c). */
static void
exec_contract_steps(Oid roleid, const char *schema, List *steps, bool reverse)
{
	ec_partition_ddl_allowed = true;
	PG_TRY();
	{
		ec_exec_steps_as(roleid, quote_identifier(schema), steps, reverse);
	}
	PG_FINALLY();
	{
		ec_partition_ddl_allowed = false;
	}
	PG_END_TRY();
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

Datum
ec_complete(PG_FUNCTION_ARGS)
{
	char	   *schema = text_arg(fcinfo, 0, "schema");
	bool		wait = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
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
	if (wait)
	{
		/* Wait first, without the schema's migration lock, so the worker can still be steered. */
		m = ec_active_migration(schema);
		if (m != NULL)
		{
			ec_check_migration_privilege(m, "complete");
			wait_for_worker(m->id, m->name, schema);
		}
	}
	m = require_active(schema, nspid);
	ec_check_migration_privilege(m, "complete");
	{
		char	   *failure;
		int			unfinished = ec_task_summary(m->id, &failure, NULL);

		if (unfinished > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("backfill of migration \"%s\" has not finished", m->name),
					 errdetail("%d task(s) of its background worker are unfinished.", unfinished),
					 errhint("Call ec_complete(%s) without wait => false to wait for them, or "
							 "wait until ec_status() shows the backfill done.",
							 quote_literal_cstr(schema))));
	}
	/* Its work is done; keep a late or lingering worker from running a step while we contract. */
	ec_stop_worker(m->id);

	nestlevel = push_step_settings(schema);

	parent = ec_latest_completed_migration(schema);
	relids = list_copy(m->relids);
	modes = exclusive_modes(relids);
	/* Their steps' DDL on a partitioned table takes each partition's lock too: up front here. */
	relids = ec_lock_partitions_too(relids, &modes);
	version_schema_views(parent ? parent->version_schema : NULL, &relids, &modes);
	ec_lock_with_retry(relids, modes);
	skipped = ec_skip_compaction(m->id);

	/* The worker validated already; this is a no-op unless something invalidated them since. */
	steps = list_copy(m->validate_steps);
	if (parent && OidIsValid(get_namespace_oid(parent->version_schema, true)))
		steps = lappend(steps, psprintf("DROP SCHEMA %s CASCADE",
										quote_identifier(parent->version_schema)));
	steps = list_concat(steps, m->complete_steps);
	exec_contract_steps(m->started_by, schema, steps, false);
	/* Views for what the steps created ("onComplete" sql), owned like the others. */
	cv.nspid = nspid;
	cv.version_schema = m->version_schema;
	ec_run_as(OidIsValid(m->started_by) ? m->started_by : GetUserId(), quote_identifier(schema),
			  complete_version_schema, &cv);
	ec_finish_migration(m->id);
	ec_notify(schema, m->name, EC_EVENT_COMPLETED, NULL, NULL, NULL);

	ec_guc_pop(nestlevel);
	if (skipped > 0)
		ereport(NOTICE,
				(errmsg("%llu index rebuild(s) of the migration's compaction skipped",
						(unsigned long long) skipped),
				 errdetail("ec_complete ran before the background worker rebuilt them."),
				 errhint("Run CALL ec_wait() before ec_complete() to let them finish, or REINDEX INDEX "
						 "CONCURRENTLY them yourself.")));
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
	m = require_active(schema, nspid);
	ec_check_migration_privilege(m, "roll back");
	/* Its batches hold row locks on the tables and on its tasks; stop it before touching either. */
	ec_stop_worker(m->id);

	nestlevel = push_step_settings(schema);

	relids = list_copy(m->relids);
	modes = exclusive_modes(relids);
	relids = ec_lock_partitions_too(relids, &modes);
	version_schema_views(m->version_schema, &relids, &modes);
	ec_lock_with_retry(relids, modes);

	exec_contract_steps(m->started_by, schema, m->rollback_steps, true);
	ec_delete_migration(m->id);
	ec_notify(schema, m->name, EC_EVENT_ROLLED_BACK, NULL, NULL, NULL);

	ec_guc_pop(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}
