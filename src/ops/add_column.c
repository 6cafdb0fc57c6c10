/*
 * ops/add_column.c
 *	  add_column: a new column, _ec_new_<name> until complete, filled from "up" for old-version writes
 *	  and by the backfill for existing rows.
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "operations.h"

typedef struct AddColumnOp
{
	EcOperation base;
	char	   *table;
	EcColumnDef *coldef;
	char	   *up;
} AddColumnOp;

static void
add_column_read(EcOperation *base, EcDocObject *o)
{
	AddColumnOp *op = (AddColumnOp *) base;
	JsonbValue *sub;

	op->table = ec_doc_identifier(o, "table", true);
	if ((sub = ec_doc_get(o, "column")) == NULL)
		ec_doc_missing(o, "column");
	op->coldef = ec_doc_column(sub);
	op->up = ec_doc_sql(o, "up", false);
}

static void
add_column_touches(EcOperation *base, EcTouches *touches)
{
	AddColumnOp *op = (AddColumnOp *) base;

	ec_touch(touches, op->table, AccessExclusiveLock, true);
	if (op->coldef->references && strcmp(op->coldef->references->table, op->table) != 0)
		ec_touch(touches, op->coldef->references->table, ShareRowExclusiveLock, false);
}

static void
add_column_start(EcStartContext *cxt, EcOperation *base)
{
	AddColumnOp *op = (AddColumnOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumnDef *c = op->coldef;
	Oid			typid;
	int32		typmod;
	char	   *type_sql;
	char	   *tmpname;
	char	   *dflt = NULL;
	bool		volatile_default = false;
	const char *up = op->up;
	StringInfoData extra;
	AttrNumber	attnum;
	EcColumn   *col;

	ec_op_require_owner(table);
	if (ec_model_column(table, c->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" already exists", c->name, op->table)));
	if (c->pk)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot add primary key column \"%s\" to existing table \"%s\"", c->name,
						op->table)));

	type_sql = ec_resolve_type(c->type, &typid, &typmod);
	if (c->default_expr)
		dflt = ec_op_default_sql(c->default_expr, c->name, typid, typmod, &volatile_default);
	if (!c->nullable && (dflt == NULL || volatile_default) && up == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"add_column\" of NOT NULL column \"%s\" needs \"up\" or a non-volatile "
						"\"default\"", c->name),
				 errdetail("Existing rows and rows written through the old version need a value."),
				 errhint("Set \"up\", set \"default\", or set \"nullable\": true.")));

	/*
	 * A non-volatile default is stored once in the catalog and costs no rewrite; a volatile one
	 * would rewrite the table under ACCESS EXCLUSIVE, so it is set afterwards (for new rows) and
	 * existing rows get it through the backfill instead.
	 */
	initStringInfo(&extra);
	if (dflt && !volatile_default)
	{
		appendStringInfo(&extra, " DEFAULT %s", dflt);
		if (!c->nullable)
			appendStringInfoString(&extra, " NOT NULL");
	}
	tmpname = ec_temp_name(EC_NEW_COLUMN_PREFIX, c->name);
	attnum = ec_op_add_new_column(cxt, table, tmpname, type_sql, extra.data);
	col = ec_model_add_column(table, attnum, NULL, c->name, true);
	if (c->unique)
		ec_op_queue_unique(cxt, table, attnum, ec_temp_name("", psprintf("%s_%s_key", op->table, c->name)));

	if (volatile_default)
	{
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", ec_op_table_sql(table),
						 quote_identifier(tmpname), dflt));
		if (up == NULL)
			up = c->default_expr;
	}
	if (!c->nullable && (dflt == NULL || volatile_default))
	{
		col->not_null_check = ec_temp_name("_ec_not_null_", c->name);
		ec_op_add_not_valid_check(cxt, table, col->not_null_check,
							psprintf("%s IS NOT NULL", quote_identifier(tmpname)));
	}
	if (c->check)
		ec_op_add_check(cxt, table, c->check);
	if (c->references)
		ec_op_add_foreign_key(cxt, table, list_make1(c->name), c->references);
	if (c->comment)
		ec_op_comment_on_column(table, attnum, c->comment);
	if (up)
	{
		(void) ec_op_analyze(table, false, up, psprintf("up expression of column \"%s\"", c->name),
						   typid, typmod, false, &col->up);
		col->moves_data = true;
	}
}

const EcOpRoutine ec_op_add_column = {
	.name = "add_column",
	.size = sizeof(AddColumnOp),
	.read = add_column_read,
	.touches = add_column_touches,
	.start = add_column_start,
};
