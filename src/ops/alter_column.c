/*
 * ops/alter_column.c
 *	  alter_column: a change of type, nullability, check, unique or references rebuilds the column
 *	  beside the old one (_ec_new_<name>, kept in step by "up" and "down", filled by the backfill,
 *	  swapped in at complete); a change of name, default or comment alone only changes the new
 *	  version's view until complete.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "commands/comment.h"
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

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

/* Sequences owned by a column (serial): they must follow the column that replaces it. */
static List *
owned_sequences(EcTable *table, AttrNumber attnum)
{
	Oid			types[2] = {OIDOID, INT2OID};
	Datum		values[2] = {ObjectIdGetDatum(table->relid), Int16GetDatum(attnum)};

	return ec_spi_oids("SELECT d.objid FROM pg_catalog.pg_depend d"
					   "  JOIN pg_catalog.pg_class c ON c.oid = d.objid AND c.relkind = 'S'"
					   " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
					   "   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
					   "   AND d.refobjid = $1 AND d.refobjsubid = $2 AND d.deptype = 'a'",
					   2, types, values);
}

static void
check_duplicable(EcStartContext *cxt, EcTable *table, AttrNumber attnum, const char *column)
{
	Form_pg_attribute att;
	HeapTuple	tuple;
	char	   *dependent;

	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table->relid), Int16GetDatum(attnum));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, table->relid);
	att = (Form_pg_attribute) GETSTRUCT(tuple);
	if (att->attidentity || att->attgenerated)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change identity or generated column \"%s\"", column)));
	ReleaseSysCache(tuple);

	dependent = ec_op_blocking_dependent(cxt, table, attnum, false);
	if (dependent)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change column \"%s\" of table \"%s\": %s depends on it", column,
						get_rel_name(table->relid), dependent),
				 errdetail("The column is rebuilt beside the old one, and the old one's indexes, "
						   "constraints and views would not follow it."),
				 errhint("Drop the dependent object in a \"sql\" operation first and recreate it on "
						 "the new column after completing.")));
}

static bool
attribute_not_null(Oid relid, AttrNumber attnum)
{
	HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		result;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, relid);
	result = ((Form_pg_attribute) GETSTRUCT(tuple))->attnotnull;
	ReleaseSysCache(tuple);
	return result;
}

/* The old column's default, cast to the new type when it can be; NULL if none or not castable. */
static char *
carried_default(EcTable *table, AttrNumber attnum, Oid typid, int32 typmod)
{
	Relation	rel = table_open(table->relid, AccessShareLock);
	Node	   *expr = build_column_default(rel, attnum);
	Node	   *coerced = NULL;

	table_close(rel, NoLock);
	if (expr == NULL)
		return NULL;
	coerced = coerce_to_target_type(NULL, expr, exprType(expr), typid, typmod, COERCION_ASSIGNMENT,
									COERCE_IMPLICIT_CAST, -1);
	return coerced ? ec_deparse(coerced, table->relid) : NULL;
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

	if (moves)
	{
		Oid			old_type,
					new_type,
					collid;
		int32		old_typmod,
					new_typmod;
		char	   *type_sql;
		char	   *tmpname;
		char	   *dflt;
		bool		old_not_null;
		bool		new_not_null;

		if (col->created || col->moves_data || col->old_attnum == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of table \"%s\" is already changed by an earlier operation "
							"of this migration", op->column, op->table),
					 errhint("Combine the changes into one \"alter_column\" operation.")));
		check_duplicable(cxt, table, col->old_attnum, op->column);
		col->owned_sequences = owned_sequences(table, col->old_attnum);

		get_atttypetypmodcoll(table->relid, col->old_attnum, &old_type, &old_typmod, &collid);
		if (op->type)
		{
			type_sql = ec_resolve_type(op->type, &new_type, &new_typmod);
			if (ec_is_serial(type_sql))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("cannot change column \"%s\" to a serial type", op->column)));
		}
		else
		{
			new_type = old_type;
			new_typmod = old_typmod;
			type_sql = format_type_extended(old_type, old_typmod,
											FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
		}
		old_not_null = attribute_not_null(table->relid, col->old_attnum);
		new_not_null = op->has_nullable ? !op->nullable : old_not_null;

		tmpname = ec_temp_name(EC_NEW_COLUMN_PREFIX, ec_op_attname(table, col->old_attnum));
		col->new_attnum = ec_op_add_new_column(cxt, table, tmpname, type_sql, NULL);
		col->created = true;
		col->moves_data = true;
		ec_copy_column_privileges(table->relid, col->old_attnum, tmpname);

		/* Set after ADD COLUMN so that no default, however volatile, rewrites the table. */
		if (op->has_default)
			dflt = op->default_expr ? ec_op_default_sql(op->default_expr, op->column, new_type,
												  new_typmod, NULL) : NULL;
		else
			dflt = carried_default(table, col->old_attnum, new_type, new_typmod);
		if (dflt)
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", ec_op_table_sql(table),
							 quote_identifier(tmpname), dflt));
		if (new_not_null)
		{
			col->not_null_check = ec_temp_name("_ec_not_null_", ec_op_attname(table, col->old_attnum));
			ec_op_add_not_valid_check(cxt, table, col->not_null_check,
								psprintf("%s IS NOT NULL", quote_identifier(tmpname)));
		}
		if (op->has_comment)
			ec_op_comment_on_column(table, col->new_attnum, op->comment);
		else
		{
			char	   *old_comment = GetComment(table->relid, RelationRelationId, col->old_attnum);

			if (old_comment)
				ec_op_comment_on_column(table, col->new_attnum, old_comment);
		}

		(void) ec_op_analyze(table, false,
						   op->up ? op->up : quote_identifier(col->old_name),
						   psprintf("up expression of column \"%s\"", col->new_name),
						   new_type, new_typmod, false, &col->up);
		(void) ec_op_analyze(table, true,
						   op->down ? op->down : quote_identifier(col->new_name),
						   psprintf("down expression of column \"%s\"", col->old_name),
						   old_type, old_typmod, false, &col->down);

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
