/*
 * ops/drop_column.c
 *	  drop_column: hidden from the new version at start, dropped at complete; "down" fills it for
 *	  new-version writes meanwhile.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct DropColumnOp
{
	EcOperation base;
	char	   *table;
	char	   *column;
	char	   *down;
} DropColumnOp;

static void
drop_column_read(EcOperation *base, EcDocObject *o)
{
	DropColumnOp *op = (DropColumnOp *) base;

	op->table = ec_doc_identifier(o, "table", true);
	op->column = ec_doc_identifier(o, "column", true);
	op->down = ec_doc_sql(o, "down", false);
}

/* With "down", the table gets the dual-write triggers. */
static void
drop_column_touches(EcOperation *base, EcTouches *touches)
{
	DropColumnOp *op = (DropColumnOp *) base;

	ec_touch(touches, op->table, op->down ? AccessExclusiveLock : AccessShareLock, true);
}

static void
drop_column_start(EcStartContext *cxt, EcOperation *base)
{
	DropColumnOp *op = (DropColumnOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumn   *col = ec_model_column(table, op->column, false);

	ec_op_require_owner(table);
	if (col->old_attnum)
	{
		char	   *dependent = ec_op_blocking_dependent(cxt, table, col->old_attnum, true);

		if (dependent)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop column \"%s\" of table \"%s\": %s depends on it",
							op->column, op->table, dependent),
					 errhint("Drop the dependent object first, in a \"sql\" operation or before "
							 "the migration.")));
	}
	col->new_name = NULL;
	if (op->down)
	{
		Oid			typid,
					collid;
		int32		typmod;

		if (col->old_attnum == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is new in this migration; \"down\" has nothing to fill",
							op->column)));
		get_atttypetypmodcoll(table->relid, col->old_attnum, &typid, &typmod, &collid);
		(void) ec_op_analyze(table, true, op->down,
						   psprintf("down expression of column \"%s\"", op->column),
						   typid, typmod, false, &col->down);
		col->moves_data = true;
	}
}

const EcOpRoutine ec_op_drop_column = {
	.name = "drop_column",
	.size = sizeof(DropColumnOp),
	.read = drop_column_read,
	.touches = drop_column_touches,
	.start = drop_column_start,
};
