/*
 * carry_constraints.c
 *	  Check and foreign key constraints on rebuilt columns, carried to the new columns (see carry.c).
 *
 * A check of the table whose expression reads a rebuilt column, and a foreign key of the table
 * whose referencing columns include one, is added again over the new columns under a temporary name
 * (_ec_con_<name>), NOT VALID: ADD CONSTRAINT then needs no scan under ec_start's ACCESS EXCLUSIVE
 * lock, and every write from then on is checked, whichever version it comes from, because the
 * dual-write trigger fills both columns of each pair.  The worker validates it after the backfill
 * (table->validate), and at complete, once the old column has taken the old constraint with it, the
 * new one is renamed to the original name.  A constraint that was NOT VALID stays NOT VALID, as
 * PostgreSQL's own ALTER COLUMN ... TYPE keeps it.
 *
 * The new definition is what ALTER COLUMN ... TYPE would rebuild: the stored expression (conbin)
 * with its columns replaced by their new versions, deparsed over physical names and parsed again by
 * ADD CONSTRAINT, so that operators and casts resolve for the new type exactly as they would
 * offline; a foreign key's referenced side, MATCH type, actions and deferrability as they are.
 *
 * Refused, with an error naming the constraint: foreign keys whose action writes the referencing
 * rows (ON DELETE SET NULL/SET DEFAULT, ON UPDATE CASCADE/SET NULL/SET DEFAULT).  Each of the two
 * constraints would run its own UPDATE of the referencing rows, and for a session on the other
 * version the dual-write trigger recomputes the column the action just set from its counterpart,
 * leaving a new column that references nothing.  Constraints of other tables that reference a
 * rebuilt column (inbound foreign keys) are refused earlier, by common.c's blocking_dependent.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "operations.h"

/* One constraint to carry, read and checked before any DDL runs. */
typedef struct CarriedConstraint
{
	char	   *name;			/* its name now */
	char	   *final_name;		/* after complete (rename_constraint may change it) */
	char	   *temp_name;
	char	   *definition;		/* CHECK (...) or FOREIGN KEY ..., over the new columns */
	bool		validate;		/* it is valid now, so the carried one must be validated */
	Oid			referenced;		/* a foreign key's referenced table; InvalidOid for a check */
} CarriedConstraint;

typedef struct RemapContext
{
	EcRebuildMap *map;
	const char *constraint;
	const char *table;
} RemapContext;

static AttrNumber
mapped(EcRebuildMap *map, AttrNumber attnum)
{
	if (attnum >= 1 && attnum <= map->natts)
		return map->new_attnum[attnum - 1];
	return attnum;
}

/* Replaces each column of the table in a check expression (varno 1) by its new version. */
static Node *
remap_vars_mutator(Node *node, RemapContext *rc)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) copyObject(node);

		if (var->varlevelsup == 0 && var->varno == 1)
		{
			/*
			 * A whole-row reference would read the helper columns too and, after complete, a row of
			 * another shape: there is no single column to move it to.
			 */
			if (var->varattno == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot carry check constraint \"%s\" of table \"%s\" to the rebuilt columns",
								rc->constraint, rc->table),
						 errdetail("The constraint refers to the whole row."),
						 errhint("Drop the constraint in a \"sql\" operation first and recreate it after completing.")));
			var->varattno = mapped(rc->map, var->varattno);
			var->varattnosyn = var->varattno;
		}
		return (Node *) var;
	}
	return expression_tree_mutator(node, remap_vars_mutator, (void *) rc);
}

static char *
check_definition(EcTable *table, HeapTuple tuple, EcRebuildMap *map)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);
	bool		isnull;
	Datum		d = SysCacheGetAttr(CONSTROID, tuple, Anum_pg_constraint_conbin, &isnull);
	RemapContext rc;
	Node	   *expr;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("null conbin for constraint \"%s\"", NameStr(con->conname))));
	rc.map = map;
	rc.constraint = NameStr(con->conname);
	rc.table = get_rel_name(table->relid);
	expr = remap_vars_mutator(stringToNode(TextDatumGetCString(d)), &rc);
	/* Deparsed over the physical names; ADD CONSTRAINT resolves it again for the new types. */
	return psprintf("CHECK (%s)%s", ec_deparse(expr, table->relid),
					con->connoinherit ? " NO INHERIT" : "");
}

static char *
foreign_key_definition(EcTable *table, HeapTuple tuple, EcRebuildMap *map)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);
	EcForeignKeyDef fk;
	List	   *columns = NIL;
	List	   *ref_columns = NIL;
	AttrNumber *keys;
	int			n;

	keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_conkey, &n);
	for (int i = 0; i < n; i++)
		columns = lappend(columns, (char *) quote_identifier(ec_op_attname(table, mapped(map, keys[i]))));
	keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &n);
	for (int i = 0; i < n; i++)
		ref_columns = lappend(ref_columns,
							  (char *) quote_identifier(get_attname(con->confrelid, keys[i], false)));

	memset(&fk, 0, sizeof(fk));
	fk.name = NameStr(con->conname);
	fk.match_type = (char *) ec_carry_fk_match(con->confmatchtype);
	fk.on_delete = (char *) ec_carry_fk_action(con->confdeltype);
	fk.on_update = (char *) ec_carry_fk_action(con->confupdtype);
	fk.deferrable = con->condeferrable;
	fk.initially_deferred = con->condeferred;
	return ec_fk_clause(&fk, columns, ec_rel_qualified(con->confrelid), ref_columns);
}

/*
 * Refuses a foreign key whose action writes the referencing rows: see the header comment.  (Its
 * PostgreSQL 15 column list, SET NULL (cols), only exists with those actions.)
 */
static void
refuse_writing_action(EcTable *table, Form_pg_constraint con)
{
	const char *writes = ec_carry_fk_writing_action(con);

	if (writes)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot carry foreign key \"%s\" of table \"%s\" with %s to the rebuilt columns",
						NameStr(con->conname), get_rel_name(table->relid), writes),
				 errdetail("The action writes the referencing rows, and the dual-write trigger would "
						   "undo that for sessions on the other version, leaving rows that break the "
						   "constraint."),
				 errhint("Change the action to NO ACTION, RESTRICT or ON DELETE CASCADE in a \"sql\" "
						 "operation or migration first, and back after completing.")));
}

/* This transaction holds SHARE ROW EXCLUSIVE or stronger on relid (the referencing table itself). */
static bool
holds_share_row_exclusive(Oid relid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	for (LOCKMODE mode = ShareRowExclusiveLock; mode <= AccessExclusiveLock; mode++)
	{
		if (LockHeldByMe(&tag, mode))
			return true;
	}
	return false;
}

/* The name the constraint has after complete: rename_constraint operations may rename it first. */
static char *
final_name(EcTable *table, const char *name)
{
	char	   *result = pstrdup(name);
	ListCell   *lc,
			   *lc2;

	forboth(lc, table->renamed_constraints_from, lc2, table->renamed_constraints_to)
	{
		if (strcmp(lfirst(lc), result) == 0)
			result = pstrdup(lfirst(lc2));
	}
	return result;
}

void
ec_carry_constraints(EcStartContext *cxt, EcTable *table, EcRebuildMap *map)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	List	   *oids;
	List	   *carried = NIL;
	List	   *lock_relids = NIL;
	List	   *lock_modes = NIL;
	char	   *tsql = ec_op_table_sql(table);
	ListCell   *lc;

	oids = ec_spi_oids("SELECT oid FROM pg_catalog.pg_constraint"
					   " WHERE conrelid = $1 AND contype IN ('c', 'f') ORDER BY conname",
					   1, types, values);

	/* Read and check every one first: a refusal comes before any DDL or lock wait. */
	foreach(lc, oids)
	{
		Oid			conoid = lfirst_oid(lc);
		HeapTuple	tuple;
		Form_pg_constraint con;
		AttrNumber *keys;
		int			n;
		bool		rebuilt = false;
		CarriedConstraint *cc;

		if (list_member_oid(table->dropped_constraints, conoid))
			continue;			/* goes with the old column */
		tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg_internal("cache lookup failed for constraint %u", conoid)));
		con = (Form_pg_constraint) GETSTRUCT(tuple);
		/* The extension's own helpers (NOT VALID not-null checks, ...) belong to the new columns. */
		if (strncmp(NameStr(con->conname), "_ec_", 4) == 0)
		{
			ReleaseSysCache(tuple);
			continue;
		}
		keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_conkey, &n);
		for (int i = 0; i < n; i++)
			rebuilt |= bms_is_member(keys[i], map->rebuilt);
		if (!rebuilt)
		{
			ReleaseSysCache(tuple);
			continue;
		}
		if (con->coninhcount > 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot carry inherited constraint \"%s\" of table \"%s\" to the rebuilt columns",
							NameStr(con->conname), get_rel_name(table->relid)),
					 errdetail("The constraint belongs to a parent table.")));

		cc = palloc0(sizeof(CarriedConstraint));
		cc->name = pstrdup(NameStr(con->conname));
		cc->final_name = final_name(table, cc->name);
		cc->temp_name = ec_temp_name("_ec_con_", cc->name);
		cc->validate = con->convalidated;
		if (con->contype == CONSTRAINT_CHECK)
			cc->definition = check_definition(table, tuple, map);
		else
		{
			refuse_writing_action(table, con);
			cc->definition = foreign_key_definition(table, tuple, map);
			cc->referenced = con->confrelid;
			/*
			 * ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on the referenced table, and would wait for
			 * it without a timeout while this transaction holds the table's ACCESS EXCLUSIVE lock.
			 */
			if (!holds_share_row_exclusive(con->confrelid) &&
				!list_member_oid(lock_relids, con->confrelid))
			{
				lock_relids = lappend_oid(lock_relids, con->confrelid);
				lock_modes = lappend_int(lock_modes, ShareRowExclusiveLock);
			}
		}
		ReleaseSysCache(tuple);
		carried = lappend(carried, cc);
	}
	if (carried == NIL)
		return;

	/*
	 * The operations' touches cannot name these tables: which foreign keys are carried is known only
	 * once the operations have run.  So the lock is taken here, with the same timeout and retries as
	 * ec_start's first locks; a referenced table of the same schema already holds ACCESS SHARE from
	 * those, so the wait is only for writers of the referenced table, each attempt bounded.
	 */
	if (lock_relids != NIL)
		ec_lock_with_retry(lock_relids, lock_modes);

	foreach(lc, carried)
	{
		CarriedConstraint *cc = lfirst(lc);

		if (OidIsValid(cc->referenced))
			ec_op_refuse_on_partitioned(table, true, cc->name);
		/* Rollback: the helper column's DROP COLUMN takes the constraint with it. */
		ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", tsql,
						 quote_identifier(cc->temp_name), cc->definition));
		if (cc->validate)
			table->validate = lappend(table->validate, pstrdup(cc->temp_name));
		/*
		 * Complete drops the old foreign key with its column, and rollback the new one with the
		 * helper column; either drops its triggers on the referenced table, under ACCESS EXCLUSIVE
		 * there.  Marked changed, a table of the schema is locked up front, with the retries.
		 */
		if (OidIsValid(cc->referenced))
		{
			ListCell   *lc2;

			foreach(lc2, cxt->model->tables)
			{
				EcTable    *ref = lfirst(lc2);

				if (ref->relid == cc->referenced)
					ref->changed = true;
			}
		}
		table->after_drop_steps = lappend(table->after_drop_steps,
										  psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
												   quote_identifier(cc->temp_name),
												   quote_identifier(cc->final_name)));
	}
	table->changed = true;
}
