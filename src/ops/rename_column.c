/*
 * ops/rename_column.c
 *	  rename_column: the new name in the new version's view at start, in the table at complete.
 */
#include "postgres.h"


#include "operations.h"

typedef struct RenameColumnOp
{
	EcOperation base;
	char	   *table;
	char	   *from;
	char	   *to;
} RenameColumnOp;

static void
rename_column_read(EcOperation *base, EcDocObject *o)
{
	RenameColumnOp *op = (RenameColumnOp *) base;

	op->table = ec_doc_identifier(o, "table", true);
	op->from = ec_doc_identifier(o, "from", true);
	op->to = ec_doc_identifier(o, "to", true);
}

static void
rename_column_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((RenameColumnOp *) base)->table, AccessShareLock, true);
}

static void
rename_column_start(EcStartContext *cxt, EcOperation *base)
{
	RenameColumnOp *op = (RenameColumnOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumn   *col = ec_model_column(table, op->from, false);

	ec_op_require_owner(table);
	if (ec_model_column(table, op->to, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" already exists", op->to, op->table)));
	col->new_name = pstrdup(op->to);
}

const EcOpRoutine ec_op_rename_column = {
	.name = "rename_column",
	.size = sizeof(RenameColumnOp),
	.read = rename_column_read,
	.touches = rename_column_touches,
	.start = rename_column_start,
};
