/*
 * ops/create_table.c
 *	  create_table: a new table, in the new version only until complete.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct CreateTableOp
{
	EcOperation base;
	char	   *name;
	List	   *columns;		/* EcColumnDef * */
	List	   *constraints;	/* EcConstraintDef * */
	bool		has_comment;
	char	   *comment;
} CreateTableOp;

static void
create_table_read(EcOperation *base, EcDocObject *o)
{
	CreateTableOp *op = (CreateTableOp *) base;
	ListCell   *lc;

	op->name = ec_doc_identifier(o, "name", true);
	foreach(lc, ec_doc_array(o, "columns", true, "an array"))
		op->columns = lappend(op->columns, ec_doc_column(lfirst(lc)));
	if (op->columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table \"%s\" must have at least one column", op->name)));
	foreach(lc, ec_doc_array(o, "constraints", false, "an array"))
		op->constraints = lappend(op->constraints, ec_doc_constraint(lfirst(lc)));
	op->comment = ec_doc_string(o, "comment", false, false, &op->has_comment);
}

/* Only the tables its foreign keys reference: ADD FOREIGN KEY locks them SHARE ROW EXCLUSIVE. */
static void
create_table_touches(EcOperation *base, EcTouches *touches)
{
	CreateTableOp *op = (CreateTableOp *) base;
	ListCell   *lc;

	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if (c->references && strcmp(c->references->table, op->name) != 0)
			ec_touch(touches, c->references->table, ShareRowExclusiveLock, false);
	}
	foreach(lc, op->constraints)
	{
		EcConstraintDef *c = lfirst(lc);

		if (c->references && strcmp(c->references->table, op->name) != 0)
			ec_touch(touches, c->references->table, ShareRowExclusiveLock, false);
	}
}

static void
create_table_start(EcStartContext *cxt, EcOperation *base)
{
	CreateTableOp *op = (CreateTableOp *) base;
	EcModel    *model = cxt->model;
	char	   *qualified = ec_qualified(model->schema, op->name);
	StringInfoData sql;
	List	   *pk = NIL;
	ListCell   *lc;
	EcTable    *table;

	if (ec_model_table(model, op->name, true) != NULL ||
		OidIsValid(get_relname_relid(op->name, model->nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", op->name, model->schema)));

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (", qualified);
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);
		Oid			typid;
		int32		typmod;
		char	   *type_sql = ec_resolve_type(c->type, &typid, &typmod);

		if (lc != list_head(op->columns))
			appendStringInfoString(&sql, ", ");
		appendStringInfo(&sql, "%s %s", quote_identifier(c->name), type_sql);
		if (!c->nullable || c->pk)
			appendStringInfoString(&sql, " NOT NULL");
		if (c->default_expr)
			appendStringInfo(&sql, " DEFAULT %s",
							 ec_op_default_sql(c->default_expr, c->name, typid, typmod, NULL));
		if (c->unique)
			appendStringInfoString(&sql, " UNIQUE");
		if (c->pk)
			pk = lappend(pk, (char *) quote_identifier(c->name));
	}
	if (pk != NIL)
	{
		appendStringInfoString(&sql, ", PRIMARY KEY (");
		foreach(lc, pk)
		{
			if (lc != list_head(pk))
				appendStringInfoString(&sql, ", ");
			appendStringInfoString(&sql, (char *) lfirst(lc));
		}
		appendStringInfoChar(&sql, ')');
	}
	appendStringInfoChar(&sql, ')');
	ec_op_run(cxt, sql.data, psprintf("DROP TABLE %s", qualified));

	ec_model_refresh(model);
	table = ec_model_table(model, op->name, false);
	table->created = true;
	table->old_name = NULL;
	foreach(lc, table->columns)
		((EcColumn *) lfirst(lc))->old_name = NULL;

	if (op->has_comment)
		ec_exec(psprintf("COMMENT ON TABLE %s IS %s", qualified, quote_literal_cstr(op->comment)));
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if (c->check)
			ec_op_add_check(cxt, table, c->check);
		if (c->references)
			ec_op_add_foreign_key(cxt, table, list_make1(c->name), c->references);
		if (c->comment)
			ec_op_comment_on_column(table, ec_model_column(table, c->name, false)->new_attnum, c->comment);
	}
	foreach(lc, op->constraints)
	{
		EcConstraintDef *c = lfirst(lc);
		StringInfoData csql;
		ListCell   *lc2;

		if (strcmp(c->type, "check") == 0)
		{
			EcCheckDef	check = {c->name, c->check, c->no_inherit};

			ec_op_add_check(cxt, table, &check);
			continue;
		}
		if (strcmp(c->type, "foreign_key") == 0)
		{
			ec_op_add_foreign_key(cxt, table, c->columns, c->references);
			continue;
		}
		initStringInfo(&csql);
		appendStringInfo(&csql, "ALTER TABLE %s ADD CONSTRAINT %s %s", qualified,
						 quote_identifier(c->name),
						 strcmp(c->type, "unique") == 0 ? "UNIQUE" : "PRIMARY KEY");
		if (c->nulls_not_distinct)
		{
#if PG_VERSION_NUM >= 150000
			appendStringInfoString(&csql, " NULLS NOT DISTINCT");
#else
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("NULLS NOT DISTINCT requires PostgreSQL 15 or later")));
#endif
		}
		appendStringInfoString(&csql, " (");
		foreach(lc2, c->columns)
		{
			EcColumn   *col = ec_model_column(table, lfirst(lc2), false);

			if (lc2 != list_head(c->columns))
				appendStringInfoString(&csql, ", ");
			appendStringInfoString(&csql, quote_identifier(ec_op_attname(table, col->new_attnum)));
		}
		appendStringInfoChar(&csql, ')');
		if (c->deferrable)
			appendStringInfoString(&csql, " DEFERRABLE");
		if (c->initially_deferred)
			appendStringInfoString(&csql, " INITIALLY DEFERRED");
		ec_exec(csql.data);
	}
}

const EcOpRoutine ec_op_create_table = {
	.name = "create_table",
	.size = sizeof(CreateTableOp),
	.read = create_table_read,
	.touches = create_table_touches,
	.start = create_table_start,
};
