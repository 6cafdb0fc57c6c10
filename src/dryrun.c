/*
 * dryrun.c
 *	  ec_plan: what ec_start, the worker, ec_complete and ec_rollback would run for a migration,
 *	  with the locks they take, the rows each backfill fills and an estimate of its time.
 *
 * ec_plan rehearses ec_start: it runs the very same code (ec_start_internal) inside a subtransaction
 * that it always rolls back.  While it runs, ec_exec records every statement before running it, the
 * lock step records the relations and modes ec_start takes, and at the end the saved plan (complete's
 * and rollback's steps) and the worker's tasks are read back before the rollback discards them.  So
 * the steps are ec_start's own, not a second implementation's guess, every error ec_start would raise
 * for the document ec_plan raises too, and a "sql" operation whose effect later operations depend on
 * is planned as faithfully as the rest.
 *
 * The price: inside the rehearsal the locks are really taken, for the few milliseconds until the
 * rollback (which releases them).  Each lock attempt waits 1 ms at most (ec_lock_with_retry), so the
 * rehearsal never queues behind a transaction and no query waits behind it for longer than that;
 * on a busy table it retries like ec_start, and fails like ec_start when the table never is free.
 * The rollback leaves no catalog change and no history row; only the identity sequence of
 * expand_contract.migrations and the OID counter advance.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "expand_contract.h"

PG_FUNCTION_INFO_V1(ec_plan);

bool		ec_planning = false;

typedef struct PlanStep
{
	const char *phase;
	char	   *relation;
	const char *lock;
	char	   *sql;
	int64		rows;			/* -1: null */
	double		seconds;		/* < 0: null */
	char	   *note;
} PlanStep;

/* Where the rehearsal's steps go: outlives its subtransaction. */
static MemoryContext plan_cxt = NULL;
static List *plan_steps = NIL;

static const char *
lock_name(LOCKMODE mode)
{
	switch (mode)
	{
		case AccessShareLock:
			return "ACCESS SHARE";
		case RowShareLock:
			return "ROW SHARE";
		case RowExclusiveLock:
			return "ROW EXCLUSIVE";
		case ShareUpdateExclusiveLock:
			return "SHARE UPDATE EXCLUSIVE";
		case ShareLock:
			return "SHARE";
		case ShareRowExclusiveLock:
			return "SHARE ROW EXCLUSIVE";
		case ExclusiveLock:
			return "EXCLUSIVE";
		case AccessExclusiveLock:
			return "ACCESS EXCLUSIVE";
	}
	return "?";
}

static char *
range_var_sql(RangeVar *rv)
{
	return rv->schemaname ? quote_qualified_identifier(rv->schemaname, rv->relname) :
		pstrdup(quote_identifier(rv->relname));
}

/*
 * The lock a statement takes on the relation it changes, as PostgreSQL's DDL takes it (tablecmds.c,
 * trigger.c, indexcmds.c): from the statement's parse tree, so that it needs no catalog, since the
 * relation of a complete or rollback step may exist only once start has run.  Leaves both NULL for
 * what it does not recognise, for several statements and for statements that create their relation.
 */
static void
statement_lock(const char *sql, char **relation, const char **lock)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	Node	   *stmt;

	*relation = NULL;
	*lock = NULL;
	if (list_length(raw) != 1)
		return;
	stmt = linitial_node(RawStmt, raw)->stmt;
	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *a = (AlterTableStmt *) stmt;

				*relation = range_var_sql(a->relation);
				*lock = lock_name(AlterTableGetLockLevel(a->cmds));
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) stmt;

				if (r->relation == NULL)
					break;
				*relation = range_var_sql(r->relation);
				/* RenameRelation: an index is renamed under SHARE UPDATE EXCLUSIVE */
				*lock = lock_name(r->renameType == OBJECT_INDEX ? ShareUpdateExclusiveLock :
								  AccessExclusiveLock);
				break;
			}
		case T_CreateTrigStmt:
			*relation = range_var_sql(((CreateTrigStmt *) stmt)->relation);
			*lock = lock_name(ShareRowExclusiveLock);
			break;
		case T_IndexStmt:
			{
				IndexStmt  *i = (IndexStmt *) stmt;

				*relation = range_var_sql(i->relation);
				*lock = lock_name(i->concurrent ? ShareUpdateExclusiveLock : ShareLock);
				break;
			}
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;
				ListCell   *lc;
				bool		concurrently = false;

				if (r->relation == NULL)
					break;
				foreach(lc, r->params)
					if (strcmp(((DefElem *) lfirst(lc))->defname, "concurrently") == 0)
						concurrently = true;
				*relation = range_var_sql(r->relation);
				*lock = lock_name(concurrently ? ShareUpdateExclusiveLock : AccessExclusiveLock);
				break;
			}
		case T_VacuumStmt:
			{
				VacuumStmt *v = (VacuumStmt *) stmt;
				ListCell   *lc;
				bool		full = false;

				if (list_length(v->rels) != 1)
					break;
				foreach(lc, v->options)
					if (strcmp(((DefElem *) lfirst(lc))->defname, "full") == 0)
						full = defGetBoolean(lfirst(lc));
				*relation = range_var_sql(linitial_node(VacuumRelation, v->rels)->relation);
				*lock = lock_name(full ? AccessExclusiveLock : ShareUpdateExclusiveLock);
				break;
			}
		case T_RefreshMatViewStmt:
			{
				RefreshMatViewStmt *r = (RefreshMatViewStmt *) stmt;

				*relation = range_var_sql(r->relation);
				*lock = lock_name(r->concurrent ? ExclusiveLock : AccessExclusiveLock);
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;
				List	   *names;

				if (list_length(d->objects) != 1)
					break;
				names = linitial(d->objects);
				switch (d->removeType)
				{
					case OBJECT_TABLE:
					case OBJECT_VIEW:
					case OBJECT_MATVIEW:
					case OBJECT_SEQUENCE:
						*relation = NameListToQuotedString(names);
						*lock = lock_name(AccessExclusiveLock);
						break;
					case OBJECT_INDEX:
						*relation = NameListToQuotedString(names);
						*lock = lock_name(d->concurrent ? ShareUpdateExclusiveLock : AccessExclusiveLock);
						break;
					case OBJECT_TRIGGER:
						/* the table's name, then the trigger's */
						*relation = NameListToQuotedString(list_truncate(list_copy(names),
																		 list_length(names) - 1));
						*lock = lock_name(AccessExclusiveLock);
						break;
					default:
						break;
				}
				break;
			}
		default:
			break;
	}
}

static PlanStep *
add_step(const char *phase, const char *relation, const char *lock, const char *sql,
		 const char *note)
{
	MemoryContext old = MemoryContextSwitchTo(plan_cxt);
	PlanStep   *s = palloc0(sizeof(PlanStep));
	char	   *stmt_relation;

	if (sql && relation == NULL && lock == NULL)
	{
		statement_lock(sql, &stmt_relation, &lock);
		relation = stmt_relation;
	}
	s->phase = phase;
	s->relation = relation ? pstrdup(relation) : NULL;
	s->lock = lock;
	s->sql = sql ? pstrdup(sql) : NULL;
	s->rows = -1;
	s->seconds = -1;
	s->note = note ? pstrdup(note) : NULL;
	plan_steps = lappend(plan_steps, s);
	MemoryContextSwitchTo(old);
	return s;
}

void
ec_plan_record(const char *sql, const char *note)
{
	if (ec_planning)
		add_step("start", NULL, NULL, sql, note);
}

/* Says something about the statement recorded last. */
void
ec_plan_note_last(const char *note)
{
	PlanStep   *s;

	if (!ec_planning || plan_steps == NIL)
		return;
	s = llast(plan_steps);
	s->note = MemoryContextStrdup(plan_cxt, note);
}

void
ec_plan_record_locks(List *relids, List *modes)
{
	if (!ec_planning)
		return;
	for (int i = 0; i < list_length(relids); i++)
		add_step("start", ec_rel_qualified(list_nth_oid(relids, i)),
				 lock_name((LOCKMODE) list_nth_int(modes, i)), NULL,
				 "taken before the statements that follow, with retries (expand_contract.lock_timeout"
				 " and lock_retries), and held until ec_start's transaction ends");
}

/*
 * A measured rate: rows per second of earlier work of this kind in this database, or -1, from the
 * n rows in SPI_tuptable of its totals (how many, their rows, their seconds).
 */
static double
measured_rate(uint64 n, int *samples)
{
	bool		isnull;
	double		rows;
	double		secs;

	*samples = 0;
	if (n != 1)
		return -1;
	*samples = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	rows = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		return -1;
	secs = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (isnull || secs <= 0 || rows <= 0)
		return -1;
	return rows / secs;
}

static bool
starts_with_ci(const char *s, const char *prefix)
{
	while (*s == ' ' || *s == '\n' || *s == '\t')
		s++;
	return pg_strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static void
estimate(PlanStep *s, double rate, int samples, const char *what)
{
	MemoryContext old = MemoryContextSwitchTo(plan_cxt);
	char	   *how;

	if (s->rows < 0)
		how = psprintf("rows unknown: the table was never analyzed (run ANALYZE for an estimate)");
	else if (rate < 0)
		how = psprintf("no earlier %s in this database to measure a rate from", what);
	else
	{
		s->seconds = s->rows / rate;
		how = psprintf("estimated at %.0f rows/s, the rate of %d earlier %s(s) in this database",
					   rate, samples, what);
	}
	s->note = s->note ? psprintf("%s; %s", s->note, how) : how;
	MemoryContextSwitchTo(old);
}

/* The steps of ec_complete or ec_rollback: their locks, then the statements. */
static void
contract_steps(const char *phase, List *relations, List *steps, const char *views)
{
	ListCell   *lc;

	foreach(lc, relations)
		add_step(phase, lfirst(lc), "ACCESS EXCLUSIVE", NULL,
				 psprintf("taken before the statements that follow, with retries, with the same lock "
						  "on each partition and on the views of %s", views));
	foreach(lc, steps)
		add_step(phase, NULL, NULL, lfirst(lc), NULL);
}

/*
 * Called by the rehearsal once ec_start saved its plan, still inside the subtransaction (and its SPI
 * connection): reads the saved plan and the worker's tasks back.
 */
void
ec_plan_capture(int64 id, const char *schema)
{
	bool		isnull;
	List	   *validate;
	List	   *complete;
	List	   *rollback;
	List	   *relations = NIL;
	List	   *relation_oids = NIL;
	List	   *relation_modes = NIL;
	List	   *complete_relations;
	List	   *reversed = NIL;
	EcMigrationRow *parent;
	double		backfill_rate;
	double		index_rate;
	int			backfill_samples;
	int			index_samples;
	uint64		n;
	MemoryContext old;

	backfill_rate = measured_rate(ec_finished_backfill_totals(), &backfill_samples);
	/* Index builds: rows of their tables now (a table's size then is not recorded) per second. */
	index_rate = measured_rate(ec_finished_index_build_totals(), &index_samples);

	/* The worker's tasks, in the order it runs them. */
	n = ec_planned_tasks(id);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *kind = SPI_getvalue(tup, desc, 1);
		char	   *relation = SPI_getvalue(tup, desc, 2);
		char	   *columns = SPI_getvalue(tup, desc, 3);
		char	   *sql = SPI_getvalue(tup, desc, 4);
		Datum		rows = SPI_getbinval(tup, desc, 5, &isnull);
		PlanStep   *s;

		if (strcmp(kind, "backfill") == 0)
		{
			s = add_step("worker", relation, "ROW EXCLUSIVE", NULL,
						 psprintf("backfill of column(s) %s: updates the existing rows in batches "
								  "(expand_contract.batch_size), a transaction each", columns));
			s->rows = isnull ? -1 : DatumGetInt64(rows);
			estimate(s, backfill_rate, backfill_samples, "backfill");
		}
		else
		{
			bool		index_build = starts_with_ci(sql, "CREATE INDEX") ||
				starts_with_ci(sql, "CREATE UNIQUE INDEX") || starts_with_ci(sql, "REINDEX");

			s = add_step("worker", NULL, NULL, sql,
						 strcmp(kind, "compact") != 0 ? NULL :
						 starts_with_ci(sql, "VACUUM") ?
						 "compaction: vacuums the table after the backfill, which pruned the pages it "
						 "filled as it went so that new row versions reuse the space" :
						 "compaction: rebuilds an index the backfill bloated");
			/* The table the task works on (a REINDEX INDEX names the index; it locks both). */
			if (relation != NULL)
				s->relation = MemoryContextStrdup(plan_cxt, relation);
			if (index_build)
			{
				s->rows = isnull ? -1 : DatumGetInt64(rows);
				estimate(s, index_rate, index_samples, "index build");
			}
		}
	}

	/* ec_complete's and ec_rollback's steps, as saved. */
	n = ec_saved_steps(id);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_internal("migration %lld vanished during ec_plan", (long long) id)));
	validate = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	complete = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	rollback = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	{
		Datum	   *elems;
		bool	   *nulls;
		int			nrel;

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 4, &isnull)),
						  OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, &nrel);
		for (int i = 0; i < nrel; i++)
		{
			relations = lappend(relations, ec_rel_qualified(DatumGetObjectId(elems[i])));
			relation_oids = lappend_oid(relation_oids, DatumGetObjectId(elems[i]));
			relation_modes = lappend_int(relation_modes, AccessExclusiveLock);
		}
	}
	/* ec_complete also locks what its steps alter, rename or drop (version views, sequences). */
	{
		int			before = list_length(relation_oids);

		complete_relations = list_copy(relations);
		ec_relations_named_by(complete, &relation_oids, &relation_modes);
		for (int i = before; i < list_length(relation_oids); i++)
			complete_relations = lappend(complete_relations,
										 ec_rel_qualified(list_nth_oid(relation_oids, i)));
	}

	/* What ec_complete adds: the previous version schema goes (api.c). */
	parent = ec_latest_completed_migration(schema);
	if (parent && OidIsValid(get_namespace_oid(parent->version_schema, true)))
		validate = lappend(validate, psprintf("DROP SCHEMA %s CASCADE",
											  quote_identifier(parent->version_schema)));
	old = MemoryContextSwitchTo(plan_cxt);
	contract_steps("complete", complete_relations, list_concat(validate, complete),
				   "the previous version schema");
	/* ec_rollback runs its steps last to first. */
	for (int i = list_length(rollback) - 1; i >= 0; i--)
		reversed = lappend(reversed, list_nth(rollback, i));
	contract_steps("rollback", relations, reversed, "the migration's version schema");
	MemoryContextSwitchTo(old);
}

static Datum
seconds_interval(double seconds)
{
	Interval   *iv = palloc0(sizeof(Interval));

	/* Whole milliseconds: an estimate, not a measurement. */
	iv->time = (int64) (seconds * 1000.0 + 0.5) * 1000;
	return IntervalPGetDatum(iv);
}

static void
rehearse_start(void *arg)
{
	(void) ec_start_internal((FunctionCallInfo) arg, true);
}

Datum
ec_plan(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	ErrorData  *edata;
	ListCell   *lc;
	const char *phase = NULL;
	int			step = 0;

	if (ec_planning)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ec_plan cannot be called while planning a migration")));
	InitMaterializedSRF(fcinfo, 0);
	oldcxt = CurrentMemoryContext;
	plan_cxt = oldcxt;
	plan_steps = NIL;

	/* The rehearsal's DDL, history row, tasks and locks go with its subtransaction. */
	ec_planning = true;
	edata = ec_in_subtransaction(rehearse_start, fcinfo, false);
	ec_planning = false;
	MemoryContextSwitchTo(oldcxt);
	if (edata)
		ReThrowError(edata);

	foreach(lc, plan_steps)
	{
		PlanStep   *s = lfirst(lc);
		Datum		values[8];
		bool		nulls[8] = {false};

		if (phase == NULL || strcmp(phase, s->phase) != 0)
		{
			phase = s->phase;
			step = 0;
		}
		values[0] = CStringGetTextDatum(s->phase);
		values[1] = Int32GetDatum(++step);
		nulls[2] = s->relation == NULL;
		values[2] = s->relation ? CStringGetTextDatum(s->relation) : (Datum) 0;
		nulls[3] = s->lock == NULL;
		values[3] = s->lock ? CStringGetTextDatum(s->lock) : (Datum) 0;
		nulls[4] = s->sql == NULL;
		values[4] = s->sql ? CStringGetTextDatum(s->sql) : (Datum) 0;
		nulls[5] = s->rows < 0;
		values[5] = Int64GetDatum(s->rows);
		nulls[6] = s->seconds < 0;
		values[6] = s->seconds < 0 ? (Datum) 0 : seconds_interval(s->seconds);
		nulls[7] = s->note == NULL;
		values[7] = s->note ? CStringGetTextDatum(s->note) : (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	plan_steps = NIL;
	return (Datum) 0;
}
