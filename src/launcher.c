/*
 * launcher.c
 *	  Starting, finding and stopping migration workers.
 *
 * A worker is launched when the transaction that queued its work commits (a worker started earlier
 * could not see the new columns; a rolled-back start must launch nothing).  A running worker holds a
 * session advisory lock on its migration, which is how any backend tells whether it is alive and how
 * a second worker started by a race knows to leave.  Work left unfinished by a crash or restart is
 * picked up again by the next ec_* call, or, with the library in shared_preload_libraries, by the
 * static launcher, which at server start (and after every crash restart) probes each database.
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "utils/guc.h"

#include "expand_contract.h"


typedef struct PendingLaunch
{
	EcWorkerArgs args;
	char	   *description;	/* migration "v2" of schema "public", for messages */
	SubTransactionId subxid;	/* queued in this subtransaction: dropped if it aborts */
	SubTransactionId cancelled; /* its migration rolled back in this subtransaction (or none) */
} PendingLaunch;

static List *pending_launches = NIL;	/* in TopMemoryContext */
static bool xact_callback_registered = false;

void
ec_worker_lock_tag(LOCKTAG *tag, Oid dboid, int64 migration_id)
{
	SET_LOCKTAG_ADVISORY(*tag, dboid, (uint32) (migration_id >> 32), (uint32) migration_id,
						 EC_WORKER_LOCK_FIELD4);
}

void
ec_helper_lock_tag(LOCKTAG *tag, Oid dboid, int64 migration_id)
{
	SET_LOCKTAG_ADVISORY(*tag, dboid, (uint32) (migration_id >> 32), (uint32) migration_id,
						 EC_HELPER_LOCK_FIELD4);
}

bool
ec_worker_alive(int64 migration_id)
{
	LOCKTAG		tag;

	ec_worker_lock_tag(&tag, MyDatabaseId, migration_id);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ExclusiveLock, true);
	return false;
}

static bool
launch_worker(EcWorkerArgs args, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	Oid			dboid = args.dboid;
	int64		migration_id = args.migration_id;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "expand_contract");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ec_worker_main");
	if (migration_id == 0)
		snprintf(worker.bgw_name, BGW_MAXLEN, "expand_contract probe of database %u", dboid);
	else
		snprintf(worker.bgw_name, BGW_MAXLEN, "expand_contract backfill %sof migration " INT64_FORMAT,
				 args.helper ? "helper " : "", migration_id);
	snprintf(worker.bgw_type, BGW_MAXLEN, migration_id == 0 ? "expand_contract probe" :
			 args.helper ? "expand_contract backfill helper" : "expand_contract backfill");
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

static bool
launch(EcWorkerArgs args)
{
	BackgroundWorkerHandle *handle;

	return launch_worker(args, &handle);
}

/*
 * From a migration's worker: one more worker to fill its backfill's parts.  False: no slot free.
 * A helper takes a moment to start and to take its lock: the worker's next round counts it one
 * second later (see share_backfill).
 */
bool
ec_launch_helper(const EcWorkerArgs *args)
{
	EcWorkerArgs helper = *args;

	helper.helper = true;
	return launch(helper);
}

static void
no_slot(int elevel, const char *description)
{
	ereport(elevel,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("could not start the background worker of %s", description),
			 errdetail("All background worker slots are in use; the work stays queued."),
			 errhint("Raise max_worker_processes (a restart is needed), or wait for other workers "
					 "to finish; the work starts at the next ec_status(), ec_resume() or "
					 "ec_complete() call.")));
}

static void
launch_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		foreach(lc, pending_launches)
		{
			PendingLaunch *p = lfirst(lc);

			if (p->cancelled != InvalidSubTransactionId)
				continue;
			/* Past the commit record nothing may fail: a full slot table only warns. */
			if (!launch(p->args))
				no_slot(WARNING, p->description);
		}
	}
	foreach(lc, pending_launches)
		pfree(((PendingLaunch *) lfirst(lc))->description);
	list_free_deep(pending_launches);	/* frees the PendingLaunch structs too */
	pending_launches = NIL;
}

/*
 * A launch queued in a subtransaction that aborts (an EXCEPTION block around ec_start, a savepoint
 * rolled back) must not happen; one queued in a subtransaction that commits belongs to its parent.
 */
static void
launch_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_launches)
		{
			PendingLaunch *p = lfirst(lc);

			if (p->subxid >= mySubid)
			{
				pfree(p->description);
				pending_launches = foreach_delete_current(pending_launches, lc);
				pfree(p);
			}
			else if (p->cancelled >= mySubid)
				p->cancelled = InvalidSubTransactionId; /* the rollback is undone */
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_launches)
		{
			PendingLaunch *p = lfirst(lc);

			if (p->subxid == mySubid)
				p->subxid = parentSubid;
			if (p->cancelled == mySubid)
				p->cancelled = parentSubid;
		}
	}
}

/*
 * Launches the migration's worker once the current transaction commits; never if it aborts.
 * SPI must be connected: the migration's row says who the worker runs as.
 */
void
ec_launch_after_commit(int64 migration_id)
{
	Oid			login_roleid;
	Oid			roleid;
	char	   *description = ec_migration_description(migration_id, &login_roleid, &roleid);
	MemoryContext old;
	PendingLaunch *p;

	if (description == NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	p = palloc0(sizeof(PendingLaunch));
	p->args.dboid = MyDatabaseId;
	p->args.login_roleid = login_roleid;
	p->args.roleid = roleid;
	p->args.migration_id = migration_id;
	p->description = pstrdup(description);
	p->subxid = GetCurrentSubTransactionId();
	p->cancelled = InvalidSubTransactionId;
	pending_launches = lappend(pending_launches, p);
	MemoryContextSwitchTo(old);
	if (!xact_callback_registered)
	{
		RegisterXactCallback(launch_xact_callback, NULL);
		RegisterSubXactCallback(launch_subxact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * The migration was rolled back in the transaction that started it: its queued launch does not
 * happen at commit, unless a subtransaction abort undoes the rollback.
 */
void
ec_cancel_launch(int64 migration_id)
{
	ListCell   *lc;

	foreach(lc, pending_launches)
	{
		PendingLaunch *p = lfirst(lc);

		if (p->args.migration_id == migration_id && p->cancelled == InvalidSubTransactionId)
			p->cancelled = GetCurrentSubTransactionId();
	}
}

/*
 * Starts the migration's worker now if it has none (its work must be committed already).
 * Returns whether it launched one.
 */
bool
ec_ensure_worker(int64 migration_id, bool error_if_no_slot)
{
	EcWorkerArgs args = {0};
	char	   *description;

	/* A standby cannot run the work; after promotion, the next call starts it. */
	if (RecoveryInProgress() || ec_worker_alive(migration_id))
		return false;
	description = ec_migration_description(migration_id, &args.login_roleid, &args.roleid);
	if (description == NULL)
		return false;
	args.dboid = MyDatabaseId;
	args.migration_id = migration_id;
	if (!launch(args))
	{
		no_slot(error_if_no_slot ? ERROR : WARNING, description);
		return false;
	}
	return true;
}

/* Active migrations of this database with unfinished work and no worker: start one each. */
static void
ensure_all(void)
{
	List	   *ids;
	ListCell   *lc;

	/* A restored migration's backfill must start again before any worker works on it. */
	ec_adopt_restored(0);
	ids = ec_migrations_wanting_workers();
	foreach(lc, ids)
		ec_ensure_worker(*(int64 *) lfirst(lc), false);
}

PG_FUNCTION_INFO_V1(ec_ensure_workers);

Datum
ec_ensure_workers(PG_FUNCTION_ARGS)
{
	SPI_connect();
	ensure_all();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Stops the migration's worker, if any, and then holds its lock until the end of the transaction,
 * so that no worker (one registered but not started yet, say) can run a step meanwhile.
 */
/*
 * Takes tag exclusively without waiting in the lock queue, signalling its holders (found in
 * pg_locks by field4) to exit meanwhile.
 */
static void
stop_holders(LOCKTAG *tag, int64 migration_id, int field4)
{
	Oid			types[4] = {OIDOID, OIDOID, OIDOID, INT4OID};
	Datum		values[4];

	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = ObjectIdGetDatum((Oid) (uint32) (migration_id >> 32));
	values[2] = ObjectIdGetDatum((Oid) (uint32) migration_id);
	values[3] = Int32GetDatum(field4);
	for (int attempt = 0; attempt < 200; attempt++)
	{
		uint64		n;

		if (LockAcquire(tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return;
		/*
		 * Signalled directly rather than with pg_terminate_backend(): the caller's right to stop
		 * it is the right to steer its migration, checked already, not a right over the role the
		 * worker logged in as.
		 */
		n = ec_catalog_spi("SELECT pid FROM pg_catalog.pg_locks"
				   " WHERE locktype = 'advisory' AND database = $1 AND classid = $2"
				   "   AND objid = $3 AND objsubid = $4 AND granted",
				   4, types, values, NULL, SPI_OK_SELECT);

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			int			pid = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 1, &isnull));

			if (!isnull && pid != MyProcPid && BackendPidGetProc(pid) != NULL)
				(void) kill(pid, SIGTERM);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("could not stop the background worker of migration " INT64_FORMAT, migration_id),
			 errhint("Check pg_stat_activity for the \"expand_contract backfill\" processes.")));
}

/*
 * Stops the migration's worker and its helpers, if any, and then holds their locks until the end of
 * the transaction, so that no worker (one registered but not started yet, say) can run a step
 * meanwhile.
 */
void
ec_stop_worker(int64 migration_id)
{
	LOCKTAG		tag;

	ec_worker_lock_tag(&tag, MyDatabaseId, migration_id);
	stop_holders(&tag, migration_id, EC_WORKER_LOCK_FIELD4);
	ec_helper_lock_tag(&tag, MyDatabaseId, migration_id);
	stop_holders(&tag, migration_id, EC_HELPER_LOCK_FIELD4);
}

/* In a probe worker, connected to one database as the bootstrap superuser. */
void
ec_probe_database(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* Whatever the database's or role's search_path: only pg_catalog's objects. */
	SetConfigOption("search_path", "pg_catalog", PGC_USERSET, PGC_S_OVERRIDE);
	pgstat_report_activity(STATE_RUNNING, "expand_contract: looking for unfinished migrations");
	if (SPI_execute("SELECT FROM pg_catalog.pg_extension WHERE extname = 'expand_contract'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		ensure_all();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
ec_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "expand_contract");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ec_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "expand_contract launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "expand_contract launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * The static launcher: once per server start (and crash restart), a probe worker per database
 * that accepts connections; then it idles, so that the postmaster starts it again after a crash.
 */
void
ec_launcher_main(Datum main_arg)
{
	List	   *databases = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	ListCell   *lc;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			databases = lappend_oid(databases, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	foreach(lc, databases)
	{
		EcWorkerArgs probe = {lfirst_oid(lc), InvalidOid, InvalidOid, 0, false};

		if (!launch(probe))
			ereport(LOG,
					(errmsg("expand_contract launcher could not start a probe of database %u",
							lfirst_oid(lc)),
					 errhint("Raise max_worker_processes.")));
	}

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
