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
 * version schema of the table's schema on the session's effective search_path, else the old version.
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

PG_FUNCTION_INFO_V1(ec_dual_write);
PG_FUNCTION_INFO_V1(ec_writes_new_version);

/*
 * Set in the backfill worker to the table it is filling: its batch statement writes both columns
 * itself, so the trigger leaves that table's rows alone.  Writes that the migration's expressions
 * make to other tables still go through their triggers.
 */
Oid			ec_backfill_relid = InvalidOid;

typedef enum EcFillTest
{
	EC_FILL_XMIN,				/* those written before the horizon (ec_row_unfilled) */
	EC_FILL_ALL,				/* restored, not adopted yet, backfill unfinished: every row */
	EC_FILL_NONE				/* the backfill has finished */
} EcFillTest;

typedef struct EcTriggerPlan
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below, but the per-transaction state */

	char	   *schema;			/* the table's schema, an accepted name for the old version */
	char	   *new_schema;
	char	   *new_migration;
	char	   *old_schema;		/* NULL: the old version is the base tables */
	char	   *old_migration;
	Oid			new_nspid;
	Oid			old_nspid;
	EcFillTest	fill_test;		/* which rows the backfill has still to fill: */
	TransactionId horizon;		/* EC_FILL_XMIN: rows last written before it, */
	int			nin_progress;	/* unless by one of these (sorted): they wrote through us */
	TransactionId *in_progress;

	int			npairs;
	AttrNumber *old_attnums;	/* 0: no old column */
	AttrNumber *new_attnums;	/* 0: no new column */
	Expr	  **up;				/* planned (analysed only, where up_sub); NULL: none */
	Expr	  **down;
	struct EcSubquery **up_sub; /* non-NULL: the expression has a subquery, run by SPI */
	struct EcSubquery **down_sub;
	List	   *spi_plans;		/* every SPIPlanPtr kept for this plan, freed with it */
	bool		in_use;			/* an expression of this plan is being evaluated */

	/* Execution state, valid in transaction lxid only; lives in a child of TopTransactionContext. */
	LocalTransactionId lxid;
	struct EcEval **up_eval;	/* NULL: no expression */
	struct EcEval **down_eval;
	ExprContext *econtext;
	TupleTableSlot *filled;		/* a row after its new columns were filled */
	int		   *columns;		/* scratch for heap_modify_tuple_by_cols */
	Datum	   *values;
	bool	   *nulls;
	bool		spi_connected;	/* SPI connected during this call */
} EcTriggerPlan;

/*
 * An expression with a subquery: the analysed tree, with parameters $1..$n that stand for the
 * row's columns in place of its Vars, run as "SELECT $1" (see the file header).
 */
typedef struct EcSubquery
{
	Node	   *expr;
	int			nparams;
	AttrNumber *attnums;		/* parameter $i is the row's column attnums[i - 1] */
	Oid		   *types;
	Oid			target_type;	/* of the column it computes, as expr is */
	int16		target_len;
	bool		target_byval;
	char	   *what;			/* "up expression for column ..." for the error context */
	SPIPlanPtr	spiplan;		/* prepared on first use */
} EcSubquery;

/* One up or down expression, ready to run in this transaction. */
typedef struct EcEval
{
	ExprState  *state;			/* compiled; NULL for a subquery */
	EcSubquery *sub;
	ParamListInfo params;		/* sub's parameters: the row's columns */
} EcEval;

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
static void
prepare_subquery(EcTriggerPlan *plan, EcSubquery *sub)
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
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(plan->relid)};
	int			rc;
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
	plan->schema = MemoryContextStrdup(plan->cxt,
									   get_namespace_name(RelationGetNamespace(rel)));

	SPI_connect();
	/* The writer's search_path must not choose what "=" means here. */
	nestlevel = ec_guc_push("search_path", "pg_catalog");
	rc = SPI_execute_with_args("SELECT d.new_version_schema::text, d.new_migration,"
							   "       d.old_version_schema::text, d.old_migration,"
							   "       d.old_attnums, d.new_attnums, d.up_exprs, d.down_exprs,"
							   "       m.trigger_xid, m.in_progress_xids, m.origin,"
							   "       d.old_columns, d.new_columns, d.up_sources, d.down_sources,"
							   "       EXISTS (SELECT FROM expand_contract.tasks t"
							   "                WHERE t.migration_id = d.migration_id AND t.relid = d.relid"
							   "                  AND t.kind = 'backfill' AND t.state <> 'done')"
							   "  FROM expand_contract.dual_writes d"
							   "  JOIN expand_contract.migrations m ON m.id = d.migration_id"
							   " WHERE d.relid = $1::regclass",
							   1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("could not read expand_contract.dual_writes: %s", SPI_result_code_string(rc))));
	if (SPI_processed == 1)
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

static EcTriggerPlan *
get_plan(Relation rel)
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
		if (setting_names(ec_version_setting, plan->old_schema, plan->old_migration) ||
			strcmp(ec_version_setting, plan->schema) == 0)
			return false;
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
	return false;
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
		prepare_subquery(plan, sub);
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
	plan = get_plan(trigdata->tg_relation);
	if (plan->npairs == 0)
		return PointerGetDatum(tuple);

	from_new = !backfill && writer_is_new(plan);
	prepare_execution(plan, trigdata->tg_relation);

	/*
	 * The expressions' values live in the plan's per-row state until the row is built: an
	 * expression that writes to this table (a function it calls) would re-enter the trigger and
	 * reset that state underneath (see get_plan).
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
	plan = get_plan(rel);
	result = plan->npairs > 0 && writer_is_new(plan);
	relation_close(rel, AccessShareLock);
	PG_RETURN_BOOL(result);
}
