/*
 * ops/alter_column.c
 *	  alter_column: a change of type, nullability, check, unique or references rebuilds the column
 *	  beside the old one (_ec_new_<name>, kept in step by "up" and "down", filled by the backfill,
 *	  swapped in at complete: ec_op_rebuild_column in common.c); a change of name, default or comment
 *	  alone only changes the new version's view until complete.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct AlterColumnOp
{
	EcOperation base;
	char	   *table;
	char	   *column;
	char	   *new_name;
	char	   *type;
	bool		has_nullable;
	bool		nullable;
	bool		has_default;
	char	   *default_expr;	/* NULL with has_default: drop the default */
	bool		has_comment;
	char	   *comment;		/* NULL with has_comment: drop the comment */
	EcCheckDef *check;
	char	   *unique_name;
	EcForeignKeyDef *references;
	char	   *up;
	char	   *down;
} AlterColumnOp;

static void
alter_column_read(EcOperation *base, EcDocObject *o)
{
	AlterColumnOp *op = (AlterColumnOp *) base;
	JsonbValue *sub;

	op->table = ec_doc_identifier(o, "table", true);
	op->column = ec_doc_identifier(o, "column", true);
	op->new_name = ec_doc_identifier(o, "name", false);
	op->type = ec_doc_sql(o, "type", false);
	op->nullable = ec_doc_bool(o, "nullable", false, &op->has_nullable);
	op->default_expr = ec_doc_string(o, "default", false, true, &op->has_default);
	op->comment = ec_doc_string(o, "comment", false, true, &op->has_comment);
	if ((sub = ec_doc_get(o, "check")) != NULL)
		op->check = ec_doc_check(sub);
	if ((sub = ec_doc_get(o, "unique")) != NULL)
	{
		EcDocObject u;

		ec_doc_load(&u, sub, "unique constraint definition");
		op->unique_name = ec_doc_identifier(&u, "name", true);
		ec_doc_finish(&u);
	}
	if ((sub = ec_doc_get(o, "references")) != NULL)
		op->references = ec_doc_column_fk(sub);
	op->up = ec_doc_sql(o, "up", false);
	op->down = ec_doc_sql(o, "down", false);
	if (op->new_name == NULL && op->type == NULL && !op->has_nullable &&
		!op->has_default && !op->has_comment && op->check == NULL &&
		op->unique_name == NULL && op->references == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"alter_column\" operation on column \"%s\" changes nothing", op->column),
				 errhint("Set at least one of \"name\", \"type\", \"nullable\", \"default\", "
						 "\"comment\", \"check\", \"unique\" or \"references\".")));
}

static void
alter_column_touches(EcOperation *base, EcTouches *touches)
{
	AlterColumnOp *op = (AlterColumnOp *) base;

	ec_touch(touches, op->table, AccessExclusiveLock, true);
	if (op->references && strcmp(op->references->table, op->table) != 0)
		ec_touch(touches, op->references->table, ShareRowExclusiveLock, false);
}

/*
 * A column of a table created earlier in this migration: no old version reads the table, so the
 * change is made to the column itself, as a new table would have it.  "up" converts the rows an
 * earlier "sql" operation may have written (USING of the type change); "down" has nothing to do.
 */
static void
alter_created_table_column(EcStartContext *cxt, EcTable *table, EcColumn *col, AlterColumnOp *op)
{
	char	   *tsql = ec_op_table_sql(table);
	const char *column = quote_identifier(ec_op_attname(table, col->new_attnum));
	Oid			typid,
				collid;
	int32		typmod;

	get_atttypetypmodcoll(table->relid, col->new_attnum, &typid, &typmod, &collid);
	if (op->type || op->up)
	{
		char	   *type_sql;
		Node	   *expr;

		if (op->type)
		{
			type_sql = ec_resolve_type(op->type, &typid, &typmod);
			if (ec_is_serial(type_sql))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("cannot change column \"%s\" to a serial type", op->column)));
		}
		else
			type_sql = format_type_extended(typid, typmod,
											FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s%s", tsql, column, type_sql,
						 op->up ? psprintf(" USING %s",
										   ec_op_analyze(table, false, op->up,
														 psprintf("up expression of column \"%s\"",
																  col->new_name),
														 typid, typmod, false, &expr)) : ""));
	}
	if (op->has_default)
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s %s", tsql, column,
						 op->default_expr ?
						 psprintf("SET DEFAULT %s", ec_op_default_sql(op->default_expr, col->new_name,
																	  typid, typmod, NULL)) :
						 "DROP DEFAULT"));
	if (op->has_nullable)
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s %s NOT NULL", tsql, column,
						 op->nullable ? "DROP" : "SET"));
	if (op->has_comment)
		ec_op_comment_on_column(table, col->new_attnum, op->comment);
	if (op->check)
		ec_op_add_check(cxt, table, op->check);
	if (op->unique_name)
		ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE (%s)", tsql,
						 quote_identifier(op->unique_name), column));
	if (op->references)
		ec_op_add_foreign_key(cxt, table, list_make1(col->new_name), op->references);
}

static void
alter_column_start(EcStartContext *cxt, EcOperation *base)
{
	AlterColumnOp *op = (AlterColumnOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumn   *col = ec_model_column(table, op->column, false);
	bool		moves = op->type || op->has_nullable || op->check || op->unique_name || op->references;

	ec_op_require_owner(table);
	if (op->new_name && strcmp(op->new_name, op->column) != 0)
	{
		if (ec_model_column(table, op->new_name, true) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("column \"%s\" of table \"%s\" already exists", op->new_name, op->table)));
		col->new_name = pstrdup(op->new_name);
	}

	if (table->created)
	{
		alter_created_table_column(cxt, table, col, op);
		return;
	}
	if (moves)
	{
		EcColumnRebuild how = {0};

		/* An earlier rebuild of the column composes with this one (ec_op_rebuild_column). */
		if (col->old_attnum == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of table \"%s\" is added by an earlier operation of this "
							"migration", op->column, op->table),
					 errhint("Give it its type, nullability and checks in the \"add_column\" operation.")));
		if ((col->created || col->moves_data) && !ec_op_column_rebuilt(col))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of table \"%s\" is already changed by an earlier operation "
							"of this migration", op->column, op->table)));
		how.type = op->type;
		how.has_nullable = op->has_nullable;
		how.nullable = op->nullable;
		how.has_default = op->has_default;
		how.default_expr = op->default_expr;
		how.has_comment = op->has_comment;
		how.comment = op->comment;
		ec_op_rebuild_column(cxt, table, col, op->column, &how);
		ec_op_rebuild_expressions(table, col, op->up, op->down);

		if (op->check)
			ec_op_add_check(cxt, table, op->check);
		if (op->unique_name)
			ec_op_queue_unique(cxt, table, col->new_attnum, op->unique_name);
		if (op->references)
			ec_op_add_foreign_key(cxt, table, list_make1(col->new_name), op->references);
		return;
	}

	/* No data moves: default and comment change the new version's view now, the table at complete. */
	if (op->has_default)
	{
		Oid			typid,
					collid;
		int32		typmod;
		char	   *dflt;

		get_atttypetypmodcoll(table->relid, col->new_attnum, &typid, &typmod, &collid);
		dflt = op->default_expr ? ec_op_default_sql(op->default_expr, col->new_name, typid, typmod, NULL)
			: NULL;
		if (col->created)
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s %s", ec_op_table_sql(table),
							 quote_identifier(ec_op_attname(table, col->new_attnum)),
							 dflt ? psprintf("SET DEFAULT %s", dflt) : "DROP DEFAULT"));
		else
		{
			col->default_changed = true;
			col->new_default = dflt;
		}
	}
	if (op->has_comment)
	{
		if (col->created)
			ec_op_comment_on_column(table, col->new_attnum, op->comment);
		else
		{
			col->comment_changed = true;
			col->new_comment = op->comment ? pstrdup(op->comment) : NULL;
		}
	}
}

const EcOpRoutine ec_op_alter_column = {
	.name = "alter_column",
	.size = sizeof(AlterColumnOp),
	.read = alter_column_read,
	.touches = alter_column_touches,
	.start = alter_column_start,
};
