/*
 * ops/rename_table.c
 *	  rename_table: the new name in the new version schema at start, in the base schema at complete.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct RenameTableOp
{
	EcOperation base;
	char	   *from;
	char	   *to;
} RenameTableOp;

static void
rename_table_read(EcOperation *base, EcDocObject *o)
{
	RenameTableOp *op = (RenameTableOp *) base;

	op->from = ec_doc_identifier(o, "from", true);
	op->to = ec_doc_identifier(o, "to", true);
}

static void
rename_table_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((RenameTableOp *) base)->from, AccessShareLock, true);
}

static void
rename_table_start(EcStartContext *cxt, EcOperation *base)
{
	RenameTableOp *op = (RenameTableOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->from, false);
	EcTable    *holder;
	Oid			existing;

	ec_op_require_owner(table);
	if (ec_model_table(cxt->model, op->to, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("table \"%s\" already exists in schema \"%s\"", op->to, cxt->model->schema)));
	existing = get_relname_relid(op->to, cxt->model->nspid);
	holder = ec_model_table_by_physical(cxt->model, op->to);
	if (OidIsValid(existing) && !(holder && holder->new_name == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", op->to,
						cxt->model->schema)));
	table->new_name = pstrdup(op->to);
}

const EcOpRoutine ec_op_rename_table = {
	.name = "rename_table",
	.size = sizeof(RenameTableOp),
	.read = rename_table_read,
	.touches = rename_table_touches,
	.start = rename_table_start,
};
