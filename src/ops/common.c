/*
 * ops/common.c
 *	  What the operations share: running their DDL with its undo, new columns beside old ones,
 *	  NOT VALID constraints, unique indexes left to the worker, expressions analysed as one version
 *	  sees the table.
 *
 * Start only adds: new tables, new columns beside old ones (named _ec_new_<name>), NOT VALID
 * constraints, and the model edits that make the new version's views.  What destroys (dropping old
 * columns and tables, renaming to final names, validating) is read off the final model as complete
 * steps (plan.c); what undoes the additions is recorded here as rollback steps, run in reverse.
 * Both are stored as SQL text in expand_contract.migrations, so a DBA can read exactly what complete
 * or rollback will do.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

void
ec_op_run(EcStartContext *cxt, const char *sql, const char *undo)
{
	ec_exec(sql);
	if (undo)
		cxt->rollback_steps = lappend(cxt->rollback_steps, pstrdup(undo));
}

void
ec_op_require_owner(EcTable *table)
{
	if (!ec_class_ownercheck(table->relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(table->relid));
}

char *
ec_op_table_sql(EcTable *table)
{
	return ec_rel_qualified(table->relid);
}

char *
ec_op_attname(EcTable *table, AttrNumber attnum)
{
	return get_attname(table->relid, attnum, false);
}

char *
ec_op_analyze(EcTable *table, bool new_version, const char *source, const char *what, Oid typid,
			int32 typmod, bool is_check, Node **result)
{
	int			nnames;
	char	  **names = ec_model_names(table, new_version, &nnames);

	*result = ec_analyze_row_expression(source, what, table->relid, names, nnames, typid, typmod,
										is_check);
	return ec_deparse(*result, table->relid);
}

/* Adds a physical column for the new version; returns its attribute number. */
AttrNumber
ec_op_add_new_column(EcStartContext *cxt, EcTable *table, const char *tmpname, const char *type_sql,
			   const char *extra)
{
	char	   *tsql = ec_op_table_sql(table);

	if (get_attnum(table->relid, tmpname) != InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" already exists in table \"%s\"", tmpname,
						get_rel_name(table->relid)),
				 errdetail("expand_contract needs that name for the new version of a column."),
				 errhint("Drop or rename the column left behind, then start the migration again.")));

	ec_op_run(cxt,
		psprintf("ALTER TABLE %s ADD COLUMN %s %s%s", tsql, quote_identifier(tmpname), type_sql,
				 extra ? extra : ""),
		psprintf("ALTER TABLE %s DROP COLUMN %s", tsql, quote_identifier(tmpname)));
	table->changed = true;
	return get_attnum(table->relid, tmpname);
}

void
ec_op_add_not_valid_check(EcStartContext *cxt, EcTable *table, const char *name, const char *expr_sql)
{
	ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID", ec_op_table_sql(table),
					 quote_identifier(name), expr_sql));
	table->validate = lappend(table->validate, pstrdup(name));
}

void
ec_op_add_check(EcStartContext *cxt, EcTable *table, EcCheckDef *check)
{
	Node	   *expr;
	char	   *what = psprintf("check constraint \"%s\"", check->name);
	char	   *sql = ec_op_analyze(table, true, check->expr, what, InvalidOid, -1, true, &expr);

	if (table->created)
		ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)%s", ec_op_table_sql(table),
						 quote_identifier(check->name), sql, check->no_inherit ? " NO INHERIT" : ""));
	else if (check->no_inherit)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("NO INHERIT check constraints can only be added to new tables")));
	else
		ec_op_add_not_valid_check(cxt, table, check->name, sql);
}

/* Adds a foreign key from the given new-version columns of table; NOT VALID on existing tables. */
void
ec_op_add_foreign_key(EcStartContext *cxt, EcTable *table, List *columns, EcForeignKeyDef *fk)
{
	EcTable    *ref = ec_model_table(cxt->model, fk->table, false);
	List	   *cols_sql = NIL;
	List	   *ref_sql = NIL;
	ListCell   *lc;
	char	   *clause;

	foreach(lc, columns)
		cols_sql = lappend(cols_sql, (char *) quote_identifier(
									  ec_op_attname(table, ec_model_column(table, lfirst(lc), false)->new_attnum)));
	foreach(lc, fk->columns)
		ref_sql = lappend(ref_sql, (char *) quote_identifier(
									 ec_op_attname(ref, ec_model_column(ref, lfirst(lc), false)->new_attnum)));
	clause = ec_fk_clause(fk, cols_sql, ec_op_table_sql(ref), ref_sql);
	ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s%s", ec_op_table_sql(table),
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
void
ec_op_queue_unique(EcStartContext *cxt, EcTable *table, AttrNumber attnum, const char *constraint)
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
						 ec_qualified(schema, index), quote_identifier(index), ec_op_table_sql(table),
						 quote_identifier(ec_op_attname(table, attnum))));
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP INDEX IF EXISTS %s", ec_qualified(schema, index)));
	table->unique_indexes = lappend(table->unique_indexes, index);
	table->unique_names = lappend(table->unique_names, pstrdup(constraint));
}

void
ec_op_comment_on_column(EcTable *table, AttrNumber attnum, const char *comment)
{
	ec_exec(psprintf("COMMENT ON COLUMN %s.%s IS %s", ec_op_table_sql(table),
					 quote_identifier(ec_op_attname(table, attnum)),
					 comment ? quote_literal_cstr(comment) : "NULL"));
}

char *
ec_op_default_sql(const char *source, const char *column, Oid typid, int32 typmod, bool *is_volatile)
{
	Node	   *expr = ec_analyze_default(source, psprintf("default of column \"%s\"", column),
										  typid, typmod);

	if (is_volatile)
		*is_volatile = ec_expr_is_volatile(expr);
	return ec_deparse(expr, InvalidOid);
}

/*
 * The first object that would block, or silently lose, a column at complete: for a column being
 * rebuilt beside the old one, any index, constraint or view on it; for a dropped column, views and
 * other tables' foreign keys (its own indexes and checks go with it, as DROP COLUMN does).  Views of
 * the old version schema do not count: complete drops them first.  NULL if none.
 */
char *
ec_op_blocking_dependent(EcStartContext *cxt, EcTable *table, AttrNumber attnum, bool dropping)
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
