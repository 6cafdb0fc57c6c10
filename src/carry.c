/*
 * carry.c
 *	  What hangs on a column that the migration rebuilds beside the old one (alter_column with a type
 *	  or nullability change, create_constraint, drop_constraint, ...): carried to the new column so
 *	  that after complete the rebuilt column has each of them under its original name.
 *
 * The operations only refuse what nothing here carries (common.c's check_duplicable).  Once every
 * operation has run, ec_setup_dual_writes (plan.c) calls ec_carry_dependents for each table with
 * data to move: first for what must exist before the backfill (unique indexes: a duplicate fails the
 * build, not a batch), then for the rest.  Each kind has its own file:
 *	  carry_indexes.c		indexes, and the unique and primary key constraints they back
 *	  carry_constraints.c	check and foreign key constraints
 *	  carry_foreign_keys.c	foreign keys of any table that reference a rebuilt column
 *	  carry_views.c		user views over the column, and user triggers naming it
 * Each builds its new object under a temporary name without a long lock (a worker task, or NOT VALID
 * validated by the worker), and leaves complete the steps that give it the original name once the old
 * column, and with it the old object, is gone (EcTable.after_drop_steps, unique_indexes).
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "operations.h"

/* The rebuild map of table, or NULL when it rebuilds no column. */
EcRebuildMap *
ec_rebuild_map(EcTable *table)
{
	Relation	rel = table_open(table->relid, AccessShareLock);
	EcRebuildMap *map = palloc0(sizeof(EcRebuildMap));
	ListCell   *lc;

	map->natts = RelationGetDescr(rel)->natts;
	table_close(rel, NoLock);
	map->new_attnum = palloc(sizeof(AttrNumber) * (map->natts + 1));
	for (int i = 0; i < map->natts; i++)
		map->new_attnum[i] = i + 1;
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		/* Rebuilt: an old column replaced by a new physical one (not an added column). */
		if (col->old_attnum && col->new_attnum && col->new_attnum != col->old_attnum &&
			col->old_attnum <= map->natts)
		{
			map->new_attnum[col->old_attnum - 1] = col->new_attnum;
			map->rebuilt = bms_add_member(map->rebuilt, col->old_attnum);
		}
	}
	if (bms_is_empty(map->rebuilt))
		return NULL;
	return map;
}

void
ec_carry_dependents(EcStartContext *cxt, EcTable *table, bool before_backfill)
{
	EcRebuildMap *map = ec_rebuild_map(table);

	if (map == NULL)
		return;
	ec_carry_indexes(cxt, table, map, before_backfill);
	if (!before_backfill)
	{
		/*
		 * Foreign keys to a rebuilt column of a table of the migration are carried by that table's
		 * ec_carry_foreign_keys, from this table's new columns: hidden from carry_constraints.c
		 * as if dropped, for this call only.
		 */
		int			ndropped = list_length(table->dropped_constraints);

		table->dropped_constraints = list_concat(table->dropped_constraints,
												 ec_carry_foreign_keys_claimed(cxt, table));
		ec_carry_constraints(cxt, table, map);
		table->dropped_constraints = list_truncate(table->dropped_constraints, ndropped);
		ec_carry_foreign_keys(cxt, table, map);
	}
	if (!before_backfill)
		ec_carry_views(cxt, table, map);
}

/* The constraint's conkey (or confkey) as a palloc'd array of attribute numbers. */
AttrNumber *
ec_carry_constraint_attnums(HeapTuple tuple, AttrNumber attribute, int *n)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(CONSTROID, tuple, attribute, &isnull);
	ArrayType  *arr;
	AttrNumber *result;

	*n = 0;
	if (isnull)
		return NULL;
	arr = DatumGetArrayTypeP(d);
	if (ARR_NDIM(arr) != 1 || ARR_HASNULL(arr) || ARR_ELEMTYPE(arr) != INT2OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("constraint key is not a one-dimensional int2 array")));
	*n = ARR_DIMS(arr)[0];
	result = palloc(sizeof(AttrNumber) * Max(*n, 1));
	memcpy(result, ARR_DATA_PTR(arr), sizeof(AttrNumber) * *n);
	return result;
}

/* pg_constraint's confupdtype/confdeltype as SQL. */
const char *
ec_carry_fk_action(char action)
{
	switch (action)
	{
		case FKCONSTR_ACTION_NOACTION:
			return "NO ACTION";
		case FKCONSTR_ACTION_RESTRICT:
			return "RESTRICT";
		case FKCONSTR_ACTION_CASCADE:
			return "CASCADE";
		case FKCONSTR_ACTION_SETNULL:
			return "SET NULL";
		case FKCONSTR_ACTION_SETDEFAULT:
			return "SET DEFAULT";
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg_internal("unrecognized foreign key action \"%c\"", action)));
	return NULL;				/* keep compiler quiet */
}

/*
 * The action of a foreign key that writes its referencing rows ("ON DELETE SET NULL", "ON UPDATE
 * CASCADE", ...), or NULL when it has none: the carrying code refuses those, each saying why.
 */
char *
ec_carry_fk_writing_action(Form_pg_constraint con)
{
	if (con->confdeltype == FKCONSTR_ACTION_SETNULL || con->confdeltype == FKCONSTR_ACTION_SETDEFAULT)
		return psprintf("ON DELETE %s", ec_carry_fk_action(con->confdeltype));
	if (con->confupdtype == FKCONSTR_ACTION_CASCADE ||
		con->confupdtype == FKCONSTR_ACTION_SETNULL ||
		con->confupdtype == FKCONSTR_ACTION_SETDEFAULT)
		return psprintf("ON UPDATE %s", ec_carry_fk_action(con->confupdtype));
	return NULL;
}

/* pg_constraint's confmatchtype as SQL. */
const char *
ec_carry_fk_match(char match)
{
	switch (match)
	{
		case FKCONSTR_MATCH_SIMPLE:
			return "SIMPLE";
		case FKCONSTR_MATCH_FULL:
			return "FULL";
		case FKCONSTR_MATCH_PARTIAL:
			return "PARTIAL";
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg_internal("unrecognized foreign key match type \"%c\"", match)));
	return NULL;				/* keep compiler quiet */
}
