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

int			ec_batch_size = 5000;
int			ec_batch_delay_ms = 0;
int			ec_max_replication_lag_ms = 0;
int			ec_batch_time_ms = 50;
double		ec_nice_ratio = 0.5;
int			ec_max_load = -1;
int			ec_max_parallel_workers = 1;
int			ec_max_parallel_workers_total = 8;

static EcWorkerArgs my_args;	/* what this worker was started with, for its helpers */
static char *parallel_note = NULL;	/* how many workers fill the backfill, for ec_status */
static char *vacuum_due = NULL;	/* a VACUUM of the table to run once the batch committed */

typedef enum StepResult
{
	STEP_NEXT,					/* go on (after the delay, if any) */
	STEP_FINISHED				/* nothing left, or stopped: exit */
} StepResult;

typedef struct Task
{
	int			seq;
	int			part;			/* of a backfill split into block ranges; else 0 */
	int64		first_block;
	char	   *kind;
	Oid			relid;
	char	   *sql;
	char	   *cleanup;		/* NULL: none */
	bool		attempted;		/* the worker took it up before */
	int64		next_block;
	int64		total_blocks;	/* -1: not started */
	int64		rows_done;
	char	   *state;
} Task;

typedef struct Settings
{
	int			batch_size;
	int			batch_delay_ms;
	int			max_lag_ms;
	int			batch_time_ms;
	double		nice_ratio;
	int			max_load;		/* resolved: 0 = no load gate */
	int			max_parallel;	/* workers for this migration's backfills, this one included */
	bool		compact;		/* vacuum the filled blocks as the backfill goes, reindex after */
	bool		paused;
	TransactionId trigger_xid;
} Settings;

/* The batch in flight, for diagnosing a failure after its transaction aborted. */
static int64 batch_migration = 0;
static int	batch_seq = 0;
static int	batch_part = 0;
static Oid	batch_relid = InvalidOid;
static int64 batch_first_block = 0;
static int64 batch_end_block = 0;
static char *batch_sql = NULL;	/* the batch statement, kept for the table's next batches */
static SPIPlanPtr batch_plan = NULL;	/* and its plan: parsed and planned once per table */
static char *batch_unfilled = NULL; /* its condition for the rows to fill */
static int64 statement_migration = 0;
static Oid	statement_relid = InvalidOid;
static TransactionId batch_trigger_xid = InvalidTransactionId;

static void
begin_step(const char *activity)
{
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
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;
	Jsonb	   *settings;

	(void) ec_state_spi("SELECT paused, settings, trigger_xid FROM " EC_STATE_SCHEMA ".migrations"
						" WHERE id = $1 AND NOT done", 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	s->paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	settings = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	s->trigger_xid = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 3, &isnull));
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
	return true;
}

/*
 * Claims on backfill parts: a session lock per (migration, seq, part), held by the worker filling
 * it while it does, and dropped with the process if it dies.  Several workers fill the parts of the
 * backfills at the head of the queue at once (the tables of a migration are independent, and so
 * are the block ranges of one); everything else waits until they are all done.
 */
static bool claim_held = false;
static LOCKTAG claim_tag;
static int	claim_seq;
static int	claim_part;
static bool am_helper = false;	/* a helper fills backfill parts only, then leaves */
static bool release_after_commit = false;	/* the claimed part is done */

static void
release_claim(void)
{
	if (claim_held)
		LockRelease(&claim_tag, ExclusiveLock, true);
	claim_held = false;
}

static bool
claim(int64 id, int seq, int part)
{
	LOCKTAG		tag;

	if (claim_held && claim_seq == seq && claim_part == part)
		return true;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) id, ((uint32) seq << 10) | (uint32) part,
						 EC_CLAIM_LOCK_FIELD4);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	release_claim();
	claim_tag = tag;
	claim_seq = seq;
	claim_part = part;
	claim_held = true;
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
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	Task	   *found = NULL;
	uint64		n;
	uint64		head;
	SPITupleTable *rows;

	*busy = false;
	*free_parts = 0;
	n = ec_state_spi("SELECT seq, kind, relid, sql, next_block, total_blocks, state, rows_done,"
					 "       cleanup, started_at IS NOT NULL, part, first_block"
					 "  FROM " EC_STATE_SCHEMA ".tasks WHERE migration_id = $1 AND state <> 'done'"
					 " ORDER BY seq, part", 1, types, values, NULL, SPI_OK_SELECT);
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
		return am_helper ? NULL : task_from_row(rows->vals[0], rows->tupdesc);
	}
	for (uint64 i = 0; i < head; i++)
	{
		Task	   *task = task_from_row(rows->vals[i], rows->tupdesc);

		if (claim_held && claim_seq == task->seq && claim_part == task->part)
			found = task;
	}
	for (uint64 i = 0; i < head; i++)
	{
		Task	   *task = task_from_row(rows->vals[i], rows->tupdesc);
		bool		mine = claim_held && claim_seq == task->seq && claim_part == task->part;

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

static void
set_task_state(int64 id, int seq, int part, const char *state, const char *detail)
{
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', detail ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(state);
	values[3] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	values[4] = Int32GetDatum(part);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = $3, detail = $4,"
						" updated_at = pg_catalog.clock_timestamp(),"
	/* Found paused or held back, a task has not started: its rate and ETA would count the wait. */
						" started_at = CASE WHEN $3 IN ('paused', 'pending', 'throttled') THEN started_at"
						"              ELSE coalesce(started_at, pg_catalog.clock_timestamp()) END,"
						" finished_at = CASE WHEN $3 = 'done' THEN pg_catalog.clock_timestamp() END"
						" WHERE migration_id = $1 AND seq = $2 AND part = $5", 5, types, values, nulls,
						SPI_OK_UPDATE);
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
 * The rows of a batch to fill, given its block range as $1 and $2 (ctids '(first,0)' and
 * '(end,0)': a range scan of the blocks) and the horizon as $3, as a filter that reads each version's
 * header (expand_contract.unfilled).  A row that a concurrent writer updated meanwhile is rechecked
 * at its new version, which fails the filter or the range: that writer went through the trigger.
 * in_progress is the migration's in_progress_xids as text.
 */
static char *
unfilled_condition(Oid relid, const char *in_progress)
{
	return psprintf("ctid OPERATOR(pg_catalog.>=) $1 AND ctid OPERATOR(pg_catalog.<) $2"
					" AND " EC_STATE_SCHEMA ".unfilled(%u, ctid, $3, %s::pg_catalog.xid[])",
					relid, quote_literal_cstr(in_progress ? in_progress : "{}"));
}

/* The ctid that starts a block, for the bounds of a batch. */
static Datum
block_start(int64 block)
{
	ItemPointer tid = palloc(sizeof(ItemPointerData));

	ItemPointerSetBlockNumber(tid, (BlockNumber) block);
	ItemPointerSetOffsetNumber(tid, 0);
	return PointerGetDatum(tid);
}

/*
 * The batch statement for a table: SET each new column from its "up", as the SQL text that
 * ec_start deparsed from the analysed expression (so it means what ec_start analysed, whatever the
 * worker's search_path), over a block range, for the rows the trigger has not written.
 */
static char *
batch_statement(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	Datum	   *new_columns;
	Datum	   *ups;
	int			n;
	bool		isnull;
	StringInfoData sql;
	bool		first = true;

	(void) ec_state_spi("SELECT d.new_columns, d.up_sources, m.in_progress_xids::text"
						"  FROM " EC_STATE_SCHEMA ".dual_writes d"
						"  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = d.migration_id"
						" WHERE d.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
						1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no dual-write plan for table \"%s\"", get_rel_name(relid))));
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													   1, &isnull)),
					  NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &new_columns, NULL, &n);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													   2, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &ups, NULL, &n);

	if (batch_unfilled)
		pfree(batch_unfilled);
	batch_unfilled = MemoryContextStrdup(TopMemoryContext,
										 unfilled_condition(relid,
															SPI_getvalue(SPI_tuptable->vals[0],
																		 SPI_tuptable->tupdesc, 3)));
	initStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE ONLY %s SET ", ec_rel_qualified(relid));
	for (int i = 0; i < n; i++)
	{
		char	   *up = TextDatumGetCString(ups[i]);
		char	   *column = NameStr(*DatumGetName(new_columns[i]));

		if (up[0] == '\0' || column[0] == '\0')
			continue;
		/* SQL over the physical column names, everything outside pg_catalog qualified. */
		appendStringInfo(&sql, "%s%s = %s", first ? "" : ", ", quote_identifier(column), up);
		first = false;
	}
	appendStringInfo(&sql, " WHERE %s", batch_unfilled);
	return sql.data;
}

/*
 * The batch statement runs without the dual-write triggers when no other BEFORE ROW UPDATE trigger
 * may fire on the table: the statement sets the new columns itself, so both triggers would only
 * return the row unchanged (see ec_dual_write), but the mere presence of a BEFORE ROW trigger makes
 * the executor lock each row before updating it (GetTupleForTrigger): one more WAL record and
 * buffer visit per row, a fifth of the batch's time.  With a user trigger in between they stay:
 * the last one must carry what it changed.  Only the batch's own result relation loses them, in
 * this worker, for this statement; AFTER triggers, foreign keys and everything the expressions
 * write fire as before.
 */
static ExecutorStart_hook_type prev_executor_start = NULL;
static bool batch_running = false;	/* the batch statement is being started */

static void
batch_executor_start(QueryDesc *queryDesc, int eflags)
{
	ListCell   *lc;

	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (!batch_running || queryDesc->operation != CMD_UPDATE)
		return;
	batch_running = false;		/* not for what the statement's expressions run */
	foreach(lc, queryDesc->estate->es_opened_result_relations)
	{
		ResultRelInfo *rri = lfirst(lc);
		TriggerDesc *trigdesc = rri->ri_TrigDesc;
		MemoryContext old;

		if (RelationGetRelid(rri->ri_RelationDesc) != ec_backfill_relid || trigdesc == NULL ||
			!trigdesc->trig_update_before_row ||
			ec_other_before_row_triggers(trigdesc, TRIGGER_TYPE_UPDATE, InvalidOid))
			continue;
		old = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);
		trigdesc = CopyTriggerDesc(trigdesc);
		MemoryContextSwitchTo(old);
		trigdesc->trig_update_before_row = false;
		rri->ri_TrigDesc = trigdesc;
	}
}

/* The previous batch of the task being filled, to size the next one. */
static EcPace pace;
static int64 prev_migration = 0;
static int	prev_seq = 0;
static int	prev_part = 0;
static int64 prev_blocks = 0;
static uint64 prev_rows = 0;

/*
 * Blocks per batch for about batch_size rows to fill.  The density (rows to fill per block) is the
 * highest of what the previous batch found and what the planner's statistics say: a table's density
 * varies (a previous migration's backfill moved every row to its second half, say), and an estimate
 * that is too low makes a batch that fills far more rows than asked, holding their locks all along.
 * It never more than doubles from one batch to the next.
 */
static int64
blocks_per_batch(int64 id, Task *task, int64 batch_size)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(task->relid)};
	bool		isnull;
	Datum		d;
	double		density = 0;
	bool		have_prev = prev_migration == id && prev_seq == task->seq && prev_part == task->part &&
		prev_blocks > 0;
	int64		blocks;

	if (!have_prev)
		memset(&pace, 0, sizeof(pace));

	/* Live rows per block, from the planner's statistics or, before any ANALYZE, the activity ones. */
	(void) ec_spi("SELECT GREATEST(CASE WHEN relpages > 0 AND reltuples > 0 THEN reltuples / relpages END,"
				  "       pg_catalog.pg_stat_get_live_tuples(oid)::float8"
				  "       / NULLIF(pg_catalog.pg_relation_size(oid)"
				  "                / pg_catalog.current_setting('block_size')::int, 0))"
				  "  FROM pg_catalog.pg_class WHERE oid = $1", 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			density = DatumGetFloat8(d);
	}
	if (have_prev && prev_rows > 0)
		density = Max(density, (double) prev_rows / prev_blocks);

	/* Knowing nothing, assume a table of small rows, about 100 to a block. */
	blocks = (int64) (batch_size / (density > 0 ? density : 100));
	if (have_prev)
		blocks = Min(blocks, prev_blocks * 2);
	return Max(1, blocks);
}

/*
 * A table of more than 2 x PART_MIN_BLOCKS blocks is filled as parts, consecutive block ranges of
 * equal size (at most MAX_PARTS of them), cut when its backfill begins, whatever the number of
 * workers: one worker fills them one after the other as it would the whole table, and any number
 * can share them, at any time (expand_contract.max_parallel_workers may change while it runs).
 */
#define PART_MIN_BLOCKS	1024		/* 8 MB of 8 kB blocks */
#define MAX_PARTS		256

static void
split_backfill(int64 id, Task *task)
{
	int64		nblocks = task->total_blocks;
	int64		parts = Min(MAX_PARTS, nblocks / PART_MIN_BLOCKS);
	int64		size;
	Oid			types[5] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID};
	Datum		values[5];

	if (task->part != 0 || task->next_block != 0 || parts < 2)
		return;
	size = (nblocks + parts - 1) / parts;
	parts = (nblocks + size - 1) / size;
	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(task->seq);
	values[2] = Int64GetDatum(size);
	values[3] = Int64GetDatum(nblocks);
	values[4] = Int64GetDatum(parts);
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".tasks (migration_id, seq, part, kind, relid,"
						"        table_name, columns, first_block, next_block, total_blocks, rows_estimated)"
						" SELECT migration_id, seq, p, kind, relid, table_name, columns, p * $3, p * $3,"
						"        LEAST($4, (p + 1) * $3),"
						"        (rows_estimated * (LEAST($4, (p + 1) * $3) - p * $3)::float8 / $4)::bigint"
						"   FROM " EC_STATE_SCHEMA ".tasks, pg_catalog.generate_series(1::bigint, $5 - 1) p"
						"  WHERE migration_id = $1 AND seq = $2 AND part = 0",
						5, types, values, NULL, SPI_OK_INSERT);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET total_blocks = $3,"
						" rows_estimated = (rows_estimated * $3::float8 / $4)::bigint"
						" WHERE migration_id = $1 AND seq = $2 AND part = 0",
						4, types, values, NULL, SPI_OK_UPDATE);
	task->total_blocks = size;
}

static StepResult
backfill_batch(int64 id, Task *task, Settings *s, long *wait_ms)
{
	int			rc;
	TimestampTz began;
	int			waiters;
	EcLoad		load;
	int64		end;
	Oid			types[3] = {TIDOID, TIDOID, XIDOID};
	Datum		values[3];
	Oid			ptypes[7] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID};
	Datum		pvalues[7];
	char		pnulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', parallel_note ? ' ' : 'n'};
	uint64		processed;

	/* Fails the task (batch_seq), visibly and once, without diagnosing rows (batch_migration). */
	batch_seq = task->seq;
	batch_part = task->part;
	if (get_rel_name(task->relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the table of the backfill no longer exists"),
				 errdetail("It was dropped while the migration was active (OID %u).", task->relid)));

	/* The bound: rows in blocks added after this point went through the trigger. */
	if (task->total_blocks < 0)
	{
		Relation	rel = table_open(task->relid, AccessShareLock);

		task->total_blocks = RelationGetNumberOfBlocks(rel);
		table_close(rel, AccessShareLock);
		/* The clock starts before the first batch, for rate and ETA. */
		(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET started_at = pg_catalog.clock_timestamp()"
							" WHERE migration_id = $1 AND seq = $2 AND part = $3 AND started_at IS NULL",
							3, (Oid[]) {INT8OID, INT4OID, INT4OID},
							(Datum[]) {Int64GetDatum(id), Int32GetDatum(task->seq),
							Int32GetDatum(task->part)}, NULL, SPI_OK_UPDATE);
		split_backfill(id, task);
	}
	if (task->next_block >= task->total_blocks)
	{
		Oid			t[4] = {INT8OID, INT4OID, INT8OID, INT4OID};
		Datum		v[4] = {Int64GetDatum(id), Int32GetDatum(task->seq),
		Int64GetDatum(task->total_blocks), Int32GetDatum(task->part)};

		(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET total_blocks = $3, next_block = $3"
							" WHERE migration_id = $1 AND seq = $2 AND part = $4", 4, t, v, NULL,
							SPI_OK_UPDATE);
		set_task_state(id, task->seq, task->part, "done", NULL);
		/* Given up once "done" is committed: no worker takes the part up again before. */
		release_after_commit = true;
		return STEP_NEXT;
	}

	end = Min(task->total_blocks,
			  task->next_block + blocks_per_batch(id, task,
												  ec_pace_rows(&pace, s->batch_size, s->batch_time_ms)));
	/* The statement is the same for every batch of a table: built once, on its first batch. */
	if (batch_plan == NULL || statement_migration != id || statement_relid != task->relid)
	{
		if (batch_sql)
			pfree(batch_sql);
		batch_sql = NULL;
		if (batch_plan)
			SPI_freeplan(batch_plan);
		batch_plan = NULL;
		batch_sql = MemoryContextStrdup(TopMemoryContext, batch_statement(task->relid));
		/*
		 * A generic plan: the block range bounds a TID range scan whatever its values, so
		 * planning each batch again would buy nothing.  The plan cache re-plans it if the
		 * table's definition changes.
		 */
		batch_plan = SPI_prepare_cursor(batch_sql, 3, types, CURSOR_OPT_GENERIC_PLAN);
		if (batch_plan == NULL || SPI_keepplan(batch_plan) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg_internal("could not prepare the batch statement: %s",
									 SPI_result_code_string(SPI_result))));
		statement_migration = id;
		statement_relid = task->relid;
	}
	ec_backfill_relid = task->relid;

	batch_migration = id;
	batch_seq = task->seq;
	batch_part = task->part;
	batch_relid = task->relid;
	batch_first_block = task->next_block;
	batch_end_block = end;
	batch_trigger_xid = s->trigger_xid;

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("expand_contract backfill of %s: blocks %lld to %lld of %lld",
									get_rel_name(task->relid), (long long) task->next_block,
									(long long) end, (long long) task->total_blocks));
	values[0] = block_start(task->next_block);
	values[1] = block_start(end);
	values[2] = TransactionIdGetDatum(s->trigger_xid);
	began = GetCurrentTimestamp();
	batch_running = true;
	rc = SPI_execute_plan(batch_plan, values, NULL, false, 0);
	batch_running = false;
	if (rc != SPI_OK_UPDATE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_internal("SPI_execute_plan returned %s for: %s", SPI_result_code_string(rc),
								 batch_sql)));
	processed = SPI_processed;
	waiters = ec_lock_waiters();
	prev_migration = id;
	prev_seq = task->seq;
	prev_part = task->part;
	prev_blocks = end - task->next_block;
	prev_rows = processed;

	pvalues[0] = Int64GetDatum(id);
	pvalues[1] = Int32GetDatum(task->seq);
	pvalues[2] = Int64GetDatum(end);
	pvalues[3] = Int64GetDatum((int64) processed);
	pvalues[4] = Int64GetDatum(task->total_blocks);
	pvalues[5] = Int32GetDatum(task->part);
	pvalues[6] = parallel_note ? CStringGetTextDatum(parallel_note) : (Datum) 0;
	/* Without statistics, the estimate is what the blocks filled so far promise for the rest. */
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET next_block = $3, rows_done = rows_done + $4,"
						" rows_estimated = CASE WHEN rows_estimated > 0 AND (SELECT reltuples > 0 FROM"
			       "   pg_catalog.pg_class WHERE oid = relid) THEN rows_estimated"
						"   ELSE ((rows_done + $4)::float8 / ($3 - first_block) * ($5 - first_block))::bigint END,"
						" batches = batches + 1, total_blocks = $5, state = 'running', detail = $7,"
						" last_error = NULL, error_row = NULL,"
						" started_at = coalesce(started_at, pg_catalog.clock_timestamp()),"
						" updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $6", 7, ptypes, pvalues, pnulls,
						SPI_OK_UPDATE);

	if (s->compact)
		vacuum_due = ec_compact_after_batch(task->relid, end - batch_first_block);
	ec_pace_record(&pace, processed,
				   (double) (GetCurrentTimestamp() - began) / 1000.0, waiters, s->batch_time_ms);
	ec_read_load(began, &load);
	*wait_ms = ec_pace_sleep_ms(&pace, s->nice_ratio, s->batch_delay_ms, load.busy > 0);
	return STEP_NEXT;
}

/* The worker's lock_timeout, for the batches: they hold row locks, and never wait long. */
#define BATCH_LOCK_TIMEOUT	"1s"

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
static void
run_toplevel(const char *sql)
{
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	run_statements(sql);
	SetConfigOption("lock_timeout", BATCH_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);
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
		parallel_note = NULL;
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
		if (!ec_launch_helper(&my_args))
		{
			shortfall = "no background worker slot free (max_worker_processes)";
			break;
		}
		slots_used++;
		helpers++;
	}
	if (parallel_note)
		pfree(parallel_note);
	parallel_note = MemoryContextStrdup(TopMemoryContext,
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
	task = next_task(id, &busy, &free_parts);
	if (task == NULL)
	{
		end_step();
		/* Others still fill parts of the backfills before the next task: wait for them. */
		if (busy && !am_helper)
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
			set_task_state(id, task->seq, task->part, "paused", "paused; ec_resume() continues");
		end_step();
		return STEP_FINISHED;
	}
	if (s.max_lag_ms > 0 && (lag = replication_lag_ms()) > s.max_lag_ms)
	{
		set_task_state(id, task->seq, task->part, "throttled",
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
			set_task_state(id, task->seq, task->part, "throttled",
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
		int			seq;
		int			part;

		if (!am_helper)
			share_backfill(id, &s, free_parts);
		result = backfill_batch(id, task, &s, wait_ms);
		seq = task->seq;		/* task goes with SPI's memory */
		part = task->part;

		end_step();
		if (release_after_commit)
		{
			release_claim();
			release_after_commit = false;
		}
		if (result == STEP_NEXT && vacuum_due != NULL)
		{
			char	   *vacuum = vacuum_due;

			vacuum_due = NULL;
			/* Shown until the next batch's progress replaces it. */
			begin_step("expand_contract: recording progress");
			set_task_state(id, seq, part, "running", "vacuuming the blocks filled so far (compact)");
			end_step();
			pgstat_report_activity(STATE_RUNNING, vacuum);
			run_toplevel(vacuum);
			pfree(vacuum);
		}
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
		char	   *cleanup = task->cleanup && task->attempted ?
			MemoryContextStrdup(step_cxt, compaction ? ec_compact_cleanup(task->cleanup) :
								task->cleanup) : NULL;

		batch_seq = seq;
		if (compaction && !s.compact)
		{
			set_task_state(id, seq, 0, "done", "skipped: expand_contract.compact is off");
			end_step();
			return STEP_NEXT;
		}
		set_task_state(id, seq, 0, "running", NULL);
		end_step();
		if (cleanup && cleanup[0] != '\0')
		{
			pgstat_report_activity(STATE_RUNNING, cleanup);
			run_toplevel(cleanup);
		}
		pgstat_report_activity(STATE_RUNNING, sql);
		run_toplevel(sql);
		pfree(sql);
		begin_step("expand_contract: recording progress");
		set_task_state(id, seq, 0, "done", NULL);
		end_step();
	}
	return STEP_NEXT;
}

static bool
transient(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/* "(id)=(42)" for the row at ctid when the table has a primary key, else "ctid (3,7)". */
static char *
row_key(const char *tsql, char *ctid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(batch_relid)};
	Oid			ktypes[1] = {TIDOID};
	Datum		kvalues[1];
	StringInfoData names;
	StringInfoData texts;

	(void) ec_spi("SELECT a.attname FROM pg_catalog.pg_index i"
			 " CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY k(attnum, n)"
			 "  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
			 " WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.n",
			 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return psprintf("ctid %s", ctid);

	initStringInfo(&names);
	initStringInfo(&texts);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		const char *name = quote_identifier(SPI_getvalue(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1));

		appendStringInfo(&names, "%s%s", i ? ", " : "", name);
		appendStringInfo(&texts, ", %s::text", name);
	}
	kvalues[0] = DirectFunctionCall1(tidin, CStringGetDatum(ctid));
	(void) ec_spi(psprintf("SELECT '(' || %s || ')=(' || pg_catalog.concat_ws(', '%s) || ')'"
					  "  FROM ONLY %s WHERE ctid = $1",
					  quote_literal_cstr(names.data), texts.data, tsql),
			 1, ktypes, kvalues, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return psprintf("ctid %s", ctid);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * The key of the first row of the failed batch that fails on its own, each tried in a
 * subtransaction that is rolled back: "(id)=(42)" with a primary key, else its ctid.
 */
static char *
failing_row(void)
{
	Oid			types[4] = {TIDOID, TIDOID, XIDOID, TIDOID};
	Datum		values[4];
	char	   *key = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *tsql = ec_rel_qualified(batch_relid);
	SPITupleTable *rows;
	uint64		nrows;

	values[0] = block_start(batch_first_block);
	values[1] = block_start(batch_end_block);
	values[2] = TransactionIdGetDatum(batch_trigger_xid);
	(void) ec_spi(psprintf("SELECT ctid FROM ONLY %s WHERE %s", tsql, batch_unfilled),
				  3, types, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;

	for (uint64 i = 0; i < nrows && key == NULL; i++)
	{
		bool		isnull;
		Datum		ctid = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			values[3] = ctid;
			(void) ec_spi(psprintf("%s AND ctid = $4", batch_sql), 4, types, values, NULL, SPI_OK_UPDATE);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
			key = DatumGetCString(DirectFunctionCall1(tidout, ctid));
		}
		PG_END_TRY();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	if (key != NULL)
		key = row_key(tsql, key);
	return key;
}

/* How often a failed task's cleanup is tried, a second apart, while it meets contention. */
#define CLEANUP_ATTEMPTS	30

/*
 * Runs a failed "sql" task's cleanup (without lock_timeout, see run_toplevel), retrying a deadlock
 * for a while.  Returns NULL when it ran, else the error that stopped it.
 */
static char *
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
		if (!transient(edata->sqlerrcode) || attempt >= CLEANUP_ATTEMPTS)
			return edata->message;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The statement and the cleanup (NULL: none) of the failed task seq when it is an "sql" task, in the
 * caller's memory context; false if it is not one.
 */
static bool
failed_sql_task(int64 id, int seq, char **sql, char **cleanup)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};
	MemoryContext cxt = CurrentMemoryContext;
	char	   *s;

	(void) ec_state_spi("SELECT sql, cleanup, kind = 'compact' FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE migration_id = $1 AND seq = $2 AND kind IN ('sql', 'compact')",
						2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;
	s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*sql = MemoryContextStrdup(cxt, s ? s : "");
	s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (s && strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "t") == 0)
		s = ec_compact_cleanup(s);
	*cleanup = s && s[0] != '\0' ? MemoryContextStrdup(cxt, s) : NULL;
	return true;
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
	if (transient(edata->sqlerrcode))
	{
		if (batch_seq > 0)
			set_task_state(id, batch_seq, batch_part, "running",
						   psprintf("retrying after: %s", edata->message));
		end_step();
		*wait_ms = 1000;
		return STEP_NEXT;
	}
	if (batch_seq > 0 && batch_migration == id && batch_sql)
		row = failing_row();
	else if (batch_seq > 0)
	{
		char	   *sql;
		char	   *cleanup = NULL;

		MemoryContextSwitchTo(cxt);
		if (failed_sql_task(id, batch_seq, &sql, &cleanup))
			message = psprintf("%s%s%s (in: %s)", edata->message, edata->detail ? ": " : "",
							   edata->detail ? edata->detail : "", sql);
		if (cleanup)
		{
			char	   *error;

			set_task_state(id, batch_seq, batch_part, "running", psprintf("cleaning up after: %s", message));
			end_step();
			MemoryContextSwitchTo(cxt);
			error = run_cleanup(cleanup);
			if (error)
				message = psprintf("%s (and its cleanup failed: %s; ec_resume() tries it again, "
								   "ec_rollback() undoes it)", message, error);
			begin_step("expand_contract: recording a failure");
		}
	}
	if (batch_seq > 0)
	{
		Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
		Datum		values[5];
		char		nulls[5] = {' ', ' ', ' ', row ? ' ' : 'n', ' '};

		values[0] = Int64GetDatum(id);
		values[1] = Int32GetDatum(batch_seq);
		values[2] = CStringGetTextDatum(message);
		values[3] = row ? CStringGetTextDatum(row) : (Datum) 0;
		values[4] = Int32GetDatum(batch_part);
		(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'failed', last_error = $3,"
							" error_row = $4, detail = NULL, updated_at = pg_catalog.clock_timestamp()"
							" WHERE migration_id = $1 AND seq = $2 AND part = $5", 5, types, values, nulls,
							SPI_OK_UPDATE);
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

	my_args = args;
	if (args.helper)
	{
		/* Shared among helpers; ec_stop_worker() takes it exclusively to stop them. */
		ec_helper_lock_tag(&tag, args.dboid, args.migration_id);
		if (LockAcquire(&tag, ShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL || !take_helper_slot())
			proc_exit(0);
		am_helper = true;
	}
	else
	{
		/* One worker per migration: a second one started by a race leaves at once. */
		ec_worker_lock_tag(&tag, args.dboid, args.migration_id);
		if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			proc_exit(0);
	}

	act_as(args.login_roleid, args.roleid);
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = batch_executor_start;
	/*
	 * The table's ordinary triggers fire for the batch rows as for any UPDATE.  The worker does not
	 * set session_replication_role = replica to skip them: that would also skip the foreign-key
	 * checks and triggers of whatever the migration's expressions write, which its role could not
	 * do by itself.
	 *
	 * A batch and its progress commit together
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
	if (!am_helper)
	{
		begin_step("expand_contract: checking for a restored migration");
		ec_adopt_restored(args.migration_id);
		end_step();
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
		batch_seq = 0;
		batch_part = 0;
		batch_running = false;
		batch_migration = 0;	/* set by a backfill batch: only those are diagnosed row by row */
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
			if (!transient(edata->sqlerrcode))
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
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	proc_exit(0);
}
