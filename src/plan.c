/*
 * plan.c
 *	  After the operations of ec_start: the dual-write triggers, and the complete plan read off the
 *	  final model.
 *
 * The complete plan is ordered so that no step trips over another: validations first (they scan,
 * under a lock that lets writes continue), then triggers off, tables and columns dropped, columns and
 * then tables renamed to their final names, NOT NULL made real, and the "sql" operations marked
 * onComplete last.
 */
#include "postgres.h"

#include "access/attmap.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "nodes/nodeFuncs.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteManip.h"
#include "utils/partcache.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "operations.h"

static bool
table_moves_data(EcTable *table)
{
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		if (((EcColumn *) lfirst(lc))->moves_data)
			return true;
	}
	return false;
}

/*
 * Where a table's rows live: the table itself, or for a partitioned table its leaf partitions at
 * every level (in find_all_inheritors' order, parents before children), which are plain heaps that
 * the worker's batches (UPDATE ONLY over a TID range) and the dual-write trigger work on.  Their
 * locks were taken with the parent's (ec_relations_to_lock).
 */
List *
ec_table_leaves(Oid relid)
{
	List	   *leaves = NIL;
	ListCell   *lc;

	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return list_make1_oid(relid);
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			part = lfirst_oid(lc);
		char		relkind = get_rel_relkind(part);

		if (relkind == RELKIND_RELATION)
			leaves = lappend_oid(leaves, part);
		else if (relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot move data of partitioned table \"%s\": partition \"%s\" is not a table",
							get_rel_name(relid), get_rel_name(part)),
					 errdetail("The dual-write trigger and the backfill need every partition to be a table; foreign tables are not.")));
	}
	return leaves;
}

/*
 * The table's existing rows need their new columns computed by "up": one backfill task per leaf
 * (for a partitioned table, each leaf partition is a unit of work of its own, with its own progress).
 */
static void
queue_backfill(EcStartContext *cxt, EcTable *table)
{
	List	   *columns = NIL;
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->moves_data && col->up && col->new_attnum)
			columns = lappend(columns, get_attname(table->relid, col->new_attnum, false));
	}
	if (columns == NIL)
		return;
	foreach(lc, ec_table_leaves(table->relid))
		ec_add_task(cxt->migration_id, ++cxt->ntasks, "backfill", lfirst_oid(lc), columns, NULL);
}

/* Is column name part of the partition key of relid or of a partitioned table below it? */
static bool
in_partition_key(Oid relid, const char *name)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			part = lfirst_oid(lc);
		Relation	rel;
		PartitionKey key;
		Bitmapset  *attnos = NULL;
		AttrNumber	attnum;

		if (get_rel_relkind(part) != RELKIND_PARTITIONED_TABLE)
			continue;
		attnum = get_attnum(part, name);
		rel = table_open(part, NoLock);
		key = RelationGetPartitionKey(rel);
		for (int i = 0; i < key->partnatts; i++)
			if (key->partattrs[i] != 0)
				attnos = bms_add_member(attnos, key->partattrs[i] - FirstLowInvalidHeapAttributeNumber);
		pull_varattnos((Node *) key->partexprs, 1, &attnos);
		table_close(rel, NoLock);
		if (attnum != InvalidAttrNumber &&
			bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, attnos))
			return true;
	}
	return false;
}

/*
 * Complete drops the old column of each rebuilt or dropped column; PostgreSQL cannot drop a column
 * of a partition key (nor change its type), so such a migration is refused now rather than at
 * complete.
 */
static void
check_partition_key(EcTable *table)
{
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		char	   *name;

		if (col->old_attnum == 0 || (col->new_name != NULL && col->new_attnum == col->old_attnum))
			continue;
		name = get_attname(table->relid, col->old_attnum, false);
		if (in_partition_key(table->relid, name))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot rebuild or drop column \"%s\" of partitioned table \"%s\": it is in a partition key",
							name, get_rel_name(table->relid)),
					 errdetail("Complete would have to drop the old column, and PostgreSQL cannot drop a partition key column."),
					 errhint("Partition a new table by the new column in a \"create_table\" operation and move the rows with \"sql\" operations.")));
	}
}

static Node *
map_leaf_expression(Node *expr, const AttrMap *map, EcTable *table, Oid leaf)
{
	bool		found_whole_row = false;
	Node	   *mapped;

	if (expr == NULL)
		return NULL;
	mapped = map_variable_attnos(copyObject(expr), 1, 0, map, InvalidOid, &found_whole_row);
	if (found_whole_row)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot move data of partitioned table \"%s\": an up or down expression reads the whole row",
						get_rel_name(table->relid)),
				 errdetail("Partition \"%s\" has a row type of its own.", get_rel_name(leaf))));
	return mapped;
}

/*
 * The table's model as seen from one of its partitions: the same columns under the partition's
 * attribute numbers, which differ from the parent's after a dropped column or for a table attached
 * with another column order, and the expressions' Vars mapped to them (by name, as PostgreSQL maps
 * a partitioned index's expressions to a partition).  Each leaf gets a dual-write plan of its own
 * (expand_contract.dual_writes is keyed by the relation the trigger fires on), so the trigger and
 * the worker run per leaf exactly as on a plain table.
 */
EcTable *
ec_partition_table(EcTable *table, Oid leaf)
{
	Relation	parent = table_open(table->relid, NoLock);
	Relation	child = table_open(leaf, NoLock);
	AttrMap    *map = build_attrmap_by_name(RelationGetDescr(child), RelationGetDescr(parent));
	EcTable    *copy = palloc(sizeof(EcTable));
	ListCell   *lc;

	*copy = *table;
	copy->relid = leaf;
	copy->old_name = copy->new_name = get_rel_name(leaf);
	copy->columns = NIL;
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		EcColumn   *c = palloc(sizeof(EcColumn));

		*c = *col;
		c->old_attnum = col->old_attnum ? map->attnums[col->old_attnum - 1] : 0;
		c->new_attnum = col->new_attnum ? map->attnums[col->new_attnum - 1] : 0;
		if (col->moves_data)
		{
			c->up = map_leaf_expression(col->up, map, table, leaf);
			c->down = map_leaf_expression(col->down, map, table, leaf);
		}
		copy->columns = lappend(copy->columns, c);
	}
	free_attrmap(map);
	table_close(child, NoLock);
	table_close(parent, NoLock);
	return copy;
}

/*
 * One of a table's two dual-write triggers (see trigger.c): the first fires before the table's other
 * BEFORE triggers, the last after them.
 */
static void
create_dual_write_trigger(EcStartContext *cxt, const char *tsql, const char *name, const char *arg)
{
	const char *qname = quote_identifier(name);

	ec_exec(psprintf("CREATE TRIGGER %s BEFORE INSERT OR UPDATE ON %s FOR EACH ROW "
					 "EXECUTE FUNCTION %s.dual_write(%s)",
					 qname, tsql, EC_STATE_SCHEMA, quote_literal_cstr(arg)));
	/* Also under session_replication_role = replica: logical apply and restores write too. */
	ec_exec(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", tsql, qname));
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP TRIGGER %s ON %s", qname, tsql));
}


static bool
collect_function(Oid func_id, void *context)
{
	List	  **oids = context;

	*oids = list_append_unique_oid(*oids, func_id);
	return false;
}

/* The functions an expression calls (operators' and casts' too), subqueries included. */
static bool
collect_functions_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	(void) check_functions_in_node(node, collect_function, context);
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_functions_walker, context, 0);
	return expression_tree_walker(node, collect_functions_walker, context);
}

/*
 * The first dual-write trigger depends on the functions its "up" and "down" call, as a trigger's
 * WHEN clause would: DROP FUNCTION of one is refused while the migration needs it (it would make
 * every write fail), not found out at the next write.  Built-in functions are pinned, so nothing is
 * recorded for them.  Dropped with the trigger at complete or rollback.
 */
static void
record_expression_dependencies(EcTable *table)
{
	List	   *funcs = NIL;
	ListCell   *lc;
	ObjectAddress trigger;

	foreach(lc, table->columns)
	{
		EcColumn   *c = lfirst(lc);

		if (!c->moves_data)
			continue;
		(void) collect_functions_walker(c->up, &funcs);
		(void) collect_functions_walker(c->down, &funcs);
	}
	if (funcs == NIL)
		return;
	ObjectAddressSet(trigger, TriggerRelationId,
					 get_trigger_oid(table->relid, EC_TRIGGER_FIRST_NAME, false));
	foreach(lc, funcs)
	{
		ObjectAddress func;

		ObjectAddressSet(func, ProcedureRelationId, lfirst_oid(lc));
		recordDependencyOn(&trigger, &func, DEPENDENCY_NORMAL);
	}
}

void
ec_setup_dual_writes(EcStartContext *cxt, const char *new_schema, const char *old_schema,
					 const char *old_migration)
{
	ListCell   *lc;

	foreach(lc, cxt->model->tables)
	{
		EcTable    *table = lfirst(lc);
		char	   *tsql;

		if (!table_moves_data(table))
			continue;
		if (get_rel_relispartition(table->relid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot move data of partition \"%s\" on its own",
							get_rel_name(table->relid)),
					 errdetail("Its partitioned table \"%s\" and all its partitions are one table.",
							   get_rel_name(get_partition_parent(table->relid, false))),
					 errhint("Migrate the column of the partitioned table at the root of the hierarchy.")));

		/*
		 * On a partitioned table, PostgreSQL clones the triggers (and ENABLE ALWAYS) to every
		 * partition, and DROP TRIGGER on the parent drops the clones.
		 */
		tsql = ec_rel_qualified(table->relid);
		create_dual_write_trigger(cxt, tsql, EC_TRIGGER_FIRST_NAME, EC_TRIGGER_FIRST_ARG);
		create_dual_write_trigger(cxt, tsql, EC_TRIGGER_LAST_NAME, EC_TRIGGER_LAST_ARG);
		record_expression_dependencies(table);
		table->changed = true;
		ec_save_dual_write(cxt->migration_id, table, new_schema, cxt->migration_name, old_schema,
						   old_migration);
		/*
		 * The parent's own row serves expand_contract.writes_new_version(parent) (the WHEN of
		 * carried UPDATE OF triggers, cloned to the leaves); rows are written only in leaves.
		 */
		if (get_rel_relkind(table->relid) == RELKIND_PARTITIONED_TABLE)
		{
			ListCell   *lcl;

			check_partition_key(table);

			foreach(lcl, ec_table_leaves(table->relid))
				ec_save_dual_write(cxt->migration_id, ec_partition_table(table, lfirst_oid(lcl)),
								   new_schema, cxt->migration_name, old_schema, old_migration);
		}
		/* What hangs on rebuilt columns: unique indexes before the backfill, the rest after. */
		ec_carry_dependents(cxt, table, true);
		queue_backfill(cxt, table);
		ec_queue_compaction(cxt, table);
		ec_carry_dependents(cxt, table, false);
	}
}

/* Renames of one table's columns to their final names, through temporary names if they swap. */
static void
plan_column_renames(EcTable *table, const char *tsql, List **steps)
{
	List	   *from = NIL;
	List	   *to = NIL;
	bool		swap = false;
	ListCell   *lc,
			   *lc2;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		char	   *current;

		if (col->new_name == NULL || col->new_attnum == 0)
			continue;
		current = get_attname(table->relid, col->new_attnum, false);
		if (strcmp(current, col->new_name) == 0)
			continue;
		from = lappend(from, current);
		to = lappend(to, col->new_name);
	}
	foreach(lc, to)
	{
		foreach(lc2, from)
			swap |= strcmp(lfirst(lc), lfirst(lc2)) == 0;
	}

	forboth(lc, from, lc2, to)
	{
		const char *target = swap ? ec_temp_name("_ec_rename_", lfirst(lc)) : lfirst(lc2);

		*steps = lappend(*steps, psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
										  quote_identifier(lfirst(lc)), quote_identifier(target)));
	}
	if (swap)
	{
		forboth(lc, from, lc2, to)
			*steps = lappend(*steps,
							 psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
									  quote_identifier(ec_temp_name("_ec_rename_", lfirst(lc))),
									  quote_identifier(lfirst(lc2))));
	}
}

static void
plan_table(EcStartContext *cxt, EcTable *table, List **steps)
{
	char	   *tsql = ec_rel_qualified(table->relid);
	ListCell   *lc,
			   *lc2;

	/*
	 * Constraint renames first, in the order of their operations: a constraint on a column that
	 * complete drops goes with the column afterwards, under its new name.
	 */
	forboth(lc, table->renamed_constraints_from, lc2, table->renamed_constraints_to)
		*steps = lappend(*steps, psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
										  quote_identifier(lfirst(lc)),
										  quote_identifier(lfirst(lc2))));

	/* Sequences owned by a column that is replaced move to its replacement before it goes. */
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		ListCell   *lc2;

		if (col->new_name == NULL || col->new_attnum == 0)
			continue;
		foreach(lc2, col->owned_sequences)
			*steps = lappend(*steps, psprintf("ALTER SEQUENCE %s OWNED BY %s.%s",
											  ec_rel_qualified(lfirst_oid(lc2)), tsql,
											  quote_identifier(get_attname(table->relid,
																		   col->new_attnum,
																		   false))));
	}
	/*
	 * A rebuilt identity column: the new one becomes the identity while the old one's sequence,
	 * which goes with the old column, still holds the value to continue from.  The new version's
	 * view stops drawing from it (its default would block the drop, and the identity numbers now).
	 */
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		const char *current;

		if (!OidIsValid(col->identity_source) || col->new_name == NULL || col->new_attnum == 0)
			continue;
		current = quote_identifier(get_attname(table->relid, col->new_attnum, false));
		*steps = lappend(*steps, psprintf("ALTER VIEW %s ALTER COLUMN %s DROP DEFAULT",
										  ec_qualified(cxt->version_schema, table->new_name),
										  quote_identifier(col->new_name)));
		*steps = lappend(*steps, psprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", tsql,
										  current));
		*steps = lappend(*steps, psprintf("ALTER TABLE %s ALTER COLUMN %s ADD GENERATED %s AS IDENTITY%s",
										  tsql, current, col->identity_when,
										  col->identity_options));
		*steps = lappend(*steps, psprintf("SELECT pg_catalog.setval(%s, last_value, is_called) FROM %s",
										  quote_literal_cstr(col->identity_sequence),
										  ec_rel_qualified(col->identity_source)));
		if (col->identity_grants)
			*steps = lappend(*steps, col->identity_grants);
	}
	/* User views and triggers on rebuilt columns would block DROP COLUMN; carry_views.c */
	*steps = list_concat(*steps, table->before_drop_steps);
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		AttrNumber	drop = 0;

		if (col->old_attnum && (col->new_name == NULL || col->new_attnum != col->old_attnum))
			drop = col->old_attnum;
		if (drop)
			*steps = lappend(*steps, psprintf("ALTER TABLE %s DROP COLUMN %s", tsql,
											  quote_identifier(get_attname(table->relid, drop,
																		   false))));
		if (col->created && col->new_name == NULL && col->new_attnum)
			*steps = lappend(*steps, psprintf("ALTER TABLE %s DROP COLUMN %s", tsql,
											  quote_identifier(get_attname(table->relid,
																		   col->new_attnum,
																		   false))));
	}
	plan_column_renames(table, tsql, steps);
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (OidIsValid(col->identity_source) && col->new_name && col->new_attnum)
			*steps = lappend(*steps, psprintf("ALTER SEQUENCE %s RENAME TO %s",
											  col->identity_sequence,
											  quote_identifier(get_rel_name(col->identity_source))));
	}

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);
		const char *final;

		if (col->new_name == NULL)
			continue;
		final = quote_identifier(col->new_name);
		if (col->default_changed)
			*steps = lappend(*steps, psprintf("ALTER TABLE %s ALTER COLUMN %s %s", tsql, final,
											  col->new_default ?
											  psprintf("SET DEFAULT %s", col->new_default) :
											  "DROP DEFAULT"));
		if (col->comment_changed)
			*steps = lappend(*steps, psprintf("COMMENT ON COLUMN %s.%s IS %s", tsql, final,
											  col->new_comment ?
											  quote_literal_cstr(col->new_comment) : "NULL"));
		if (col->not_null_check)
		{
			/* The validated check lets SET NOT NULL skip its scan. */
			*steps = lappend(*steps, psprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", tsql,
											  final));
			*steps = lappend(*steps, psprintf("ALTER TABLE %s DROP CONSTRAINT %s", tsql,
											  quote_identifier(col->not_null_check)));
		}
		if (col->identity_when && OidIsValid(col->identity_filler))
		{
			/*
			 * An added identity column (add_column): NOT NULL now, it becomes one, a catalog
			 * change; its sequence continues from the one that numbered it, no longer the
			 * column's (pg_get_serial_sequence must find the identity's).  Dropping that one takes
			 * the new version view's default on it along (CASCADE): the view must now leave the
			 * column to the identity.
			 */
			char	   *filler = ec_rel_qualified(col->identity_filler);

			*steps = lappend(*steps, psprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", tsql,
											  final));
			*steps = lappend(*steps, psprintf("ALTER SEQUENCE %s OWNED BY NONE", filler));
			*steps = lappend(*steps, psprintf("ALTER TABLE %s ALTER COLUMN %s ADD GENERATED %s AS IDENTITY%s",
											  tsql, final, col->identity_when,
											  col->identity_options));
			*steps = lappend(*steps, psprintf("SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence(%s, %s), last_value, is_called) FROM %s",
											  quote_literal_cstr(tsql),
											  quote_literal_cstr(col->new_name), filler));
			*steps = lappend(*steps, psprintf("DROP SEQUENCE %s CASCADE", filler));
		}
	}
	/* The worker built these concurrently; attaching one is a catalog change. */
	forboth(lc, table->unique_indexes, lc2, table->unique_names)
		*steps = lappend(*steps, psprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s",
										  tsql, quote_identifier(lfirst(lc2)),
										  quote_identifier(lfirst(lc))));
	/* After SET NOT NULL above: a primary key's columns must be NOT NULL already. */
	if (table->primary_key_name)
		*steps = lappend(*steps, psprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s",
										  tsql, quote_identifier(table->primary_key_name),
										  quote_identifier(table->primary_key_index)));
	/* Carried indexes and constraints take their names once the old ones went with their column. */
	*steps = list_concat(*steps, table->after_drop_steps);
}

void
ec_finish_plan(EcStartContext *cxt, List **validate_steps, List **complete_steps, List **relids)
{
	List	   *steps = NIL;
	List	   *renames = NIL;
	ListCell   *lc;

	foreach(lc, cxt->model->tables)
	{
		EcTable    *table = lfirst(lc);
		char	   *tsql = ec_rel_qualified(table->relid);
		char	   *current = get_rel_name(table->relid);
		ListCell   *lc2;

		if (table->changed || table->created || table->new_name == NULL ||
			strcmp(current, table->new_name) != 0)
			*relids = lappend_oid(*relids, table->relid);
		if (table_moves_data(table))
		{
			steps = lappend(steps, psprintf("DROP TRIGGER IF EXISTS %s ON %s",
											quote_identifier(EC_TRIGGER_FIRST_NAME), tsql));
			steps = lappend(steps, psprintf("DROP TRIGGER IF EXISTS %s ON %s",
											quote_identifier(EC_TRIGGER_LAST_NAME), tsql));
		}
		if (table->new_name == NULL)
			continue;
		/*
		 * Validation scans the table under SHARE UPDATE EXCLUSIVE; the worker does it after the
		 * backfill, outside anyone's transaction, so complete finds it done.  Complete repeats it
		 * (a no-op on a valid constraint) in case the constraint was invalidated meanwhile.
		 */
		foreach(lc2, table->validate)
		{
			char	   *step = psprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", tsql,
										quote_identifier(lfirst(lc2)));

			*validate_steps = lappend(*validate_steps, step);
			ec_add_task(cxt->migration_id, ++cxt->ntasks, "sql", table->relid, NIL, step);
		}
		if (strcmp(current, table->new_name) != 0)
			renames = lappend(renames, psprintf("ALTER TABLE %s RENAME TO %s", tsql,
												quote_identifier(table->new_name)));
	}
	foreach(lc, cxt->model->tables)
	{
		EcTable    *table = lfirst(lc);

		if (table->new_name == NULL)
			steps = lappend(steps, psprintf("DROP TABLE %s", ec_rel_qualified(table->relid)));
	}
	foreach(lc, cxt->model->tables)
	{
		EcTable    *table = lfirst(lc);
		int			before = list_length(steps);
		ListCell   *lcv;

		if (table->new_name == NULL)
			continue;
		plan_table(cxt, table, &steps);
		/* Complete locks (with retries) every table it has a step for, renames included. */
		if (list_length(steps) > before && !list_member_oid(*relids, table->relid))
			*relids = lappend_oid(*relids, table->relid);
		/* The user views complete drops and re-creates (carry_views.c), also with retries. */
		foreach(lcv, table->carried_views)
			*relids = list_append_unique_oid(*relids, lfirst_oid(lcv));
		/* Tables whose foreign keys complete re-points (carry_foreign_keys.c), in any schema. */
		foreach(lcv, ec_carry_foreign_keys_tables(cxt, table))
			*relids = list_append_unique_oid(*relids, lfirst_oid(lcv));
	}
	/*
	 * Publication entries go first (their column lists and row filters depend on the columns that
	 * complete drops) and come back once the tables and columns have their final names.
	 */
	*complete_steps = list_concat(list_concat(list_concat(list_copy(cxt->publication_drop), steps),
											  renames),
								  list_concat(list_copy(cxt->publication_restore),
											  cxt->complete_tail));
}
