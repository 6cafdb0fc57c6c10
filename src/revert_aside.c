/*
 * revert_aside.c
 *	  Keeping aside what ec_complete's steps would destroy during a revert window (see
 *	  revert_complete.c, which runs the steps): a dropped column's indexes, constraints and foreign
 *	  keys, other tables' foreign keys to it, a primary key's copy for the worker to build, a dropped
 *	  table's indexes, an identity column's sequence and the defaults that must draw from the new
 *	  one.  Each records its undo (ec_window_undo) and what the window's end drops.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "operations.h"
#include "revert_window.h"

/* The constraint's contype, or '\0' if there is none. */
static char
constraint_type(Oid conoid)
{
	HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	char		result = '\0';

	if (HeapTupleIsValid(tuple))
	{
		result = ((Form_pg_constraint) GETSTRUCT(tuple))->contype;
		ReleaseSysCache(tuple);
	}
	return result;
}

bool
ec_window_is_foreign_key(Oid conoid)
{
	return constraint_type(conoid) == CONSTRAINT_FOREIGN;
}

Oid
ec_window_constraint_relid(Oid conoid)
{
	HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	Oid			result;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("cache lookup failed for constraint %u", conoid)));
	result = ((Form_pg_constraint) GETSTRUCT(tuple))->conrelid;
	ReleaseSysCache(tuple);
	return result;
}

/*
 * A partitioned table's index or unique constraint kept aside: its partitions' indexes (and their
 * constraints) go aside too, for the new one's partitions take their names.
 */
static void
partition_indexes_aside(WindowRun *run, Oid index)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(index)};
	ListCell   *lc;

	if (!OidIsValid(index))
		return;
	foreach(lc, ec_spi_oids("SELECT relid FROM pg_catalog.pg_partition_tree($1) WHERE relid <> $1",
							1, types, values))
	{
		Oid			partition_index = lfirst_oid(lc);
		char	   *name = get_rel_name(partition_index);
		char	   *aside = ec_temp_name("_ec_old_", name);

		/* Renaming an index renames its constraint. */
		ec_exec(psprintf("ALTER INDEX %s RENAME TO %s", ec_rel_qualified(partition_index),
						 quote_identifier(aside)));
		ec_window_undo(run, psprintf("ALTER INDEX %s RENAME TO %s", ec_window_sibling(partition_index, aside),
									 quote_identifier(name)));
	}
}

/*
 * A trigger of the user's on the column (UPDATE OF it, a WHEN that reads it), on the table or on
 * one of its partitions only, stops complete's DROP COLUMN with a window or without (it recurses
 * to the partitions): say so, rather than offer a complete without a window, and rather than keep
 * the column aside with a trigger that the window's end could not drop it under.  A partition's
 * clone of its parent's trigger is the parent's (tgparentid): carried, or the window's copy.
 */
static void
refuse_user_triggers_on_column(WindowRun *run, Oid relid, const char *name)
{
	List	   *rels = find_all_inheritors(relid, NoLock, NULL);
	ListCell   *lc;

	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);
		Oid			types[2] = {OIDOID, INT2OID};
		Datum		values[2] = {ObjectIdGetDatum(rel), Int16GetDatum(get_attnum(rel, name))};
		uint64		n;

		n = ec_spi("SELECT t.oid, t.tgname FROM pg_catalog.pg_depend d"
				   "  JOIN pg_catalog.pg_trigger t ON t.oid = d.objid"
				   " WHERE d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass"
				   "   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
				   "   AND d.refobjid = $1 AND d.refobjsubid = $2 AND d.deptype = 'n'"
				   "   AND t.tgparentid = 0 AND NOT t.tgisinternal ORDER BY t.tgname",
				   2, types, values, NULL, SPI_OK_SELECT);
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			Oid			trigger = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 1, &isnull));

			if (list_member_oid(run->aside_triggers, trigger))
				continue;
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop column \"%s\" of table \"%s\" because trigger \"%s\" depends on it",
							name, get_rel_name(rel),
							SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)),
					 errdetail("Completing migration \"%s\" drops the column, with a revert window or "
							   "without, and the migration did not make the trigger.", run->migration),
					 errhint("Drop the trigger, or change it not to use the column, then complete again.  "
							 "Nothing was changed.")));
		}
	}
}

/*
 * A column that complete would drop, kept aside with what hangs on it: its plain indexes, CHECK,
 * unique and exclusion constraints (such a constraint's index is renamed with it) and foreign keys,
 * its own or other tables' to it, are renamed aside too (the complete steps may give their names to
 * the carried ones, and they go with the column at the window's end).  They stay in force on the
 * old column, which "down" keeps filled, as they were during the migration.  Refused if an owned
 * sequence or another object depends on it: complete replaces or moves those in steps that a
 * window cannot keep.  A user's trigger on it is an error, as for the plain complete, whose DROP
 * COLUMN it stops.  The old version's views depend on it too; they are why it is
 * kept.  Returns its primary key, if any, for keep_primary_key_aside once the column is aside.
 */
Oid
ec_keep_dependents_aside(WindowRun *run, Oid relid, AttrNumber attnum, const char *name)
{
	Oid			primary = InvalidOid;
	Oid			types[2] = {OIDOID, INT2OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int16GetDatum(attnum)};
	uint64		n;
	List	   *indexes = NIL;
	List	   *checks = NIL;
	ListCell   *lc;

	refuse_user_triggers_on_column(run, relid, name);
	n = ec_spi("SELECT CASE WHEN d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass"
			   "             THEN (SELECT CASE c.contype WHEN 'c' THEN 'check' WHEN 'u' THEN 'unique'"
			   "                                         WHEN 'f' THEN 'foreign key' WHEN 'p' THEN 'primary'"
			   "                                         WHEN 'x' THEN 'exclusion' END"
			   "                     FROM pg_catalog.pg_constraint c WHERE c.oid = d.objid)"
			   "            WHEN d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "             THEN (SELECT CASE WHEN r.relkind IN ('i', 'I') AND NOT EXISTS"
			   "                            (SELECT FROM pg_catalog.pg_constraint c WHERE c.conindid = r.oid)"
			   "                          THEN 'index' END"
			   "                     FROM pg_catalog.pg_class r WHERE r.oid = d.objid) END,"
			   "       d.objid, d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "  FROM pg_catalog.pg_depend d"
			   " WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1"
			   "   AND d.refobjsubid = $2 AND d.deptype IN ('n', 'a')"
			   "   AND d.classid IN ('pg_catalog.pg_class'::pg_catalog.regclass,"
			   "                     'pg_catalog.pg_constraint'::pg_catalog.regclass,"
			   "                     'pg_catalog.pg_trigger'::pg_catalog.regclass)"
			   " ORDER BY 1, 2", 2, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		char	   *kind = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		bool		isnull;
		Oid			objid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));

		/* A carried trigger's copy for the window (revert_carried.c). */
		if (kind == NULL && !DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3,
														&isnull)) &&
			list_member_oid(run->aside_triggers, objid))
			continue;
		if (kind == NULL)
			ec_window_refuse(run, run->step,
				   psprintf("drops column \"%s\" of table \"%s\", on which a trigger or a sequence "
							"depends", name, get_rel_name(relid)));
		if (strcmp(kind, "primary") == 0)
			primary = objid;
		else if (strcmp(kind, "index") == 0)
			indexes = list_append_unique_oid(indexes, objid);
		else
			checks = list_append_unique_oid(checks, objid);
	}
	foreach(lc, indexes)
	{
		char	   *index = get_rel_name(lfirst_oid(lc));
		char	   *aside;

		if (strncmp(index, "_ec_old_", 8) == 0)
			continue;			/* on two dropped columns: aside already */
		aside = ec_temp_name("_ec_old_", index);
		ec_exec(psprintf("ALTER INDEX %s RENAME TO %s", ec_rel_qualified(lfirst_oid(lc)),
						 quote_identifier(aside)));
		ec_window_undo(run, psprintf("ALTER INDEX %s RENAME TO %s", ec_window_sibling(lfirst_oid(lc), aside),
								quote_identifier(index)));
		if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_PARTITIONED_INDEX)
			partition_indexes_aside(run, lfirst_oid(lc));
	}
	foreach(lc, checks)
	{
		char	   *check = get_constraint_name(lfirst_oid(lc));
		/* An inbound foreign key is its referencing table's. */
		char	   *tsql = ec_rel_qualified(ec_window_constraint_relid(lfirst_oid(lc)));
		char	   *aside;

		if (strncmp(check, "_ec_old_", 8) == 0)
			continue;
		aside = ec_temp_name("_ec_old_", check);
		ec_exec(psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
						 quote_identifier(check), quote_identifier(aside)));
		ec_window_undo(run, psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
								quote_identifier(aside), quote_identifier(check)));
		if (constraint_type(lfirst_oid(lc)) == CONSTRAINT_UNIQUE &&
			get_rel_relkind(ec_window_constraint_relid(lfirst_oid(lc))) == RELKIND_PARTITIONED_TABLE)
			partition_indexes_aside(run, get_constraint_index(lfirst_oid(lc)));
		/* One that references the column must go before it (its own goes with it). */
		if (ec_window_is_foreign_key(lfirst_oid(lc)))
			ec_window_defer_constraint(run, ec_window_constraint_relid(lfirst_oid(lc)), aside);
	}
	CommandCounterIncrement();
	return primary;
}

char *
ec_window_column_default(Oid relid, AttrNumber attnum)
{
	Oid			types[2] = {OIDOID, INT2OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int16GetDatum(attnum)};

	if (ec_spi("SELECT pg_catalog.pg_get_expr(adbin, adrelid) FROM pg_catalog.pg_attrdef"
			   " WHERE adrelid = $1 AND adnum = $2", 2, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

char *
ec_window_column_comment(Oid relid, AttrNumber attnum)
{
	Oid			types[2] = {OIDOID, INT4OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int32GetDatum(attnum)};

	(void) ec_spi("SELECT pg_catalog.col_description($1, $2)", 2, types, values, NULL,
				  SPI_OK_SELECT);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

bool
ec_window_is_check(Oid conoid)
{
	HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	bool		result = false;

	if (HeapTupleIsValid(tuple))
	{
		result = ((Form_pg_constraint) GETSTRUCT(tuple))->contype == CONSTRAINT_CHECK;
		ReleaseSysCache(tuple);
	}
	return result;
}

bool
ec_window_attnotnull(Oid relid, AttrNumber attnum)
{
	HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	bool		result = false;

	if (HeapTupleIsValid(tuple))
	{
		result = ((Form_pg_attribute) GETSTRUCT(tuple))->attnotnull;
		ReleaseSysCache(tuple);
	}
	return result;
}

/* The foreign keys that the unique index backs. */
List *
ec_window_foreign_keys_on_index(Oid index)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(index)};
	List	   *result = NIL;
	uint64		n;

	n = ec_spi("SELECT oid FROM pg_catalog.pg_constraint WHERE conindid = $1 AND contype = 'f'"
			   " ORDER BY oid", 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		result = lappend_oid(result,
							 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return result;
}

/* Does a step drop column attnum of relid (which the window keeps aside)? */
static bool
dropped_by_a_step(WindowRun *run, Oid relid, AttrNumber attnum)
{
	char	   *name = get_attname(relid, attnum, true);
	ListCell   *lc;

	if (name == NULL)
		return false;
	foreach(lc, run->parsed)
	{
		AlterTableStmt *a = lfirst(lc);
		AlterTableCmd *cmd;

		if (!IsA(a, AlterTableStmt) || list_length(a->cmds) != 1)
			continue;
		cmd = linitial(a->cmds);
		if (cmd->subtype == AT_DropColumn && strcmp(cmd->name, name) == 0 &&
			RangeVarGetRelid(a->relation, NoLock, true) == relid)
			return true;
	}
	return false;
}

/*
 * A foreign key that complete drops because the key column it references is rebuilt (its carried
 * one takes its name): kept aside, in force on the kept-aside key column as during the migration,
 * and dropped at the window's end before that column.  Any other dropped foreign key would bind the
 * new version during the window: refused.
 */
void
ec_keep_foreign_key_aside(WindowRun *run, const char *step, Oid relid, Oid conoid, const char *name)
{
	HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	Form_pg_constraint con;
	AttrNumber *keys;
	int			n;
	bool		kept = false;
	char	   *aside;
	char	   *tsql = ec_rel_qualified(relid);

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("cache lookup failed for constraint %u", conoid)));
	con = (Form_pg_constraint) GETSTRUCT(tuple);
	keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &n);
	for (int i = 0; i < n; i++)
		kept = kept || dropped_by_a_step(run, con->confrelid, keys[i]);
	ReleaseSysCache(tuple);
	if (!kept)
		ec_window_refuse(run, step, "drops a foreign key whose referenced columns it keeps");
	aside = ec_temp_name("_ec_old_", name);
	ec_exec(psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql, quote_identifier(name),
					 quote_identifier(aside)));
	ec_window_undo(run, psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
							quote_identifier(aside), quote_identifier(name)));
	ec_window_defer_constraint(run, relid, aside);
}

/*
 * The tables a prepare step names, with where in its text: an index copy's.  (The foreign keys'
 * steps are written once every step has run, under the final names.)
 */
static List *
prepared_tables(Node *stmt)
{
	if (IsA(stmt, IndexStmt))
		return list_make1(((IndexStmt *) stmt)->relation);
	return NIL;
}

/*
 * After a step that renames a table: the prepare steps queued by the steps before it name the table
 * by its old name, and the worker runs them once complete is done.  Each name is replaced where
 * the statement's parse tree puts it (the names are qualified and quoted as quote_qualified_identifier
 * writes them: the definitions were read on search_path pg_catalog), so that nothing else in the
 * text can be taken for it.  The revert's steps need no change: the rename is undone before them.
 */
void
ec_window_rename_prepared(WindowRun *run, RenameStmt *rename)
{
	const char *schema = rename->relation->schemaname ? rename->relation->schemaname : run->schema;
	char	   *old_name = quote_qualified_identifier(schema, rename->relation->relname);
	char	   *new_name = quote_qualified_identifier(schema, rename->newname);
	ListCell   *lc;

	foreach(lc, run->prepare)
	{
		char	   *sql = lfirst(lc);
		List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
		List	   *locations = NIL;
		ListCell   *lc2;

		if (list_length(raw) != 1)
			continue;
		foreach(lc2, prepared_tables(linitial_node(RawStmt, raw)->stmt))
		{
			RangeVar   *rv = lfirst(lc2);
			const char *rv_schema = rv->schemaname ? rv->schemaname : run->schema;

			if (strcmp(rv_schema, schema) != 0 || strcmp(rv->relname, rename->relation->relname) != 0)
				continue;
			if (rv->location < 0 || strncmp(sql + rv->location, old_name, strlen(old_name)) != 0)
				ec_window_refuse(run, run->step,
								 psprintf("renames table \"%s\", which the worker's step \"%s\" names in a "
										  "form it cannot rewrite", rename->relation->relname, sql));
			/* Last first, so that the earlier locations stay right. */
			locations = lcons_int(rv->location, locations);
		}
		foreach(lc2, locations)
		{
			int			at = lfirst_int(lc2);

			sql = psprintf("%.*s%s%s", at, sql, new_name, sql + at + strlen(old_name));
		}
		lfirst(lc) = sql;
	}
}

/*
 * The prepare steps that build a copy of a kept-aside key's unique index, "aside", for ec_revert to
 * make a key again: the first drops a copy left invalid by an interrupted build, so that the
 * second builds it again (window_prepare skips it when the copy is valid: a foreign key added by a
 * previous run may depend on it).  Definitions with every name qualified: the worker runs them on
 * search_path pg_catalog.
 */
static void
queue_index_copy(WindowRun *run, Oid index, const char *aside)
{
	char	   *prefix = psprintf("CREATE UNIQUE INDEX %s ON ", quote_identifier(get_rel_name(index)));
	int			nestlevel = NewGUCNestLevel();
	char	   *def;

	(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	def = TextDatumGetCString(DirectFunctionCall1(pg_get_indexdef, ObjectIdGetDatum(index)));
	AtEOXact_GUC(true, nestlevel);
	if (strncmp(def, prefix, strlen(prefix)) != 0)
		ec_window_refuse(run, run->step, "drops a primary key whose index cannot be copied");
	run->prepare = lappend(run->prepare, psprintf(EC_DROP_INVALID_PREFIX "%s",
												  ec_window_sibling(index, aside)));
	run->prepare = lappend(run->prepare,
						   psprintf("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS %s ON %s",
									quote_identifier(aside), def + strlen(prefix)));
}

/*
 * The same for a partitioned table's primary key (see ec_keep_primary_key_aside): the worker builds
 * a copy of each leaf's index, ec_revert makes each copy its leaf's key again (ADD CONSTRAINT ...
 * USING INDEX, under the leaf's constraint name), then the partitioned table's by its definition,
 * which finds the leaves' keys and attaches them rather than building (the partitioned tables
 * between get theirs on the way).  Foreign keys to a partitioned table's rebuilt key are refused
 * at ec_start.
 */
static void
keep_partitioned_primary_key_aside(WindowRun *run, Oid relid, Oid conoid)
{
	char	   *conname = get_constraint_name(conoid);
	char	   *def = TextDatumGetCString(DirectFunctionCall1(pg_get_constraintdef,
															  ObjectIdGetDatum(conoid)));
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(get_constraint_index(conoid))};
	List	   *leaves;
	ListCell   *lc;

	leaves = ec_spi_oids("SELECT relid FROM pg_catalog.pg_partition_tree($1) WHERE isleaf",
						 1, types, values);
	/* Undo runs last-pushed first: the leaves' keys, then the partitioned table's. */
	ec_window_undo(run, psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", ec_rel_qualified(relid),
								 quote_identifier(conname), def));
	foreach(lc, leaves)
	{
		Oid			index = lfirst_oid(lc);
		Oid			leafcon = get_index_constraint(index);
		char	   *aside = ec_temp_name("_ec_old_", get_rel_name(index));

		if (!OidIsValid(leafcon))
			ec_window_refuse(run, run->step, "drops a primary key whose index cannot be copied");
		queue_index_copy(run, index, aside);
		ec_window_undo(run, psprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s",
									 ec_rel_qualified(IndexGetRelation(index, false)),
									 quote_identifier(get_constraint_name(leafcon)),
									 quote_identifier(aside)));
	}
	ec_exec(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", ec_rel_qualified(relid),
					 quote_identifier(conname)));
	CommandCounterIncrement();
}

/*
 * A foreign key to a primary key kept aside, which the worker adds again at the window's start:
 * by attribute numbers, turned into names once every complete step has run
 * (ec_window_prepare_foreign_keys).  Its referencing column may be rebuilt by a later step, which
 * gives the column's name to the new one: the copy must stay on the old column, kept aside.
 */
typedef struct ForeignKeyCopy
{
	Oid			relid;
	Oid			refrelid;
	int			n;
	AttrNumber *keys;
	AttrNumber *refkeys;
	EcForeignKeyDef fk;			/* its name, match type, actions, deferrability */
} ForeignKeyCopy;

static List *
column_names(Oid relid, AttrNumber *attnums, int n)
{
	List	   *names = NIL;

	for (int i = 0; i < n; i++)
		names = lappend(names, (char *) quote_identifier(get_attname(relid, attnums[i], false)));
	return names;
}

static ForeignKeyCopy *
foreign_key_copy(WindowRun *run, Oid fk)
{
	HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(fk));
	Form_pg_constraint con;
	ForeignKeyCopy *copy = palloc0(sizeof(ForeignKeyCopy));
	bool		no_set_columns;
	int			nref;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("cache lookup failed for constraint %u", fk)));
	con = (Form_pg_constraint) GETSTRUCT(tuple);
	copy->relid = con->conrelid;
	copy->refrelid = con->confrelid;
	copy->keys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_conkey, &copy->n);
	copy->refkeys = ec_carry_constraint_attnums(tuple, Anum_pg_constraint_confkey, &nref);
	copy->fk.name = pstrdup(NameStr(con->conname));
	copy->fk.match_type = (char *) ec_carry_fk_match(con->confmatchtype);
	copy->fk.on_delete = (char *) ec_carry_fk_action(con->confdeltype);
	copy->fk.on_update = (char *) ec_carry_fk_action(con->confupdtype);
	copy->fk.deferrable = con->condeferrable;
	copy->fk.initially_deferred = con->condeferred;
	(void) SysCacheGetAttr(CONSTROID, tuple, Anum_pg_constraint_confdelsetcols, &no_set_columns);
	ReleaseSysCache(tuple);
	/* ON DELETE SET NULL (columns): not in what the copy is written from. */
	if (nref != copy->n || !no_set_columns)
		ec_window_refuse(run, run->step, "drops a primary key whose foreign keys cannot be copied");
	return copy;
}

/* The worker's steps for the foreign keys to primary keys kept aside, under the names of now. */
void
ec_window_prepare_foreign_keys(WindowRun *run)
{
	ListCell   *lc;

	foreach(lc, run->foreign_key_copies)
	{
		ForeignKeyCopy *c = lfirst(lc);
		char	   *tsql = ec_rel_qualified(c->relid);
		const char *name = quote_identifier(c->fk.name);

		run->prepare = lappend(run->prepare,
							   psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", tsql, name,
										ec_fk_clause(&c->fk, column_names(c->relid, c->keys, c->n),
													 ec_rel_qualified(c->refrelid),
													 column_names(c->refrelid, c->refkeys, c->n))));
		run->prepare = lappend(run->prepare,
							   psprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", tsql, name));
	}
}

/*
 * The primary key of a kept-aside column (renamed aside already): a table has one, so it goes, and
 * with its index the foreign keys to it (kept aside by their steps).  ec_revert puts it back with
 * ADD CONSTRAINT ... PRIMARY KEY USING INDEX of a copy of its index, which the migration's worker
 * builds concurrently at the window's start, and the foreign keys as they were, which the worker
 * adds NOT VALID and validates on the kept-aside key column (the prepare steps): no scan under the
 * revert's locks.  Until they are done the old column has no index and ec_revert waits; the new
 * key, which down maps to the old one, keeps both unique and the new foreign keys keep the
 * references, which are the same columns.
 */
void
ec_keep_primary_key_aside(WindowRun *run, Oid relid, Oid conoid)
{
	char	   *conname = get_constraint_name(conoid);
	Oid			index = get_constraint_index(conoid);
	char	   *aside = ec_temp_name("_ec_old_", conname);
	char	   *tsql = ec_rel_qualified(relid);
	ListCell   *lc;

	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
	{
		keep_partitioned_primary_key_aside(run, relid, conoid);
		return;
	}
	queue_index_copy(run, index, aside);
	foreach(lc, ec_window_foreign_keys_on_index(index))
		run->foreign_key_copies = lappend(run->foreign_key_copies,
										  foreign_key_copy(run, lfirst_oid(lc)));
	foreach(lc, ec_window_foreign_keys_on_index(index))
		ec_exec(psprintf("ALTER TABLE %s DROP CONSTRAINT %s",
						 ec_rel_qualified(ec_window_constraint_relid(lfirst_oid(lc))),
						 quote_identifier(get_constraint_name(lfirst_oid(lc)))));
	ec_exec(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", tsql, quote_identifier(conname)));
	ec_window_undo(run, psprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s", tsql,
							quote_identifier(conname), quote_identifier(aside)));
	CommandCounterIncrement();
}

/*
 * A table kept aside keeps its indexes, whose names a table created in its place (create_table of
 * the same name) takes at complete: they go aside too.
 */
void
ec_keep_indexes_aside(WindowRun *run, Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	table_close(rel, AccessShareLock);
	foreach(lc, indexes)
	{
		Oid			indexid = lfirst_oid(lc);
		char	   *name = get_rel_name(indexid);
		char	   *aside = ec_temp_name("_ec_old_", name);

		ec_exec(psprintf("ALTER INDEX %s RENAME TO %s", ec_rel_qualified(indexid), quote_identifier(aside)));
		ec_window_undo(run, psprintf("ALTER INDEX %s RENAME TO %s", ec_window_sibling(indexid, aside),
								quote_identifier(name)));
	}
	CommandCounterIncrement();
}

/*
 * An identity column kept aside keeps its sequence, which the rebuilt column's new identity
 * sequence is about to be renamed to: it goes aside too.  (The column's drop at the window's end
 * drops it.)
 */
void
ec_keep_identity_sequence_aside(WindowRun *run, Oid relid, AttrNumber attnum)
{
	Oid			seqid = getIdentitySequence(relid, attnum, true);
	char	   *name;
	char	   *aside;

	if (!OidIsValid(seqid))
		return;
	name = get_rel_name(seqid);
	aside = ec_temp_name("_ec_old_", name);
	ec_exec(psprintf("ALTER SEQUENCE %s RENAME TO %s", ec_rel_qualified(seqid), quote_identifier(aside)));
	ec_window_undo(run, psprintf("ALTER SEQUENCE %s RENAME TO %s", ec_window_sibling(seqid, aside),
							quote_identifier(name)));
	CommandCounterIncrement();
}

/*
 * The views' columns without a default of their own that show column colid of table tableid as it
 * is (the previous version's views): an insert through them that leaves the column out gets the
 * table's default, or its identity.  Appended to relids and attnums, after those already there.
 */
static void
views_showing_column(Oid tableid, AttrNumber colid, List **relids, List **attnums)
{
	Oid			types[2] = {OIDOID, INT4OID};
	Datum		values[2] = {ObjectIdGetDatum(tableid), Int32GetDatum(colid)};
	List	   *views;
	ListCell   *lc;

	views = ec_spi_oids("SELECT DISTINCT r.ev_class FROM pg_catalog.pg_depend d"
						"  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
						"  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class AND c.relkind = 'v'"
						" WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
						"   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
						"   AND d.refobjid = $1 AND d.refobjsubid = $2 ORDER BY 1",
						2, types, values);
	foreach(lc, views)
	{
		Relation	view = relation_open(lfirst_oid(lc), AccessShareLock);
		Query	   *query = get_view_query(view);
		ListCell   *lc2;

		foreach(lc2, query->targetList)
		{
			TargetEntry *te = lfirst(lc2);
			Var		   *var = (Var *) te->expr;

			if (te->resjunk || !IsA(var, Var) || var->varlevelsup != 0 ||
				rt_fetch(var->varno, query->rtable)->relid != tableid || var->varattno != colid ||
				ec_window_column_default(lfirst_oid(lc), te->resno) != NULL)
				continue;
			*relids = lappend_oid(*relids, lfirst_oid(lc));
			*attnums = lappend_int(*attnums, te->resno);
		}
		relation_close(view, AccessShareLock);
	}
}

/* The same for the identity column of old_seq. */
static void
views_over_identity(Oid old_seq, List **relids, List **attnums)
{
	Oid			tableid;
	int32		colid;

	if (sequenceIsOwned(old_seq, DEPENDENCY_INTERNAL, &tableid, &colid))
		views_showing_column(tableid, (AttrNumber) colid, relids, attnums);
}

/*
 * A kept-aside column that "down" fills for every new-version write loses its default for the
 * window, so that the trigger can tell a value that a statement wrote into it (an INSERT or COPY
 * without a column list, whose values land at the base table's places, the kept-aside columns
 * among them) from one that nobody wrote: with the default there, both look alike, and the
 * misplaced row would be stored.  A serial column's sequence is then drawn once per insert, not
 * twice.  The views that showed the table's default through a column of their own without one
 * (old-version inserts) get it as theirs.  The revert puts both back.  A partitioned table's partitions have
 * defaults of their own (an insert into a partition takes the partition's), each dropped and put
 * back on its own, ONLY.  Identity and generated columns keep theirs: an identity gives no
 * default to drop, and a generated column is computed, never written.
 */
void
ec_window_hide_kept_aside_default(WindowRun *run, Oid relid, const char *column)
{
	List	   *rels = find_all_inheritors(relid, NoLock, NULL);
	bool		from_down = false;
	ListCell   *lc;

	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);

		if (get_rel_relkind(rel) == RELKIND_RELATION &&
			ec_dual_write_has_down(rel, get_attnum(rel, column)))
			from_down = true;
	}
	if (!from_down)
		return;
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);
		AttrNumber	attnum = get_attnum(rel, column);
		char	   *def;
		List	   *views = NIL;
		List	   *view_attnums = NIL;
		ListCell   *lc2,
				   *lc3;

		if (attnum == InvalidAttrNumber || get_attgenerated(rel, attnum) != '\0')
			continue;
		def = ec_window_column_default(rel, attnum);
		if (def == NULL)
			continue;
		views_showing_column(rel, attnum, &views, &view_attnums);
		forboth(lc2, views, lc3, view_attnums)
		{
			Oid			view = lfirst_oid(lc2);
			char	   *name = get_attname(view, (AttrNumber) lfirst_int(lc3), false);

			ec_exec(psprintf("ALTER VIEW %s ALTER COLUMN %s SET DEFAULT %s", ec_rel_qualified(view),
							 quote_identifier(name), def));
			ec_window_undo(run, psprintf("ALTER VIEW %s ALTER COLUMN %s DROP DEFAULT",
										 ec_rel_qualified(view), quote_identifier(name)));
		}
		ec_exec(psprintf("ALTER TABLE ONLY %s ALTER COLUMN %s DROP DEFAULT", ec_rel_qualified(rel),
						 quote_identifier(column)));
		ec_window_undo(run, psprintf("ALTER TABLE ONLY %s ALTER COLUMN %s SET DEFAULT %s",
									 ec_rel_qualified(rel), quote_identifier(column), def));
	}
}

/*
 * The carried identity's setval: the rebuilt column's new sequence takes over from the old
 * column's.  During the window both versions must draw from the new one: the defaults that still
 * call the old one's nextval (the previous version's views) are pointed at the new one.  At the
 * revert the old sequence takes over again, advanced past every value the new one gave.  Both
 * undo steps run once the later steps' renames are undone, under the sequences' names of now.
 */
void
ec_window_carry_sequence_defaults(WindowRun *run, Oid old_seq, Oid new_seq)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(old_seq)};
	uint64		n;
	List	   *relids = NIL;
	List	   *attnums = NIL;
	ListCell   *lc,
			   *lc2;

	ec_window_undo(run, psprintf("SELECT pg_catalog.setval(%s, GREATEST(o.last_value, n.last_value), true)"
							" FROM %s o, %s n",
							quote_literal_cstr(ec_rel_qualified(old_seq)), ec_rel_qualified(old_seq),
							ec_rel_qualified(new_seq)));
	n = ec_spi("SELECT d.adrelid, d.adnum FROM pg_catalog.pg_attrdef d"
			   "  JOIN pg_catalog.pg_depend p ON p.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass"
			   "   AND p.objid = d.oid AND p.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "   AND p.refobjid = $1"
			   "  JOIN pg_catalog.pg_class c ON c.oid = d.adrelid AND c.relkind = 'v'"
			   " ORDER BY 1, 2", 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		relids = lappend_oid(relids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																  SPI_tuptable->tupdesc, 1, &isnull)));
		attnums = lappend_int(attnums, DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i],
																  SPI_tuptable->tupdesc, 2, &isnull)));
	}
	views_over_identity(old_seq, &relids, &attnums);
	forboth(lc, relids, lc2, attnums)
	{
		Oid			relid = lfirst_oid(lc);
		AttrNumber	attnum = (AttrNumber) lfirst_int(lc2);
		char	   *column = get_attname(relid, attnum, false);
		char	   *def = ec_window_column_default(relid, attnum);

		ec_exec(psprintf("ALTER VIEW %s ALTER COLUMN %s SET DEFAULT pg_catalog.nextval(%s::pg_catalog.regclass)",
						 ec_rel_qualified(relid), quote_identifier(column),
						 quote_literal_cstr(ec_rel_qualified(new_seq))));
		ec_window_undo(run, psprintf("ALTER VIEW %s ALTER COLUMN %s %s", ec_rel_qualified(relid),
								quote_identifier(column), def ? psprintf("SET DEFAULT %s", def) : "DROP DEFAULT"));
	}
}

