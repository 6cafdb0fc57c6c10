/*
 * trigger.c
 *	  The dual-write trigger: keeps a migrating table's old and new columns in step.
 *
 * Two BEFORE INSERT OR UPDATE row triggers per table with data to move, both on this function, told
 * apart by their argument.  BEFORE triggers fire in the order of their names:
 *
 *	  EC_TRIGGER_FIRST_NAME ('first') fires before the table's other BEFORE triggers.  A write that
 *		comes from the old version gets each new column computed from "up"; a write from the new
 *		version gets each old column computed from "down".  So user triggers see both columns of
 *		each pair agree.  It stands aside for the backfill, whose statement sets the new columns.
 *	  EC_TRIGGER_LAST_NAME ('last') fires after them, and only when there are any: it carries what
 *		they changed to the other column of each pair (restore_pairs), so that the row written, and
 *		what AFTER triggers see, agree too.
 *
 * Which version a write comes from: the setting expand_contract.version if set, else the first
 * version schema of the table's schema on the session's effective search_path, else the old version
 * (the new one once the migration is complete, in its revert window: see revert.c).
 *
 * Per relation, the plan (expressions planned once, from the node trees ec_start stored) is cached
 * in CacheMemoryContext and dropped on relcache invalidation of the table (CREATE/DROP TRIGGER
 * sends one) or on any change to pg_namespace.  Executable state is rebuilt once per transaction,
 * like PL/pgSQL's simple expressions.  An expression without a subquery is compiled
 * (ExecInitExpr) and runs without SPI.  One with a subquery cannot be: a SubPlan needs the
 * planner's PlannerInfo.  It runs through SPI, as a statement "SELECT $1" whose $1 a parser hook
 * replaces with the stored node tree, the row's columns turned into parameters: no text is
 * parsed and no name looked up again, so no search_path can change what it means, as for the
 * compiled path.  Prepared on first use and kept; SPI's plan cache locks what it reads, applies
 * the writer's row security, and replans it when a table it reads changes.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_node.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "expand_contract.h"

#include "trigger.h"

PG_FUNCTION_INFO_V1(ec_dual_write);
PG_FUNCTION_INFO_V1(ec_writes_new_version);

/*
 * Set in the backfill worker to the table it is filling: its batch statement writes both columns
 * itself, so the trigger leaves that table's rows alone.  Writes that the migration's expressions
 * make to other tables still go through their triggers.
 */
Oid			ec_backfill_relid = InvalidOid;

static bool
setting_names(const char *value, const char *a, const char *b)
{
	return (a && strcmp(value, a) == 0) || (b && strcmp(value, b) == 0);
}

/* Does this write come from the new version? */
static bool
writer_is_new(EcTriggerPlan *plan)
{
	List	   *path;
	ListCell   *lc;

	if (ec_version_setting != NULL && ec_version_setting[0] != '\0')
	{
		if (setting_names(ec_version_setting, plan->new_schema, plan->new_migration))
			return true;
		if (setting_names(ec_version_setting, plan->old_schema, plan->old_migration))
			return false;
		if (strcmp(ec_version_setting, plan->schema) == 0)
			return plan->window;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expand_contract.version \"%s\" is not a version of schema \"%s\"",
						ec_version_setting, plan->schema),
				 errdetail("The new version is \"%s\"; the old version is \"%s\".",
						   plan->new_schema, plan->old_schema ? plan->old_schema : plan->schema),
				 errhint("Set expand_contract.version to one of them, or reset it to decide by "
						 "search_path.")));
	}

	path = fetch_search_path(false);
	foreach(lc, path)
	{
		Oid			nspid = lfirst_oid(lc);

		if (nspid == plan->new_nspid)
			return true;
		if (OidIsValid(plan->old_nspid) && nspid == plan->old_nspid)
			return false;
	}
	/* The base tables: the old version, or in a revert window the new one. */
	return plan->window;
}

static EcEval *
prepare_eval(Expr *expr, EcSubquery *sub)
{
	EcEval	   *eval = palloc0(sizeof(EcEval));

	eval->sub = sub;
	if (sub == NULL)
		eval->state = ExecInitExpr(expr, NULL);
	else
	{
		eval->params = makeParamList(sub->nparams);
		for (int i = 0; i < sub->nparams; i++)
		{
			eval->params->params[i].ptype = sub->types[i];
			eval->params->params[i].pflags = PARAM_FLAG_CONST;
		}
	}
	return eval;
}

static void
prepare_execution(EcTriggerPlan *plan, Relation rel)
{
	MemoryContext cxt;
	MemoryContext old;

	if (plan->lxid == EC_CURRENT_LXID)
		return;

	cxt = AllocSetContextCreate(TopTransactionContext, "expand_contract trigger state",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	plan->up_eval = palloc0(sizeof(EcEval *) * plan->npairs);
	plan->down_eval = palloc0(sizeof(EcEval *) * plan->npairs);
	for (int i = 0; i < plan->npairs; i++)
	{
		if (plan->up[i] && plan->new_attnums[i])
			plan->up_eval[i] = prepare_eval(plan->up[i], plan->up_sub[i]);
		if (plan->down[i] && plan->old_attnums[i])
			plan->down_eval[i] = prepare_eval(plan->down[i], plan->down_sub[i]);
	}
	plan->econtext = CreateStandaloneExprContext();
	/* A copy: a slot on the relation's own descriptor would pin it past this transaction. */
	plan->filled = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(rel)),
											&TTSOpsHeapTuple);
	plan->columns = palloc(sizeof(int) * plan->npairs);
	plan->values = palloc(sizeof(Datum) * plan->npairs);
	plan->nulls = palloc(sizeof(bool) * plan->npairs);
	MemoryContextSwitchTo(old);
	plan->lxid = EC_CURRENT_LXID;
}

static void
subquery_error_context(void *arg)
{
	errcontext("%s", ((EcSubquery *) arg)->what);
}

/*
 * Runs an expression with a subquery for the row in plan->econtext's scan slot.  SPI is connected
 * once per trigger call, on first need; ec_dual_write disconnects.  The statement is read-only and
 * runs on the writing statement's snapshot, as a subquery written in that statement would, and as
 * the backfill's UPDATE evaluates the same subquery.
 */
static Datum
evaluate_subquery(EcTriggerPlan *plan, EcEval *eval, bool *isnull)
{
	EcSubquery *sub = eval->sub;
	TupleTableSlot *slot = plan->econtext->ecxt_scantuple;
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback errcallback;
	SPIExecuteOptions options;
	Datum		value;
	int			rc;

	errcallback.callback = subquery_error_context;
	errcallback.arg = sub;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	if (!plan->spi_connected)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg_internal("SPI_connect failed")));
		plan->spi_connected = true;
		MemoryContextSwitchTo(cxt);
	}
	if (sub->spiplan == NULL)
		ec_prepare_subquery(plan, sub);
	for (int i = 0; i < sub->nparams; i++)
	{
		ParamExternData *param = &eval->params->params[i];

		param->value = slot_getattr(slot, sub->attnums[i], &param->isnull);
	}
	memset(&options, 0, sizeof(options));
	options.params = eval->params;
	options.read_only = true;
	options.tcount = 2;
	rc = SPI_execute_plan_extended(sub->spiplan, &options);
	MemoryContextSwitchTo(cxt);
	/* "SELECT <expression>": one row, whatever the subqueries in it return (they raise). */
	if (rc != SPI_OK_SELECT || SPI_processed != 1 ||
		TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid != sub->target_type)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg_internal("the %s returned %llu rows of type %u (%s)", sub->what, (unsigned long long) SPI_processed, SPI_tuptable ? TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid : InvalidOid, SPI_result_code_string(rc))));
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	error_context_stack = errcallback.previous;

	/*
	 * Into the per-row memory: SPI's goes at SPI_finish.  A value read from another table may be
	 * a TOAST pointer into it; the row gets the value itself.
	 */
	if (!*isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(plan->econtext->ecxt_per_tuple_memory);

		if (sub->target_len == -1 && VARATT_IS_EXTERNAL(DatumGetPointer(value)))
			value = PointerGetDatum(detoast_external_attr((struct varlena *)
														  DatumGetPointer(value)));
		else
			value = datumCopy(value, sub->target_byval, sub->target_len);
		MemoryContextSwitchTo(old);
	}
	SPI_freetuptable(SPI_tuptable);
	return value;
}

/* The value of an up or down expression for the row in plan->econtext's scan slot. */
static Datum
evaluate(EcTriggerPlan *plan, EcEval *eval, bool *isnull)
{
	if (eval->sub == NULL)
		return ExecEvalExprSwitchContext(eval->state, plan->econtext, isnull);
	return evaluate_subquery(plan, eval, isnull);
}

/* After a trigger call that evaluated a subquery. */
static void
finish_subqueries(EcTriggerPlan *plan)
{
	if (!plan->spi_connected)
		return;
	plan->spi_connected = false;
	if (SPI_finish() != SPI_OK_FINISH)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_internal("SPI_finish failed")));
}

/*
 * Has the backfill still to fill this row version?  The same test as the worker's
 * (ec_row_unfilled), with the plan's horizon and in-progress list.
 */
static bool
row_unfilled(EcTriggerPlan *plan, HeapTupleHeader tuple)
{
	if (plan->fill_test != EC_FILL_XMIN)
		return plan->fill_test == EC_FILL_ALL;
	return ec_row_unfilled(tuple, plan->horizon, InvalidTransactionId, plan->in_progress,
						   plan->nin_progress);
}

/*
 * Which of the table's two dual-write triggers this is (see the file header).  A trigger created
 * without an argument, as before there were two, acts as the first.
 */
static bool
trigger_is_last(TriggerData *trigdata)
{
	Trigger    *trigger = trigdata->tg_trigger;

	if (trigger->tgnargs == 0 ||
		(trigger->tgnargs == 1 && strcmp(trigger->tgargs[0], EC_TRIGGER_FIRST_ARG) == 0))
		return false;
	if (trigger->tgnargs == 1 && strcmp(trigger->tgargs[0], EC_TRIGGER_LAST_ARG) == 0)
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("trigger \"%s\" of function \"%s\" has a wrong argument",
					trigger->tgname, "expand_contract.dual_write"),
			 errdetail("The argument must be '%s' or '%s'.", EC_TRIGGER_FIRST_ARG,
					   EC_TRIGGER_LAST_ARG)));
	return false;				/* keep the compiler quiet */
}

/* Is foid expand_contract.dual_write()? */
static bool
is_dual_write_function(Oid foid)
{
	char	   *name = get_func_name(foid);
	char	   *nspname;

	if (name == NULL || strcmp(name, "dual_write") != 0)
		return false;
	nspname = get_namespace_name(get_func_namespace(foid));
	return nspname != NULL && strcmp(nspname, EC_STATE_SCHEMA) == 0;
}

/*
 * Has trigdesc a BEFORE ROW trigger for event (TRIGGER_TYPE_INSERT or _UPDATE), other than our two,
 * that may fire?  The relcache's trigger array is short, and rebuilt on CREATE, DROP and ALTER
 * TRIGGER, so callers scan it each time instead of caching the answer.  A WHEN clause or a column
 * list is not looked at: such a trigger counts, fire or not.  dual_write is the OID of our trigger
 * function, or InvalidOid to recognise it by name.
 */
bool
ec_other_before_row_triggers(TriggerDesc *trigdesc, int16 event, Oid dual_write)
{
	if (trigdesc == NULL)
		return false;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		Trigger    *trigger = &trigdesc->triggers[i];

		if (!TRIGGER_TYPE_MATCHES(trigger->tgtype, TRIGGER_TYPE_ROW, TRIGGER_TYPE_BEFORE, event))
			continue;
		/* As the executor's TriggerEnabled() decides. */
		if (trigger->tgenabled == TRIGGER_DISABLED)
			continue;
		if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA ?
			trigger->tgenabled == TRIGGER_FIRES_ON_ORIGIN :
			trigger->tgenabled == TRIGGER_FIRES_ON_REPLICA)
			continue;
		if ((strcmp(trigger->tgname, EC_TRIGGER_FIRST_NAME) == 0 ||
			 strcmp(trigger->tgname, EC_TRIGGER_LAST_NAME) == 0) &&
			(OidIsValid(dual_write) ? trigger->tgfoid == dual_write :
			 is_dual_write_function(trigger->tgfoid)))
			continue;
		return true;
	}
	return false;
}

/* Only then has the last trigger something to put right. */
static bool
user_before_row_triggers(TriggerData *trigdata)
{
	return ec_other_before_row_triggers(trigdata->tg_relation->trigdesc,
										TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
										TRIGGER_TYPE_UPDATE : TRIGGER_TYPE_INSERT,
										trigdata->tg_trigger->tgfoid);
}

/*
 * In a revert window the base tables are the new version, but they still have the kept-aside old
 * columns, at their old places.  An INSERT or COPY without a column list puts values into them
 * where the new version's columns are meant, and "down" would then overwrite those values without
 * a trace: refused.  The sign is a value in a kept-aside column that has no default, identity or
 * generation to give it one (those are not checked); "down" alone fills it for a new-version
 * write.
 */
static void
refuse_kept_aside_values(EcTriggerPlan *plan, TriggerData *trigdata, TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);

	for (int i = 0; i < plan->npairs; i++)
	{
		Form_pg_attribute att;
		bool		isnull;

		if (plan->down_eval[i] == NULL || plan->old_attnums[i] <= 0)
			continue;
		att = TupleDescAttr(desc, plan->old_attnums[i] - 1);
		if (att->atthasdef || att->attidentity != '\0' || att->attgenerated != '\0')
			continue;
		(void) slot_getattr(slot, plan->old_attnums[i], &isnull);
		if (!isnull)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("column \"%s\" of table \"%s\" is kept aside for the previous version",
							NameStr(att->attname), RelationGetRelationName(trigdata->tg_relation)),
					 errdetail("During the revert window of migration \"%s\" its value comes from "
							   "\"down\"; a value written to it, as an INSERT or COPY without a "
							   "column list writes one, would be lost.", plan->new_migration),
					 errhint("Name the columns of the INSERT or COPY, or write through the version "
							 "schema \"%s\".", plan->new_schema)));
	}
}

/*
 * The first trigger: the other version's columns of the row as the statement wrote it, from "up"
 * for an old-version write and from "down" for a new-version one.
 */
static HeapTuple
write_counterparts(EcTriggerPlan *plan, TriggerData *trigdata, HeapTuple tuple,
				   TupleTableSlot *slot, bool from_new)
{
	int			n = 0;

	/*
	 * A write through the new version to a row that the backfill has not reached: its new columns
	 * hold nothing yet, and "down" must not turn that nothing into the old columns.  Fill the ones
	 * the statement does not set, as the backfill would have, first.
	 */
	if (from_new && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) &&
		row_unfilled(plan, trigdata->tg_trigtuple->t_data))
	{
		/* From the row as it was, as the backfill would have; not from what this write sets. */
		plan->econtext->ecxt_scantuple = trigdata->tg_trigslot;
		for (int i = 0; i < plan->npairs; i++)
		{
			if (plan->up_eval[i] == NULL ||
				bms_is_member(plan->new_attnums[i] - FirstLowInvalidHeapAttributeNumber,
							  trigdata->tg_updatedcols))
				continue;
			plan->columns[n] = plan->new_attnums[i];
			plan->values[n] = evaluate(plan, plan->up_eval[i], &plan->nulls[n]);
			n++;
		}
		if (n > 0)
		{
			tuple = heap_modify_tuple_by_cols(tuple, RelationGetDescr(trigdata->tg_relation), n,
											  plan->columns, plan->values, plan->nulls);
			slot = ExecStoreHeapTuple(tuple, plan->filled, false);
			n = 0;
		}
	}
	if (from_new && plan->window && TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		refuse_kept_aside_values(plan, trigdata, slot);
	plan->econtext->ecxt_scantuple = slot;

	for (int i = 0; i < plan->npairs; i++)
	{
		EcEval	   *eval = from_new ? plan->down_eval[i] : plan->up_eval[i];

		if (eval == NULL)
			continue;
		plan->columns[n] = from_new ? plan->old_attnums[i] : plan->new_attnums[i];
		plan->values[n] = evaluate(plan, eval, &plan->nulls[n]);
		n++;
	}
	if (n == 0)
		return tuple;
	return heap_modify_tuple_by_cols(tuple, RelationGetDescr(trigdata->tg_relation), n,
									 plan->columns, plan->values, plan->nulls);
}

/*
 * The last trigger, after the table's other BEFORE triggers: the pairs again, from the row as they
 * left it.  User triggers are written against the base table, whose columns are the old version's,
 * so a change they make is taken to be to an old column.  An old-version write (and a backfill
 * update) gets every new column from "up" again.  A new-version write keeps its new columns where
 * "down" of them still gives the old column; where it does not, a user trigger changed the old column
 * (or the helper column, which belongs to the extension), and the new column is taken from "up" of
 * the row.  Everything is evaluated on the row as this trigger received it.
 */
static HeapTuple
restore_pairs(EcTriggerPlan *plan, TriggerData *trigdata, HeapTuple tuple, TupleTableSlot *slot,
			  bool from_new)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			n = 0;

	plan->econtext->ecxt_scantuple = slot;
	for (int i = 0; i < plan->npairs; i++)
	{
		if (plan->up_eval[i] == NULL)
			continue;
		if (from_new)
		{
			Form_pg_attribute att;
			Datum		current;
			Datum		expected;
			bool		current_null;
			bool		expected_null;

			/* No old column from "down": the new column is the writer's alone. */
			if (plan->down_eval[i] == NULL)
				continue;
			current = slot_getattr(slot, plan->old_attnums[i], &current_null);
			expected = evaluate(plan, plan->down_eval[i], &expected_null);
			att = TupleDescAttr(desc, plan->old_attnums[i] - 1);
			/*
			 * By image, not datumIsEqual(): a varlena stored in a tuple has a short header where
			 * the freshly computed one has a long one.
			 */
			if (current_null == expected_null &&
				(current_null || datum_image_eq(current, expected, att->attbyval, att->attlen)))
				continue;
		}
		plan->columns[n] = plan->new_attnums[i];
		plan->values[n] = evaluate(plan, plan->up_eval[i], &plan->nulls[n]);
		n++;
	}
	if (n == 0)
		return tuple;
	return heap_modify_tuple_by_cols(tuple, desc, n, plan->columns, plan->values, plan->nulls);
}

Datum
ec_dual_write(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleTableSlot *slot;
	EcTriggerPlan *plan;
	bool		last;
	bool		backfill;
	bool		from_new;
	HeapTuple	result;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired by a trigger", "expand_contract.dual_write")));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired BEFORE INSERT OR UPDATE FOR EACH ROW",
						"expand_contract.dual_write")));
	last = trigger_is_last(trigdata);

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		tuple = trigdata->tg_newtuple;
		slot = trigdata->tg_newslot;
	}
	else
	{
		tuple = trigdata->tg_trigtuple;
		slot = trigdata->tg_trigslot;
	}

	/*
	 * The backfill's batch statement sets the new columns itself, so the first trigger stands
	 * aside; the last one carries what user triggers changed, as for an old-version write.  With
	 * no user trigger in between, the last one has nothing to do.
	 */
	backfill = RelationGetRelid(trigdata->tg_relation) == ec_backfill_relid;
	if (last ? !user_before_row_triggers(trigdata) : backfill)
		return PointerGetDatum(tuple);
	plan = ec_trigger_plan(trigdata->tg_relation);
	if (plan->npairs == 0)
		return PointerGetDatum(tuple);

	from_new = !backfill && writer_is_new(plan);
	/* Who still writes through which version: atomics in shared memory, no lock (usage.c). */
	if (!last)
		ec_usage_count(plan, from_new);
	prepare_execution(plan, trigdata->tg_relation);

	/*
	 * The expressions' values live in the plan's per-row state until the row is built: an
	 * expression that writes to this table (a function it calls) would re-enter the trigger and
	 * reset that state underneath (see ec_trigger_plan).
	 */
	plan->in_use = true;
	PG_TRY();
	{
		if (last)
			result = restore_pairs(plan, trigdata, tuple, slot, from_new);
		else
			result = write_counterparts(plan, trigdata, tuple, slot, from_new);
		finish_subqueries(plan);
	}
	PG_FINALLY();
	{
		/* After an error, the (sub)transaction's abort disconnects SPI. */
		plan->in_use = false;
		plan->spi_connected = false;
	}
	PG_END_TRY();
	ResetExprContext(plan->econtext);
	plan->econtext->ecxt_scantuple = NULL;
	ExecClearTuple(plan->filled);
	return PointerGetDatum(result);
}

/*
 * expand_contract.writes_new_version(rel): for a trigger's WHEN on rel, during a write to it.  False
 * for a table without data to move, and for the backfill's batches.
 */
Datum
ec_writes_new_version(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel;
	EcTriggerPlan *plan;
	bool		result;

	if (relid == ec_backfill_relid)
		PG_RETURN_BOOL(false);
	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		PG_RETURN_BOOL(false);
	plan = ec_trigger_plan(rel);
	result = plan->npairs > 0 && writer_is_new(plan);
	relation_close(rel, AccessShareLock);
	PG_RETURN_BOOL(result);
}
