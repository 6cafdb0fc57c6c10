/*
 * carry_foreign_keys.c
 *	  Foreign keys of any table that reference a rebuilt column of this one (inbound foreign keys,
 *	  self-references included), re-pointed at the rebuilt column (see carry.c).
 *
 * Until complete the old foreign key stays in force: the dual-write trigger keeps each old key
 * column equal to its new one, so the old constraint protects both versions.  Its replacement
 * references the new key columns, whose unique index the worker builds before the backfill
 * (carry_indexes.c), so it can only be added once that index exists, and only once the referenced
 * table's backfill has filled the new key of every row (before that, a new referencing row would
 * find no key to match).  So two worker tasks follow the migration's backfills:
 *
 *	  ALTER TABLE t ADD CONSTRAINT _ec_con_<name> FOREIGN KEY (cols) REFERENCES r (new cols) ... NOT VALID
 *	  ALTER TABLE t VALIDATE CONSTRAINT _ec_con_<name>
 *
 * The first takes SHARE ROW EXCLUSIVE on both tables, which blocks their writers while it waits: the
 * worker runs it with expand_contract.lock_timeout and retries after each timeout (worker.c).  The
 * second takes SHARE UPDATE EXCLUSIVE, which blocks no one.  Complete drops the old foreign key
 * before the old key column goes (its index goes with the column), and renames the new one to the
 * old name once the old column is gone; rollback drops the new one.  Both lock the referencing table
 * up front with the migration's other tables, with the retries: marked changed when it is in the
 * schema being migrated, named by ec_carry_foreign_keys_tables (for plan.c) wherever it is.
 *
 * When the referencing columns are rebuilt in the same migration too, the one new foreign key goes
 * from their new columns to the new key columns; the referencing table's own carrying
 * (carry_constraints.c) is kept from carrying it as well (ec_carry_foreign_keys_claimed).  That case
 * refuses the actions that write the referencing rows, for carry_constraints.c's reason: each of the
 * two constraints would write its own referencing column and the dual-write trigger would undo the
 * write for sessions of the other version.  When only the key is rebuilt, both constraints write the
 * same referencing column to the same value (the two keys are equal), so every action is kept.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/dependency.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "operations.h"

/*
 * Added to a task's seq to run it after every backfill of the migration, as carry_indexes.c does
 * with its non-unique indexes: the referencing table's backfill, when its columns are rebuilt too,
 * then fills its new columns before the new foreign key checks each write of them.
 */
#define SEQ_AFTER_BACKFILLS	1000000

static EcTable *
model_table(EcStartContext *cxt, Oid relid)
{
	ListCell   *lc;

	foreach(lc, cxt->model->tables)
	{
		EcTable    *t = lfirst(lc);

		if (t->relid == relid)
			return t;
	}
	return NULL;
}

static AttrNumber
mapped(EcRebuildMap *map, AttrNumber attnum)
{
	if (map && attnum >= 1 && attnum <= map->natts)
		return map->new_attnum[attnum - 1];
	return attnum;
}

static bool
any_rebuilt(EcRebuildMap *map, AttrNumber *keys, int n)
{
	if (map == NULL)
		return false;
	for (int i = 0; i < n; i++)
	{
		if (bms_is_member(keys[i], map->rebuilt))
			return true;
	}
	return false;
}

/*
 * The outbound foreign keys of table that reference a rebuilt column of a table of the migration:
 * the referenced table's ec_carry_foreign_keys carries each of them (from the rebuilt referencing
 * columns, if they are), so carry_constraints.c must not.
 */
List *
ec_carry_foreign_keys_claimed(EcStartContext *cxt, EcTable *table)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	List	   *oids;
	List	   *claimed = NIL;
	ListCell   *lc;

	oids = ec_spi_oids("SELECT oid FROM pg_catalog.pg_constraint"
					   " WHERE conrelid = $1 AND contype = 'f' AND conname !~ '^_ec_'",
					   1, types, values);
	foreach(lc, oids)
	{
		Oid			conoid = lfirst_oid(lc);
		HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
		EcTable    *referenced;
		AttrNumber *keys;
		int			n;

		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg_internal("cache lookup failed for constraint %u", conoid)));
		referenced = model_table(cxt, ((Form_pg_constraint) GETSTRUCT(tuple))->confrelid);
		keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &n);
		if (referenced && referenced->new_name &&
			any_rebuilt(ec_rebuild_map(referenced), keys, n))
			claimed = lappend_oid(claimed, conoid);
		ReleaseSysCache(tuple);
	}
	return claimed;
}

/*
 * Refuses now what the worker's ADD FOREIGN KEY would refuse later, as a failed task: a referencing
 * column whose type the new key column's equality cannot compare.  The test is PostgreSQL's own
 * (ATAddForeignKeyConstraint): the btree operator class of the new key's unique index, which
 * carry_indexes.c builds with the new type's default one, must have an equality operator for the
 * referencing type, or that type must coerce implicitly to the class's input type.  The same
 * foreign key stops an offline ALTER COLUMN ... TYPE with the same error code.  The columns are
 * named as the user knows them (fkname, pkname: the old attribute numbers).
 */
static void
check_comparable(Oid conrelid, AttrNumber fkattnum, AttrNumber fkname, Oid pkrelid,
				 AttrNumber pkattnum, AttrNumber pkname, const char *name)
{
	Oid			fktype = get_atttype(conrelid, fkattnum);
	Oid			pktype = get_atttype(pkrelid, pkattnum);
	Oid			opclass = GetDefaultOpClass(pktype, BTREE_AM_OID);
	bool		ok = false;

	if (OidIsValid(opclass))
	{
		Oid			opfamily = get_opclass_family(opclass);
		Oid			opcintype = get_opclass_input_type(opclass);
		Oid			fkbase = getBaseType(fktype);

		ok = OidIsValid(get_opfamily_member(opfamily, opcintype, fkbase, BTEqualStrategyNumber)) ||
			can_coerce_type(1, &fktype, &opcintype, COERCION_IMPLICIT);
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("foreign key \"%s\" of table \"%s\" cannot reference the new type of column \"%s\" of table \"%s\"",
						name, get_rel_name(conrelid), get_attname(pkrelid, pkname, false),
						get_rel_name(pkrelid)),
				 errdetail("Key columns \"%s\" and \"%s\" would be of incompatible types: %s and %s.",
						   get_attname(conrelid, fkname, false), get_attname(pkrelid, pkname, false),
						   format_type_be(fktype), format_type_be(pktype)),
				 errhint("Change the referencing column's type in the same migration, or drop the "
						 "foreign key in a \"sql\" operation first.")));
}

/*
 * The referencing tables of the foreign keys ec_carry_foreign_keys re-points for table: complete and
 * rollback change their constraints, so they lock them up front with the migration's tables, with
 * the retries (plan.c).  Those of the migrated schema are marked changed already; this also names
 * those of other schemas, which the model does not hold.
 */
List *
ec_carry_foreign_keys_tables(EcStartContext *cxt, EcTable *table)
{
	EcRebuildMap *map;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	List	   *oids;
	List	   *result = NIL;
	ListCell   *lc;

	if (table->new_name == NULL || (map = ec_rebuild_map(table)) == NULL)
		return NIL;
	oids = ec_spi_oids("SELECT oid FROM pg_catalog.pg_constraint"
					   " WHERE confrelid = $1 AND contype = 'f' AND conname !~ '^_ec_'",
					   1, types, values);
	foreach(lc, oids)
	{
		HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(lfirst_oid(lc)));
		AttrNumber *keys;
		int			n;

		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg_internal("cache lookup failed for constraint %u", lfirst_oid(lc))));
		keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &n);
		if (any_rebuilt(map, keys, n))
			result = list_append_unique_oid(result,
											((Form_pg_constraint) GETSTRUCT(tuple))->conrelid);
		ReleaseSysCache(tuple);
	}
	return result;
}

/* One inbound foreign key to re-point, read and checked before anything is queued. */
typedef struct InboundKey
{
	Oid			conrelid;
	EcTable    *referencing;	/* its table in the model; NULL: another schema */
	char	   *name;
	char	   *temp_name;
	char	   *tsql;			/* the referencing table, qualified */
	char	   *definition;		/* FOREIGN KEY ..., to the new key columns */
	bool		validate;
	bool		dropped;		/* a drop_constraint of this migration drops it: no new one */
} InboundKey;

static InboundKey *
read_inbound(EcStartContext *cxt, EcTable *table, EcRebuildMap *map, HeapTuple tuple)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);
	InboundKey *ik = palloc0(sizeof(InboundKey));
	EcRebuildMap *ref_map = NULL;
	EcForeignKeyDef fk;
	List	   *columns = NIL;
	List	   *ref_columns = NIL;
	AttrNumber *keys;
	int			n;
	bool		isnull;
	char		relkind = get_rel_relkind(con->conrelid);
	const char *tname = get_rel_name(con->conrelid);
	ListCell   *lc;

	ik->conrelid = con->conrelid;
	ik->referencing = model_table(cxt, con->conrelid);
	ik->name = pstrdup(NameStr(con->conname));
	ik->temp_name = ec_temp_name("_ec_con_", ik->name);
	ik->tsql = ec_rel_qualified(con->conrelid);
	ik->validate = con->convalidated;
	if (ik->referencing && list_member_oid(ik->referencing->dropped_constraints, con->oid))
	{
		ik->dropped = true;
		return ik;
	}

	/*
	 * A foreign key to a partitioned table needs a unique index on the parent.  The new key's is
	 * built concurrently per partition and becomes the parent's only at complete, with the primary
	 * key (ADD CONSTRAINT ... USING INDEX does not take a partitioned index), too late for the new
	 * foreign key, which the worker adds and validates before.
	 */
	if (get_rel_relkind(table->relid) == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot re-point foreign key \"%s\" of table \"%s\" to the rebuilt columns of partitioned table \"%s\"",
						ik->name, tname, get_rel_name(table->relid)),
				 errdetail("A foreign key to a partitioned table needs a unique index on the parent, and the "
						   "rebuilt key's index is built on each partition and reaches the parent only at complete."),
				 errhint("Drop the foreign key in a \"sql\" operation first and recreate it after completing.")));
	if (con->coninhcount > 0 || OidIsValid(con->conparentid) || relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot re-point foreign key \"%s\" of table \"%s\" to the rebuilt columns of table \"%s\"",
						ik->name, tname, get_rel_name(table->relid)),
				 errdetail("The foreign key belongs to a partitioned table or is inherited, and such a "
						   "foreign key cannot be added NOT VALID."),
				 errhint("Drop the foreign key in a \"sql\" operation first and recreate it after completing.")));
	(void) SysCacheGetAttr(CONSTROID, tuple, Anum_pg_constraint_confdelsetcols, &isnull);
	if (!isnull)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot re-point foreign key \"%s\" of table \"%s\" to the rebuilt columns of table \"%s\"",
						ik->name, tname, get_rel_name(table->relid)),
				 errdetail("Its ON DELETE action names a column list."),
				 errhint("Drop the foreign key in a \"sql\" operation first and recreate it after completing.")));
	if (ik->referencing)
	{
		foreach(lc, ik->referencing->renamed_constraints_from)
		{
			if (strcmp(lfirst(lc), ik->name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot rename foreign key \"%s\" of table \"%s\" in the migration that rebuilds the columns it references",
								ik->name, tname),
						 errdetail("The foreign key is re-pointed to the rebuilt columns of table \"%s\" under its current name.",
								   get_rel_name(table->relid)),
						 errhint("Rename it in a migration of its own.")));
		}
	}
	/* Its unique index goes with a constraint this migration drops: the new key has none. */
	if (OidIsValid(con->conindid) &&
		list_member_oid(table->dropped_constraints, get_index_constraint(con->conindid)))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop constraint \"%s\" of table \"%s\": foreign key \"%s\" of table \"%s\" needs it",
						get_rel_name(con->conindid), get_rel_name(table->relid), ik->name, tname),
				 errhint("Drop the foreign key first, in a \"sql\" operation or the same migration.")));
	if (OidIsValid(get_relation_constraint_oid(con->conrelid, ik->temp_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("constraint \"%s\" for relation \"%s\" already exists", ik->temp_name, tname),
				 errdetail("The foreign key \"%s\" re-pointed to the rebuilt columns of table \"%s\" needs that name until complete.",
						   ik->name, get_rel_name(table->relid))));
	/* The worker adds and validates it as the migration's role: a refusal now, not a failed task. */
	if (!pg_class_ownercheck(con->conrelid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table \"%s\" to re-point its foreign key \"%s\"", tname, ik->name),
				 errdetail("The foreign key references a column of table \"%s\" that the migration rebuilds.",
						   get_rel_name(table->relid))));

	/* The referencing side: its own new columns where it is rebuilt too (itself for a self-reference). */
	if (con->conrelid == table->relid)
		ref_map = map;
	else if (ik->referencing && ik->referencing->new_name)
		ref_map = ec_rebuild_map(ik->referencing);
	keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_conkey, &n);
	if (any_rebuilt(ref_map, keys, n))
	{
		const char *writes = ec_carry_fk_writing_action(con);

		if (writes)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot re-point foreign key \"%s\" of table \"%s\" with %s to the rebuilt columns of table \"%s\"",
							ik->name, tname, writes, get_rel_name(table->relid)),
					 errdetail("Its referencing columns are rebuilt too, and the action writes them: the "
							   "dual-write trigger would undo that for sessions on the other version, "
							   "leaving rows that break the constraint."),
					 errhint("Change the action to NO ACTION, RESTRICT or ON DELETE CASCADE in a \"sql\" "
							 "operation or migration first, and back after completing.")));
	}
	for (int i = 0; i < n; i++)
		columns = lappend(columns,
						  (char *) quote_identifier(get_attname(con->conrelid, mapped(ref_map, keys[i]),
																false)));
	{
		AttrNumber *fkeys = keys;
		int			nf = n;

		keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &n);
		for (int i = 0; i < n && i < nf; i++)
			check_comparable(con->conrelid, mapped(ref_map, fkeys[i]), fkeys[i], table->relid,
							 mapped(map, keys[i]), keys[i], ik->name);
	}
	for (int i = 0; i < n; i++)
		ref_columns = lappend(ref_columns,
							  (char *) quote_identifier(get_attname(table->relid, mapped(map, keys[i]),
																	false)));
	memset(&fk, 0, sizeof(fk));
	fk.name = ik->name;
	fk.match_type = (char *) ec_carry_fk_match(con->confmatchtype);
	fk.on_delete = (char *) ec_carry_fk_action(con->confdeltype);
	fk.on_update = (char *) ec_carry_fk_action(con->confupdtype);
	fk.deferrable = con->condeferrable;
	fk.initially_deferred = con->condeferred;
	ik->definition = ec_fk_clause(&fk, columns, ec_rel_qualified(table->relid), ref_columns);
	return ik;
}

/*
 * Re-points the foreign keys that reference a rebuilt column of table (see the header comment).
 */
void
ec_carry_foreign_keys(EcStartContext *cxt, EcTable *table, EcRebuildMap *map)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	List	   *oids;
	List	   *inbound = NIL;
	ListCell   *lc;

	oids = ec_spi_oids("SELECT oid FROM pg_catalog.pg_constraint"
					   " WHERE confrelid = $1 AND contype = 'f' AND conname !~ '^_ec_'"
					   " ORDER BY conrelid::pg_catalog.regclass::pg_catalog.text, conname",
					   1, types, values);

	/* Read and check every one first: a refusal comes before anything is queued. */
	foreach(lc, oids)
	{
		Oid			conoid = lfirst_oid(lc);
		HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
		AttrNumber *keys;
		int			n;

		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg_internal("cache lookup failed for constraint %u", conoid)));
		keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &n);
		if (any_rebuilt(map, keys, n))
			inbound = lappend(inbound, read_inbound(cxt, table, map, tuple));
		ReleaseSysCache(tuple);
	}

	foreach(lc, inbound)
	{
		InboundKey *ik = lfirst(lc);

		/*
		 * The old one depends on the old key column and its index: it must go before the column
		 * does.  IF EXISTS: when the referencing columns are rebuilt too, and that table's steps come
		 * first, it went with its own old column already.
		 */
		table->before_drop_steps = lappend(table->before_drop_steps,
										   psprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s",
													ik->tsql, quote_identifier(ik->name)));
		if (ik->referencing)
			ik->referencing->changed = true;
		if (ik->dropped)
			continue;

		ec_add_task(cxt->migration_id, ++cxt->ntasks + SEQ_AFTER_BACKFILLS, "sql", ik->conrelid, NIL,
					psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", ik->tsql,
							 quote_identifier(ik->temp_name), ik->definition));
		if (ik->validate)
			ec_add_task(cxt->migration_id, ++cxt->ntasks + SEQ_AFTER_BACKFILLS, "sql", ik->conrelid,
						NIL,
						psprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", ik->tsql,
								 quote_identifier(ik->temp_name)));
		/*
		 * Rollback: queued after the new unique index's DROP INDEX, so it runs before it (the steps
		 * run in reverse), and IF EXISTS since the worker may not have added it yet.
		 */
		cxt->rollback_steps = lappend(cxt->rollback_steps,
									  psprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", ik->tsql,
											   quote_identifier(ik->temp_name)));
		table->after_drop_steps = lappend(table->after_drop_steps,
										  psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", ik->tsql,
												   quote_identifier(ik->temp_name),
												   quote_identifier(ik->name)));
	}
	if (inbound != NIL)
		table->changed = true;
}
