/*
 * trigger_plan.c
 *	  The dual-write trigger's per-relation plan: built once from the node trees ec_start stored
 *	  (expand_contract.dual_writes), checked against the table as it is now, cached in
 *	  CacheMemoryContext and dropped on relcache invalidation of the table or any change to
 *	  pg_namespace.  Expressions with a subquery are prepared here to run through SPI (see
 *	  trigger.c's header for why); the rest are planned to be compiled once per transaction.
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
#include "utils/snapmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "expand_contract.h"

#include "trigger.h"

static HTAB *plan_cache = NULL;

static void
invalidate_relation(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	EcTriggerPlan *plan;

	if (plan_cache == NULL)
		return;
	if (OidIsValid(relid))
	{
		plan = hash_search(plan_cache, &relid, HASH_FIND, NULL);
		if (plan)
			plan->valid = false;
		return;
	}
	hash_seq_init(&status, plan_cache);
	while ((plan = hash_seq_search(&status)) != NULL)
		plan->valid = false;
}

static void
invalidate_namespaces(Datum arg, int cacheid, uint32 hashvalue)
{
	invalidate_relation(arg, InvalidOid);
}

void
ec_trigger_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(EcTriggerPlan);
	ctl.hcxt = CacheMemoryContext;
	plan_cache = hash_create("expand_contract trigger plans", 32, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(invalidate_relation, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, invalidate_namespaces, (Datum) 0);
}

static char *
text_datum_or_null(HeapTuple tuple, TupleDesc desc, int column, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, column, &isnull);

	if (isnull)
		return NULL;
	return MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

static Datum *
array_elements(HeapTuple tuple, TupleDesc desc, int column, Oid elemtype, int *n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, column, &isnull);
	ArrayType  *array;
	Datum	   *elems;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("expand_contract.dual_writes has a null array")));
	array = DatumGetArrayTypeP(d);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, NULL, n);
	return elems;
}

typedef struct VarCheck
{
	TupleDesc	desc;
	Relation	rel;
	int			depth;			/* subquery levels between here and the row */
} VarCheck;

static void
changed_since_start(Relation rel, const char *column)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("column \"%s\" of table \"%s\" changed since its migration started",
					column, RelationGetRelationName(rel)),
			 errdetail("The dual-write expressions were analysed for the column as it was."),
			 errhint("Restore the column, or roll the migration back with ec_rollback().")));
}

/*
 * The stored expressions name columns by number and type; a column dropped or retyped since
 * ec_start would have the executor read a datum as the wrong type.  Refuse instead.  Only the
 * row's columns are checked: a subquery's own tables are looked up by name again when SPI plans it.
 */
static bool
check_vars_walker(Node *node, VarCheck *check)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		bool		result;

		check->depth++;
		result = query_tree_walker((Query *) node, check_vars_walker, check, 0);
		check->depth--;
		return result;
	}
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;
		Form_pg_attribute att;

		if (var->varlevelsup != check->depth)
			return false;
		if (var->varattno <= 0 || var->varattno > check->desc->natts)
			changed_since_start(check->rel, "?");
		att = TupleDescAttr(check->desc, var->varattno - 1);
		if (att->attisdropped || att->atttypid != var->vartype || att->atttypmod != var->vartypmod)
			changed_since_start(check->rel, NameStr(att->attname));
		return false;
	}
	return expression_tree_walker(node, check_vars_walker, check);
}

static void
check_target(Relation rel, AttrNumber attnum, Expr *expr)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Form_pg_attribute att;

	if (attnum <= 0 || attnum > desc->natts)
		changed_since_start(rel, "?");
	att = TupleDescAttr(desc, attnum - 1);
	if (att->attisdropped || (expr && exprType((Node *) expr) != att->atttypid))
		changed_since_start(rel, NameStr(att->attname));
}

typedef struct ParamsBuild
{
	int			depth;			/* subquery levels between here and the row */
	EcSubquery *sub;			/* the parameters so far */
	int			max;
} ParamsBuild;

/* Replaces each Var of the row with its parameter, one per column, numbered as first met. */
static Node *
vars_to_params(Node *node, ParamsBuild *build)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Query))
	{
		Node	   *result;

		build->depth++;
		result = (Node *) query_tree_mutator((Query *) node, vars_to_params, build, 0);
		build->depth--;
		return result;
	}
	if (IsA(node, Var) && ((Var *) node)->varlevelsup == build->depth)
	{
		Var		   *var = (Var *) node;
		EcSubquery *sub = build->sub;
		Param	   *param = makeNode(Param);
		int			n;

		for (n = 0; n < sub->nparams && sub->attnums[n] != var->varattno; n++)
			;
		if (n == sub->nparams)
		{
			if (n == build->max)
			{
				build->max *= 2;
				sub->attnums = repalloc(sub->attnums, sizeof(AttrNumber) * build->max);
				sub->types = repalloc(sub->types, sizeof(Oid) * build->max);
			}
			sub->attnums[n] = var->varattno;
			sub->types[n] = var->vartype;
			sub->nparams++;
		}
		param->paramkind = PARAM_EXTERN;
		param->paramid = n + 1;
		param->paramtype = var->vartype;
		param->paramtypmod = var->vartypmod;
		param->paramcollid = var->varcollid;
		param->location = -1;
		return (Node *) param;
	}
	return expression_tree_mutator(node, vars_to_params, build);
}

/* The analysed expression over parameters, for the trigger to run through SPI when first needed. */
static EcSubquery *
make_subquery(Node *expr, Oid relid, AttrNumber target, const char *what)
{
	EcSubquery *sub = palloc0(sizeof(EcSubquery));
	ParamsBuild build = {0, sub, 8};

	sub->attnums = palloc(sizeof(AttrNumber) * build.max);
	sub->types = palloc(sizeof(Oid) * build.max);
	sub->expr = vars_to_params(copyObject(expr), &build);
	sub->target_type = exprType(expr);
	get_typlenbyval(sub->target_type, &sub->target_len, &sub->target_byval);
	sub->what = psprintf("%s for column \"%s\" of table \"%s\"", what,
						 get_attname(relid, target, false), get_rel_name(relid));
	return sub;
}

typedef struct TreeCheck
{
	EcSubquery *sub;
	List	   *rtables;		/* of the queries around here, innermost first */
} TreeCheck;

static void
read_table_changed(EcSubquery *sub, Oid relid, AttrNumber attnum)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("column %d of table \"%s\", which the %s reads, changed since its migration "
					"started", attnum, get_rel_name(relid), sub->what),
			 errdetail("The expression was analysed for the table as it was."),
			 errhint("Restore the column, or roll the migration back with ec_rollback().")));
}

/*
 * What the parser would have done had it read the expression: lock each table a subquery reads
 * (AccessShareLock, as its range table entry says), and find it still there.  Also each column a
 * subquery reads must still be there with its type: the tree names them by number.
 */
static bool
check_tree_walker(Node *node, TreeCheck *check)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		ListCell   *lc;
		bool		result;

		foreach(lc, query->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);

			if (rte->rtekind != RTE_RELATION)
				continue;
			LockRelationOid(rte->relid, rte->rellockmode);
			if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rte->relid)))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_TABLE),
						 errmsg("a table that the %s reads no longer exists", check->sub->what),
						 errdetail("It was dropped after the migration started (OID %u).",
								   rte->relid),
						 errhint("Roll the migration back with ec_rollback().")));
		}
		check->rtables = lcons(query->rtable, check->rtables);
		result = query_tree_walker(query, check_tree_walker, check, 0);
		check->rtables = list_delete_first(check->rtables);
		return result;
	}
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;
		RangeTblEntry *rte;
		HeapTuple	tuple;
		bool		fits;

		if (var->varlevelsup >= list_length(check->rtables) || var->varattno <= 0)
			return false;
		rte = rt_fetch(var->varno, (List *) list_nth(check->rtables, var->varlevelsup));
		if (rte->rtekind != RTE_RELATION)
			return false;
		tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(rte->relid), Int16GetDatum(var->varattno));
		fits = HeapTupleIsValid(tuple) &&
			!((Form_pg_attribute) GETSTRUCT(tuple))->attisdropped &&
			((Form_pg_attribute) GETSTRUCT(tuple))->atttypid == var->vartype;
		if (HeapTupleIsValid(tuple))
			ReleaseSysCache(tuple);
		if (!fits)
			read_table_changed(check->sub, rte->relid, var->varattno);
		return false;
	}
	return expression_tree_walker(node, check_tree_walker, check);
}

/* The rest of the parser's locking (views' own tables, joins), for each outermost subquery. */
static bool
rewrite_locks_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		AcquireRewriteLocks((Query *) node, true, false);
		return false;
	}
	return expression_tree_walker(node, rewrite_locks_walker, context);
}

/*
 * "$1" of the statement "SELECT $1": the stored expression itself, checked and locked as the
 * parser would have, each time SPI analyses the statement (first, and after an invalidation).
 */
static Node *
subquery_param_ref(ParseState *pstate, ParamRef *pref)
{
	EcSubquery *sub = pstate->p_ref_hook_state;
	TreeCheck	check = {sub, NIL};
	Node	   *expr;

	if (pref->number != 1 || pstate->parentParseState != NULL)
		return NULL;
	/* A copy: the rewriter and the planner scribble on what they get. */
	expr = copyObject(sub->expr);
	(void) check_tree_walker(expr, &check);
	(void) rewrite_locks_walker(expr, NULL);
	/* The parser sets this when it meets a subquery; the planner then plans it. */
	pstate->p_hasSubLinks = true;
	return expr;
}

static void
subquery_parser_setup(ParseState *pstate, void *arg)
{
	pstate->p_paramref_hook = subquery_param_ref;
	pstate->p_ref_hook_state = arg;
}

/* Prepares sub's statement and keeps it in plan.  With SPI connected. */
void
ec_prepare_subquery(EcTriggerPlan *plan, EcSubquery *sub)
{
	SPIPrepareOptions options;
	MemoryContext old = CurrentMemoryContext;
	SPIPlanPtr	spiplan;

	memset(&options, 0, sizeof(options));
	options.parserSetup = subquery_parser_setup;
	options.parserSetupArg = sub;
	options.parseMode = RAW_PARSE_DEFAULT;
	options.cursorOptions = 0;
	spiplan = SPI_prepare_extended("SELECT $1", &options);
	MemoryContextSwitchTo(old);
	if (spiplan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_internal("could not prepare the %s: %s", sub->what, SPI_result_code_string(SPI_result))));
	if (SPI_keepplan(spiplan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg_internal("could not keep the plan of the %s", sub->what)));
	/* Until this plan is rebuilt (build_plan frees it). */
	old = MemoryContextSwitchTo(plan->cxt);
	plan->spi_plans = lappend(plan->spi_plans, spiplan);
	MemoryContextSwitchTo(old);
	sub->spiplan = spiplan;
}

/*
 * The stored node tree as the executor runs it; or, for a restored plan (stored_fits false), the
 * expression analysed again from its SQL text (restore.c).  NULL where there is none.  An
 * expression with a subquery is returned analysed, not planned, and *sub is what SPI runs of it.
 */
static Expr *
plan_expression(EcTriggerPlan *plan, Datum stored, Datum source, bool stored_fits, Oid relid,
				AttrNumber target, const char *what, EcSubquery **sub)
{
	char	   *form = TextDatumGetCString(stored_fits ? stored : source);
	Node	   *node;
	MemoryContext old;
	Expr	   *expr;

	*sub = NULL;
	if (form[0] == '\0' || target == InvalidAttrNumber)
		return NULL;
	node = stored_fits ? stringToNode(form) : ec_reanalyze(relid, form, target, what);
	old = MemoryContextSwitchTo(plan->cxt);
	if (checkExprHasSubLink(node))
	{
		expr = (Expr *) copyObject(node);
		*sub = make_subquery(node, relid, target, what);
	}
	else
		expr = expression_planner((Expr *) copyObject(node));
	MemoryContextSwitchTo(old);
	return expr;
}

static void
build_plan(EcTriggerPlan *plan, Relation rel)
{
	int			nestlevel;

	if (plan->cxt)
	{
		ListCell   *lc;

		foreach(lc, plan->spi_plans)
			SPI_freeplan(lfirst(lc));
		MemoryContextDelete(plan->cxt);
	}
	plan->spi_plans = NIL;
	plan->cxt = AllocSetContextCreate(CacheMemoryContext, "expand_contract trigger plan",
									  ALLOCSET_SMALL_SIZES);
	plan->npairs = 0;
	plan->lxid = InvalidLocalTransactionId;
	plan->migration_id = 0;
	plan->usage_looked_up = false;
	plan->usage_slot = NULL;
	plan->schema = MemoryContextStrdup(plan->cxt,
									   get_namespace_name(RelationGetNamespace(rel)));

	SPI_connect();
	/* The writer's search_path must not choose what "=" means here. */
	nestlevel = ec_guc_push("search_path", "pg_catalog");
	if (ec_trigger_plan_row(plan->relid) == 1)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum	   *old_attnums,
				   *new_attnums,
				   *ups,
				   *downs,
				   *old_columns,
				   *new_columns,
				   *up_sources,
				   *down_sources;
		int			n1,
					n2,
					n3,
					n4,
					n5,
					n6,
					n7,
					n8;
		bool		isnull;
		bool		stored_fits;
		bool		unfinished;

		plan->new_schema = text_datum_or_null(tuple, desc, 1, plan->cxt);
		plan->new_migration = text_datum_or_null(tuple, desc, 2, plan->cxt);
		plan->old_schema = text_datum_or_null(tuple, desc, 3, plan->cxt);
		plan->old_migration = text_datum_or_null(tuple, desc, 4, plan->cxt);
		stored_fits = ec_origin_is_current(SPI_getvalue(tuple, desc, 11));
		unfinished = DatumGetBool(SPI_getbinval(tuple, desc, 16, &isnull));
		/* Complete with a revert window left the trigger: the tables are the new version now. */
		plan->window = DatumGetBool(SPI_getbinval(tuple, desc, 17, &isnull));
		plan->migration_id = DatumGetInt64(SPI_getbinval(tuple, desc, 18, &isnull));
		/* A restored migration's xids belong to another history: see restore.c. */
		plan->fill_test = !unfinished ? EC_FILL_NONE : stored_fits ? EC_FILL_XMIN : EC_FILL_ALL;
		{
			Datum	   *xids;

			plan->horizon = DatumGetTransactionId(SPI_getbinval(tuple, desc, 9, &isnull));
			xids = array_elements(tuple, desc, 10, XIDOID, &plan->nin_progress);
			plan->in_progress = MemoryContextAlloc(plan->cxt,
												   sizeof(TransactionId) * (plan->nin_progress + 1));
			for (int i = 0; i < plan->nin_progress; i++)
				plan->in_progress[i] = DatumGetTransactionId(xids[i]);
			qsort(plan->in_progress, plan->nin_progress, sizeof(TransactionId), xidComparator);
		}
		old_attnums = array_elements(tuple, desc, 5, INT2OID, &n1);
		new_attnums = array_elements(tuple, desc, 6, INT2OID, &n2);
		ups = array_elements(tuple, desc, 7, TEXTOID, &n3);
		downs = array_elements(tuple, desc, 8, TEXTOID, &n4);
		old_columns = array_elements(tuple, desc, 12, NAMEOID, &n5);
		new_columns = array_elements(tuple, desc, 13, NAMEOID, &n6);
		up_sources = array_elements(tuple, desc, 14, TEXTOID, &n7);
		down_sources = array_elements(tuple, desc, 15, TEXTOID, &n8);
		if (n1 != n2 || n2 != n3 || n3 != n4 || n4 != n5 || n5 != n6 || n6 != n7 || n7 != n8)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("expand_contract.dual_writes arrays for relation %u differ in length", plan->relid)));

		plan->old_attnums = MemoryContextAlloc(plan->cxt, sizeof(AttrNumber) * n1);
		plan->new_attnums = MemoryContextAlloc(plan->cxt, sizeof(AttrNumber) * n1);
		plan->up = MemoryContextAlloc(plan->cxt, sizeof(Expr *) * n1);
		plan->down = MemoryContextAlloc(plan->cxt, sizeof(Expr *) * n1);
		plan->up_sub = MemoryContextAllocZero(plan->cxt, sizeof(EcSubquery *) * n1);
		plan->down_sub = MemoryContextAllocZero(plan->cxt, sizeof(EcSubquery *) * n1);
		for (int i = 0; i < n1; i++)
		{
			if (stored_fits)
			{
				plan->old_attnums[i] = DatumGetInt16(old_attnums[i]);
				plan->new_attnums[i] = DatumGetInt16(new_attnums[i]);
			}
			else
			{
				plan->old_attnums[i] = ec_restored_attnum(plan->relid,
														  NameStr(*DatumGetName(old_columns[i])));
				plan->new_attnums[i] = ec_restored_attnum(plan->relid,
														  NameStr(*DatumGetName(new_columns[i])));
			}
			plan->up[i] = plan_expression(plan, ups[i], up_sources[i], stored_fits, plan->relid,
										  plan->new_attnums[i], "up expression",
										  &plan->up_sub[i]);
			plan->down[i] = plan_expression(plan, downs[i], down_sources[i], stored_fits,
											plan->relid, plan->old_attnums[i], "down expression",
											&plan->down_sub[i]);
		}
		for (int i = 0; i < n1; i++)
		{
			VarCheck	check = {RelationGetDescr(rel), rel, 0};

			if (plan->up[i])
				check_target(rel, plan->new_attnums[i], plan->up[i]);
			if (plan->down[i])
				check_target(rel, plan->old_attnums[i], plan->down[i]);
			check_vars_walker((Node *) plan->up[i], &check);
			check_vars_walker((Node *) plan->down[i], &check);
		}
		plan->npairs = n1;
		plan->new_nspid = get_namespace_oid(plan->new_schema, true);
		plan->old_nspid = plan->old_schema ? get_namespace_oid(plan->old_schema, true) : InvalidOid;
	}
	ec_guc_pop(nestlevel);
	SPI_finish();
}

EcTriggerPlan *
ec_trigger_plan(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	bool		found;
	EcTriggerPlan *plan = hash_search(plan_cache, &relid, HASH_ENTER, &found);

	if (!found)
	{
		plan->cxt = NULL;
		plan->spi_plans = NIL;
		plan->valid = false;
		plan->in_use = false;
		plan->spi_connected = false;
	}
	if (plan->in_use)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the dual-write expressions of table \"%s\" cannot write to it",
						RelationGetRelationName(rel)),
				 errdetail("An up or down expression wrote a row of the table it is computed for, "
						   "which would run the expressions again while they are running."),
				 errhint("Write to the table in a trigger of your own instead.")));
	if (!plan->valid)
	{
		/* Marked valid first: an invalidation arriving while we build must win. */
		plan->valid = true;
		PG_TRY();
		{
			build_plan(plan, rel);
		}
		PG_CATCH();
		{
			plan->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return plan;
}

