/*
 * ops/drop_constraint.c
 *	  drop_constraint: pgroll's deprecated single-column form of drop_multicolumn_constraint, with
 *	  "up" and "down" as plain expressions for the constraint's one column.  What it does is
 *	  drop_multicolumn_constraint.c's.
 */
#include "postgres.h"

#include "operations.h"

typedef struct DropConstraintOp
{
	EcOperation base;
	char	   *table;
	char	   *name;
	char	   *up;				/* NULL: the column itself */
	char	   *down;
} DropConstraintOp;

static void
drop_constraint_read(EcOperation *base, EcDocObject *o)
{
	DropConstraintOp *op = (DropConstraintOp *) base;

	op->table = ec_doc_identifier(o, "table", true);
	op->name = ec_doc_identifier(o, "name", true);
	op->up = ec_doc_sql(o, "up", false);
	/* Required, as in pgroll: the old version keeps the constraint, "down" must satisfy it. */
	op->down = ec_doc_sql(o, "down", true);
}

static void
drop_constraint_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((DropConstraintOp *) base)->table, AccessExclusiveLock, true);
}

static void
drop_constraint_start(EcStartContext *cxt, EcOperation *base)
{
	DropConstraintOp *op = (DropConstraintOp *) base;
	EcColumnExpr *down = palloc0(sizeof(EcColumnExpr));
	List	   *up = NIL;

	/* The column is the constraint's only one, found by ec_op_drop_constraint_columns. */
	down->expr = op->down;
	if (op->up)
	{
		EcColumnExpr *entry = palloc0(sizeof(EcColumnExpr));

		entry->expr = op->up;
		up = list_make1(entry);
	}
	ec_op_drop_constraint_columns(cxt, op->table, op->name, up, list_make1(down), true);
}

const EcOpRoutine ec_op_drop_constraint = {
	.name = "drop_constraint",
	.size = sizeof(DropConstraintOp),
	.read = drop_constraint_read,
	.touches = drop_constraint_touches,
	.start = drop_constraint_start,
};
