/*
 * state_tasks.c
 *	  Owns expand_contract.tasks, the migration's work queue (backfill batches, "sql" and "compact"
 *	  tasks): every query of that table is a named function here.  All access through SPI with bound
 *	  parameters.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "expand_contract.h"

PG_FUNCTION_INFO_V1(ec_task_failure_text_sql);

/* Appends a task to the migration's work queue, done in seq order by its background worker. */
void
ec_add_task(int64 id, int seq, const char *kind, Oid relid, List *columns, const char *sql)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTOID, OIDOID, TEXTARRAYOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', OidIsValid(relid) ? ' ' : 'n', columns ? ' ' : 'n',
	sql ? ' ' : 'n'};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(kind);
	values[3] = ObjectIdGetDatum(relid);
	values[4] = columns ? ec_list_to_text_array(columns) : (Datum) 0;
	values[5] = sql ? CStringGetTextDatum(sql) : (Datum) 0;
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".tasks"
						" (migration_id, seq, kind, relid, table_name, columns, sql, rows_estimated)"
						" SELECT $1, $2, $3, $4,"
						"        (SELECT pg_catalog.quote_ident(relname) FROM pg_catalog.pg_class WHERE oid = $4),"
						"        $5::name[], $6,"
						"        CASE WHEN $3 = 'backfill' THEN"
						"             (SELECT nullif(GREATEST(reltuples, 0), 0)::bigint FROM pg_catalog.pg_class WHERE oid = $4)"
						"        END",
						6, types, values, nulls, SPI_OK_INSERT);
}

/* What the worker runs before it tries the task again, and after it failed (see worker.c). */
void
ec_set_task_cleanup(int64 id, int seq, const char *cleanup)
{
	Oid			types[3] = {INT8OID, INT4OID, TEXTOID};
	Datum		values[3];

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(cleanup);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET cleanup = $3"
						" WHERE migration_id = $1 AND seq = $2",
						3, types, values, NULL, SPI_OK_UPDATE);
}

/* Has the migration a task with that cleanup (an index an earlier operation claimed)? */
bool
ec_task_with_cleanup_exists(int64 id, const char *cleanup)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(id), CStringGetTextDatum(cleanup)};

	return ec_state_spi("SELECT 1 FROM " EC_STATE_SCHEMA ".tasks WHERE migration_id = $1 AND cleanup = $2",
						2, types, values, NULL, SPI_OK_SELECT) > 0;
}

/*
 * A failed task's error as ec_status(), ec_wait() and ec_complete() show it: what the worker
 * recorded (last_error, see worker.c's record_failure) and the failing row's key, if any (error_row,
 * NULL: none).  The one place of that format: ec_status()'s SQL calls it as
 * expand_contract.task_failure_text (a 0.2.0 object; the C callers need no catalog for it).
 */
char *
ec_task_failure_text(const char *last_error, const char *error_row)
{
	if (error_row == NULL)
		return pstrdup(last_error);
	return psprintf("%s (row %s)", last_error, error_row);
}

/* expand_contract.task_failure_text(last_error text, error_row text): NULL without an error. */
Datum
ec_task_failure_text_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ec_task_failure_text(text_to_cstring(PG_GETARG_TEXT_PP(0)),
														  PG_ARGISNULL(1) ? NULL :
														  text_to_cstring(PG_GETARG_TEXT_PP(1)))));
}

/*
 * Where the migration's work stands: how many tasks are unfinished, and the first failure (as
 * "table: error (row ...)"), or NULL.  Compaction is not work complete waits for (it skips what is
 * left of it, compact.c); ec_wait waits for it too.
 */
int
ec_task_summary(int64 id, bool include_compaction, char **failure, int64 *progress)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(id), BoolGetDatum(include_compaction)};
	bool		isnull;
	char	   *table;
	char	   *last_error;
	char	   *error_row;

	(void) ec_state_spi("SELECT s.unfinished, s.progress, f.table_name, f.last_error, f.error_row"
						"  FROM (SELECT count(*) FILTER (WHERE state <> 'done') AS unfinished,"
						"               coalesce(sum(batches) + count(*) FILTER (WHERE state = 'done'), 0)::bigint"
						"                 AS progress"
						"          FROM " EC_STATE_SCHEMA ".tasks"
						"         WHERE migration_id = $1 AND ($2 OR kind <> 'compact')) s"
						"  LEFT JOIN (SELECT table_name, last_error, error_row"
						"               FROM " EC_STATE_SCHEMA ".tasks f"
						"              WHERE f.migration_id = $1 AND f.state = 'failed'"
						"                AND ($2 OR f.kind <> 'compact')"
						"              ORDER BY seq LIMIT 1) f ON true",
						2, types, values, NULL, SPI_OK_SELECT);
	table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	last_error = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	error_row = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
	*failure = NULL;
	if (last_error != NULL)
		*failure = table ? psprintf("%s: %s", table, ec_task_failure_text(last_error, error_row)) :
			ec_task_failure_text(last_error, error_row);
	if (progress)
		*progress = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
												&isnull));
	return (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &isnull));
}

/* Failed or stalled tasks back in the queue, from where they stopped (their progress is kept). */
void
ec_requeue_tasks(int64 id)
{
	(void) ec_state_spi_id("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'pending', detail = NULL,"
						   " last_error = NULL, error_row = NULL"
						   " WHERE migration_id = $1 AND state IN ('failed', 'paused', 'throttled')",
						   id, SPI_OK_UPDATE);
}

/*
 * The migration's unfinished tasks in queue order (seq, part), in SPI_tuptable: seq, kind, relid,
 * sql, next_block, total_blocks, state, rows_done, cleanup, started, part, first_block (the
 * columns worker.c's task_from_row reads).  Returns how many.
 */
uint64
ec_unfinished_tasks(int64 id)
{
	return ec_state_spi_id("SELECT seq, kind, relid, sql, next_block, total_blocks, state, rows_done,"
						   "       cleanup, started_at IS NOT NULL, part, first_block"
						   "  FROM " EC_STATE_SCHEMA ".tasks WHERE migration_id = $1 AND state <> 'done'"
						   " ORDER BY seq, part", id, SPI_OK_SELECT);
}

/*
 * A task's (one part's) state and detail; started_at when it first runs, finished_at when done.
 */
void
ec_set_task_state(int64 id, int seq, int part, const char *state, const char *detail)
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

/* A task failed: its error and the failing row's key (or NULL); the worker has stopped at it. */
void
ec_record_task_failure(int64 id, int seq, int part, const char *message, const char *row)
{
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', row ? ' ' : 'n', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(message);
	values[3] = row ? CStringGetTextDatum(row) : (Datum) 0;
	values[4] = Int32GetDatum(part);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'failed', last_error = $3,"
						" error_row = $4, detail = NULL, updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $5", 5, types, values, nulls,
						SPI_OK_UPDATE);
}

/* The table of task seq (InvalidOid: none, or no such task). */
Oid
ec_task_relid(int64 id, int seq)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};
	bool		isnull;

	if (ec_state_spi("SELECT coalesce(relid::pg_catalog.oid, 0) FROM " EC_STATE_SCHEMA ".tasks"
					 " WHERE migration_id = $1 AND seq = $2 LIMIT 1", 2, types, values, NULL,
					 SPI_OK_SELECT) != 1)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The statement and cleanup (NULL: none) of task seq when it is an "sql" or "compact" task, in SPI's
 * memory; false if it is not one.
 */
bool
ec_task_statement(int64 id, int seq, char **sql, char **cleanup, bool *compaction)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};

	(void) ec_state_spi("SELECT sql, cleanup, kind = 'compact' FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE migration_id = $1 AND seq = $2 AND kind IN ('sql', 'compact')",
						2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;
	*sql = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*cleanup = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*compaction = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "t") == 0;
	return true;
}

/* A backfill task's (part's) clock starts before its first batch, for its rate and ETA. */
void
ec_task_started(int64 id, int seq, int part)
{
	Oid			types[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3] = {Int64GetDatum(id), Int32GetDatum(seq), Int32GetDatum(part)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET started_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $3 AND started_at IS NULL",
						3, types, values, NULL, SPI_OK_UPDATE);
}

/* A backfill part reached its last block (total_blocks, fixed when it began). */
void
ec_task_filled(int64 id, int seq, int part, int64 total_blocks)
{
	Oid			types[4] = {INT8OID, INT4OID, INT8OID, INT4OID};
	Datum		values[4] = {Int64GetDatum(id), Int32GetDatum(seq), Int64GetDatum(total_blocks),
	Int32GetDatum(part)};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET total_blocks = $3, next_block = $3"
						" WHERE migration_id = $1 AND seq = $2 AND part = $4", 4, types, values, NULL,
						SPI_OK_UPDATE);
}

/*
 * A batch committed with the part's progress: the next block, the rows it filled, and the part's
 * state; without statistics, the estimate is what the blocks filled so far promise for the rest.
 */
void
ec_record_batch(int64 id, int seq, int part, int64 next_block, uint64 rows, int64 total_blocks,
				const char *detail)
{
	Oid			types[7] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', detail ? ' ' : 'n'};

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
	values[2] = Int64GetDatum(next_block);
	values[3] = Int64GetDatum((int64) rows);
	values[4] = Int64GetDatum(total_blocks);
	values[5] = Int32GetDatum(part);
	values[6] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET next_block = $3, rows_done = rows_done + $4,"
						" rows_estimated = CASE WHEN rows_estimated > 0 AND (SELECT reltuples > 0 FROM"
						"   pg_catalog.pg_class WHERE oid = relid) THEN rows_estimated"
						"   ELSE ((rows_done + $4)::float8 / ($3 - first_block) * ($5 - first_block))::bigint END,"
						" batches = batches + 1, total_blocks = $5, state = 'running', detail = $7,"
						" last_error = NULL, error_row = NULL,"
						" started_at = coalesce(started_at, pg_catalog.clock_timestamp()),"
						" updated_at = pg_catalog.clock_timestamp()"
						" WHERE migration_id = $1 AND seq = $2 AND part = $6", 7, types, values, nulls,
						SPI_OK_UPDATE);
}

/*
 * A backfill task cut into parts of size blocks: part 0 keeps the first, parts 1 .. parts - 1 are
 * inserted, each with its share of the row estimate.
 */
void
ec_split_task(int64 id, int seq, int64 size, int64 nblocks, int64 parts)
{
	Oid			types[5] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID};
	Datum		values[5];

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(seq);
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
}

/*
 * Are all parts of backfill task seq done?  Asked by the worker that finished part: a part other
 * than 0 first locks part 0's row, so that of workers finishing parts at once exactly one sees all
 * done once the others' "done" committed (part 0's own worker holds that lock by its update).
 */
bool
ec_task_all_parts_done(int64 id, int seq, int part)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(id), Int32GetDatum(seq)};

	if (part != 0)
		(void) ec_state_spi("SELECT FROM " EC_STATE_SCHEMA ".tasks"
							" WHERE migration_id = $1 AND seq = $2 AND part = 0 FOR UPDATE",
							2, types, values, NULL, SPI_OK_SELECT);
	return ec_state_spi("SELECT FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE migration_id = $1 AND seq = $2 AND state <> 'done' LIMIT 1",
						2, types, values, NULL, SPI_OK_SELECT) == 0;
}

/* The cleanups of the migration's compaction tasks not done yet, in queue order. */
List *
ec_compaction_cleanups(int64 id)
{
	List	   *cleanups = NIL;
	uint64		n;

	n = ec_state_spi_id("SELECT cleanup FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE migration_id = $1 AND kind = 'compact' AND state <> 'done'"
						"   AND cleanup IS NOT NULL ORDER BY seq",
						id, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
		cleanups = lappend(cleanups, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return cleanups;
}

/* The compaction tasks not done yet marked done as skipped by ec_complete; returns how many. */
uint64
ec_skip_compaction_tasks(int64 id)
{
	return ec_state_spi_id("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'done',"
						   " detail = 'skipped: ec_complete ran before it',"
						   " finished_at = pg_catalog.clock_timestamp(), updated_at = pg_catalog.clock_timestamp()"
						   " WHERE migration_id = $1 AND kind = 'compact' AND state <> 'done'",
						   id, SPI_OK_UPDATE);
}

/*
 * An adopted migration's unfinished backfills start again from the first block (restore.c): part 0
 * of each is reset, and its other parts, cut from the old table's size, are deleted.
 */
void
ec_restart_backfills(int64 id)
{
	(void) ec_state_spi_id("UPDATE " EC_STATE_SCHEMA ".tasks SET next_block = 0, total_blocks = NULL,"
						   " rows_done = 0, batches = 0, started_at = NULL, finished_at = NULL,"
						   " updated_at = pg_catalog.clock_timestamp(),"
						   " rows_estimated = (SELECT nullif(GREATEST(c.reltuples, 0), 0)::bigint"
						   "                     FROM pg_catalog.pg_class c WHERE c.oid = relid),"
						   " state = CASE WHEN state = 'failed' THEN state ELSE 'pending' END,"
						   " detail = 'restored from another database: every row is filled again'"
						   " WHERE migration_id = $1 AND kind = 'backfill' AND part = 0"
						   "   AND (state <> 'done' OR EXISTS (SELECT FROM " EC_STATE_SCHEMA ".tasks u"
						   "         WHERE u.migration_id = $1 AND u.seq = tasks.seq AND u.state <> 'done'))",
						   id, SPI_OK_UPDATE);
	/* Part 0, reset above, is cut again. */
	(void) ec_state_spi_id("DELETE FROM " EC_STATE_SCHEMA ".tasks t"
						   " WHERE migration_id = $1 AND kind = 'backfill' AND part > 0"
						   "   AND EXISTS (SELECT FROM " EC_STATE_SCHEMA ".tasks u WHERE u.migration_id = $1"
						   "                  AND u.seq = t.seq AND u.part = 0 AND u.state <> 'done')",
						   id, SPI_OK_DELETE);
}

/* ---- ec_plan's look-ups (dryrun.c) ---- */

/*
 * The backfills this database finished that filled rows, in SPI_tuptable: how many (int4), their
 * rows and their seconds (float8, NULL without any).  Returns 1.
 */
uint64
ec_finished_backfill_totals(void)
{
	return ec_state_spi("SELECT count(*)::int4, sum(rows_done)::float8,"
						"       sum(extract(epoch FROM finished_at - started_at))::float8"
						"  FROM " EC_STATE_SCHEMA ".tasks"
						" WHERE kind = 'backfill' AND state = 'done' AND rows_done > 0 AND finished_at > started_at",
						0, NULL, NULL, NULL, SPI_OK_SELECT);
}

/*
 * The index builds ("sql" and "compact" tasks) this database finished, in SPI_tuptable: how many
 * (int4), their tables' rows now and their seconds (float8, NULL without any).  Returns 1.
 */
uint64
ec_finished_index_build_totals(void)
{
	return ec_state_spi("SELECT count(*)::int4, sum(c.reltuples)::float8,"
						"       sum(extract(epoch FROM t.finished_at - t.started_at))::float8"
						"  FROM " EC_STATE_SCHEMA ".tasks t JOIN pg_catalog.pg_class c ON c.oid = t.relid"
						" WHERE t.kind IN ('sql', 'compact') AND t.state = 'done' AND c.reltuples > 0"
						"   AND t.finished_at > t.started_at"
						"   AND t.sql ~* '^\\s*(CREATE\\s+(UNIQUE\\s+)?INDEX|REINDEX)'",
						0, NULL, NULL, NULL, SPI_OK_SELECT);
}

/*
 * The migration's tasks in queue order (seq, part), in SPI_tuptable: kind, the table (qualified,
 * NULL: none), its columns (", "-separated), sql, and the table's rows now as the planner would
 * estimate them (int8, NULL: never analyzed).  Returns how many.
 */
uint64
ec_planned_tasks(int64 id)
{
	return ec_state_spi_id("SELECT t.kind, pg_catalog.quote_ident(ns.nspname) OPERATOR(pg_catalog.||) '.'"
						   "         OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),"
						   "       pg_catalog.array_to_string(t.columns, ', '), t.sql,"
						   "       CASE WHEN c.reltuples < 0 THEN NULL"
						   "            WHEN c.relpages > 0 THEN (c.reltuples / c.relpages *"
						   "                 (pg_catalog.pg_relation_size(c.oid) /"
						   "                  pg_catalog.current_setting('block_size')::int8))::int8"
						   "            ELSE c.reltuples::int8 END"
						   "  FROM " EC_STATE_SCHEMA ".tasks t"
						   "  LEFT JOIN pg_catalog.pg_class c ON c.oid = t.relid"
						   "  LEFT JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace"
						   " WHERE t.migration_id = $1 ORDER BY t.seq, t.part",
						   id, SPI_OK_SELECT);
}
