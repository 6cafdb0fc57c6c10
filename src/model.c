/*
 * model.c
 *	  The shape of a schema's tables as the old and the new version see them.
 *
 * At ec_start the old version's shape is the physical one: the previous migration, if any, is
 * complete, and completing renamed every column to its final name.  Each operation then edits the
 * model (and the database); the new version schema's views and the complete steps are read off the
 * final model.  Columns are tracked by attribute number, which no rename changes.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "expand_contract.h"

/* Ordinary and partitioned tables of a schema, by name; views are not tables to migrate. */
List *
ec_schema_relations(Oid nspid, bool views)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspid)};

	return ec_spi_oids(views ?
					   "SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = $1"
					   " AND relkind IN ('v', 'm') ORDER BY relname COLLATE \"C\"" :
					   "SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = $1"
					   " AND relkind IN ('r', 'p') ORDER BY relname COLLATE \"C\"",
					   1, types, values);
}

EcColumn *
ec_model_add_column(EcTable *table, AttrNumber attnum, const char *old_name,
					const char *new_name, bool created)
{
	EcColumn   *col = palloc0(sizeof(EcColumn));

	col->old_name = old_name ? pstrdup(old_name) : NULL;
	col->new_name = new_name ? pstrdup(new_name) : NULL;
	col->op_name = col->new_name;
	col->old_attnum = created ? 0 : attnum;
	col->new_attnum = attnum;
	col->created = created;
	table->columns = lappend(table->columns, col);
	return col;
}

static bool
table_has_attnum(EcTable *table, AttrNumber attnum)
{
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->old_attnum == attnum || col->new_attnum == attnum)
			return true;
	}
	return false;
}

/* Adds the physical columns the model does not know yet, visible under their own name. */
static void
load_columns(EcTable *table)
{
	Relation	rel = table_open(table->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || table_has_attnum(table, att->attnum))
			continue;
		ec_model_add_column(table, att->attnum, NameStr(att->attname), NameStr(att->attname),
							false);
	}
	table_close(rel, NoLock);
}

static EcTable *
add_table(EcModel *model, Oid relid)
{
	EcTable    *table = palloc0(sizeof(EcTable));
	char	   *relname = get_rel_name(relid);

	table->relid = relid;
	table->old_name = relname;
	table->new_name = pstrdup(relname);
	load_columns(table);
	model->tables = lappend(model->tables, table);
	return table;
}

/* Adds one table to the model, its columns under their own names. */
EcTable *
ec_model_add_table(EcModel *model, Oid relid)
{
	return add_table(model, relid);
}

EcModel *
ec_model_load(Oid nspid)
{
	EcModel    *model = palloc0(sizeof(EcModel));
	ListCell   *lc;

	model->nspid = nspid;
	model->schema = get_namespace_name(nspid);
	foreach(lc, ec_schema_relations(nspid, false))
		add_table(model, lfirst_oid(lc));
	return model;
}

static bool
attribute_exists(Oid relid, AttrNumber attnum)
{
	HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		exists = false;

	if (HeapTupleIsValid(tuple))
	{
		exists = !((Form_pg_attribute) GETSTRUCT(tuple))->attisdropped;
		ReleaseSysCache(tuple);
	}
	return exists;
}

/*
 * After a raw "sql" operation: forget what it dropped, learn what it created.  Tables and columns
 * it created are visible in both versions under their own names.
 */
void
ec_model_refresh(EcModel *model)
{
	List	   *kept = NIL;
	ListCell   *lc;

	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);
		List	   *columns = NIL;
		ListCell   *lc2;

		if (get_rel_name(table->relid) == NULL ||
			get_rel_namespace(table->relid) != model->nspid)
			continue;
		foreach(lc2, table->columns)
		{
			EcColumn   *col = lfirst(lc2);

			if (col->old_attnum && !attribute_exists(table->relid, col->old_attnum))
				col->old_attnum = 0;
			if (col->new_attnum && !attribute_exists(table->relid, col->new_attnum))
				col->new_attnum = 0;
			if (col->old_attnum || col->new_attnum)
				columns = lappend(columns, col);
		}
		table->columns = columns;
		load_columns(table);
		kept = lappend(kept, table);
	}
	model->tables = kept;

	foreach(lc, ec_schema_relations(model->nspid, false))
	{
		Oid			relid = lfirst_oid(lc);
		ListCell   *lc2;
		bool		known = false;

		foreach(lc2, model->tables)
			known |= ((EcTable *) lfirst(lc2))->relid == relid;
		if (!known)
			add_table(model, relid);
	}
}

/* The table the new version calls new_name. */
EcTable *
ec_model_table(EcModel *model, const char *new_name, bool missing_ok)
{
	ListCell   *lc;

	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);

		if (table->new_name && strcmp(table->new_name, new_name) == 0)
			return table;
	}
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s\" does not exist in schema \"%s\"", new_name, model->schema),
				 errdetail("Names in a migration are those of the new version, after the operations "
						   "before this one.")));
	return NULL;
}

/* The table whose physical name is relname, whichever version shows it. */
EcTable *
ec_model_table_by_physical(EcModel *model, const char *relname)
{
	ListCell   *lc;

	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);
		char	   *name = get_rel_name(table->relid);

		if (name && strcmp(name, relname) == 0)
			return table;
	}
	return NULL;
}

EcColumn *
ec_model_column(EcTable *table, const char *new_name, bool missing_ok)
{
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->new_name && strcmp(col->new_name, new_name) == 0)
			return col;
	}
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist", new_name, table->new_name)));
	return NULL;
}

/*
 * Before each operation: the names the operations before it left, which its "up" expressions use
 * (as pgroll's do).
 */
void
ec_model_begin_operation(EcModel *model)
{
	ListCell   *lc;

	foreach(lc, model->tables)
	{
		ListCell   *lc2;

		foreach(lc2, ((EcTable *) lfirst(lc))->columns)
		{
			EcColumn   *col = lfirst(lc2);

			col->op_name = col->new_name;
		}
	}
}

/*
 * The names one version gives each non-dropped attribute of the table, in attribute order, ""
 * where that version does not see the attribute: the column aliases for analysing expressions.
 * The new version's are its names now.  The old version's ("up" expressions) are its physical
 * columns, the values an old-version write stores, under the names the operations before the
 * current one gave them: a column renamed earlier in the migration goes by its new name, one
 * dropped earlier is not seen, nor is one added by this migration.
 */
static char **model_names(EcTable *table, bool new_version, bool before_operation, int *nnames);

char	  **
ec_model_names(EcTable *table, bool new_version, int *nnames)
{
	return model_names(table, new_version, false, nnames);
}

/*
 * The new version's columns under the names the operations before the current one gave them: what
 * a later operation's "up" reads when it changes a column an earlier one already rebuilt (the
 * column as the earlier operations leave it).  A column being recomposed goes by its earlier new
 * column (prev_new_attnum).
 */
char	  **
ec_model_names_before_operation(EcTable *table, int *nnames)
{
	return model_names(table, true, true, nnames);
}

static char **
model_names(EcTable *table, bool new_version, bool before_operation, int *nnames)
{
	Relation	rel = table_open(table->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	char	  **names = palloc0(sizeof(char *) * (desc->natts + 1));
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ListCell   *lc;
		char	   *name = "";

		if (att->attisdropped)
			continue;
		foreach(lc, table->columns)
		{
			EcColumn   *col = lfirst(lc);

			if (before_operation)
			{
				AttrNumber	attnum = col->prev_new_attnum ? col->prev_new_attnum : col->new_attnum;

				if (attnum == att->attnum && col->op_name)
					name = col->op_name;
			}
			else if (new_version && col->new_attnum == att->attnum && col->new_name)
				name = col->new_name;
			else if (!new_version && col->old_attnum == att->attnum && col->op_name)
				name = col->op_name;
		}
		names[n++] = name;
	}
	table_close(rel, NoLock);
	*nnames = n;
	return names;
}
