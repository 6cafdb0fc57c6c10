/*
 * ops/rename_constraint.c
 *	  rename_constraint: the constraint keeps its name while both versions run, and is renamed at
 *	  complete, as pgroll does.
 *
 * Renaming at start would break the old version's code that names the constraint (ON CONFLICT ON
 * CONSTRAINT, error handling), and the worker validates NOT VALID constraints by name meanwhile.
 * Start only checks, against the table's constraints as the operations before this one leave them,
 * that "from" exists and "to" is free, so that complete cannot fail on it.  Any constraint of the
 * table counts (pgroll looks at checks, unique constraints and foreign keys only), also one this
 * migration adds; a unique constraint or primary key whose index the worker is still building is
 * renamed where it is queued, and is attached at complete under its new name.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct RenameConstraintOp
{
	EcOperation base;
	char	   *table;
	char	   *from;
	char	   *to;
} RenameConstraintOp;

static void
rename_constraint_read(EcOperation *base, EcDocObject *o)
{
	RenameConstraintOp *op = (RenameConstraintOp *) base;

	op->table = ec_doc_identifier(o, "table", true);
	op->from = ec_doc_identifier(o, "from", true);
	op->to = ec_doc_identifier(o, "to", true);
}

/* Start changes nothing; complete's rename takes its ACCESS EXCLUSIVE lock with retries. */
static void
rename_constraint_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((RenameConstraintOp *) base)->table, AccessShareLock, true);
}

/*
 * The table's constraints in the catalog, with those that have an index (primary key, unique) and
 * those inherited from a parent (PostgreSQL renames them only with the parent's).
 */
static List *
catalog_constraints(EcTable *table, List **indexed, List **inherited)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	List	   *names = NIL;

	*indexed = NIL;
	*inherited = NIL;
	(void) ec_spi("SELECT conname::text, conindid <> 0, coninhcount > 0"
				  "  FROM pg_catalog.pg_constraint"
				  " WHERE conrelid = $1 ORDER BY conname COLLATE \"C\"",
				  1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		names = lappend(names, SPI_getvalue(tuple, desc, 1));
		if (DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull)))
			*indexed = lappend(*indexed, llast(names));
		if (DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull)))
			*inherited = lappend(*inherited, llast(names));
	}
	return names;
}

static bool
name_member(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

static List *
name_remove(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return foreach_delete_current(names, lc);
	}
	return names;
}

/*
 * The constraint names the table will have once complete reaches this operation: the catalog's,
 * with the renames of the operations before this one replayed in order (complete runs them in that
 * order), and the unique constraints that complete attaches.
 */
static List *
constraint_names(EcTable *table, List **indexed, List **inherited)
{
	List	   *names = catalog_constraints(table, indexed, inherited);
	ListCell   *lc,
			   *lc2;

	forboth(lc, table->renamed_constraints_from, lc2, table->renamed_constraints_to)
	{
		if (name_member(*indexed, lfirst(lc)))
			*indexed = lappend(name_remove(*indexed, lfirst(lc)), lfirst(lc2));
		names = lappend(name_remove(names, lfirst(lc)), lfirst(lc2));
	}
	foreach(lc, table->unique_names)
	{
		names = lappend(names, lfirst(lc));
		*indexed = lappend(*indexed, lfirst(lc));
	}
	if (table->primary_key_name)
	{
		names = lappend(names, table->primary_key_name);
		*indexed = lappend(*indexed, table->primary_key_name);
	}
	return names;
}

/* The helper checks standing in for NOT NULL until complete, which drops them by name. */
static bool
is_helper_constraint(EcTable *table, const char *name)
{
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->not_null_check && strcmp(col->not_null_check, name) == 0)
			return true;
	}
	return false;
}

static void
rename_constraint_start(EcStartContext *cxt, EcOperation *base)
{
	RenameConstraintOp *op = (RenameConstraintOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	List	   *indexed;
	List	   *inherited;
	List	   *names;
	ListCell   *lc;

	ec_op_require_owner(table);
	names = constraint_names(table, &indexed, &inherited);
	if (!name_member(names, op->from) || is_helper_constraint(table, op->from))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("constraint \"%s\" of table \"%s\" does not exist", op->from, op->table),
				 errdetail("Constraints keep their names until complete; a name is the table's, "
						   "after the renames of the operations before this one.")));
	if (name_member(inherited, op->from))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("cannot rename inherited constraint \"%s\" of table \"%s\"", op->from,
						op->table),
				 errhint("Rename it on the table it is inherited from.")));
	if (name_member(names, op->to))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("constraint \"%s\" for table \"%s\" already exists", op->to, op->table)));

	/* A primary key or unique constraint's index is renamed with it: its name must be free too. */
	if (name_member(indexed, op->from) &&
		(OidIsValid(get_relname_relid(op->to, cxt->model->nspid)) ||
		 ec_model_table(cxt->model, op->to, true) != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", op->to,
						cxt->model->schema),
				 errdetail("Renaming constraint \"%s\" also renames its index.", op->from)));

	/* Not attached yet: it is attached under the new name. */
	foreach(lc, table->unique_names)
	{
		if (strcmp(lfirst(lc), op->from) == 0)
		{
			lfirst(lc) = pstrdup(op->to);
			return;
		}
	}
	if (table->primary_key_name && strcmp(table->primary_key_name, op->from) == 0)
	{
		table->primary_key_name = pstrdup(op->to);
		return;
	}
	table->renamed_constraints_from = lappend(table->renamed_constraints_from, pstrdup(op->from));
	table->renamed_constraints_to = lappend(table->renamed_constraints_to, pstrdup(op->to));
}

const EcOpRoutine ec_op_rename_constraint = {
	.name = "rename_constraint",
	.size = sizeof(RenameConstraintOp),
	.read = rename_constraint_read,
	.touches = rename_constraint_touches,
	.start = rename_constraint_start,
};
