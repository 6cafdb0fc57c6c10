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

#include "catalog/pg_inherits.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "parser/scansup.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

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
	{
		/* NOT VALID like any check on an existing table; NO INHERIT keeps it off its children. */
		ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NO INHERIT NOT VALID",
						 ec_op_table_sql(table), quote_identifier(check->name), sql));
		table->validate = lappend(table->validate, pstrdup(check->name));
	}
	else
		ec_op_add_not_valid_check(cxt, table, check->name, sql);
}

/*
 * What a migration cannot add to an existing partitioned table: a foreign key (PostgreSQL 15 adds
 * none NOT VALID to a partitioned table, and a valid one would scan every partition under start's
 * lock), and a unique constraint or primary key on new columns (it would have to include the
 * partition key, whose columns a migration cannot rebuild).  Refused at start, naming it.
 */
void
ec_op_refuse_on_partitioned(EcTable *table, bool foreign_key, const char *name)
{
	if (table->created || get_rel_relkind(table->relid) != RELKIND_PARTITIONED_TABLE)
		return;
	if (foreign_key)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot add foreign key \"%s\" to partitioned table \"%s\" in a migration",
						name, get_rel_name(table->relid)),
				 errdetail("PostgreSQL cannot add a foreign key NOT VALID to a partitioned table, "
						   "and adding it valid would scan every partition under an ACCESS EXCLUSIVE lock."),
				 errhint("Add the foreign key outside the migration, or on a table the migration creates.")));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot add unique constraint or primary key \"%s\" on new columns of partitioned table \"%s\"",
					name, get_rel_name(table->relid)),
			 errdetail("A unique constraint of a partitioned table must include the partition key, "
					   "and a migration cannot rebuild partition key columns."),
			 errhint("Use a \"create_index\" operation with \"unique\" over columns that include the partition key.")));
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

	ec_op_refuse_on_partitioned(table, true, fk->name);
	foreach(lc, columns)
		cols_sql = lappend(cols_sql, (char *) quote_identifier(
									  ec_op_attname(table, ec_model_column(table, lfirst(lc), false)->new_attnum)));
	foreach(lc, fk->columns)
		ref_sql = lappend(ref_sql, (char *) quote_identifier(
									 ec_op_attname(ref, ec_model_column(ref, lfirst(lc), false)->new_attnum)));
	if (fk->on_delete_set_columns != NIL)
	{
		/* ON DELETE SET NULL (a, b): the action names physical columns of this table. */
		EcForeignKeyDef *copy = palloc(sizeof(EcForeignKeyDef));
		StringInfoData action;

#if PG_VERSION_NUM < 150000
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"on_delete_set_columns\" requires PostgreSQL 15 or later")));
#endif
		*copy = *fk;
		initStringInfo(&action);
		appendStringInfo(&action, "%s (", fk->on_delete);
		foreach(lc, fk->on_delete_set_columns)
			appendStringInfo(&action, "%s%s", lc == list_head(fk->on_delete_set_columns) ? "" : ", ",
							 quote_identifier(ec_op_attname(table, ec_model_column(table, lfirst(lc),
																				  false)->new_attnum)));
		appendStringInfoChar(&action, ')');
		copy->on_delete = action.data;
		fk = copy;
	}
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
	ec_op_queue_unique_index(cxt, table, list_make1_int(attnum), constraint, NULL, false);
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
 * the old version schema do not count: complete drops them first.  Nor does the constraint
 * "except" (InvalidOid: none), nor the index that implements it: the operation drops it with the
 * old column.  NULL if none.
 */
static char *
blocking_dependent(EcStartContext *cxt, EcTable *table, AttrNumber attnum, bool dropping,
				   Oid except)
{
	Oid			types[6] = {OIDOID, INT2OID, OIDOID, BOOLOID, OIDOID, BOOLOID};
	Datum		values[6];

	values[0] = ObjectIdGetDatum(table->relid);
	values[1] = Int16GetDatum(attnum);
	values[2] = ObjectIdGetDatum(cxt->old_version_nspid);
	values[3] = BoolGetDatum(dropping);
	values[4] = ObjectIdGetDatum(except);
	values[5] = BoolGetDatum(ec_publications_mode == EC_PUBLICATIONS_MANAGE);
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
							   "   AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND"
							   "            d.objid = $5)"
							   "   AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND"
							   "            d.objid IS NOT DISTINCT FROM"
							   "            (SELECT nullif(conindid, 0) FROM pg_catalog.pg_constraint"
							   "              WHERE oid = $5 AND contype IN ('u', 'p', 'x')))"
	/* Publications' column lists and row filters: publications.c (unless told to ignore them). */
							   "   AND NOT ($6 AND d.classid = 'pg_catalog.pg_publication_rel'::pg_catalog.regclass)"
	/* Carried by carry_constraints.c: the table's own checks, and its outbound foreign keys. */
							   "   AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND"
							   "            EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.oid = d.objid"
							   "              AND c.conrelid = $1 AND c.conname !~ '^_ec_'"
							   "              AND (c.contype = 'c' OR (c.contype = 'f' AND $2 = ANY (c.conkey)"
							   "                   AND NOT (c.confrelid = $1 AND $2 = ANY (c.confkey))))))"
	/*
	 * Carried by carry_foreign_keys.c: foreign keys of any table (this one too) that reference the
	 * column.  A dropped column still cannot take them along, nor can a foreign key whose unique
	 * index goes with the constraint being dropped ($5): the new column has none for it.
	 */
							   "   AND NOT (NOT $4 AND d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND"
							   "            EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.oid = d.objid"
							   "              AND c.contype = 'f' AND c.confrelid = $1 AND $2 = ANY (c.confkey)"
							   "              AND c.conname !~ '^_ec_'"
							   "              AND c.conindid IS DISTINCT FROM"
							   "                  (SELECT nullif(x.conindid, 0) FROM pg_catalog.pg_constraint x"
							   "                    WHERE x.oid = $5)))"
	/*
	 * Carried by carry_indexes.c: the table's indexes, and the unique and primary key constraints
	 * they back (an exclusion constraint's index cannot be attached, and another table's foreign
	 * key on the column still blocks, naming itself).
	 */
							   "   AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND"
							   "            (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) IN ('i', 'I'))"
	/*
	 * Carried by carry_views.c when the column is rebuilt (a dropped column takes them along, so
	 * they still block): user views and materialized views, which it also refuses when it cannot
	 * carry them, naming them, and the table's user triggers.  Other rules still block here.
	 */
							   "   AND NOT (NOT $4 AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND"
							   "            EXISTS (SELECT FROM pg_catalog.pg_rewrite r"
							   "               JOIN pg_catalog.pg_class c ON c.oid = r.ev_class"
							   "              WHERE r.oid = d.objid AND r.rulename = '_RETURN' AND c.relkind IN ('v', 'm')))"
							   "   AND NOT (NOT $4 AND d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND"
							   "            EXISTS (SELECT FROM pg_catalog.pg_trigger t"
							   "              WHERE t.oid = d.objid AND t.tgrelid = $1 AND NOT t.tgisinternal))"
							   "   AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND"
							   "            EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.oid = d.objid"
							   "              AND c.conrelid = $1 AND c.contype IN ('u', 'p')))"
							   " ORDER BY 1 LIMIT 1",
				  6, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

char *
ec_op_blocking_dependent(EcStartContext *cxt, EcTable *table, AttrNumber attnum, bool dropping)
{
	return blocking_dependent(cxt, table, attnum, dropping, InvalidOid);
}

/*
 * A unique index on one or more columns of an existing table, for a unique constraint or a primary
 * key: built by the worker with CREATE UNIQUE INDEX CONCURRENTLY before the backfill (so duplicates
 * the backfill would make fail it with the row's key), attached at complete as the constraint
 * (ADD CONSTRAINT ... UNIQUE / PRIMARY KEY USING INDEX, which renames the index after it).
 * options_sql follows the column list (INCLUDE, WITH, TABLESPACE), built by the caller from quoted
 * names and literals.  ec_start itself never builds an index under its ACCESS EXCLUSIVE lock.
 */
void
ec_op_queue_unique_index(EcStartContext *cxt, EcTable *table, List *attnums, const char *constraint,
						 const char *options_sql, bool primary_key)
{
	char	   *index = ec_temp_name(primary_key ? "_ec_pkey_" : "_ec_unique_", constraint);
	Oid			nspid = get_rel_namespace(table->relid);
	char	   *schema = get_namespace_name(nspid);
	StringInfoData columns;
	ListCell   *lc;

	ec_op_refuse_on_partitioned(table, false, constraint);
	if (OidIsValid(get_relname_relid(constraint, nspid)) || OidIsValid(get_relname_relid(index, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("relation \"%s\" already exists in schema \"%s\"",
						OidIsValid(get_relname_relid(constraint, nspid)) ? constraint : index, schema),
				 primary_key ? errdetail("The primary key's index needs that name.") :
				 errdetail("The unique constraint's index needs that name.")));
	initStringInfo(&columns);
	foreach(lc, attnums)
		appendStringInfo(&columns, "%s%s", lc == list_head(attnums) ? "" : ", ",
						 quote_identifier(ec_op_attname(table, (AttrNumber) lfirst_int(lc))));
	ec_add_task(cxt->migration_id, ++cxt->ntasks, "sql", table->relid, NIL,
				psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s; "
						 "CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)%s",
						 ec_qualified(schema, index), quote_identifier(index), ec_op_table_sql(table),
						 columns.data, options_sql ? options_sql : ""));
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP INDEX IF EXISTS %s", ec_qualified(schema, index)));
	if (primary_key)
	{
		table->primary_key_index = index;
		table->primary_key_name = pstrdup(constraint);
	}
	else
	{
		table->unique_indexes = lappend(table->unique_indexes, index);
		table->unique_names = lappend(table->unique_names, pstrdup(constraint));
	}
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
check_duplicable(EcStartContext *cxt, EcTable *table, AttrNumber attnum, const char *column,
				 Oid dropped_constraint)
{
	Form_pg_attribute att;
	HeapTuple	tuple;
	char	   *dependent;

	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table->relid), Int16GetDatum(attnum));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg_internal("cache lookup failed for attribute %d of relation %u", attnum, table->relid)));
	att = (Form_pg_attribute) GETSTRUCT(tuple);
	if (att->attgenerated)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change generated column \"%s\"", column),
				 errhint("Drop it and add it again with \"drop_column\" and \"add_column\".")));
	ReleaseSysCache(tuple);

	dependent = blocking_dependent(cxt, table, attnum, false, dropped_constraint);
	if (dependent)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change column \"%s\" of table \"%s\": %s depends on it", column,
						get_rel_name(table->relid), dependent),
				 errdetail("The column is rebuilt beside the old one; its indexes, constraints (unique, "
						   "primary key, check, foreign keys either way), views, materialized views "
						   "and triggers are carried to the new one, but rules, policies and "
						   "exclusion constraints are not."),
				 errhint("Drop the dependent object in a \"sql\" operation first and recreate it on "
						 "the new column after completing.")));
}

static bool
attribute_not_null(Oid relid, AttrNumber attnum)
{
	HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		result;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg_internal("cache lookup failed for attribute %d of relation %u", attnum, relid)));
	result = ((Form_pg_attribute) GETSTRUCT(tuple))->attnotnull;
	ReleaseSysCache(tuple);
	return result;
}

/*
 * The default of column attnum of relid, cast to the new type when it can be; NULL if none or not
 * castable.
 */
static char *
carried_default(Oid relid, AttrNumber attnum, Oid typid, int32 typmod)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Node	   *expr = build_column_default(rel, attnum);
	Node	   *coerced = NULL;
	bool		identity = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attidentity != '\0';

	table_close(rel, NoLock);
	/* An identity's numbering is not a default: carry_identity gives the new version its own. */
	if (expr == NULL || identity)
		return NULL;
	coerced = coerce_to_target_type(NULL, expr, exprType(expr), typid, typmod, COERCION_ASSIGNMENT,
									COERCE_IMPLICIT_CAST, -1);
	return coerced ? ec_deparse(coerced, relid) : NULL;
}

/*
 * A partitioned table's partitions may have defaults of their own (an insert into a partition
 * takes the partition's, not its parent's), which ADD COLUMN and SET DEFAULT on the parent do not
 * give the rebuilt column: each partition whose old column's default is not the parent's gets its
 * own on the new column, as ALTER COLUMN ... TYPE keeps them.
 */
static void
carry_partition_defaults(EcTable *table, const char *old_name, const char *new_name, Oid typid,
						 int32 typmod, const char *parent_default)
{
	List	   *rels;
	ListCell   *lc;

	if (get_rel_relkind(table->relid) != RELKIND_PARTITIONED_TABLE)
		return;
	rels = find_all_inheritors(table->relid, NoLock, NULL);
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);
		char	   *dflt;

		if (rel == table->relid)
			continue;
		dflt = carried_default(rel, get_attnum(rel, old_name), typid, typmod);
		if ((dflt == NULL && parent_default == NULL) ||
			(dflt != NULL && parent_default != NULL && strcmp(dflt, parent_default) == 0))
			continue;
		ec_exec(psprintf("ALTER TABLE ONLY %s ALTER COLUMN %s %s", ec_rel_qualified(rel),
						 quote_identifier(new_name),
						 dflt ? psprintf("SET DEFAULT %s", dflt) : "DROP DEFAULT"));
	}
}

/*
 * Makes the new version's column NOT NULL by complete, without a scan under ACCESS EXCLUSIVE: a
 * NOT VALID check now (enforced for every write from now on), validated by the worker, turned into
 * SET NOT NULL at complete.  Nothing to do if it is NOT NULL already or has its check.
 */
void
ec_op_new_column_not_null(EcStartContext *cxt, EcTable *table, EcColumn *col)
{
	if (col->not_null_check || attribute_not_null(table->relid, col->new_attnum))
		return;
	col->not_null_check = ec_temp_name("_ec_not_null_",
									   col->old_attnum ? ec_op_attname(table, col->old_attnum) :
									   col->new_name);
	ec_op_add_not_valid_check(cxt, table, col->not_null_check,
							  psprintf("%s IS NOT NULL",
									   quote_identifier(ec_op_attname(table, col->new_attnum))));
}

/*
 * Duplicates a column of an existing table beside the old one, for the new version: _ec_new_<name>,
 * with the old column's type, nullability, default, comment and column privileges unless "how"
 * says otherwise; a serial's sequence moves to it at complete, when it replaces the old one.  The
 * caller gives it "up" and "down" with ec_op_rebuild_expressions once every column it rebuilds is
 * in place (a "down" may read another rebuilt column's new version).  Refuses columns that
 * something other than how->dropped_constraint depends on: it would not follow.  column names it
 * in errors.
 */
static void carry_identity(EcTable *table, EcColumn *col, const EcColumnRebuild *how, Oid new_type);
static void recompose_column(EcStartContext *cxt, EcTable *table, EcColumn *col, const char *column,
							 const EcColumnRebuild *how);

void
ec_op_rebuild_column(EcStartContext *cxt, EcTable *table, EcColumn *col, const char *column,
					 const EcColumnRebuild *how)
{
	Oid			old_type,
				new_type,
				collid;
	int32		old_typmod,
				new_typmod;
	char	   *type_sql;
	char	   *tmpname;
	char	   *dflt;
	bool		new_not_null;

	if (ec_op_column_rebuilt(col))
	{
		recompose_column(cxt, table, col, column, how);
		return;
	}
	check_duplicable(cxt, table, col->old_attnum, column, how->dropped_constraint);
	/* Goes with the old column: carry*.c must not rebuild it on the new one. */
	if (OidIsValid(how->dropped_constraint))
		table->dropped_constraints = list_append_unique_oid(table->dropped_constraints,
															how->dropped_constraint);
	col->owned_sequences = owned_sequences(table, col->old_attnum);

	get_atttypetypmodcoll(table->relid, col->old_attnum, &old_type, &old_typmod, &collid);
	if (how->type)
	{
		type_sql = ec_resolve_type(how->type, &new_type, &new_typmod);
		if (ec_is_serial(type_sql))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot change column \"%s\" to a serial type", column)));
	}
	else
	{
		new_type = old_type;
		new_typmod = old_typmod;
		type_sql = format_type_extended(old_type, old_typmod,
										FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	}
	new_not_null = how->has_nullable ? !how->nullable :
		attribute_not_null(table->relid, col->old_attnum);

	tmpname = ec_temp_name(EC_NEW_COLUMN_PREFIX, ec_op_attname(table, col->old_attnum));
	col->new_attnum = ec_op_add_new_column(cxt, table, tmpname, type_sql, NULL);
	col->created = true;
	col->moves_data = true;
	ec_copy_column_privileges(table->relid, col->old_attnum, tmpname);

	/* Set after ADD COLUMN so that no default, however volatile, rewrites the table. */
	if (how->has_default)
		dflt = how->default_expr ? ec_op_default_sql(how->default_expr, column, new_type,
													 new_typmod, NULL) : NULL;
	else
		dflt = carried_default(table->relid, col->old_attnum, new_type, new_typmod);
	if (dflt)
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", ec_op_table_sql(table),
						 quote_identifier(tmpname), dflt));
	if (!how->has_default)
		carry_partition_defaults(table, ec_op_attname(table, col->old_attnum), tmpname, new_type,
								 new_typmod, dflt);
	if (new_not_null || how->not_null)
		ec_op_new_column_not_null(cxt, table, col);
	if (how->has_comment)
		ec_op_comment_on_column(table, col->new_attnum, how->comment);
	else
	{
		char	   *old_comment = GetComment(table->relid, RelationRelationId, col->old_attnum);

		if (old_comment)
			ec_op_comment_on_column(table, col->new_attnum, old_comment);
	}
	carry_identity(table, col, how, new_type);
	col->rebuild = palloc(sizeof(EcColumnRebuild));
	*col->rebuild = *how;
}

/*
 * An identity column rebuilt beside the old one: until complete, the old column's sequence numbers
 * both versions (the old one through the identity, the new one through its view's default, so the
 * new version inserts as BY DEFAULT would); at complete the new column becomes the identity, with
 * a sequence of the old one's options (its bounds widened with the type where they were the old
 * type's defaults, as ALTER COLUMN TYPE does), value, name and privileges.
 */
static void
carry_identity(EcTable *table, EcColumn *col, const EcColumnRebuild *how, Oid new_type)
{
	HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table->relid),
										Int16GetDatum(col->old_attnum));
	char		identity;
	Oid			seq;
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	char	   *temp_name;
	int64		increment,
				minv,
				maxv,
				start,
				cache;
	bool		cycle,
				isnull;
	Oid			seqtype;
	StringInfoData opts;
	TupleDesc	desc;
	HeapTuple	row;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg_internal("cache lookup failed for attribute %d of relation %u", col->old_attnum, table->relid)));
	identity = ((Form_pg_attribute) GETSTRUCT(tuple))->attidentity;
	ReleaseSysCache(tuple);
	if (!identity)
		return;
	if (how->has_default && how->default_expr != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot set a default on identity column \"%s\"", col->old_name),
				 errdetail("An identity column numbers its rows itself; PostgreSQL allows no default beside it."),
				 errhint("Drop the identity in a \"sql\" operation first if the column should take a default.")));
	if (new_type != INT2OID && new_type != INT4OID && new_type != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("identity column \"%s\" can only change to smallint, integer or bigint",
						col->old_name),
				 errdetail("Identity columns must be of an integer type.")));
	seq = getIdentitySequence(table->relid, col->old_attnum, false);
	temp_name = ec_qualified(get_namespace_name(get_rel_namespace(table->relid)),
							 ec_temp_name("_ec_identity_", get_rel_name(seq)));
	values[0] = ObjectIdGetDatum(seq);
	values[1] = CStringGetTextDatum(temp_name);
	(void) ec_spi("SELECT s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, s.seqcycle,"
				  "       s.seqtypid,"
				  "       (SELECT pg_catalog.string_agg(pg_catalog.format('GRANT %s ON SEQUENCE %s TO %s%s',"
				  "                 a.privilege_type, $2,"
				  "                 CASE a.grantee WHEN 0 THEN 'PUBLIC'"
				  "                      ELSE pg_catalog.quote_ident(r.rolname) END,"
				  "                 CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '; '"
				  "                 ORDER BY a.privilege_type, a.grantee)"
				  "          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a"
				  "          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
				  "         WHERE c.oid = s.seqrelid AND a.grantee <> c.relowner)"
				  "  FROM pg_catalog.pg_sequence s WHERE s.seqrelid = $1",
				  2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("sequence %u of identity column not found", seq)));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	increment = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	minv = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	maxv = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	start = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
	cache = DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull));
	cycle = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
	seqtype = DatumGetObjectId(SPI_getbinval(row, desc, 7, &isnull));
	col->identity_grants = SPI_getvalue(row, desc, 8);

	initStringInfo(&opts);
	appendStringInfo(&opts, " (SEQUENCE NAME %s INCREMENT BY " INT64_FORMAT " START WITH " INT64_FORMAT
					 " CACHE " INT64_FORMAT "%s",
					 temp_name, increment, start, cache, cycle ? " CYCLE" : " NO CYCLE");
	/* The old type's default bounds become the new type's, as ALTER COLUMN TYPE makes them. */
	{
		int64		type_max = seqtype == INT2OID ? PG_INT16_MAX :
			seqtype == INT4OID ? PG_INT32_MAX : PG_INT64_MAX;
		int64		type_min = seqtype == INT2OID ? PG_INT16_MIN :
			seqtype == INT4OID ? PG_INT32_MIN : PG_INT64_MIN;

		if (!(increment > 0 ? minv == 1 : minv == type_min))
			appendStringInfo(&opts, " MINVALUE " INT64_FORMAT, minv);
		if (!(increment > 0 ? maxv == type_max : maxv == -1))
			appendStringInfo(&opts, " MAXVALUE " INT64_FORMAT, maxv);
	}
	appendStringInfoChar(&opts, ')');
	col->identity_source = seq;
	col->identity_sequence = temp_name;
	col->identity_when = identity == ATTRIBUTE_IDENTITY_ALWAYS ? "ALWAYS" : "BY DEFAULT";
	col->identity_options = opts.data;
	col->view_default = psprintf("pg_catalog.nextval(%s::pg_catalog.regclass)",
								 quote_literal_cstr(ec_rel_qualified(seq)));
}

bool
ec_op_column_rebuilt(EcColumn *col)
{
	return col->rebuild != NULL && col->moves_data && col->old_attnum != 0 && col->new_attnum != 0 &&
		col->new_attnum != col->old_attnum;
}

/* Removes the first string equal to str from list (the undo of a step made again). */
static List *
list_delete_string(List *list, const char *str)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		if (strcmp(lfirst(lc), str) == 0)
			return list_delete_cell(list, lc);
	}
	return list;
}

/*
 * A later operation's change to a column an earlier one of the migration already rebuilt: the two
 * compose into one rebuild (one new column, one backfill, "up" and "down" chained by
 * ec_op_rebuild_expressions).  A new type needs a new column (ALTER COLUMN TYPE would rewrite the
 * table under ACCESS EXCLUSIVE): the earlier one is renamed aside until the operation ends, then
 * dropped (ec_op_finish_composition), which only works while no constraint but its stand-in NOT NULL
 * check hangs on it; other columns' expressions that read it are rewritten then.
 */
static void
recompose_column(EcStartContext *cxt, EcTable *table, EcColumn *col, const char *column,
				 const EcColumnRebuild *how)
{
	EcColumnRebuild merged = *col->rebuild;
	char	   *tsql = ec_op_table_sql(table);
	char	   *current = ec_op_attname(table, col->new_attnum);
	Oid			cur_type,
				new_type,
				collid;
	int32		cur_typmod,
				new_typmod;

	if (how->type)
		merged.type = how->type;
	if (how->has_nullable)
	{
		merged.has_nullable = true;
		merged.nullable = how->nullable;
	}
	merged.not_null |= how->not_null;
	if (how->has_default)
	{
		merged.has_default = true;
		merged.default_expr = how->default_expr;
	}
	if (how->has_comment)
	{
		merged.has_comment = true;
		merged.comment = how->comment;
	}
	if (OidIsValid(how->dropped_constraint))
		table->dropped_constraints = list_append_unique_oid(table->dropped_constraints,
															how->dropped_constraint);
	col->prev_new_attnum = col->new_attnum;
	col->prev_up = col->up;
	col->prev_down = col->down;

	get_atttypetypmodcoll(table->relid, col->new_attnum, &cur_type, &cur_typmod, &collid);
	new_type = cur_type;
	new_typmod = cur_typmod;
	if (how->type)
	{
		if (ec_is_serial(ec_resolve_type(how->type, &new_type, &new_typmod)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot change column \"%s\" to a serial type", column)));
	}
	if (new_type != cur_type || new_typmod != cur_typmod)
	{
		Oid			types[3] = {OIDOID, INT2OID, TEXTOID};
		Datum		values[3];
		char	   *aside;

		values[0] = ObjectIdGetDatum(table->relid);
		values[1] = Int16GetDatum(col->new_attnum);
		values[2] = CStringGetTextDatum(col->not_null_check ? col->not_null_check : "");
		(void) ec_spi("SELECT conname FROM pg_catalog.pg_constraint"
					  " WHERE conrelid = $1 AND $2 = ANY (conkey) AND conname <> $3"
					  " ORDER BY 1 LIMIT 1", 3, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot change the type of column \"%s\" of table \"%s\" after an earlier "
							"operation of this migration gave it constraint \"%s\"", column,
							get_rel_name(table->relid),
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("Put the operation that changes the type first.")));
		if (col->not_null_check)
		{
			table->validate = list_delete_string(table->validate, col->not_null_check);
			ec_exec(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", tsql,
							 quote_identifier(col->not_null_check)));
			col->not_null_check = NULL;
		}
		aside = ec_temp_name("_ec_prev_", column);
		ec_exec(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql, quote_identifier(current),
						 quote_identifier(aside)));
		/* Made again under the same name: its undo is already there once. */
		cxt->rollback_steps = list_delete_string(cxt->rollback_steps,
												 psprintf("ALTER TABLE %s DROP COLUMN %s", tsql,
														  quote_identifier(current)));
		col->rebuild = NULL;
		col->new_attnum = col->old_attnum;
		ec_op_rebuild_column(cxt, table, col, column, &merged);
		return;
	}

	/* Same type: the change goes to the new column itself. */
	if (how->has_nullable || how->not_null)
	{
		if (!merged.nullable || merged.not_null ||
			(!merged.has_nullable && attribute_not_null(table->relid, col->old_attnum)))
			ec_op_new_column_not_null(cxt, table, col);
		else if (col->not_null_check)
		{
			table->validate = list_delete_string(table->validate, col->not_null_check);
			ec_exec(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", tsql,
							 quote_identifier(col->not_null_check)));
			col->not_null_check = NULL;
		}
	}
	if (how->has_default)
		ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s %s", tsql, quote_identifier(current),
						 how->default_expr ?
						 psprintf("SET DEFAULT %s", ec_op_default_sql(how->default_expr, column,
																	  new_type, new_typmod, NULL)) :
						 "DROP DEFAULT"));
	if (how->has_comment)
		ec_op_comment_on_column(table, col->new_attnum, how->comment);
	col->rebuild = palloc(sizeof(EcColumnRebuild));
	*col->rebuild = merged;
}

/*
 * "up" (over the old version's names, to the new column's type) and "down" (over the new version's
 * names, to the old column's type) of a column rebuilt by ec_op_rebuild_column, for the dual-write
 * trigger and the backfill.  NULL: the column itself, carried by assignment cast.
 */
typedef struct SubstituteContext
{
	int			n;
	AttrNumber *attnums;
	Node	  **exprs;
	int			depth;			/* subqueries entered: their Vars of the row are one level up */
} SubstituteContext;

/*
 * Replaces each Var of the row (varno 1) of one of cxt's attributes by its expression, also inside
 * subqueries (the expression's own Vars then pointed one level up per subquery), and only once: not
 * inside the expressions put in.
 */
static Node *
substitute_vars(Node *node, SubstituteContext *cxt)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var) && ((Var *) node)->varlevelsup == cxt->depth)
	{
		for (int i = 0; i < cxt->n; i++)
		{
			if (((Var *) node)->varattno == cxt->attnums[i])
			{
				Node	   *copy = copyObject(cxt->exprs[i]);

				if (cxt->depth > 0)
					IncrementVarSublevelsUp(copy, cxt->depth, 0);
				return copy;
			}
		}
		return node;
	}
	if (IsA(node, Query))
	{
		Query	   *result;

		cxt->depth++;
		result = query_tree_mutator((Query *) node, substitute_vars, cxt, 0);
		cxt->depth--;
		return (Node *) result;
	}
	return expression_tree_mutator(node, substitute_vars, cxt);
}

static Node *
substitute_one(Node *node, AttrNumber attnum, Node *expr)
{
	SubstituteContext subst = {0};

	if (node == NULL)
		return NULL;
	subst.n = 1;
	subst.attnums = &attnum;
	subst.exprs = &expr;
	return substitute_vars(node, &subst);
}

/*
 * "up" and "down" of a column that this operation changes after an earlier one rebuilt it: this
 * operation's "up" reads the new version as the earlier operations leave it (a rebuilt column is
 * its "up" as the earlier operations leave it, so the chain starts from the old row), and the
 * earlier "down" reads this operation's column through this operation's "down".  The earlier
 * expressions of every column the operation recomposes stay at hand until it ends
 * (ec_op_finish_composition), so that the order of its columns does not matter.
 */
static void
compose_expressions(EcTable *table, EcColumn *col, const char *up, const char *down)
{
	Oid			mid_type,
				new_type,
				collid;
	int32		mid_typmod,
				new_typmod;
	int			nnames;
	char	  **names;
	Node	   *expr;
	SubstituteContext subst = {0};
	ListCell   *lc;

	get_atttypetypmodcoll(table->relid, col->prev_new_attnum, &mid_type, &mid_typmod, &collid);
	get_atttypetypmodcoll(table->relid, col->new_attnum, &new_type, &new_typmod, &collid);

	names = ec_model_names_before_operation(table, &nnames);
	expr = ec_analyze_row_expression(up ? up : quote_identifier(col->op_name),
									 psprintf("up expression of column \"%s\"", col->new_name),
									 table->relid, names, nnames, new_type, new_typmod, false);
	subst.attnums = palloc(sizeof(AttrNumber) * (list_length(table->columns) + 1));
	subst.exprs = palloc(sizeof(Node *) * (list_length(table->columns) + 1));
	foreach(lc, table->columns)
	{
		EcColumn   *c = lfirst(lc);
		bool		composing = c->prev_new_attnum != 0;
		AttrNumber	attnum = composing ? c->prev_new_attnum : c->new_attnum;
		Node	   *c_up = composing ? c->prev_up : c->up;

		if (c_up && attnum && attnum != c->old_attnum)
		{
			subst.attnums[subst.n] = attnum;
			subst.exprs[subst.n++] = c_up;
		}
	}
	col->up = substitute_vars(expr, &subst);

	(void) ec_op_analyze(table, true, down ? down : quote_identifier(col->new_name),
						 psprintf("down expression of column \"%s\"", col->new_name),
						 mid_type, mid_typmod, false, &expr);
	col->prev_back = expr;
	col->down = substitute_one(col->prev_down, col->prev_new_attnum, expr);
}

/*
 * After each operation: the earlier new columns that recomposed columns replaced go, and whatever
 * else read them (another column's "down", a dropped column's) reads the replacement through its
 * "down" back to the earlier type instead.
 */
void
ec_op_finish_composition(EcStartContext *cxt)
{
	ListCell   *lt;

	foreach(lt, cxt->model->tables)
	{
		EcTable    *table = lfirst(lt);
		ListCell   *lc,
				   *lc2;

		foreach(lc, table->columns)
		{
			EcColumn   *col = lfirst(lc);

			if (col->prev_new_attnum == 0)
				continue;
			if (col->prev_new_attnum != col->new_attnum)
			{
				if (col->prev_back == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_DATA_CORRUPTED),
							 errmsg_internal("column \"%s\" was rebuilt again without its expressions", col->new_name ? col->new_name : "?")));
				foreach(lc2, table->columns)
				{
					EcColumn   *other = lfirst(lc2);

					if (other == col)
						continue;
					other->up = substitute_one(other->up, col->prev_new_attnum, col->prev_back);
					other->down = substitute_one(other->down, col->prev_new_attnum, col->prev_back);
				}
				ec_exec(psprintf("ALTER TABLE %s DROP COLUMN %s", ec_op_table_sql(table),
								 quote_identifier(ec_op_attname(table, col->prev_new_attnum))));
			}
			col->prev_new_attnum = 0;
			col->prev_up = NULL;
			col->prev_down = NULL;
			col->prev_back = NULL;
		}
	}
}

void
ec_op_rebuild_expressions(EcTable *table, EcColumn *col, const char *up, const char *down)
{
	Oid			old_type,
				new_type,
				collid;
	int32		old_typmod,
				new_typmod;

	if (col->prev_new_attnum != 0)
	{
		compose_expressions(table, col, up, down);
		return;
	}
	get_atttypetypmodcoll(table->relid, col->old_attnum, &old_type, &old_typmod, &collid);
	get_atttypetypmodcoll(table->relid, col->new_attnum, &new_type, &new_typmod, &collid);
	(void) ec_op_analyze(table, false, up ? up : quote_identifier(col->op_name),
						 psprintf("up expression of column \"%s\"", col->new_name),
						 new_type, new_typmod, false, &col->up);
	(void) ec_op_analyze(table, true, down ? down : quote_identifier(col->new_name),
						 psprintf("down expression of column \"%s\"", col->old_name),
						 old_type, old_typmod, false, &col->down);
}

/*
 * A multi-column "up" or "down" field (pgroll's MultiColumnUpSQL/MultiColumnDownSQL): an object
 * from column names (of the new version) to SQL expressions, as EcColumnExpr; "" is the column
 * itself, as in pgroll.  NIL when absent.  Which names it may hold is the operation's to check.
 */
List *
ec_op_read_column_map(EcDocObject *o, const char *key)
{
	JsonbValue *v = ec_doc_get(o, key);
	EcDocObject map;
	List	   *result = NIL;

	if (v == NULL)
		return NIL;
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field \"%s\" in %s must be an object mapping column names to SQL expressions",
						key, o->what)));
	ec_doc_load(&map, v, psprintf("field \"%s\" of %s", key, o->what));
	for (int i = 0; i < map.n; i++)
	{
		EcColumnExpr *entry = palloc0(sizeof(EcColumnExpr));
		char	   *name = map.keys[i];
		JsonbValue *val = &map.vals[i];

		map.used[i] = true;
		if (name[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("field \"%s\" in %s must not map an empty column name", key, o->what)));
		if (strlen(name) >= NAMEDATALEN)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("identifier \"%s\" in field \"%s\" of %s is too long", name, key,
							o->what),
					 errdetail("Identifiers are limited to %d bytes.", NAMEDATALEN - 1)));
		if (val->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("field \"%s\" in %s must be an object mapping column names to SQL expressions",
							key, o->what),
					 errdetail("The value for column \"%s\" is not a string.", name)));
		entry->column = pstrdup(name);
		entry->expr = val->val.string.len > 0 ?
			pnstrdup(val->val.string.val, val->val.string.len) : NULL;
		result = lappend(result, entry);
	}
	return result;
}

/* The entry for column in a list of EcColumnExpr, or NULL. */
EcColumnExpr *
ec_op_column_expr(List *map, const char *column)
{
	ListCell   *lc;

	foreach(lc, map)
	{
		EcColumnExpr *entry = lfirst(lc);

		if (strcmp(entry->column, column) == 0)
			return entry;
	}
	return NULL;
}

static bool
param_name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		(!first && c >= '0' && c <= '9');
}

static bool
param_value_char(char c)
{
	return param_name_char(c, false) || c == '.' || c == '+' || c == '-';
}

static void
bad_parameters(const char *what, const char *source, const char *p, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("invalid %s \"%s\"", what, source),
			 *p ? errdetail("Expected %s at \"%s\".", expected, p) :
			 errdetail("Expected %s at the end.", expected),
			 errhint("Write a comma-separated list of name=value pairs, such as "
					 "\"fillfactor=70, deduplicate_items=off\"; quote a value with single "
					 "quotes.")));
}

/*
 * Parses a parameter list such as "fillfactor = 70, deduplicate_items=off" strictly, as the
 * reloptions grammar of CREATE INDEX would read it: a name (folded to lower case, as an unquoted
 * identifier is), optionally "=" and a value, which is a number, a word (folded) or a string in
 * single quotes.  A name alone means true, as in SQL.  Returns DefElem nodes with String values;
 * anything else in the text is an error, so nothing can ride along into the statement.
 */
List *
ec_op_parse_parameters(const char *source, const char *what)
{
	const char *p = source;
	List	   *result = NIL;

	for (;;)
	{
		StringInfoData name;
		StringInfoData value;
		bool		has_value = false;

		while (scanner_isspace(*p))
			p++;
		if (!param_name_char(*p, true))
			bad_parameters(what, source, p, "a parameter name");
		initStringInfo(&name);
		while (param_name_char(*p, false))
			appendStringInfoChar(&name, pg_ascii_tolower((unsigned char) *p++));
		if (name.len >= NAMEDATALEN)
			bad_parameters(what, source, p, "a shorter parameter name");
		while (scanner_isspace(*p))
			p++;
		initStringInfo(&value);
		if (*p == '=')
		{
			p++;
			while (scanner_isspace(*p))
				p++;
			has_value = true;
			if (*p == '\'')
			{
				for (p++;; p++)
				{
					if (*p == '\0')
						bad_parameters(what, source, p, "a closing quote");
					if (*p == '\'' && p[1] == '\'')
						p++;
					else if (*p == '\'')
						break;
					appendStringInfoChar(&value, *p);
				}
				p++;
			}
			else
			{
				/* A word folds to lower case, a number stays as written. */
				bool		word = param_name_char(*p, true);

				if (!param_value_char(*p))
					bad_parameters(what, source, p, "a value");
				while (param_value_char(*p))
				{
					appendStringInfoChar(&value, word ? pg_ascii_tolower((unsigned char) *p) : *p);
					p++;
				}
			}
			while (scanner_isspace(*p))
				p++;
		}
		result = lappend(result, makeDefElem(pstrdup(name.data),
											 has_value ? (Node *) makeString(pstrdup(value.data)) : NULL,
											 -1));
		if (*p == '\0')
			return result;
		if (*p != ',')
			bad_parameters(what, source, p, "a comma or \"=\"");
		p++;
	}
}

/* name = 'value', ... for a statement: quoted, whatever the document said. */
char *
ec_op_parameters_sql(List *params)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, params)
	{
		DefElem    *def = lfirst(lc);

		appendStringInfo(&buf, "%s%s", lc == list_head(params) ? "" : ", ",
						 quote_identifier(def->defname));
		if (def->arg)
			appendStringInfo(&buf, " = %s", quote_literal_cstr(strVal(def->arg)));
	}
	return buf.data;
}

/* A collation's schema-qualified name, for DDL. */
char *
ec_op_qualified_collation(Oid collid)
{
	HeapTuple	tuple = SearchSysCache1(COLLOID, ObjectIdGetDatum(collid));
	Form_pg_collation form;
	char	   *result;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("cache lookup failed for collation %u", collid)));
	form = (Form_pg_collation) GETSTRUCT(tuple);
	result = ec_qualified(get_namespace_name(form->collnamespace), NameStr(form->collname));
	ReleaseSysCache(tuple);
	return result;
}

/* An operator class's schema-qualified name, for DDL; and, when asked, its name and input type. */
char *
ec_op_qualified_opclass(Oid opclassid, char **name, Oid *intype)
{
	HeapTuple	tuple = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassid));
	Form_pg_opclass form;
	char	   *result;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("cache lookup failed for operator class %u", opclassid)));
	form = (Form_pg_opclass) GETSTRUCT(tuple);
	result = ec_qualified(get_namespace_name(form->opcnamespace), NameStr(form->opcname));
	if (name)
		*name = pstrdup(NameStr(form->opcname));
	if (intype)
		*intype = form->opcintype;
	ReleaseSysCache(tuple);
	return result;
}

/* Does a raw parse tree hold a subquery? */
static bool
has_sublink_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		return true;
	return raw_expression_tree_walker(node, has_sublink_walker, context);
}

/*
 * PostgreSQL refuses subqueries in generation expressions and index predicates.  Say so from the
 * parse tree, before analysis, which lets them through elsewhere ("up" may read other tables).
 */
void
ec_op_refuse_subquery(const char *source, const char *what, const char *kind)
{
	if (has_sublink_walker(ec_parse_expression(source, what), NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot use subquery in %s", kind),
				 errdetail("It is the %s.", what)));
}
