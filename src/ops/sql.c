/*
 * ops/sql.c
 *	  sql: raw SQL, "up" at start (or at complete with "onComplete"), "down" at rollback.
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "operations.h"

typedef struct SqlOp
{
	EcOperation base;
	char	   *up;
	char	   *down;
	bool		on_complete;
} SqlOp;

static void
sql_read(EcOperation *base, EcDocObject *o)
{
	SqlOp	   *op = (SqlOp *) base;

	op->up = ec_doc_sql(o, "up", true);
	op->down = ec_doc_sql(o, "down", false);
	op->on_complete = ec_doc_bool(o, "onComplete", false, NULL);
	if (op->on_complete && op->down != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"sql\" operation cannot have both \"down\" and \"onComplete\"")));
}

static void
sql_start(EcStartContext *cxt, EcOperation *base)
{
	SqlOp *op = (SqlOp *) base;
	int			nestlevel;

	if (op->on_complete)
	{
		cxt->complete_tail = lappend(cxt->complete_tail, pstrdup(op->up));
		return;
	}
	nestlevel = ec_guc_push("search_path", quote_identifier(cxt->model->schema));
	ec_op_run(cxt, op->up, op->down);
	ec_guc_pop(nestlevel);
	ec_model_refresh(cxt->model);
}

const EcOpRoutine ec_op_sql = {
	.name = "sql",
	.size = sizeof(SqlOp),
	.read = sql_read,
	.touches = NULL,
	.start = sql_start,
};
