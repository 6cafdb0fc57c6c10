/*
 * worker.c
 *	  The migration's background worker: its asynchronous executor.
 *
 * One dynamic background worker per migration, connected to the migration's database as the role
 * that started it.  It works through expand_contract.tasks in seq order, one step per transaction:
 *
 *	  backfill	fills the new columns of the rows that predate the dual-write trigger (xmin below
 *				migrations.trigger_xid), one range of heap blocks per batch, bounded by the table's
 *				size at the first batch: rows written later went through the trigger, so the scan
 *				ends even under constant inserts and never rewrites what the trigger wrote.  Every
 *				column of the table is filled in the same pass.
 *	  sql		a statement that must not run in the caller's transaction (VALIDATE CONSTRAINT) or in
 *				any transaction block (CREATE INDEX CONCURRENTLY), run as a top-level statement.  Its
 *				cleanup, if it has one, undoes what a failed attempt left (the INVALID index of a
 *				failed CREATE INDEX CONCURRENTLY, which every write would otherwise keep up to
 *				date): the worker runs it after the task failed, before it records the failure, and
 *				before it tries a task again that it tried before (after a crash, a stop, a retried
 *				deadlock or ec_resume()).  These statements wait for locks and for older
 *				transactions without lock_timeout (see run_toplevel), except ADD CONSTRAINT,
 *				which blocks writers while it waits (see adds_constraint).
 *
 * Progress is committed with each batch, so a crash, a restart or a kill loses at most the batch in
 * flight.  Pause, batch size, delay and replication-lag limit are read before every batch; a paused
 * worker exits, freeing its slot, and ec_resume() launches another.  A batch
 * that fails on data (an "up" that raises) marks the task failed, with the error and the key of the
 * offending row, and stops the worker; ec_resume() retries it.  Lock timeouts, deadlocks and
 * cancels only retry the batch: row locks are held for one batch at most.
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
#include "parser/parser.h"
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
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "access/table.h"

#include "worker.h"

int			ec_batch_size = 50000;
int			ec_batch_delay_ms = 0;
int			ec_max_replication_lag_ms = 0;
int			ec_batch_time_ms = 50;
double		ec_nice_ratio = 0.5;
int			ec_max_load = -1;
int			ec_max_parallel_workers = 1;
int			ec_max_parallel_workers_total = 8;

EcWorkerState ec_worker;



/*
 * Keeps what pg_stat_activity shows the worker doing, unless that is its own bookkeeping
 * ("expand_contract: recording progress", a wait): a batch, a VACUUM, a CREATE INDEX.
 */
static void
remember_work(void)
{
	const char *own = "expand_contract: ";

	if (MyBEEntry == NULL || MyBEEntry->st_activity_raw[0] == '\0' ||
		strncmp(MyBEEntry->st_activity_raw, own, strlen(own)) == 0)
		return;
	if (ec_worker.last_work)
		pfree(ec_worker.last_work);
	ec_worker.last_work = MemoryContextStrdup(TopMemoryContext,
											  pgstat_clip_activity(MyBEEntry->st_activity_raw));
}

static void
begin_step(const char *activity)
{
	remember_work();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_step(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The compaction's pruning after a batch (compact.c), in a transaction of its own.  It only saves
 * space: an error in it (a damaged page, a cancel) is logged and the pages left to the VACUUM after
 * the backfill, rather than failing the backfill, whose batch committed already.
 */
static void
prune_step(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	begin_step("expand_contract: pruning the filled blocks");
	PG_TRY();
	{
		ec_compact_prune();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ec_worker.prune_pending = 0;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not prune the blocks the backfill filled: %s", edata->message),
				 errdetail("The VACUUM after the backfill frees their space instead.")));
		FreeErrorData(edata);
		return;
	}
	PG_END_TRY();
	end_step();
}

/* A per-migration override (ec_configure) of a setting, or NULL. */
static JsonbValue *
override(Jsonb *settings, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&settings->root, JB_FOBJECT, &k);
}

static int
setting(Jsonb *settings, const char *key, int server_value)
{
	JsonbValue *v = override(settings, key);

	if (v == NULL || v->type != jbvNumeric)
		return server_value;
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v->val.numeric)));
}

static double
setting_real(Jsonb *settings, const char *key, double server_value)
{
	JsonbValue *v = override(settings, key);

	if (v == NULL || v->type != jbvNumeric)
		return server_value;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
}

static bool
setting_bool(Jsonb *settings, const char *key, bool server_value)
{
	JsonbValue *v = override(settings, key);

	if (v == NULL || v->type != jbvBool)
		return server_value;
	return v->val.boolean;
}

/* The migration's settings; false if it is gone or complete (nothing left to do). */
static bool
read_migration(int64 id, Settings *s)
{
	Jsonb	   *settings;

	if (!ec_worker_migration(id, &s->paused, &settings, &s->trigger_xid))
		return false;
	s->batch_size = Max(1, setting(settings, "batch_size", ec_batch_size));
	s->batch_delay_ms = Max(0, setting(settings, "batch_delay_ms", ec_batch_delay_ms));
	s->max_lag_ms = Max(0, setting(settings, "max_replication_lag_ms", ec_max_replication_lag_ms));
	s->batch_time_ms = Max(0, setting(settings, "batch_time_ms", ec_batch_time_ms));
	s->nice_ratio = Max(0.0, setting_real(settings, "nice_ratio", ec_nice_ratio));
	s->max_load = setting(settings, "max_load", ec_max_load);
	if (s->max_load < 0)
		s->max_load = Max(1, (int) sysconf(_SC_NPROCESSORS_ONLN));
	s->max_parallel = Max(1, setting(settings, "max_parallel_workers", ec_max_parallel_workers));
	s->compact = setting_bool(settings, "compact", ec_compact);
	s->worker_nice = Max(0, setting(settings, "worker_nice", ec_worker_nice));
	return true;
}

/*
 * Claims on backfill parts: a session lock per (migration, seq, part), held by the worker filling
 * it while it does, and dropped with the process if it dies.  Several workers fill the parts of the
 * backfills at the head of the queue at once (the tables of a migration are independent, and so
 * are the block ranges of one); everything else waits until they are all done.
 */

static void
release_claim(void)
{
	if (ec_worker.claim_held)
		LockRelease(&ec_worker.claim_tag, ExclusiveLock, true);
	ec_worker.claim_held = false;
}

static bool
claim(int64 id, int seq, int part)
{
	LOCKTAG		tag;

	if (ec_worker.claim_held && ec_worker.claim_seq == seq && ec_worker.claim_part == part)
		return true;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) id, ((uint32) seq << 10) | (uint32) part,
						 EC_CLAIM_LOCK_FIELD4);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	release_claim();
	ec_worker.claim_tag = tag;
	ec_worker.claim_seq = seq;
	ec_worker.claim_part = part;
	ec_worker.claim_held = true;
	return true;
}

static Task *
task_from_row(HeapTuple row, TupleDesc desc)
{
	Task	   *task = palloc0(sizeof(Task));
	bool		isnull;
	Datum		d;

	task->seq = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	task->kind = SPI_getvalue(row, desc, 2);
	d = SPI_getbinval(row, desc, 3, &isnull);
	task->relid = isnull ? InvalidOid : DatumGetObjectId(d);
	task->sql = SPI_getvalue(row, desc, 4);
	task->next_block = DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull));
	d = SPI_getbinval(row, desc, 6, &isnull);
	task->total_blocks = isnull ? -1 : DatumGetInt64(d);
	task->state = SPI_getvalue(row, desc, 7);
	task->rows_done = DatumGetInt64(SPI_getbinval(row, desc, 8, &isnull));
	task->cleanup = SPI_getvalue(row, desc, 9);
	task->attempted = DatumGetBool(SPI_getbinval(row, desc, 10, &isnull));
	task->part = DatumGetInt32(SPI_getbinval(row, desc, 11, &isnull));
	task->first_block = DatumGetInt64(SPI_getbinval(row, desc, 12, &isnull));
	return task;
}

/*
 * The task this worker does next, claimed if it is a backfill part: the one it holds, else the
 * first free part of the backfills at the head of the queue, else (not for a helper) the first
 * unfinished task if it is not a backfill.  A failed part among those comes back as it is: the
 * caller stops.  NULL if there is nothing to do; then *busy says whether other workers are still
 * filling parts at the head of the queue.  *free_parts counts the parts nobody fills yet.
 */
static Task *
next_task(int64 id, bool *busy, int *free_parts)
{
	Task	   *found = NULL;
	uint64		n;
	uint64		head;
	SPITupleTable *rows;

	*busy = false;
	*free_parts = 0;
	n = ec_unfinished_tasks(id);
	rows = SPI_tuptable;
	if (n == 0)
	{
		release_claim();
		return NULL;
	}
	for (head = 0; head < n; head++)
	{
		Task	   *task = task_from_row(rows->vals[head], rows->tupdesc);

		if (strcmp(task->kind, "backfill") != 0)
			break;
		if (strcmp(task->state, "failed") == 0)
			return task;
	}
	if (head == 0)
	{
		/* An "sql" task: the migration's own worker runs it, once no backfill before it is left. */
		release_claim();
		return ec_worker.am_helper ? NULL : task_from_row(rows->vals[0], rows->tupdesc);
	}
	for (uint64 i = 0; i < head; i++)
	{
		Task	   *task = task_from_row(rows->vals[i], rows->tupdesc);

		if (ec_worker.claim_held && ec_worker.claim_seq == task->seq && ec_worker.claim_part == task->part)
			found = task;
	}
	for (uint64 i = 0; i < head; i++)
	{
		Task	   *task = task_from_row(rows->vals[i], rows->tupdesc);
		bool		mine = ec_worker.claim_held && ec_worker.claim_seq == task->seq && ec_worker.claim_part == task->part;

		if (mine)
			continue;
		if (found == NULL && claim(id, task->seq, task->part))
			found = task;
		else if (!mine)
		{
			LOCKTAG		tag;

			/* Free unless another worker holds it. */
			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) id,
								 ((uint32) task->seq << 10) | (uint32) task->part,
								 EC_CLAIM_LOCK_FIELD4);
			if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
			{
				LockRelease(&tag, ExclusiveLock, true);
				(*free_parts)++;
			}
		}
	}
	if (found == NULL)
	{
		release_claim();
		*busy = true;
	}
	return found;
}


/* Replication lag of the slowest standby in ms, or 0 (none, or not visible to this role). */
static int64
replication_lag_ms(void)
{
	bool		isnull;
	Datum		d;

	(void) ec_spi("SELECT (max(extract(epoch FROM replay_lag)) * 1000)::bigint"
			 "  FROM pg_catalog.pg_stat_replication", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Helpers: the migration's worker starts up to max_parallel_workers - 1 of them while backfill
 * parts nobody fills are left, at most one round a second.  A helper claims parts like the
 * worker does and leaves when none is free; it needs one of the server's
 * expand_contract.max_parallel_workers_total slots (a session lock each) and a background worker
 * slot, and runs without either if there is none: the note in ec_status says so.
 */
static int
count_advisory(Oid dboid, uint32 field2, uint32 field3, uint16 field4, bool match_fields)
{
	Oid			types[4] = {OIDOID, OIDOID, OIDOID, INT4OID};
	Datum		values[4] = {ObjectIdGetDatum(dboid), ObjectIdGetDatum(field2),
	ObjectIdGetDatum(field3), Int32GetDatum(field4)};
	bool		isnull;

	(void) ec_spi(match_fields ?
				  "SELECT count(*)::int4 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
				  " AND database = $1 AND classid = $2 AND objid = $3 AND objsubid = $4 AND granted" :
				  "SELECT count(*)::int4 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
				  " AND database = $1 AND objsubid = $4 AND granted AND $2 = $2 AND $3 = $3",
				  4, types, values, NULL, SPI_OK_SELECT);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
share_backfill(int64 id, Settings *s, int free_parts)
{
	static TimestampTz last_round = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			helpers;
	int			wanted;
	int			slots_used;
	const char *shortfall = NULL;

	if (s->max_parallel <= 1)
	{
		ec_worker.parallel_note = NULL;
		return;
	}
	if (!TimestampDifferenceExceeds(last_round, now, 1000))
		return;
	last_round = now;
	helpers = count_advisory(MyDatabaseId, (uint32) (id >> 32), (uint32) id, EC_HELPER_LOCK_FIELD4,
							 true);
	wanted = Min(s->max_parallel - 1, helpers + free_parts);
	slots_used = count_advisory(InvalidOid, 0, 0, EC_HELPER_SLOT_FIELD4, false);
	for (int i = helpers; i < wanted; i++)
	{
		if (slots_used >= ec_max_parallel_workers_total)
		{
			shortfall = psprintf("expand_contract.max_parallel_workers_total (%d) reached",
								 ec_max_parallel_workers_total);
			break;
		}
		if (!ec_launch_helper(&ec_worker.args))
		{
			shortfall = "no background worker slot free (max_worker_processes)";
			break;
		}
		slots_used++;
		helpers++;
	}
	if (ec_worker.parallel_note)
		pfree(ec_worker.parallel_note);
	ec_worker.parallel_note = MemoryContextStrdup(TopMemoryContext,
										psprintf("%d of %d workers%s%s", helpers + 1, s->max_parallel,
												 shortfall ? ": " : "", shortfall ? shortfall : ""));
}

/* A helper's slot among the server's expand_contract.max_parallel_workers_total. */
static bool
take_helper_slot(void)
{
	for (int i = 0; i < ec_max_parallel_workers_total; i++)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_ADVISORY(tag, InvalidOid, (uint32) i, 0, EC_HELPER_SLOT_FIELD4);
		if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
	}
	return false;
}

/* A finished "sql" task that built an index (CREATE INDEX CONCURRENTLY): an event (events.c). */
static void
index_built_event(int64 id, const char *sql)
{
	ListCell   *lc;

	foreach(lc, raw_parser(sql, RAW_PARSE_DEFAULT))
	{
		IndexStmt  *stmt = (IndexStmt *) ((RawStmt *) lfirst(lc))->stmt;

		if (IsA(stmt, IndexStmt) && stmt->idxname != NULL)
			ec_notify_migration(id, EC_EVENT_INDEX_BUILT, stmt->relation->relname, "index",
								stmt->idxname);
	}
}

static StepResult
do_step(int64 id, long *wait_ms)
{
	MemoryContext step_cxt = CurrentMemoryContext;	/* reset before the next step */
	Settings	s;
	Task	   *task;
	int64		lag;
	bool		busy;
	int			free_parts;

	begin_step("expand_contract: next step");
	if (!read_migration(id, &s))
	{
		end_step();
		return STEP_FINISHED;
	}
	ec_set_worker_nice(s.worker_nice);
	task = next_task(id, &busy, &free_parts);
	if (task == NULL)
	{
		end_step();
		/* Others still fill parts of the backfills before the next task: wait for them. */
		if (busy && !ec_worker.am_helper)
		{
			*wait_ms = 100;
			return STEP_NEXT;
		}
		return STEP_FINISHED;
	}
	if (strcmp(task->state, "failed") == 0)
	{
		end_step();
		return STEP_FINISHED;
	}
	if (s.paused)
	{
		/* Free the worker slot while paused: ec_resume() launches a worker again. */
		if (strcmp(task->state, "paused") != 0)
			ec_set_task_state(id, task->seq, task->part, "paused", "paused; ec_resume() continues");
		end_step();
		return STEP_FINISHED;
	}
	if (s.max_lag_ms > 0 && (lag = replication_lag_ms()) > s.max_lag_ms)
	{
		ec_set_task_state(id, task->seq, task->part, "throttled",
					   psprintf("replication lag: %lld ms, above max_replication_lag_ms %d ms",
								(long long) lag, s.max_lag_ms));
		end_step();
		*wait_ms = 1000;
		return STEP_NEXT;
	}
	if (s.max_load > 0 && strcmp(task->kind, "sql") != 0)
	{
		EcLoad		load;

		ec_read_load(GetCurrentTimestamp(), &load);
		if (load.active > s.max_load)
		{
			ec_set_task_state(id, task->seq, task->part, "throttled",
						   psprintf("load: %d client sessions running queries, above max_load %d",
									load.active, s.max_load));
			end_step();
			*wait_ms = 200;
			return STEP_NEXT;
		}
	}

	if (strcmp(task->kind, "backfill") == 0)
	{
		StepResult	result;

		if (!ec_worker.am_helper)
			share_backfill(id, &s, free_parts);
		result = backfill_batch(id, task, &s, wait_ms);
		end_step();
		if (ec_worker.release_after_commit)
		{
			release_claim();
			ec_worker.release_after_commit = false;
		}
		/* After the commit: the batches' old versions are dead for the next snapshots only. */
		if (ec_worker.prune_pending > 0)
			prune_step();
		return result;
	}

	/*
	 * An "sql" task: mark it running, run it top-level, mark it done.  One taken up before may have
	 * left something behind (a crash or a stop during a CREATE INDEX CONCURRENTLY leaves its
	 * INVALID index, and a second CREATE would fail on the name): its cleanup runs first.
	 */
	{
		int			seq = task->seq;
		bool		compaction = strcmp(task->kind, "compact") == 0;
		char	   *sql = MemoryContextStrdup(step_cxt, task->sql);	/* SPI's is gone soon */
		TimestampTz started;
		char	   *cleanup = task->cleanup && task->attempted ?
			MemoryContextStrdup(step_cxt, compaction ? ec_compact_cleanup(task->cleanup) :
								task->cleanup) : NULL;

		ec_worker.batch_seq = seq;
		if (compaction && !s.compact)
		{
			ec_set_task_state(id, seq, 0, "done", "skipped: expand_contract.compact is off");
			end_step();
			return STEP_NEXT;
		}
		ec_set_task_state(id, seq, 0, "running", NULL);
		end_step();
		if (cleanup && cleanup[0] != '\0')
		{
			pgstat_report_activity(STATE_RUNNING, cleanup);
			run_toplevel(cleanup);
		}
		pgstat_report_activity(STATE_RUNNING, sql);
		started = GetCurrentTimestamp();
		run_toplevel(sql);
		begin_step("expand_contract: recording progress");
		ec_set_task_state(id, seq, 0, "done", NULL);
		if (compaction)
			*wait_ms = ec_nice_sleep_after(started, s.nice_ratio);
		else
			index_built_event(id, sql);
		end_step();
		pfree(sql);
	}
	return STEP_NEXT;
}

bool
ec_worker_transient(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/*
 * The statement and the cleanup (NULL: none) of the failed task seq when it is an "sql" task, in the
 * caller's memory context; false if it is not one.
 */
static bool
failed_sql_task(int64 id, int seq, char **sql, char **cleanup)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *s;
	bool		compaction;

	if (!ec_task_statement(id, seq, sql, &s, &compaction))
		return false;
	*sql = MemoryContextStrdup(cxt, *sql ? *sql : "");
	if (s && compaction)
		s = ec_compact_cleanup(s);
	*cleanup = s && s[0] != '\0' ? MemoryContextStrdup(cxt, s) : NULL;
	return true;
}

/* A task failed: an event (events.c), with its table when it has one and the error. */
static void
failed_event(int64 id, int seq, const char *message)
{
	Oid			relid = ec_task_relid(id, seq);
	char	   *table = OidIsValid(relid) ? get_rel_name(relid) : NULL;

	ec_notify_migration(id, EC_EVENT_TASK_FAILED, table, "error", message);
}

/*
 * After a failed step: retry later if it was contention, else mark the task failed and stop.  A
 * failed "sql" task's cleanup runs first, so that once ec_status() and ec_wait() report the
 * failure, nothing of the attempt is left.  Its error is recorded with its detail (for a unique
 * index: which key is duplicated) and the statement, since an error such as "division by zero"
 * in an index predicate does not say which of the migration's tasks it comes from.
 */
static StepResult
record_failure(int64 id, ErrorData *edata, long *wait_ms)
{
	char	   *row = NULL;
	char	   *message = edata->message;
	MemoryContext cxt = GetMemoryChunkContext(edata);	/* the step's, reset before the next */

	begin_step("expand_contract: recording a failure");
	if (ec_worker_transient(edata->sqlerrcode))
	{
		if (ec_worker.batch_seq > 0)
			ec_set_task_state(id, ec_worker.batch_seq, ec_worker.batch_part, "running",
						   psprintf("retrying after: %s", edata->message));
		end_step();
		*wait_ms = 1000;
		return STEP_NEXT;
	}
	if (ec_worker.batch_seq > 0 && ec_worker.batch_migration == id && ec_backfill_has_statement())
		row = failing_row();
	else if (ec_worker.batch_seq > 0)
	{
		char	   *sql;
		char	   *cleanup = NULL;

		MemoryContextSwitchTo(cxt);
		if (failed_sql_task(id, ec_worker.batch_seq, &sql, &cleanup))
		{
			/* Not in SPI's context, where its query left us: that one goes with end_step(). */
			MemoryContextSwitchTo(cxt);
			message = psprintf("%s%s%s (in: %s)", edata->message, edata->detail ? ": " : "",
							   edata->detail ? edata->detail : "", sql);
		}
		if (cleanup)
		{
			char	   *error;

			ec_set_task_state(id, ec_worker.batch_seq, ec_worker.batch_part, "running", psprintf("cleaning up after: %s", message));
			end_step();
			MemoryContextSwitchTo(cxt);
			error = run_cleanup(cleanup);
			if (error)
				message = psprintf("%s (and its cleanup failed: %s; ec_resume() tries it again, "
								   "ec_rollback() undoes it)", message, error);
			begin_step("expand_contract: recording a failure");
		}
	}
	if (ec_worker.batch_seq > 0)
	{
		ec_record_task_failure(id, ec_worker.batch_seq, ec_worker.batch_part, message, row);
		failed_event(id, ec_worker.batch_seq, message);
	}
	end_step();
	return STEP_FINISHED;
}

/* Takes on the migration's role, as SET ROLE would, when it is not the role we logged in as. */
static void
act_as(Oid login_roleid, Oid roleid)
{
	if (!OidIsValid(roleid) || roleid == login_roleid)
		return;
	/* Catalog lookups need a transaction. */
	StartTransactionCommand();
	if (!superuser_arg(login_roleid) && !is_member_of_role(login_roleid, roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" is no longer a member of role \"%s\"",
						GetUserNameFromId(login_roleid, false), GetUserNameFromId(roleid, false))));
	SetCurrentRoleId(roleid, superuser_arg(roleid));
	CommitTransactionCommand();
}

/*
 * pg_stat_activity says that the worker waits, and after what: "expand_contract: waiting 50 ms
 * (throttle) after: expand_contract backfill of orders: blocks 0 to 640 of 8334".
 */
static void
report_wait(long wait_ms)
{
	char	   *activity;

	remember_work();
	activity = psprintf("expand_contract: waiting %ld ms (throttle)%s%s", wait_ms,
						ec_worker.last_work ? " after: " : "",
						ec_worker.last_work ? ec_worker.last_work : "");
	pgstat_report_activity(STATE_IDLE, activity);
	/* Between steps, outside any context that is reset: one string per wait would pile up. */
	pfree(activity);
}

void
ec_worker_main(Datum main_arg)
{
	EcWorkerArgs args;
	LOCKTAG		tag;
	MemoryContext step_cxt;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, args.login_roleid, 0);

	if (args.migration_id == 0)
	{
		/* A probe from the launcher: start the workers this database needs, then go. */
		ec_probe_database();
		proc_exit(0);
	}

	ec_worker.args = args;
	/* Every statement a worker runs is one of its migration's tasks: the DDL guard lets them pass. */
	ec_own_ddl_depth = 1;
	if (args.helper)
	{
		/* Shared among helpers; ec_stop_worker() takes it exclusively to stop them. */
		ec_helper_lock_tag(&tag, args.dboid, args.migration_id);
		if (LockAcquire(&tag, ShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL || !take_helper_slot())
			proc_exit(0);
		ec_worker.am_helper = true;
	}
	else
	{
		/* One worker per migration: a second one started by a race leaves at once. */
		ec_worker_lock_tag(&tag, args.dboid, args.migration_id);
		if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			proc_exit(0);
	}

	act_as(args.login_roleid, args.roleid);
	ec_backfill_install_hook();
	/*
	 * The table's ordinary triggers fire for the batch rows as for any UPDATE.  The worker does not
	 * set session_replication_role = replica to skip them: that would also skip the foreign-key
	 * checks and triggers of whatever the migration's expressions write, which its role could not
	 * do by itself.
	 *
	 * A batch and its progress commit together, so a commit lost in a crash only means that batch
	 * is done again: no need to wait for each one's WAL flush.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_OVERRIDE);
	/* Everything the worker runs is schema-qualified; nothing a role put on its path may intervene. */
	SetConfigOption("search_path", "pg_catalog", PGC_USERSET, PGC_S_OVERRIDE);
	/* Never make the application wait on our row locks for long: a blocked batch retries. */
	SetConfigOption("lock_timeout", BATCH_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("application_name", "expand_contract backfill", PGC_USERSET, PGC_S_SESSION);

	step_cxt = AllocSetContextCreate(TopMemoryContext, "expand_contract worker step",
									 ALLOCSET_DEFAULT_SIZES);

	/* A migration restored from another database needs a new horizon before any batch. */
	if (!ec_worker.am_helper)
	{
		begin_step("expand_contract: checking for a restored migration");
		ec_adopt_restored(args.migration_id);
		end_step();
		/* A completed migration in its revert window: wait for the window's end, contract. */
		if (ec_window_worker(args.migration_id))
			proc_exit(0);
	}
	for (;;)
	{
		long		wait_ms = 0;
		StepResult	result;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		/* Without a delay the loop never sleeps on the latch, which would notice this. */
		if (!PostmasterIsAlive())
			proc_exit(1);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(step_cxt);
		old = MemoryContextSwitchTo(step_cxt);
		/* A failed "sql" task may have left the statements' setting (see run_toplevel). */
		SetConfigOption("lock_timeout", BATCH_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);
		ec_worker.batch_seq = 0;
		ec_worker.batch_part = 0;
		ec_backfill_batch_done();
		ec_worker.batch_migration = 0;	/* set by a backfill batch: only those are diagnosed row by row */
		PG_TRY();
		{
			result = do_step(args.migration_id, &wait_ms);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(step_cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			if (!ec_worker_transient(edata->sqlerrcode))
				ereport(LOG,
						(errmsg("expand_contract backfill of migration " INT64_FORMAT " failed: %s",
								args.migration_id, edata->message)));
			result = record_failure(args.migration_id, edata, &wait_ms);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);

		if (result == STEP_FINISHED)
			break;
		if (wait_ms > 0)
		{
			report_wait(wait_ms);
			ec_sleep_ms(wait_ms);
		}
	}
	proc_exit(0);
}
