/*
 * backfill.c
 *	  One backfill batch: the statement that fills a block range of a table (built and prepared
 *	  once per table, run without the dual-write triggers when nothing needs them), the sizing of
 *	  the range, the cutting of a big table into parts, the progress it commits, and, after a batch
 *	  failed, finding the first row that fails on its own.  See worker.c for the loop around it.
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
	Datum	   *new_columns;
	Datum	   *ups;
	int			n;
	char	   *in_progress;
	StringInfoData sql;
	bool		first = true;

	if (!ec_backfill_sources(relid, &new_columns, &ups, &n, &in_progress))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no dual-write plan for table \"%s\"", get_rel_name(relid))));
	if (ec_worker.batch_unfilled)
		pfree(ec_worker.batch_unfilled);
	ec_worker.batch_unfilled = MemoryContextStrdup(TopMemoryContext,
												   unfilled_condition(relid, in_progress));
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
	appendStringInfo(&sql, " WHERE %s", ec_worker.batch_unfilled);
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

static void
batch_executor_start(QueryDesc *queryDesc, int eflags)
{
	ListCell   *lc;

	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (!ec_worker.batch_running || queryDesc->operation != CMD_UPDATE)
		return;
	ec_worker.batch_running = false;		/* not for what the statement's expressions run */
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

/* In the worker only: the batch statements go through batch_executor_start. */
void
ec_backfill_install_hook(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = batch_executor_start;
}

/* After a step, whatever became of it: nothing else is a batch statement. */
void
ec_backfill_batch_done(void)
{
	ec_worker.batch_running = false;
}

/* Has a batch statement been built, to retry a failed batch's rows one by one with? */
bool
ec_backfill_has_statement(void)
{
	return ec_worker.batch_sql != NULL;
}


/*
 * Was this worker's last batch of the same table?  A table's parts are one table: the next part
 * keeps the pace the last batch set.  Another table, or migration, starts over: its rows may be
 * wider, and its first batch measures its own rate.
 */
static bool
same_table_as_last_batch(int64 id, Task *task)
{
	return ec_worker.prev_migration == id && ec_worker.prev_seq == task->seq &&
		ec_worker.prev_blocks > 0;
}

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
	bool		have_prev = same_table_as_last_batch(id, task);
	int64		blocks;

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
	if (have_prev && ec_worker.prev_rows > 0)
		density = Max(density, (double) ec_worker.prev_rows / ec_worker.prev_blocks);

	/* Knowing nothing, assume a table of small rows, about 100 to a block. */
	blocks = (int64) (batch_size / (density > 0 ? density : 100));
	if (have_prev)
		blocks = Min(blocks, ec_worker.prev_planned_blocks * 2);
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

/*
 * After a part of the table's backfill is marked done: if it was the last one, the table's
 * backfill is done, which is an event (events.c).  Its part 0 is locked first, so that of two
 * parts finishing at once the second waits for the first to commit and then sees its part done:
 * exactly one of them tells.  (Part 0's own worker holds that lock already, by its update.)
 */
static void
backfill_done_event(int64 id, Task *task)
{
	if (ec_task_all_parts_done(id, task->seq, task->part))
		ec_notify_migration(id, EC_EVENT_BACKFILL_DONE, get_rel_name(task->relid), NULL, NULL);
}

static void
split_backfill(int64 id, Task *task)
{
	int64		nblocks = task->total_blocks;
	int64		parts = Min(MAX_PARTS, nblocks / PART_MIN_BLOCKS);
	int64		size;

	if (task->part != 0 || task->next_block != 0 || parts < 2)
		return;
	size = (nblocks + parts - 1) / parts;
	parts = (nblocks + size - 1) / size;
	ec_split_task(id, task->seq, size, nblocks, parts);
	task->total_blocks = size;
}

StepResult
backfill_batch(int64 id, Task *task, Settings *s, long *wait_ms)
{
	int			rc;
	TimestampTz began;
	int			waiters;
	EcLoad		load;
	int64		planned;
	int64		end;
	Oid			types[3] = {TIDOID, TIDOID, XIDOID};
	Datum		values[3];
	uint64		processed;

	/* Fails the task (ec_worker.batch_seq), visibly and once, without diagnosing rows (ec_worker.batch_migration). */
	ec_worker.batch_seq = task->seq;
	ec_worker.batch_part = task->part;
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
		ec_task_started(id, task->seq, task->part);
		split_backfill(id, task);
	}
	if (task->next_block >= task->total_blocks)
	{
		ec_task_filled(id, task->seq, task->part, task->total_blocks);
		ec_set_task_state(id, task->seq, task->part, "done", NULL);
		backfill_done_event(id, task);
		/* Given up once "done" is committed: no worker takes the part up again before. */
		ec_worker.release_after_commit = true;
		return STEP_NEXT;
	}

	if (!same_table_as_last_batch(id, task))
		memset(&ec_worker.pace, 0, sizeof(ec_worker.pace));
	planned = blocks_per_batch(id, task, ec_pace_rows(&ec_worker.pace, s->batch_size, s->batch_time_ms));
	if (s->compact)
		planned = Min(planned, ec_compact_batch_blocks(task->relid));
	end = Min(task->total_blocks, task->next_block + planned);
	/* The statement is the same for every batch of a table: built once, on its first batch. */
	if (ec_worker.batch_plan == NULL || ec_worker.statement_migration != id || ec_worker.statement_relid != task->relid)
	{
		if (ec_worker.batch_sql)
			pfree(ec_worker.batch_sql);
		ec_worker.batch_sql = NULL;
		if (ec_worker.batch_plan)
			SPI_freeplan(ec_worker.batch_plan);
		ec_worker.batch_plan = NULL;
		ec_worker.batch_sql = MemoryContextStrdup(TopMemoryContext, batch_statement(task->relid));
		/*
		 * A generic plan: the block range bounds a TID range scan whatever its values, so
		 * planning each batch again would buy nothing.  The plan cache re-plans it if the
		 * table's definition changes.
		 */
		ec_worker.batch_plan = SPI_prepare_cursor(ec_worker.batch_sql, 3, types, CURSOR_OPT_GENERIC_PLAN);
		if (ec_worker.batch_plan == NULL || SPI_keepplan(ec_worker.batch_plan) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg_internal("could not prepare the batch statement: %s",
									 SPI_result_code_string(SPI_result))));
		ec_worker.statement_migration = id;
		ec_worker.statement_relid = task->relid;
	}
	ec_backfill_relid = task->relid;

	ec_worker.batch_migration = id;
	ec_worker.batch_seq = task->seq;
	ec_worker.batch_part = task->part;
	ec_worker.batch_relid = task->relid;
	ec_worker.batch_first_block = task->next_block;
	ec_worker.batch_end_block = end;
	ec_worker.batch_trigger_xid = s->trigger_xid;

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("expand_contract backfill of %s: blocks %lld to %lld of %lld",
									get_rel_name(task->relid), (long long) task->next_block,
									(long long) end, (long long) task->total_blocks));
	values[0] = block_start(task->next_block);
	values[1] = block_start(end);
	values[2] = TransactionIdGetDatum(s->trigger_xid);
	began = GetCurrentTimestamp();
	ec_worker.batch_running = true;
	rc = SPI_execute_plan(ec_worker.batch_plan, values, NULL, false, 0);
	ec_worker.batch_running = false;
	if (rc != SPI_OK_UPDATE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_internal("SPI_execute_plan returned %s for: %s", SPI_result_code_string(rc),
								 ec_worker.batch_sql)));
	processed = SPI_processed;
	waiters = ec_lock_waiters();
	ec_worker.prev_migration = id;
	ec_worker.prev_seq = task->seq;
	ec_worker.prev_blocks = end - task->next_block;
	/* Not cut short by the part's end: the next part's first batch may double it. */
	ec_worker.prev_planned_blocks = planned;
	ec_worker.prev_rows = processed;

	ec_record_batch(id, task->seq, task->part, end, processed, task->total_blocks,
					ec_worker.parallel_note);

	if (s->compact)
		ec_compact_after_batch(task->relid, ec_worker.batch_first_block, end);
	ec_pace_record(&ec_worker.pace, processed,
				   (double) (GetCurrentTimestamp() - began) / 1000.0, waiters, s->batch_time_ms);
	ec_read_load(began, &load);
	*wait_ms = ec_pace_sleep_ms(&ec_worker.pace, s->nice_ratio, s->batch_delay_ms, load.busy > 0);
	return STEP_NEXT;
}

/* "(id)=(42)" for the row at ctid when the table has a primary key, else "ctid (3,7)". */
static char *
row_key(const char *tsql, char *ctid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(ec_worker.batch_relid)};
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
char *
failing_row(void)
{
	Oid			types[4] = {TIDOID, TIDOID, XIDOID, TIDOID};
	Datum		values[4];
	char	   *key = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *tsql = ec_rel_qualified(ec_worker.batch_relid);
	SPITupleTable *rows;
	uint64		nrows;

	values[0] = block_start(ec_worker.batch_first_block);
	values[1] = block_start(ec_worker.batch_end_block);
	values[2] = TransactionIdGetDatum(ec_worker.batch_trigger_xid);
	(void) ec_spi(psprintf("SELECT ctid FROM ONLY %s WHERE %s", tsql, ec_worker.batch_unfilled),
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
			(void) ec_spi(psprintf("%s AND ctid = $4", ec_worker.batch_sql), 4, types, values, NULL, SPI_OK_UPDATE);
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

