/*
 * expr.c
 *	  User expressions (up, down, default, check) and type names, read with PostgreSQL's own parser.
 *
 * Expressions from a migration document are never pasted into SQL.  Each is parsed as exactly one
 * expression (a semicolon, a FROM clause or a second target is a syntax error, so nothing can ride
 * along), analysed against the table as one version sees it, coerced to the column's type, and then
 * either stored as a node tree for the trigger or deparsed by ruleutils into SQL over the table's
 * physical column names, schema-qualified so that no later search_path changes its meaning.
 *
 * "up" and "down" may also be written as pgroll users write them.  pgroll pastes each into its
 * PL/pgSQL trigger as NEW.col = (<text>), parenthesised unless it starts with "(", so a text that
 * starts with SELECT (or WITH, VALUES, TABLE) is a scalar subquery there: one column, its one row's
 * value, NULL for no row, and "more than one row returned by a subquery used as an expression" at
 * run time for more.  Here such a text is parsed as one query and made the subquery node that
 * "(<query>)" would parse to, never by wrapping the text; and, as in any expression, subqueries
 * may read other tables (scalar, EXISTS, IN, ARRAY).  A subquery without FROM, WHERE or anything
 * else that could change its row count (pgroll's "SELECT CASE WHEN ... END") is its target
 * expression, and is stored as that: it costs nothing over the plain form.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "expand_contract.h"

/*
 * Errors in a user's expression point into the expression, not into the ec_start call that carried
 * it: the position becomes an internal one, shown under the expression's own text.
 */
static void
expression_error_callback(void *arg)
{
	const char *source = arg;
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery(source);
	}
}

#define EC_EXPRESSION_ERRORS_BEGIN(source) \
	do { \
		ErrorContextCallback ec_callback; \
		ec_callback.callback = expression_error_callback; \
		ec_callback.arg = (void *) (source); \
		ec_callback.previous = error_context_stack; \
		error_context_stack = &ec_callback

#define EC_EXPRESSION_ERRORS_END() \
		error_context_stack = ec_callback.previous; \
	} while (0)

static Node *parse_expression(const char *source, const char *what, bool allow_query);

/* Parses source as one SQL expression; "what" names it in errors (e.g. up expression of column "x"). */
Node *
ec_parse_expression(const char *source, const char *what)
{
	Node	   *result;

	EC_EXPRESSION_ERRORS_BEGIN(source);
	result = parse_expression(source, what, false);
	EC_EXPRESSION_ERRORS_END();
	return result;
}

static bool
token_is_keyword(int token, const char *keyword)
{
	int			kwnum = ScanKeywordLookup(keyword, &ScanKeywords);

	return kwnum >= 0 && token == ScanKeywordTokens[kwnum];
}

/*
 * Does source begin with a keyword that begins a query (SELECT, WITH, VALUES, TABLE)?  Only the
 * first token is read, by the core scanner, so comments, case and quoting are as the parser sees
 * them: a column named "select" is not a query.  *location: where the token starts.
 */
static bool
starts_with_query(const char *source, int *location)
{
	core_yy_extra_type yyextra;
	core_yyscan_t scanner;
	core_YYSTYPE lval;
	YYLTYPE		loc = 0;
	int			token;

	scanner = scanner_init(source, &yyextra, &ScanKeywords, ScanKeywordTokens);
	token = core_yylex(&lval, &loc, scanner);
	scanner_finish(scanner);
	*location = loc;
	return token_is_keyword(token, "select") || token_is_keyword(token, "with") ||
		token_is_keyword(token, "values") || token_is_keyword(token, "table");
}

/*
 * The query form of "up" and "down" (see the file header): the text is parsed as one statement,
 * which must be a query, and becomes the scalar subquery node that the grammar makes of
 * "(<query>)".  What could not be one value of one row is refused here, before analysis: more
 * statements, INTO, row locks, more than one column.
 */
static Node *
parse_query_expression(const char *source, const char *what, int location)
{
	List	   *raw = raw_parser(source, RAW_PARSE_DEFAULT);
	RawStmt    *stmt;
	SelectStmt *select;
	SubLink    *sublink;

	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what),
				 errdetail("A query there must be one statement.")));
	stmt = linitial_node(RawStmt, raw);
	if (!IsA(stmt->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what),
				 errdetail("A query there must be a SELECT, not a statement that writes.")));
	select = (SelectStmt *) stmt->stmt;
	if (select->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must not be SELECT ... INTO", what),
				 errdetail("Its value is the query's one column; INTO would create a table.")));
	if (select->lockingClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s must not lock rows", what),
				 errdetail("It has FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE or FOR KEY SHARE.")));
	if (select->op == SETOP_NONE && select->valuesLists == NIL &&
		list_length(select->targetList) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must yield one value", what),
				 errdetail("Its SELECT list has %d entries; it must have one.",
						   list_length(select->targetList))));

	sublink = makeNode(SubLink);
	sublink->subLinkType = EXPR_SUBLINK;
	sublink->subLinkId = 0;
	sublink->testexpr = NULL;
	sublink->operName = NIL;
	sublink->subselect = (Node *) select;
	sublink->location = location;
	return (Node *) sublink;
}

static Node *
parse_expression(const char *source, const char *what, bool allow_query)
{
	List	   *raw;
	RawStmt    *stmt;
	SelectStmt *select;
	ResTarget  *target;
	int			location;

	if (allow_query && starts_with_query(source, &location))
		return parse_query_expression(source, what, location);

	raw = raw_parser(source, RAW_PARSE_PLPGSQL_EXPR);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what)));
	stmt = linitial_node(RawStmt, raw);
	select = (SelectStmt *) stmt->stmt;

	if (!IsA(select, SelectStmt) || select->op != SETOP_NONE || select->withClause != NULL ||
		select->valuesLists != NIL ||
		list_length(select->targetList) != 1 || select->fromClause != NIL ||
		select->whereClause != NULL || select->groupClause != NIL ||
		select->havingClause != NULL || select->windowClause != NIL ||
		select->sortClause != NIL || select->limitCount != NULL ||
		select->limitOffset != NULL || select->lockingClause != NIL ||
		select->distinctClause != NIL || select->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what),
				 errdetail("The text given was: %s", source),
				 allow_query ?
				 errhint("A query (SELECT ... FROM ...) must start with SELECT or be written "
						 "in parentheses.") : 0));

	target = linitial_node(ResTarget, select->targetList);
	if (target->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what),
				 errdetail("It must not name its result with AS.")));
	return target->val;
}

/*
 * While an up or down expression is analysed: the row it is computed from is the only range table
 * entry of the outermost level, root.  names: the column names the version gives it.
 */
typedef struct RowScope
{
	ParseState *root;
	char	  **names;
	int			nnames;
} RowScope;

/*
 * A name that a subquery resolves to a column of its own tables, but that is also a column of the
 * row, is ambiguous, as in pgroll: there the row's columns are PL/pgSQL variables, and PL/pgSQL
 * refuses a name that is both (variable_conflict = error).  Resolving it silently to the inner
 * column, as SQL's scoping would, changes what the author meant (lookup.k = k becomes always true).
 */
static Node *
row_name_conflict(ParseState *pstate, ColumnRef *cref, Node *var)
{
	RowScope   *scope = pstate->p_ref_hook_state;
	int			levels = 0;
	const char *name;

	if (var == NULL || pstate == scope->root || list_length(cref->fields) != 1 ||
		!IsA(linitial(cref->fields), String))
		return NULL;
	for (ParseState *p = pstate; p != NULL && p != scope->root; p = p->parentParseState)
		levels++;
	/* Found in the row itself: no nearer table has that name. */
	if (IsA(var, Var) && ((Var *) var)->varlevelsup == levels)
		return NULL;
	name = strVal(linitial(cref->fields));
	for (int i = 0; i < scope->nnames; i++)
	{
		if (strcmp(scope->names[i], name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_AMBIGUOUS_COLUMN),
					 errmsg("column reference \"%s\" is ambiguous", name),
					 errdetail("It could refer to the column of the row being written or to a "
							   "column of a table in the subquery."),
					 errhint("Qualify the subquery's column with its table's name or alias."),
					 parser_errposition(pstate, cref->location)));
	}
	return NULL;
}

/* Where an expression calls a set-returning function at its own level, or -1. */
static bool
locate_srf_walker(Node *node, int *location)
{
	if (node == NULL)
		return false;
	if ((IsA(node, FuncExpr) && ((FuncExpr *) node)->funcretset) ||
		(IsA(node, OpExpr) && ((OpExpr *) node)->opretset))
	{
		*location = exprLocation(node);
		return true;
	}
	return expression_tree_walker(node, locate_srf_walker, location);
}

/*
 * An up or down expression computes one value from one row: aggregates, window functions and
 * set-returning functions of the row's own level make no sense there (inside a subquery they
 * belong to the subquery and are fine).  The query form's own SELECT list must not return a set
 * either: pgroll's meaning is one value.
 */
static void
check_row_level(ParseState *pstate, Node *expr, const char *what)
{
	int			location = -1;

	if (pstate->p_hasAggs)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("aggregate functions are not allowed in %s", what),
				 errhint("To aggregate rows of a table, use a subquery, as in "
						 "(SELECT max(v) FROM t WHERE ...)."),
				 parser_errposition(pstate, locate_agg_of_level(expr, 0))));
	if (pstate->p_hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("window functions are not allowed in %s", what),
				 parser_errposition(pstate, locate_windowfunc(expr))));
	if (pstate->p_hasTargetSRFs ||
		(IsA(expr, SubLink) && ((Query *) ((SubLink *) expr)->subselect)->hasTargetSRFs))
	{
		(void) locate_srf_walker(IsA(expr, SubLink) ?
								 (Node *) ((Query *) ((SubLink *) expr)->subselect)->targetList :
								 expr, &location);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-returning functions are not allowed in %s", what),
				 errdetail("It must yield one value for each row."),
				 parser_errposition(pstate, location)));
	}
}

typedef struct RowCheck
{
	ParseState *pstate;
	const char *what;
	int			depth;			/* subquery levels between here and the row */
} RowCheck;

/*
 * The row's system columns and whole-row references are refused: the trigger and the backfill
 * would see different ones (a new row has no ctid yet).  Other tables' are fine.  Also refused:
 * row locks in any subquery (a subquery in a dual-write expression reads; it runs for every
 * write, and the trigger runs it read-only).
 */
static bool
check_row_references_walker(Node *node, RowCheck *check)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == check->depth && var->varattno <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("%s cannot refer to a system column or to the whole row",
							check->what),
					 parser_errposition(check->pstate, var->location)));
		return false;
	}
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		bool		result;

		if (query->rowMarks != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s must not lock rows", check->what),
					 errdetail("It has FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE or FOR KEY "
							   "SHARE.")));
		check->depth++;
		result = query_tree_walker(query, check_row_references_walker, check, 0);
		check->depth--;
		return result;
	}
	return expression_tree_walker(node, check_row_references_walker, check);
}

/*
 * A scalar subquery that reads no table and cannot change its row count, such as pgroll's
 * "SELECT CASE WHEN ... END": exactly one row, whose value is its target expression.
 */
static bool
is_trivial_subquery(SubLink *sublink)
{
	Query	   *query = (Query *) sublink->subselect;

	return sublink->subLinkType == EXPR_SUBLINK && IsA(query, Query) &&
		query->commandType == CMD_SELECT && query->utilityStmt == NULL &&
		query->rtable == NIL && query->jointree != NULL && query->jointree->fromlist == NIL &&
		query->jointree->quals == NULL && query->cteList == NIL &&
		query->setOperations == NULL && !query->hasAggs && !query->hasWindowFuncs &&
		!query->hasTargetSRFs && !query->hasModifyingCTE && query->groupClause == NIL &&
		query->groupingSets == NIL && query->havingQual == NULL &&
		query->distinctClause == NIL && query->sortClause == NIL &&
		query->limitOffset == NULL && query->limitCount == NULL && query->rowMarks == NIL &&
		list_length(query->targetList) == 1 &&
		!linitial_node(TargetEntry, query->targetList)->resjunk;
}

/*
 * Replaces each trivial subquery with its target expression, one level up: the same value, and
 * the trigger evaluates it compiled (an expression with a subquery needs SPI).
 */
static Node *
flatten_trivial_subqueries(Node *node, void *context)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, SubLink) && is_trivial_subquery((SubLink *) node))
	{
		Query	   *query = (Query *) ((SubLink *) node)->subselect;
		Node	   *expr = copyObject((Node *) linitial_node(TargetEntry, query->targetList)->expr);

		IncrementVarSublevelsUp(expr, -1, 1);
		return flatten_trivial_subqueries(expr, context);
	}
	return expression_tree_mutator(node, flatten_trivial_subqueries, context);
}

static Node *
coerce_or_fail(ParseState *pstate, Node *expr, Oid target_type, int32 target_typmod,
			   const char *what)
{
	Oid			source_type = exprType(expr);
	Node	   *coerced;

	coerced = coerce_to_target_type(pstate, expr, source_type, target_type, target_typmod,
									COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
	if (coerced == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s is of type %s but must be of type %s", what,
						format_type_be(source_type), format_type_be(target_type)),
				 errhint("Rewrite or cast the expression.")));
	return coerced;
}

/*
 * Analyses an expression over one row of relid, as a version sees it: names[i] is the name that
 * version gives the i-th non-dropped attribute, or "" where it does not see that attribute (no
 * identifier can be empty, so the user cannot reach it); names NULL: the physical names.  The
 * result is coerced to the target type, or to boolean for a check constraint.
 *
 * An up or down expression (is_check false) may be a query or contain subqueries over other
 * tables; a check constraint may not (PostgreSQL's CHECK does not allow them).
 */
Node *
ec_analyze_row_expression(const char *source, const char *what, Oid relid, char **names,
						  int nnames, Oid target_type, int32 target_typmod, bool is_check)
{
	Node	   *raw;
	ParseState *pstate = make_parsestate(NULL);
	Relation	rel;
	Alias	   *alias;
	ParseNamespaceItem *nsitem;
	Node	   *expr;
	RowScope	scope;
	RowCheck	check;

	EC_EXPRESSION_ERRORS_BEGIN(source);
	raw = parse_expression(source, what, !is_check);
	pstate->p_sourcetext = source;
	rel = table_open(relid, AccessShareLock);
	alias = makeAlias(RelationGetRelationName(rel), NIL);
	for (int i = 0; i < nnames; i++)
		alias->colnames = lappend(alias->colnames, makeString(pstrdup(names[i])));
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, alias, false, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);

	if (is_check)
	{
		expr = transformExpr(pstate, raw, EXPR_KIND_CHECK_CONSTRAINT);
		expr = coerce_to_boolean(pstate, expr, "CHECK");
	}
	else
	{
		TupleDesc	desc = RelationGetDescr(rel);

		scope.root = pstate;
		scope.names = names;
		scope.nnames = nnames;
		if (names == NULL)
		{
			scope.names = palloc(sizeof(char *) * (desc->natts + 1));
			scope.nnames = 0;
			for (int i = 0; i < desc->natts; i++)
			{
				if (!TupleDescAttr(desc, i)->attisdropped)
					scope.names[scope.nnames++] = NameStr(TupleDescAttr(desc, i)->attname);
			}
		}
		pstate->p_post_columnref_hook = row_name_conflict;
		pstate->p_ref_hook_state = &scope;

		/* A SELECT list item: subqueries allowed; what is not one value is refused below. */
		expr = transformExpr(pstate, raw, EXPR_KIND_SELECT_TARGET);
		check_row_level(pstate, expr, what);
		expr = coerce_or_fail(pstate, expr, target_type, target_typmod, what);
	}
	assign_expr_collations(pstate, expr);
	check.pstate = pstate;
	check.what = what;
	check.depth = 0;
	(void) check_row_references_walker(expr, &check);
	if (!is_check)
		expr = flatten_trivial_subqueries(expr, NULL);
	table_close(rel, NoLock);
	EC_EXPRESSION_ERRORS_END();
	free_parsestate(pstate);
	return expr;
}

/* Analyses a column default: no column references, coerced to the column's type. */
Node *
ec_analyze_default(const char *source, const char *what, Oid target_type, int32 target_typmod)
{
	Node	   *raw = ec_parse_expression(source, what);
	ParseState *pstate = make_parsestate(NULL);
	Node	   *expr;

	pstate->p_sourcetext = source;
	EC_EXPRESSION_ERRORS_BEGIN(source);
	expr = transformExpr(pstate, raw, EXPR_KIND_COLUMN_DEFAULT);
	expr = coerce_or_fail(pstate, expr, target_type, target_typmod, what);
	assign_expr_collations(pstate, expr);
	EC_EXPRESSION_ERRORS_END();
	free_parsestate(pstate);
	return expr;
}

/*
 * SQL text for an analysed expression, with Vars named by relid's current physical column names and
 * every object outside pg_catalog schema-qualified.
 */
char *
ec_deparse(Node *expr, Oid relid)
{
	List	   *context = NIL;
	char	   *result;
	int			nestlevel = ec_guc_push("search_path", "pg_catalog");

	if (OidIsValid(relid))
		context = deparse_context_for(get_rel_name(relid), relid);
	result = deparse_expression(expr, context, false, false);
	ec_guc_pop(nestlevel);
	return result;
}

bool
ec_expr_is_volatile(Node *expr)
{
	return contain_volatile_functions(expr);
}

static const char *const serial_names[] = {"smallserial", "serial2", "serial", "serial4",
"bigserial", "serial8", NULL};

bool
ec_is_serial(const char *type_sql)
{
	for (int i = 0; serial_names[i] != NULL; i++)
		if (strcmp(type_sql, serial_names[i]) == 0)
			return true;
	return false;
}

/*
 * Resolves a type name from the document.  Returns the SQL text to use in DDL: the serial
 * pseudo-types as their keyword, any real type formatted from its OID (schema-qualified).
 */
char *
ec_resolve_type(const char *source, Oid *typid, int32 *typmod)
{
	static const struct
	{
		const char *name;
		Oid			type;
	}			serials[] =
	{
		{"smallserial", INT2OID}, {"serial2", INT2OID}, {"serial", INT4OID},
		{"serial4", INT4OID}, {"bigserial", INT8OID}, {"serial8", INT8OID}
	};
	TypeName   *typename;
	char	   *trimmed = pstrdup(source);
	int			len;

	while (*trimmed == ' ')
		trimmed++;
	len = strlen(trimmed);
	while (len > 0 && trimmed[len - 1] == ' ')
		trimmed[--len] = '\0';
	for (int i = 0; i < lengthof(serials); i++)
	{
		if (pg_strcasecmp(trimmed, serials[i].name) == 0)
		{
			*typid = serials[i].type;
			*typmod = -1;
			return pstrdup(serials[i].name);
		}
	}

	EC_EXPRESSION_ERRORS_BEGIN(source);
	typename = ec_type_string_to_type_name(source);
	typenameTypeIdAndMod(NULL, typename, typid, typmod);
	EC_EXPRESSION_ERRORS_END();
	if (get_typtype(*typid) == TYPTYPE_PSEUDO)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("column cannot be of pseudo-type %s", format_type_be(*typid))));
	return format_type_extended(*typid, *typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
}
