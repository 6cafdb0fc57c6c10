/*
 * ops/drop_multicolumn_constraint.c
 *	  drop_multicolumn_constraint (and drop_constraint, its single-column form, in
 *	  drop_constraint.c): the new version is free of a check, foreign key or unique constraint from
 *	  ec_start on; the old version keeps it until complete.
 *
 * Every column of the constraint is duplicated beside the old one without it (ec_op_rebuild_column:
 * _ec_new_<name>, same type, default, NOT NULL and comment), kept in step by "up" and "down" and
 * filled by the backfill.  A new-version write gets its old columns from "down", and the old columns
 * still carry the constraint: "down" must give them values that satisfy it, or the write fails on it
 * (pgroll requires a "down" for every column for that reason).  At complete the old columns are
 * dropped, and the constraint with them; the copies take their names.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct DropMultiColumnConstraintOp
{
	EcOperation base;
	char	   *table;
	char	   *name;
	List	   *up;				/* EcColumnExpr * */
	List	   *down;
} DropMultiColumnConstraintOp;

static void
drop_multicolumn_constraint_read(EcOperation *base, EcDocObject *o)
{
	DropMultiColumnConstraintOp *op = (DropMultiColumnConstraintOp *) base;

	op->table = ec_doc_identifier(o, "table", true);
	op->name = ec_doc_identifier(o, "name", true);
	op->up = ec_op_read_column_map(o, "up");
	if (ec_doc_get(o, "down") == NULL)
		ec_doc_missing(o, "down");
	op->down = ec_op_read_column_map(o, "down");
}

static void
drop_multicolumn_constraint_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((DropMultiColumnConstraintOp *) base)->table, AccessExclusiveLock, true);
}

/* The model's table with this relid, or NULL (another schema's). */
static EcTable *
table_by_relid(EcModel *model, Oid relid)
{
	ListCell   *lc;

	foreach(lc, model->tables)
	{
		if (((EcTable *) lfirst(lc))->relid == relid)
			return lfirst(lc);
	}
	return NULL;
}

/*
 * The start of both drop operations.  up and down map the constraint's columns (new-version names)
 * to expressions; with single_column their one entry has no column name yet: it is the
 * constraint's only column.
 */
void
ec_op_drop_constraint_columns(EcStartContext *cxt, const char *table_name, const char *name,
							  List *up, List *down, bool single_column)
{
	EcTable    *table = ec_model_table(cxt->model, table_name, false);
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	uint64		nrows;
	Oid			conoid;
	char	   *contype;
	Oid			confrelid;
	int			inherited;
	List	   *columns = NIL;	/* EcColumn * */
	ListCell   *lc;
	bool		isnull;

	ec_op_require_owner(table);
	values[0] = ObjectIdGetDatum(table->relid);
	values[1] = CStringGetTextDatum(name);
	nrows = ec_spi("SELECT c.oid, c.contype::pg_catalog.text, c.confrelid, c.coninhcount, k.attnum"
				   "  FROM pg_catalog.pg_constraint c"
				   "  LEFT JOIN LATERAL pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n) ON true"
				   " WHERE c.conrelid = $1 AND c.conname = $2::pg_catalog.name"
				   " ORDER BY k.n",
				   2, types, values, NULL, SPI_OK_SELECT);
	if (nrows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("constraint \"%s\" of table \"%s\" does not exist", name, table_name)));
	conoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (list_member_oid(table->dropped_constraints, conoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("constraint \"%s\" of table \"%s\" is already dropped by an earlier operation "
						"of this migration", name, table_name)));
	contype = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	confrelid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3,
											   &isnull));
	inherited = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4,
											&isnull));
	if (strcmp(contype, "c") != 0 && strcmp(contype, "f") != 0 && strcmp(contype, "u") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot drop constraint \"%s\" of table \"%s\": it is a %s", name, table_name,
						strcmp(contype, "p") == 0 ? "primary key" :
						strcmp(contype, "x") == 0 ? "exclusion constraint" : "constraint trigger"),
				 errdetail("Only check, foreign key and unique constraints can be dropped this way, as "
						   "in pgroll."),
				 errhint("Drop it in a \"sql\" operation.")));
	if (inherited > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot drop inherited constraint \"%s\" of table \"%s\"", name, table_name)));
	for (uint64 i = 0; i < nrows; i++)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5, &isnull);
		AttrNumber	attnum;
		EcColumn   *col = NULL;

		if (isnull)
			continue;
		attnum = DatumGetInt16(d);
		foreach(lc, table->columns)
		{
			EcColumn   *c = lfirst(lc);

			/* A column an earlier operation rebuilt: the constraint is still on its old one. */
			if ((c->new_attnum == attnum || (ec_op_column_rebuilt(c) && c->old_attnum == attnum)) &&
				c->new_name != NULL)
				col = c;
		}
		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("constraint \"%s\" of table \"%s\" is on column \"%s\", which an earlier "
							"operation of this migration changes or drops", name, table_name,
							get_attname(table->relid, attnum, false))));
		if (col->created && !ec_op_column_rebuilt(col))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("constraint \"%s\" of table \"%s\" is on column \"%s\", which is new in "
							"this migration", name, table_name, col->new_name),
					 errhint("Leave the constraint out of the operation that adds it instead.")));
		if (col->moves_data && !ec_op_column_rebuilt(col))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of table \"%s\" is already changed by an earlier operation "
							"of this migration", col->new_name, table_name)));
		columns = lappend(columns, col);
	}
	if (columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("constraint \"%s\" of table \"%s\" is on no column", name, table_name),
				 errdetail("Only the old version of a column can keep a constraint the new version "
						   "drops."),
				 errhint("Drop it in a \"sql\" operation.")));
	if (single_column && list_length(columns) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("constraint \"%s\" of table \"%s\" is on %d columns", name, table_name,
						list_length(columns)),
				 errhint("Use \"drop_multicolumn_constraint\", with \"up\" and \"down\" for each "
						 "column.")));
	if (single_column)
	{
		char	   *column = ((EcColumn *) linitial(columns))->new_name;

		foreach(lc, list_concat(list_copy(up), down))
			((EcColumnExpr *) lfirst(lc))->column = column;
	}

	/* "up" and "down" map exactly the constraint's columns; "down" all of them. */
	foreach(lc, list_concat(list_copy(up), down))
	{
		EcColumnExpr *entry = lfirst(lc);
		ListCell   *lc2;
		bool		found = false;

		foreach(lc2, columns)
			found |= strcmp(((EcColumn *) lfirst(lc2))->new_name, entry->column) == 0;
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" in \"%s\" is not a column of constraint \"%s\"",
							entry->column, list_member_ptr(up, entry) ? "up" : "down", name),
					 errhint("\"up\" and \"down\" map only the columns of the constraint.")));
	}
	foreach(lc, columns)
	{
		EcColumn   *col = lfirst(lc);

		if (ec_op_column_expr(down, col->new_name) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("field \"down\" has no expression for column \"%s\" of constraint \"%s\"",
							col->new_name, name),
					 errdetail("The old version keeps the constraint until complete: \"down\" must give "
							   "its columns values that satisfy it.")));
	}

	/* Duplicate every column first: a "down" may read another one's new version. */
	foreach(lc, columns)
	{
		EcColumn   *col = lfirst(lc);
		EcColumnRebuild how = {0};

		how.dropped_constraint = conoid;
		ec_op_rebuild_column(cxt, table, col, col->new_name, &how);
	}
	foreach(lc, columns)
	{
		EcColumn   *col = lfirst(lc);
		EcColumnExpr *u = ec_op_column_expr(up, col->new_name);

		ec_op_rebuild_expressions(table, col, u ? u->expr : NULL,
								  ec_op_column_expr(down, col->new_name)->expr);
	}

	/*
	 * Dropping the old column at complete drops a foreign key's triggers on the referenced table,
	 * which takes ACCESS EXCLUSIVE there: complete locks it up front, with the retries.
	 */
	if (OidIsValid(confrelid))
	{
		EcTable    *ref = table_by_relid(cxt->model, confrelid);

		if (ref)
			ref->changed = true;
	}
}

static void
drop_multicolumn_constraint_start(EcStartContext *cxt, EcOperation *base)
{
	DropMultiColumnConstraintOp *op = (DropMultiColumnConstraintOp *) base;

	ec_op_drop_constraint_columns(cxt, op->table, op->name, op->up, op->down, false);
}

const EcOpRoutine ec_op_drop_multicolumn_constraint = {
	.name = "drop_multicolumn_constraint",
	.size = sizeof(DropMultiColumnConstraintOp),
	.read = drop_multicolumn_constraint_read,
	.touches = drop_multicolumn_constraint_touches,
	.start = drop_multicolumn_constraint_start,
};
