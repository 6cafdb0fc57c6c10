/*
 * views.c
 *	  The version schema: one view per table of the schema, in the new version's shape.
 *
 * Each view is a plain column list over one table, so PostgreSQL keeps it automatically updatable
 * (INSERT, UPDATE, DELETE, RETURNING, ON CONFLICT).  Views bind to columns by attribute number, so
 * they survive the renames of complete.  They check privileges and row-level security as the
 * querying role (security_invoker), carry the table's column defaults (a view has none of its own)
 * and the table's grants, so the roles that use a table can use its view.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "expand_contract.h"

/* The SQL text of the table column's default, or NULL (identity and generated columns: none). */
static char *
column_default(Relation rel, AttrNumber attnum)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	Node	   *expr;

	if (att->attidentity || att->attgenerated || !att->atthasdef)
		return NULL;
	expr = build_column_default(rel, attnum);
	return expr ? ec_deparse(expr, RelationGetRelid(rel)) : NULL;
}

static void
create_view(EcTable *table, const char *version_schema)
{
	Relation	rel = table_open(table->relid, AccessShareLock);
	int			natts = RelationGetDescr(rel)->natts;
	char	  **column_map = palloc0(sizeof(char *) * (natts + 1));
	char	   *view = ec_qualified(version_schema, table->new_name);
	StringInfoData sql;
	List	   *after = NIL;
	ListCell   *lc;
	char	   *comment;
	bool		first = true;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE VIEW %s%s AS SELECT ", view, EC_VIEW_OPTIONS);
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		const char *name;
		char	   *dflt;

		if (col->new_name == NULL || col->new_attnum == 0)
			continue;
		name = quote_identifier(col->new_name);
		appendStringInfo(&sql, "%s%s AS %s", first ? "" : ", ",
						 quote_identifier(get_attname(table->relid, col->new_attnum, false)), name);
		first = false;
		column_map[col->new_attnum - 1] = col->new_name;

		dflt = col->default_changed ? col->new_default : column_default(rel, col->new_attnum);
		if (dflt == NULL && !col->default_changed)
			dflt = col->view_default;

		/*
		 * A dropped default must hide the table's: an insert through a view without one gets the
		 * table's.  SET DEFAULT NULL would not do: PostgreSQL stores no default for a bare null
		 * constant.  A COALESCE of it is stored, and is null.
		 */
		if (col->default_changed && dflt == NULL && column_default(rel, col->new_attnum) != NULL)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), col->new_attnum - 1);

			dflt = psprintf("COALESCE(NULL::%s)",
							format_type_extended(att->atttypid, att->atttypmod,
												 FORMAT_TYPE_TYPEMOD_GIVEN |
												 FORMAT_TYPE_FORCE_QUALIFY));
		}
		if (dflt)
			after = lappend(after, psprintf("ALTER VIEW %s ALTER COLUMN %s SET DEFAULT %s", view,
											name, dflt));
		comment = col->comment_changed ? col->new_comment :
			GetComment(table->relid, RelationRelationId, col->new_attnum);
		if (comment)
			after = lappend(after, psprintf("COMMENT ON COLUMN %s.%s IS %s", view, name,
											quote_literal_cstr(comment)));
	}
	appendStringInfo(&sql, " FROM %s", ec_rel_qualified(table->relid));
	table_close(rel, NoLock);

	ec_exec(sql.data);
	ec_exec_list(after);
	comment = GetComment(table->relid, RelationRelationId, 0);
	if (comment)
		ec_exec(psprintf("COMMENT ON VIEW %s IS %s", view, quote_literal_cstr(comment)));
	ec_copy_privileges(table->relid, view, column_map, natts);
}

/*
 * A partition's view has the shape of its partitioned table's (the root of its hierarchy, when the
 * model has it): a migration changes the partitioned table and all its partitions as one, and the
 * partition's own view must show the same new version.  The columns are mapped by name to the
 * partition's attribute numbers, which may differ.
 */
static EcTable *
partition_shape(EcModel *model, EcTable *table)
{
	List	   *ancestors;
	ListCell   *lc;

	if (table->created || !get_rel_relispartition(table->relid))
		return table;
	ancestors = get_partition_ancestors(table->relid);
	foreach(lc, model->tables)
	{
		EcTable    *root = lfirst(lc);

		if (root->relid == llast_oid(ancestors) && root->new_name != NULL)
		{
			EcTable    *shape = ec_partition_table(root, table->relid);

			shape->old_name = table->old_name;
			shape->new_name = table->new_name;
			return shape;
		}
	}
	return table;
}

void
ec_create_version_schema(EcModel *model, const char *version_schema)
{
	ListCell   *lc;

	ec_exec(psprintf("CREATE SCHEMA %s", quote_identifier(version_schema)));
	ec_exec(psprintf("COMMENT ON SCHEMA %s IS %s", quote_identifier(version_schema),
					 quote_literal_cstr(psprintf("expand_contract version schema of \"%s\"",
												 model->schema))));
	ec_copy_schema_privileges(model->nspid, version_schema);

	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);

		if (table->new_name != NULL)
			create_view(partition_shape(model, table), version_schema);
	}
}

/* Was relid created by this transaction (the complete steps)? */
static bool
created_here(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		result = false;

	if (HeapTupleIsValid(tuple))
	{
		result = TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tuple->t_data));
		ReleaseSysCache(tuple);
	}
	return result;
}

/*
 * After complete, the version schema is the current version: it gets a view for each table that
 * the complete steps created ("onComplete" sql operations).  Only those: a table created outside
 * any migration gets its view from the next ec_start, and complete must not wait for its lock.
 */
void
ec_complete_version_schema(Oid nspid, const char *version_schema)
{
	Oid			version_nspid = get_namespace_oid(version_schema, true);
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2];
	EcModel    *model;
	List	   *missing;
	ListCell   *lc;

	if (!OidIsValid(version_nspid))
		return;
	values[0] = ObjectIdGetDatum(nspid);
	values[1] = ObjectIdGetDatum(version_nspid);
	/* By name, without locking the tables that have their view. */
	missing = ec_spi_oids("SELECT c.oid FROM pg_catalog.pg_class c"
						  " WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p')"
						  "   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class v"
						  "                    WHERE v.relnamespace = $2 AND v.relname = c.relname)"
						  " ORDER BY c.relname COLLATE \"C\"",
						  2, types, values);
	if (missing == NIL)
		return;
	model = palloc0(sizeof(EcModel));
	model->nspid = nspid;
	model->schema = get_namespace_name(nspid);
	foreach(lc, missing)
	{
		if (created_here(lfirst_oid(lc)))
			create_view(ec_model_add_table(model, lfirst_oid(lc)), version_schema);
	}
}
