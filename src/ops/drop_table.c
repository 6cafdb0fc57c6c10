/*
 * ops/drop_table.c
 *	  drop_table: hidden from the new version at start, still served to the old one, dropped at
 *	  complete.
 */
#include "postgres.h"


#include "operations.h"

typedef struct DropTableOp
{
	EcOperation base;
	char	   *name;
} DropTableOp;

static void
drop_table_read(EcOperation *base, EcDocObject *o)
{
	((DropTableOp *) base)->name = ec_doc_identifier(o, "name", true);
}

static void
drop_table_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((DropTableOp *) base)->name, AccessShareLock, true);
}

static void
drop_table_start(EcStartContext *cxt, EcOperation *base)
{
	DropTableOp *op = (DropTableOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->name, false);

	ec_op_require_owner(table);
	table->new_name = NULL;
}

const EcOpRoutine ec_op_drop_table = {
	.name = "drop_table",
	.size = sizeof(DropTableOp),
	.read = drop_table_read,
	.touches = drop_table_touches,
	.start = drop_table_start,
};
