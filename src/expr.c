/*
 * expr.c
 *	  User expressions (up, down, default, check) and type names, read with PostgreSQL's own parser.
 *
 * Expressions from a migration document are never pasted into SQL.  Each is parsed as exactly one
 * expression (a semicolon, a FROM clause or a second target is a syntax error, so nothing can ride
 * along), analysed against the table as one version sees it, coerced to the column's type, and then
 * either stored as a node tree for the trigger or deparsed by ruleutils into SQL over the table's
 * physical column names, schema-qualified so that no later search_path changes its meaning.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
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

static Node *parse_expression(const char *source, const char *what);

/* Parses source as one SQL expression; "what" names it in errors (e.g. up expression of column "x"). */
Node *
ec_parse_expression(const char *source, const char *what)
{
	Node	   *result;

	EC_EXPRESSION_ERRORS_BEGIN(source);
	result = parse_expression(source, what);
	EC_EXPRESSION_ERRORS_END();
	return result;
}

static Node *
parse_expression(const char *source, const char *what)
{
	List	   *raw;
	RawStmt    *stmt;
	SelectStmt *select;
	ResTarget  *target;

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
				 errdetail("The text given was: %s", source)));

	target = linitial_node(ResTarget, select->targetList);
	if (target->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single SQL expression", what),
				 errdetail("It must not name its result with AS.")));
	return target->val;
}

static bool
reject_system_columns_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *) node)->varattno <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("%s cannot refer to a system column or to the whole row",
						(const char *) context)));
	return expression_tree_walker(node, reject_system_columns_walker, context);
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
 * identifier can be empty, so the user cannot reach it).  The result is coerced to the target type,
 * or to boolean for a check constraint.
 */
Node *
ec_analyze_row_expression(const char *source, const char *what, Oid relid, char **names,
						  int nnames, Oid target_type, int32 target_typmod, bool is_check)
{
	Node	   *raw = ec_parse_expression(source, what);
	ParseState *pstate = make_parsestate(NULL);
	Relation	rel;
	Alias	   *alias;
	ParseNamespaceItem *nsitem;
	Node	   *expr;

	pstate->p_sourcetext = source;
	EC_EXPRESSION_ERRORS_BEGIN(source);
	rel = table_open(relid, AccessShareLock);
	alias = makeAlias(RelationGetRelationName(rel), NIL);
	for (int i = 0; i < nnames; i++)
		alias->colnames = lappend(alias->colnames, makeString(pstrdup(names[i])));
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, alias, false, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);

	expr = transformExpr(pstate, raw,
						 is_check ? EXPR_KIND_CHECK_CONSTRAINT : EXPR_KIND_GENERATED_COLUMN);
	if (is_check)
		expr = coerce_to_boolean(pstate, expr, "CHECK");
	else
		expr = coerce_or_fail(pstate, expr, target_type, target_typmod, what);
	assign_expr_collations(pstate, expr);
	reject_system_columns_walker(expr, (void *) what);
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
