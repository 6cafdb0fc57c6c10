/*
 * operations.c
 *	  What each migration operation does at ec_start, and what it leaves for complete and rollback.
 *
 * Start only adds: new tables, new columns beside old ones (named _ec_new_<name>), NOT VALID
 * constraints, and the model edits that make the new version's views.  What destroys (dropping old
 * columns and tables, renaming to final names, validating) is computed here as complete steps; what
 * undoes the additions is recorded as rollback steps, run in reverse.  Both are stored as SQL text in
 * expand_contract.migrations, so a DBA can read exactly what complete or rollback will do.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "expand_contract.h"

static char *blocking_dependent(EcStartContext *cxt, EcTable *table, AttrNumber attnum,
								bool dropping);

static void
run(EcStartContext *cxt, const char *sql, const char *undo)
{
	ec_exec(sql);
	if (undo)
		cxt->rollback_steps = lappend(cxt->rollback_steps, pstrdup(undo));
}

static void
require_owner(EcTable *table)
{
	if (!ec_class_ownercheck(table->relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(table->relid));
}

static char *
table_sql(EcTable *table)
{
	return ec_rel_qualified(table->relid);
}

static char *
attname(EcTable *table, AttrNumber attnum)
{
	return get_attname(table->relid, attnum, false);
}

static char *
analyze_for(EcTable *table, bool new_version, const char *source, const char *what, Oid typid,
			int32 typmod, bool is_check, Node **result)
{
	int			nnames;
	char	  **names = ec_model_names(table, new_version, &nnames);

	*result = ec_analyze_row_expression(source, what, table->relid, names, nnames, typid, typmod,
										is_check);
	return ec_deparse(*result, table->relid);
}

/* Adds a physical column for the new version; returns its attribute number. */
static AttrNumber
add_new_column(EcStartContext *cxt, EcTable *table, const char *tmpname, const char *type_sql,
			   const char *extra)
{
	char	   *tsql = table_sql(table);

	if (get_attnum(table->relid, tmpname) != InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" already exists in table \"%s\"", tmpname,
						get_rel_name(table->relid)),
				 errdetail("expand_contract needs that name for the new version of a column."),
				 errhint("Drop or rename the column left behind, then start the migration again.")));

	run(cxt,
		psprintf("ALTER TABLE %s ADD COLUMN %s %s%s", tsql, quote_identifier(tmpname), type_sql,
				 extra ? extra : ""),
		psprintf("ALTER TABLE %s DROP COLUMN %s", tsql, quote_identifier(tmpname)));
	table->changed = true;
	return get_attnum(table->relid, tmpname);
}

static void
add_not_valid_check(EcStartContext *cxt, EcTable *table, const char *name, const char *expr_sql)
{
	ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", table_sql(table),
					 quote_identifier(name), expr_sql));
	table->validate = lappend(table->validate, pstrdup(name));
}

static void
add_check(EcStartContext *cxt, EcTable *table, EcCheckDef *check, const char *column)
{
	Node	   *expr;
	char	   *what = psprintf("check constraint \"%s\"", check->name);
	char	   *sql = analyze_for(table, true, check->expr, what, InvalidOid, -1, true, &expr);

	if (table->created)
		ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)%s", table_sql(table),
						 quote_identifier(check->name), sql, check->no_inherit ? " NO INHERIT" : ""));
	else if (check->no_inherit)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("NO INHERIT check constraints can only be added to new tables")));
	else
		add_not_valid_check(cxt, table, check->name, sql);
}

/* Adds a foreign key from the given new-version columns of table; NOT VALID on existing tables. */
static void
add_foreign_key(EcStartContext *cxt, EcTable *table, List *columns, EcForeignKeyDef *fk)
{
	EcTable    *ref = ec_model_table(cxt->model, fk->table, false);
	List	   *cols_sql = NIL;
	List	   *ref_sql = NIL;
	ListCell   *lc;
	char	   *clause;

	foreach(lc, columns)
		cols_sql = lappend(cols_sql, (char *) quote_identifier(
									  attname(table, ec_model_column(table, lfirst(lc), false)->new_attnum)));
	foreach(lc, fk->columns)
		ref_sql = lappend(ref_sql, (char *) quote_identifier(
									 attname(ref, ec_model_column(ref, lfirst(lc), false)->new_attnum)));
	clause = ec_fk_clause(fk, cols_sql, table_sql(ref), ref_sql);
	ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s%s", table_sql(table),
					 quote_identifier(fk->name), clause, table->created ? "" : " NOT VALID"));
	if (!table->created)
		table->validate = lappend(table->validate, pstrdup(fk->name));
}

/*
 * A unique constraint on a column of an existing table: its index is built by the worker with
 * CREATE UNIQUE INDEX CONCURRENTLY (before the backfill, so duplicates the backfill would make fail
 * it with the row's key), and becomes the constraint at complete (ADD CONSTRAINT ... USING INDEX).
 * ec_start itself never builds an index under its ACCESS EXCLUSIVE lock.
 */
static void
queue_unique(EcStartContext *cxt, EcTable *table, AttrNumber attnum, const char *constraint)
{
	char	   *index = ec_temp_name("_ec_unique_", constraint);
	Oid			nspid = get_rel_namespace(table->relid);
	char	   *schema = get_namespace_name(nspid);

	if (OidIsValid(get_relname_relid(constraint, nspid)) || OidIsValid(get_relname_relid(index, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("relation \"%s\" already exists in schema \"%s\"",
						OidIsValid(get_relname_relid(constraint, nspid)) ? constraint : index, schema),
				 errdetail("The unique constraint's index needs that name.")));
	ec_add_task(cxt->migration_id, ++cxt->ntasks, "sql", table->relid, NIL,
				psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s; "
						 "CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)",
						 ec_qualified(schema, index), quote_identifier(index), table_sql(table),
						 quote_identifier(attname(table, attnum))));
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP INDEX IF EXISTS %s", ec_qualified(schema, index)));
	table->unique_indexes = lappend(table->unique_indexes, index);
	table->unique_names = lappend(table->unique_names, pstrdup(constraint));
}

static void
comment_on_column(EcTable *table, AttrNumber attnum, const char *comment)
{
	ec_exec(psprintf("COMMENT ON COLUMN %s.%s IS %s", table_sql(table),
					 quote_identifier(attname(table, attnum)),
					 comment ? quote_literal_cstr(comment) : "NULL"));
}

static char *
default_sql(const char *source, const char *column, Oid typid, int32 typmod, bool *is_volatile)
{
	Node	   *expr = ec_analyze_default(source, psprintf("default of column \"%s\"", column),
										  typid, typmod);

	if (is_volatile)
		*is_volatile = ec_expr_is_volatile(expr);
	return ec_deparse(expr, InvalidOid);
}

static void
op_create_table(EcStartContext *cxt, EcOperation *op)
{
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
							 default_sql(c->default_expr, c->name, typid, typmod, NULL));
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
	run(cxt, sql.data, psprintf("DROP TABLE %s", qualified));

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
			add_check(cxt, table, c->check, c->name);
		if (c->references)
			add_foreign_key(cxt, table, list_make1(c->name), c->references);
		if (c->comment)
			comment_on_column(table, ec_model_column(table, c->name, false)->new_attnum, c->comment);
	}
	foreach(lc, op->constraints)
	{
		EcConstraintDef *c = lfirst(lc);
		StringInfoData csql;
		ListCell   *lc2;

		if (strcmp(c->type, "check") == 0)
		{
			EcCheckDef	check = {c->name, c->check, c->no_inherit};

			add_check(cxt, table, &check, NULL);
			continue;
		}
		if (strcmp(c->type, "foreign_key") == 0)
		{
			add_foreign_key(cxt, table, c->columns, c->references);
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
			appendStringInfoString(&csql, quote_identifier(attname(table, col->new_attnum)));
		}
		appendStringInfoChar(&csql, ')');
		if (c->deferrable)
			appendStringInfoString(&csql, " DEFERRABLE");
		if (c->initially_deferred)
			appendStringInfoString(&csql, " INITIALLY DEFERRED");
		ec_exec(csql.data);
	}
}

static void
op_add_column(EcStartContext *cxt, EcOperation *op)
{
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumnDef *c = op->coldef;
	Oid			typid;
	int32		typmod;
	char	   *type_sql;
	char	   *tmpname;
	char	   *dflt = NULL;
	bool		volatile_default = false;
	const char *up = op->up;
	StringInfoData extra;
	AttrNumber	attnum;
	EcColumn   *col;

	require_owner(table);
	if (ec_model_column(table, c->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" already exists", c->name, op->table)));
	if (c->pk)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot add primary key column \"%s\" to existing table \"%s\"", c->name,
						op->table)));

	type_sql = ec_resolve_type(c->type, &typid, &typmod);
	if (c->default_expr)
		dflt = default_sql(c->default_expr, c->name, typid, typmod, &volatile_default);
	if (!c->nullable && (dflt == NULL || volatile_default) && up == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"add_column\" of NOT NULL column \"%s\" needs \"up\" or a non-volatile "
						"\"default\"", c->name),
				 errdetail("Existing rows and rows written through the old version need a value."),
				 errhint("Set \"up\", set \"default\", or set \"nullable\": true.")));

	/*
	 * A non-volatile default is stored once in the catalog and costs no rewrite; a volatile one
	 * would rewrite the table under ACCESS EXCLUSIVE, so it is set afterwards (for new rows) and
	 * existing rows get it through the backfill instead.
	 */
	initStringInfo(&extra);
	if (dflt && !volatile_default)
	{
		appendStringInfo(&extra, " DEFAULT %s", dflt);
		if (!c->nullable)
			appendStringInfoString(&extra, " NOT NULL");
	}
	tmpname = ec_temp_name(EC_NEW_COLUMN_PREFIX, c->name);
	attnum = add_new_column(cxt, table, tmpname, type_sql, extra.data);
	col = ec_model_add_column(table, attnum, NULL, c->name, true);
	if (c->unique)
		queue_unique(cxt, table, attnum, ec_temp_name("", psprintf("%s_%s_key", op->table, c->name)));

	if (volatile_default)
	{
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", table_sql(table),
						 quote_identifier(tmpname), dflt));
		if (up == NULL)
			up = c->default_expr;
	}
	if (!c->nullable && (dflt == NULL || volatile_default))
	{
		col->not_null_check = ec_temp_name("_ec_not_null_", c->name);
		add_not_valid_check(cxt, table, col->not_null_check,
							psprintf("%s IS NOT NULL", quote_identifier(tmpname)));
	}
	if (c->check)
		add_check(cxt, table, c->check, c->name);
	if (c->references)
		add_foreign_key(cxt, table, list_make1(c->name), c->references);
	if (c->comment)
		comment_on_column(table, attnum, c->comment);
	if (up)
	{
		(void) analyze_for(table, false, up, psprintf("up expression of column \"%s\"", c->name),
						   typid, typmod, false, &col->up);
		col->moves_data = true;
	}
}

static void
op_drop_column(EcStartContext *cxt, EcOperation *op)
{
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumn   *col = ec_model_column(table, op->column, false);

	require_owner(table);
	if (col->old_attnum)
	{
		char	   *dependent = blocking_dependent(cxt, table, col->old_attnum, true);

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
		(void) analyze_for(table, true, op->down,
						   psprintf("down expression of column \"%s\"", op->column),
						   typid, typmod, false, &col->down);
		col->moves_data = true;
	}
}

static void
op_rename_column(EcStartContext *cxt, EcOperation *op)
{
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumn   *col = ec_model_column(table, op->from, false);

	require_owner(table);
	if (ec_model_column(table, op->to, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" already exists", op->to, op->table)));
	col->new_name = pstrdup(op->to);
}

/*
 * The first object that would block, or silently lose, a column at complete: for a column being
 * rebuilt beside the old one, any index, constraint or view on it; for a dropped column, views and
 * other tables' foreign keys (its own indexes and checks go with it, as DROP COLUMN does).  Views of
 * the old version schema do not count: complete drops them first.  NULL if none.
 */
static char *
blocking_dependent(EcStartContext *cxt, EcTable *table, AttrNumber attnum, bool dropping)
{
	Oid			types[4] = {OIDOID, INT2OID, OIDOID, BOOLOID};
	Datum		values[4];

	values[0] = ObjectIdGetDatum(table->relid);
	values[1] = Int16GetDatum(attnum);
	values[2] = ObjectIdGetDatum(cxt->old_version_nspid);
	values[3] = BoolGetDatum(dropping);
	(void) ec_spi("SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)"
							   "  FROM pg_catalog.pg_depend d"
							   " WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
							   "   AND d.refobjid = $1 AND d.refobjsubid = $2 AND d.deptype IN ('n', 'a')"
							   "   AND d.classid <> 'pg_catalog.pg_attrdef'::pg_catalog.regclass"
							   "   AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND"
							   "            (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S')"
							   "   AND NOT (d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND"
							   "            (SELECT c.relnamespace FROM pg_catalog.pg_rewrite r"
							   "               JOIN pg_catalog.pg_class c ON c.oid = r.ev_class"
							   "              WHERE r.oid = d.objid) = $3)"
							   "   AND (NOT $4 OR d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
							   "        OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND"
							   "            (SELECT conrelid FROM pg_catalog.pg_constraint WHERE oid = d.objid) <> $1))"
							   " ORDER BY 1 LIMIT 1",
				  4, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
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

	dependent = blocking_dependent(cxt, table, attnum, false);
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
op_alter_column(EcStartContext *cxt, EcOperation *op)
{
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumn   *col = ec_model_column(table, op->column, false);
	bool		moves = op->type || op->has_nullable || op->check || op->unique_name || op->references;

	require_owner(table);
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

		tmpname = ec_temp_name(EC_NEW_COLUMN_PREFIX, attname(table, col->old_attnum));
		col->new_attnum = add_new_column(cxt, table, tmpname, type_sql, NULL);
		col->created = true;
		col->moves_data = true;
		ec_copy_column_privileges(table->relid, col->old_attnum, tmpname);

		/* Set after ADD COLUMN so that no default, however volatile, rewrites the table. */
		if (op->has_default)
			dflt = op->default_expr ? default_sql(op->default_expr, op->column, new_type,
												  new_typmod, NULL) : NULL;
		else
			dflt = carried_default(table, col->old_attnum, new_type, new_typmod);
		if (dflt)
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", table_sql(table),
							 quote_identifier(tmpname), dflt));
		if (new_not_null)
		{
			col->not_null_check = ec_temp_name("_ec_not_null_", attname(table, col->old_attnum));
			add_not_valid_check(cxt, table, col->not_null_check,
								psprintf("%s IS NOT NULL", quote_identifier(tmpname)));
		}
		if (op->has_comment)
			comment_on_column(table, col->new_attnum, op->comment);
		else
		{
			char	   *old_comment = GetComment(table->relid, RelationRelationId, col->old_attnum);

			if (old_comment)
				comment_on_column(table, col->new_attnum, old_comment);
		}

		(void) analyze_for(table, false,
						   op->up ? op->up : quote_identifier(col->old_name),
						   psprintf("up expression of column \"%s\"", col->new_name),
						   new_type, new_typmod, false, &col->up);
		(void) analyze_for(table, true,
						   op->down ? op->down : quote_identifier(col->new_name),
						   psprintf("down expression of column \"%s\"", col->old_name),
						   old_type, old_typmod, false, &col->down);

		if (op->check)
			add_check(cxt, table, op->check, col->new_name);
		if (op->unique_name)
			queue_unique(cxt, table, col->new_attnum, op->unique_name);
		if (op->references)
			add_foreign_key(cxt, table, list_make1(col->new_name), op->references);
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
		dflt = op->default_expr ? default_sql(op->default_expr, col->new_name, typid, typmod, NULL)
			: NULL;
		if (col->created)
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s %s", table_sql(table),
							 quote_identifier(attname(table, col->new_attnum)),
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
			comment_on_column(table, col->new_attnum, op->comment);
		else
		{
			col->comment_changed = true;
			col->new_comment = op->comment ? pstrdup(op->comment) : NULL;
		}
	}
}

static void
op_rename_table(EcStartContext *cxt, EcOperation *op)
{
	EcTable    *table = ec_model_table(cxt->model, op->from, false);
	EcTable    *holder;
	Oid			existing;

	require_owner(table);
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

static void
op_drop_table(EcStartContext *cxt, EcOperation *op)
{
	EcTable    *table = ec_model_table(cxt->model, op->name, false);

	require_owner(table);
	table->new_name = NULL;
}

static void
op_sql(EcStartContext *cxt, EcOperation *op)
{
	int			nestlevel;

	if (op->on_complete)
	{
		cxt->complete_tail = lappend(cxt->complete_tail, pstrdup(op->up));
		return;
	}
	nestlevel = ec_guc_push("search_path", quote_identifier(cxt->model->schema));
	run(cxt, op->up, op->down);
	ec_guc_pop(nestlevel);
	ec_model_refresh(cxt->model);
}

void
ec_apply_operation(EcStartContext *cxt, EcOperation *op)
{
	switch (op->kind)
	{
		case EC_OP_CREATE_TABLE:
			op_create_table(cxt, op);
			break;
		case EC_OP_ADD_COLUMN:
			op_add_column(cxt, op);
			break;
		case EC_OP_DROP_COLUMN:
			op_drop_column(cxt, op);
			break;
		case EC_OP_RENAME_COLUMN:
			op_rename_column(cxt, op);
			break;
		case EC_OP_ALTER_COLUMN:
			op_alter_column(cxt, op);
			break;
		case EC_OP_RENAME_TABLE:
			op_rename_table(cxt, op);
			break;
		case EC_OP_DROP_TABLE:
			op_drop_table(cxt, op);
			break;
		case EC_OP_SQL:
			op_sql(cxt, op);
			break;
	}
}

/*
 * Locks to take, with retries, before any DDL: the strongest each operation needs on the tables it
 * names, and ACCESS SHARE on every other table (the views read them).  Lock order is by OID.
 */
List *
ec_relations_to_lock(Oid nspid, List *operations, List **modes)
{
	List	   *relids = ec_schema_relations(nspid, false);
	int			n = list_length(relids);
	LOCKMODE   *strongest = palloc(sizeof(LOCKMODE) * (n + 1));
	ListCell   *lc;
	List	   *result = NIL;

	for (int i = 0; i < n; i++)
		strongest[i] = AccessShareLock;
	foreach(lc, operations)
	{
		EcOperation *op = lfirst(lc);
		const char *name = op->table ? op->table : NULL;
		LOCKMODE	mode = AccessExclusiveLock;
		Oid			relid;
		int			index;
		ListCell   *lc2;

		if (op->kind == EC_OP_RENAME_COLUMN || op->kind == EC_OP_RENAME_TABLE ||
			op->kind == EC_OP_DROP_TABLE || op->kind == EC_OP_SQL || op->kind == EC_OP_CREATE_TABLE ||
			(op->kind == EC_OP_DROP_COLUMN && op->down == NULL))
			continue;
		if (name == NULL || !OidIsValid(relid = get_relname_relid(name, nspid)))
			continue;
		index = 0;
		foreach(lc2, relids)
		{
			if (lfirst_oid(lc2) == relid && strongest[index] < mode)
				strongest[index] = mode;
			index++;
		}
	}
	for (int i = 0; i < n; i++)
	{
		result = lappend_oid(result, list_nth_oid(relids, i));
		*modes = lappend_int(*modes, strongest[i]);
	}
	return result;
}
