/*
 * carry_indexes.c
 *	  Indexes on rebuilt columns, and the unique and primary key constraints they back, carried to the
 *	  new columns (see carry.c).
 *
 * Every index of the table that reads a rebuilt column (as a key column, in an expression, in its
 * predicate or as an INCLUDE column) is built again on the new columns under a temporary name, by a
 * worker task running CREATE [UNIQUE] INDEX CONCURRENTLY, so that no write of either version waits
 * for the build (pgroll has no such step: its alter_column cannot keep an index at all).  The
 * statement is read off the catalog, as pg_get_indexdef would print the index, with the rebuilt
 * columns replaced by their new versions: what a plain offline ALTER TABLE ... ALTER COLUMN ... TYPE
 * rebuilds (it re-parses the index's definition over the new column types), without its ACCESS
 * EXCLUSIVE lock for the length of a table rewrite.
 *
 * When the build runs: a unique index before the table's backfill, so a duplicate already in the new
 * column fails the build at once and one that "up" would create fails the backfill batch with the
 * row's key; any other index after every backfill and validation, so that the backfill's updates do
 * not bloat it.  A failed build leaves no INVALID index behind: the task's cleanup drops it before the
 * task is tried again (ec_resume()).  From its build on, a unique index constrains the writes of both
 * versions, the dual-write trigger computing the new column from old-version writes.
 *
 * At complete the old column goes, and with it the old index and any constraint it backed; then the
 * new index takes the old one's place: a constraint's index becomes that constraint again (ADD
 * CONSTRAINT ... USING INDEX, which renames it after the constraint, whose name the old index bore),
 * a plain index is renamed, and the table's replica identity, clustering and the comments follow.
 * Rollback drops the new index (the helper column's DROP would too).
 *
 * A deferrable unique constraint gets a constraint of its own on the new index (deferrable as the
 * old one) right after the worker built it: ADD CONSTRAINT ... USING INDEX takes ACCESS EXCLUSIVE
 * for a catalog change, which the worker bounds by lock_timeout and retries; complete renames it.
 * Until then, during the build, the index checks each row at once.  A deferrable primary key is
 * attached at complete (it needs NOT NULL first), so until then its new index checks each row at
 * once: a write that the old constraint lets make a duplicate until the end of the statement or
 * transaction (renumbering keys with one UPDATE) fails on the new column.
 *
 * Not carried, refused at ec_start instead: the index of an exclusion constraint (ADD CONSTRAINT
 * cannot attach an existing index to one), and indexes with a whole-row reference.  An index that
 * another table's foreign key needs is refused by common.c's blocking_dependent, naming the foreign
 * key.  An index on a column that this migration drops is not carried either: complete's DROP COLUMN
 * would drop the new one too, as it drops the old one.
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "operations.h"

/* Gives the rebuilt columns' Vars their new attribute numbers; their types stay, see build_sql. */
static Node *
remap_vars(Node *node, void *context)
{
	EcRebuildMap *map = context;

	if (node == NULL)
		return NULL;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) copyObject(node);

		if (var->varlevelsup == 0 && var->varattno > 0 && var->varattno <= map->natts)
		{
			var->varattno = map->new_attnum[var->varattno - 1];
			var->varattnosyn = var->varattno;
		}
		return (Node *) var;
	}
	return expression_tree_mutator(node, remap_vars, context);
}

/* The model's column whose old version is attnum, or NULL. */
static EcColumn *
column_of(EcTable *table, AttrNumber attnum)
{
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->old_attnum == attnum)
			return col;
	}
	return NULL;
}

/* The new version of a rebuilt column is NOT NULL by complete (made real there, see plan.c). */
static bool
new_column_not_null(EcTable *table, AttrNumber old_attnum, EcRebuildMap *map)
{
	EcColumn   *col = column_of(table, old_attnum);
	HeapTuple	tuple;
	bool		result;

	if (col && col->not_null_check)
		return true;
	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table->relid),
							Int16GetDatum(map->new_attnum[old_attnum - 1]));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg_internal("cache lookup failed for attribute %d of relation %u", map->new_attnum[old_attnum - 1], table->relid)));
	result = ((Form_pg_attribute) GETSTRUCT(tuple))->attnotnull;
	ReleaseSysCache(tuple);
	return result;
}

/*
 * name = 'value', ... from a reloptions-style text array; "" if it has none to carry.  Options
 * named pg_* are the server's own (some builds keep one on every column), never a user's.
 */
static char *
options_sql(Datum options)
{
	StringInfoData buf;
	ListCell   *lc;
	List	   *list = untransformRelOptions(options);

	initStringInfo(&buf);
	foreach(lc, list)
	{
		DefElem    *def = lfirst(lc);

		if (strncmp(def->defname, "pg_", 3) == 0)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len == 0 ? "" : ", ",
						 quote_identifier(def->defname));
		if (def->arg)
			appendStringInfo(&buf, " = %s", quote_literal_cstr(strVal(def->arg)));
	}
	return buf.data;
}

/*
 * The CREATE INDEX CONCURRENTLY statement that builds index on the new columns, as temp.  Each key
 * column is printed as pg_get_indexdef prints it, from the old definition: its collation when it is
 * not the column's (or the expression's), its operator class when it is not the default for the old
 * type (a default one becomes the new type's default, as offline ALTER TYPE makes it), its sort
 * options when the method orders.  Expressions and the predicate keep the old types on their
 * Vars, so ruleutils prints them as they were written; the build re-parses them over the new
 * columns, as offline ALTER TYPE re-parses the index's definition.
 */
static char *
build_sql(EcTable *table, Relation index, EcRebuildMap *map, const char *temp, bool concurrently,
		  const char *target)
{
	Form_pg_index form = index->rd_index;
	Oid			indexoid = RelationGetRelid(index);
	HeapTuple	idxtuple;
	HeapTuple	amtuple;
	Form_pg_am	amform;
	IndexAmRoutine *am;
	oidvector  *indclass;
	oidvector  *indcollation;
	int2vector *indoption;
	Datum		d;
	bool		isnull;
	List	   *exprs = NIL;
	ListCell   *expr_lc;
	StringInfoData keys;
	StringInfoData include;
	StringInfoData tail;
	const char *indexname = RelationGetRelationName(index);

	idxtuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(idxtuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_internal("cache lookup failed for index %u", indexoid)));
	indclass = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, idxtuple,
															  Anum_pg_index_indclass, &isnull));
	indcollation = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, idxtuple,
																  Anum_pg_index_indcollation,
																  &isnull));
	indoption = (int2vector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, idxtuple,
																Anum_pg_index_indoption, &isnull));
	d = SysCacheGetAttr(INDEXRELID, idxtuple, Anum_pg_index_indexprs, &isnull);
	if (!isnull)
		exprs = (List *) stringToNode(TextDatumGetCString(d));
	expr_lc = list_head(exprs);

	amtuple = SearchSysCache1(AMOID, ObjectIdGetDatum(index->rd_rel->relam));
	if (!HeapTupleIsValid(amtuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("cache lookup failed for access method %u", index->rd_rel->relam)));
	amform = (Form_pg_am) GETSTRUCT(amtuple);
	am = GetIndexAmRoutine(amform->amhandler);

	initStringInfo(&keys);
	initStringInfo(&include);
	for (int i = 0; i < form->indnatts; i++)
	{
		AttrNumber	attnum = form->indkey.values[i];
		StringInfo	buf = i < form->indnkeyatts ? &keys : &include;
		Oid			old_type;
		Oid			new_type = InvalidOid;	/* unknown for an expression until the build */
		Oid			old_collation;
		Oid			opclass_type;
		char	   *opclass;
		char	   *opclass_name;
		Datum		attoptions;
		int16		opt;

		if (buf->len > 0)
			appendStringInfoString(buf, ", ");
		if (attnum != 0)
		{
			AttrNumber	new_attnum = map->new_attnum[attnum - 1];
			int32		typmod;

			appendStringInfoString(buf, quote_identifier(get_attname(table->relid, new_attnum,
																	 false)));
			get_atttypetypmodcoll(table->relid, attnum, &old_type, &typmod, &old_collation);
			new_type = get_atttype(table->relid, new_attnum);
		}
		else
		{
			Node	   *expr = lfirst(expr_lc);

			expr_lc = lnext(exprs, expr_lc);
			old_type = exprType(expr);
			old_collation = exprCollation(expr);
			appendStringInfo(buf, "(%s)", ec_deparse(remap_vars(expr, map), table->relid));
		}
		if (i >= form->indnkeyatts)
			continue;			/* INCLUDE columns have no options */

		if (OidIsValid(indcollation->values[i]) && indcollation->values[i] != old_collation)
		{
			if (OidIsValid(new_type) && !type_is_collatable(new_type))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("cannot carry index \"%s\" to the new column: its collation does "
								"not apply to type %s", indexname, format_type_be(new_type)),
						 errdetail("Index column %d has an explicit collation.", i + 1),
						 errhint("Drop the index in a \"sql\" operation first and recreate it on "
								 "the new column after completing.")));
			appendStringInfo(buf, " COLLATE %s", ec_op_qualified_collation(indcollation->values[i]));
		}

		opclass = ec_op_qualified_opclass(indclass->values[i], &opclass_name, &opclass_type);
		attoptions = get_attoptions(indexoid, i + 1);
		if (attoptions != (Datum) 0 && options_sql(attoptions)[0] == '\0')
			attoptions = (Datum) 0;
		if (attoptions != (Datum) 0 ||
			indclass->values[i] != GetDefaultOpClass(old_type, index->rd_rel->relam))
		{
			/* Kept by name: it must take the new type, as CREATE INDEX would check it. */
			if (OidIsValid(new_type) && !IsBinaryCoercible(new_type, opclass_type))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("cannot carry index \"%s\" to the new column: operator class "
								"\"%s\" does not accept data type %s", indexname, opclass_name,
								format_type_be(new_type)),
						 errhint("Drop the index in a \"sql\" operation first and recreate it on "
								 "the new column with an operator class for the new type after "
								 "completing.")));
			appendStringInfo(buf, " %s", opclass);
			if (attoptions != (Datum) 0)
				appendStringInfo(buf, " (%s)", options_sql(attoptions));
		}

		opt = indoption->values[i];
		if (am->amcanorder)
		{
			if (opt & INDOPTION_DESC)
			{
				appendStringInfoString(buf, " DESC");
				if (!(opt & INDOPTION_NULLS_FIRST))
					appendStringInfoString(buf, " NULLS LAST");
			}
			else if (opt & INDOPTION_NULLS_FIRST)
				appendStringInfoString(buf, " NULLS FIRST");
		}
	}

	initStringInfo(&tail);
	if (include.len > 0)
		appendStringInfo(&tail, " INCLUDE (%s)", include.data);
#if PG_VERSION_NUM >= 150000
	if (form->indnullsnotdistinct)
		appendStringInfoString(&tail, " NULLS NOT DISTINCT");
#endif
	{
		HeapTuple	classtuple = SearchSysCache1(RELOID, ObjectIdGetDatum(indexoid));

		if (!HeapTupleIsValid(classtuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg_internal("cache lookup failed for relation %u", indexoid)));
		d = SysCacheGetAttr(RELOID, classtuple, Anum_pg_class_reloptions, &isnull);
		if (!isnull && options_sql(d)[0] != '\0')
			appendStringInfo(&tail, " WITH (%s)", options_sql(d));
		ReleaseSysCache(classtuple);
	}
	if (OidIsValid(index->rd_rel->reltablespace))
		appendStringInfo(&tail, " TABLESPACE %s",
						 quote_identifier(get_tablespace_name(index->rd_rel->reltablespace)));
	d = SysCacheGetAttr(INDEXRELID, idxtuple, Anum_pg_index_indpred, &isnull);
	if (!isnull)
		appendStringInfo(&tail, " WHERE %s",
						 ec_deparse(remap_vars(stringToNode(TextDatumGetCString(d)), map),
									table->relid));

	ReleaseSysCache(idxtuple);
	ReleaseSysCache(amtuple);
	return psprintf("CREATE %sINDEX %s%s ON %s USING %s (%s)%s",
					form->indisunique ? "UNIQUE " : "", concurrently ? "CONCURRENTLY " : "",
					quote_identifier(temp), target ? target : ec_op_table_sql(table),
					quote_identifier(NameStr(amform->amname)), keys.data, tail.data);
}

/* Does index read a rebuilt column?  Refuses a whole-row reference, which nothing here remaps. */
static bool
reads_rebuilt(EcTable *table, Relation index, EcRebuildMap *map, bool *reads_dropped)
{
	Bitmapset  *attnos = NULL;
	Form_pg_index form = index->rd_index;
	bool		result = false;
	int			k;

	for (int i = 0; i < form->indnatts; i++)
		if (form->indkey.values[i] != 0)
			attnos = bms_add_member(attnos, form->indkey.values[i] -
									FirstLowInvalidHeapAttributeNumber);
	pull_varattnos((Node *) RelationGetIndexExpressions(index), 1, &attnos);
	pull_varattnos((Node *) RelationGetIndexPredicate(index), 1, &attnos);

	*reads_dropped = false;
	k = -1;
	while ((k = bms_next_member(attnos, k)) >= 0)
	{
		AttrNumber	attnum = k + FirstLowInvalidHeapAttributeNumber;
		EcColumn   *col;

		if (attnum <= 0 || attnum > map->natts)
			continue;
		if (bms_is_member(attnum, map->rebuilt))
			result = true;
		col = column_of(table, attnum);
		if (col && col->new_name == NULL)
			*reads_dropped = true;
	}
	if (result && bms_is_member(InvalidAttrNumber - FirstLowInvalidHeapAttributeNumber, attnos))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot carry index \"%s\" to the new column: it references the whole row",
						RelationGetRelationName(index)),
				 errhint("Drop the index in a \"sql\" operation first and recreate it on the new "
						 "column after completing.")));
	return result;
}

/* The column's statistics target and options (n_distinct, ...), as offline ALTER TYPE keeps them. */
static void
carry_column_settings(EcTable *table, EcRebuildMap *map)
{
	int			k = -1;

	while ((k = bms_next_member(map->rebuilt, k)) >= 0)
	{
		HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table->relid),
											Int16GetDatum(k));
		Form_pg_attribute att;
		Datum		options;
		bool		isnull;
		const char *column;

		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg_internal("cache lookup failed for attribute %d of relation %u", k, table->relid)));
		att = (Form_pg_attribute) GETSTRUCT(tuple);
		column = quote_identifier(get_attname(table->relid, map->new_attnum[k - 1], false));
		if (att->attstattarget >= 0)
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET STATISTICS %d",
							 ec_op_table_sql(table), column, att->attstattarget));
		options = SysCacheGetAttr(ATTNUM, tuple, Anum_pg_attribute_attoptions, &isnull);
		if (!isnull && options_sql(options)[0] != '\0')
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET (%s)", ec_op_table_sql(table),
							 column, options_sql(options)));
		ReleaseSysCache(tuple);
	}
}

/* Queues the build of temp, with the cleanup that drops what a failed build leaves. */
static void
queue_build(EcStartContext *cxt, EcTable *table, const char *schema, const char *temp,
			const char *sql, bool before_backfill)
{
	int			seq = ++cxt->ntasks;
	char	   *qualified = ec_qualified(schema, temp);

	if (!before_backfill)
		seq += EC_SEQ_AFTER_BACKFILL;
	ec_add_task(cxt->migration_id, seq, "sql", table->relid, NIL, sql);
	ec_set_task_cleanup(cxt->migration_id, seq,
						psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qualified));
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP INDEX IF EXISTS %s", qualified));
	/* Rollback's DROP INDEX and complete's renames need the table locked up front. */
	table->changed = true;
}

/*
 * A primary key, or the replica identity index, needs its columns NOT NULL: refused at start, as
 * offline ALTER COLUMN ... DROP NOT NULL refuses it, rather than at complete.
 */
static void
require_not_null(EcTable *table, Relation index, EcRebuildMap *map, const char *what)
{
	Form_pg_index form = index->rd_index;

	for (int i = 0; i < form->indnkeyatts; i++)
	{
		AttrNumber	attnum = form->indkey.values[i];

		if (attnum > 0 && bms_is_member(attnum, map->rebuilt) &&
			!new_column_not_null(table, attnum, map))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("column \"%s\" is in %s", get_attname(table->relid, attnum, false),
							what),
					 errdetail("Its new version would allow nulls, which index \"%s\" cannot "
							   "take.", RelationGetRelationName(index))));
	}
}

/* The index of partitioned index parent on relation rel (one of its table's partitions). */
static Oid
partition_index_on(Oid parent, Oid rel)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(parent, NoLock, NULL))
	{
		if (IndexGetRelation(lfirst_oid(lc), false) == rel)
			return lfirst_oid(lc);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("partition \"%s\" has no partition of index \"%s\"", get_rel_name(rel),
					get_rel_name(parent)),
			 errhint("Attach an index of the partition to the partitioned index first.")));
	return InvalidOid;
}

/*
 * A partitioned index on rebuilt columns.  CREATE INDEX CONCURRENTLY cannot build one, so the
 * worker builds the index of each leaf partition concurrently (a task per leaf, each with its
 * cleanup, so that a failed build leaves no INVALID index), as _ec_idx_<the leaf's index>; the
 * partitioned indexes are created at complete, ON ONLY each partitioned table of the hierarchy
 * (a catalog change), under the old names once the old ones went with the old column, and the
 * leaves' indexes are renamed to their old names and attached (ALTER INDEX ... ATTACH PARTITION,
 * under complete's locks on every partition), which makes the partitioned index valid: the
 * result of offline ALTER COLUMN ... TYPE, but that partitions keep their indexes' names.  A
 * unique or primary key constraint becomes a constraint on each leaf first (ADD CONSTRAINT ...
 * USING INDEX, under the leaf's old constraint name), then on the partitioned table by its
 * definition (ADD CONSTRAINT, which finds each leaf's and attaches it rather than building).
 * Until complete, each leaf's new index serves and constrains its leaf.
 */
static void
carry_partitioned_index(EcStartContext *cxt, EcTable *table, Relation index, EcRebuildMap *map,
						char contype, Oid conoid, bool deferrable, bool before_backfill,
						List **now)
{
	Oid			indexoid = RelationGetRelid(index);
	const char *name = RelationGetRelationName(index);
	List	   *hierarchy = find_all_inheritors(table->relid, NoLock, NULL);
	List	   *attach = NIL;
	List	   *create = NIL;
	ListCell   *lc;

	if (deferrable)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot carry deferrable constraint \"%s\" of partitioned table \"%s\" to the new column",
						get_rel_name(get_index_constraint(indexoid)), get_rel_name(table->relid)),
				 errhint("Drop the constraint in a \"sql\" operation first and recreate it on "
						 "the new column after completing.")));
	foreach(lc, hierarchy)
	{
		Oid			rel = lfirst_oid(lc);
		char	   *relschema = get_namespace_name(get_rel_namespace(rel));
		Oid			old = rel == table->relid ? indexoid : partition_index_on(indexoid, rel);
		char	   *oldname = get_rel_name(old);
		char	   *temp = ec_temp_name("_ec_idx_", oldname);
		char	   *parent_index = NULL;	/* the old name of the parent's index */
		char	   *parent_temp = NULL;

		if (OidIsValid(get_relname_relid(temp, get_rel_namespace(rel))))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists in schema \"%s\"", temp, relschema),
					 errdetail("expand_contract needs that name to rebuild index \"%s\" on the "
							   "new column.", oldname),
					 errhint("Drop or rename the relation left behind, then start the migration "
							 "again.")));
		if (rel != table->relid)
		{
			Oid			parent = get_partition_parent(rel, false);
			Oid			parent_old = parent == table->relid ? indexoid :
				partition_index_on(indexoid, parent);
			char	   *parent_schema = get_namespace_name(get_rel_namespace(parent));

			parent_index = ec_qualified(parent_schema, get_rel_name(parent_old));
			parent_temp = ec_qualified(parent_schema,
									   ec_temp_name("_ec_idx_", get_rel_name(parent_old)));
		}
		if (get_rel_relkind(rel) == RELKIND_PARTITIONED_TABLE)
		{
			/*
			 * A constraint's partitioned indexes come with the constraint, below.  Others are
			 * created now, ON ONLY, a catalog change: INVALID (the planner ignores them) until
			 * complete attaches the leaves' indexes.  Rollback's DROP INDEX of the top one
			 * drops those attached to it.
			 */
			if (contype != CONSTRAINT_UNIQUE && contype != CONSTRAINT_PRIMARY)
			{
				*now = lappend(*now, build_sql(table, index, map, temp, false,
											   psprintf("ONLY %s", ec_rel_qualified(rel))));
				if (parent_temp)
					*now = lappend(*now, psprintf("ALTER INDEX %s ATTACH PARTITION %s",
												  parent_temp, ec_qualified(relschema, temp)));
				else
					cxt->rollback_steps = lappend(cxt->rollback_steps,
												  psprintf("DROP INDEX IF EXISTS %s",
														   ec_qualified(relschema, temp)));
				create = lappend(create, psprintf("ALTER INDEX %s RENAME TO %s",
												  ec_qualified(relschema, temp),
												  quote_identifier(oldname)));
			}
			continue;
		}
		{
			EcTable		leaf = *table;
			Oid			leafcon = get_index_constraint(old);

			leaf.relid = rel;
			queue_build(cxt, &leaf, relschema, temp,
						build_sql(table, index, map, temp, true, ec_rel_qualified(rel)),
						before_backfill);
			if (contype == CONSTRAINT_UNIQUE || contype == CONSTRAINT_PRIMARY)
				attach = lappend(attach,
								 psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s",
										  ec_rel_qualified(rel),
										  quote_identifier(OidIsValid(leafcon) ?
														   get_constraint_name(leafcon) : oldname),
										  contype == CONSTRAINT_PRIMARY ? "PRIMARY KEY" : "UNIQUE",
										  quote_identifier(temp)));
			else
			{
				create = lappend(create, psprintf("ALTER INDEX %s RENAME TO %s",
												  ec_qualified(relschema, temp),
												  quote_identifier(oldname)));
				attach = lappend(attach, psprintf("ALTER INDEX %s ATTACH PARTITION %s",
												  parent_index, ec_qualified(relschema, oldname)));
			}
		}
	}
	if (contype == CONSTRAINT_UNIQUE || contype == CONSTRAINT_PRIMARY)
		attach = lappend(attach, psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s",
										  ec_op_table_sql(table),
										  quote_identifier(get_constraint_name(conoid)),
										  TextDatumGetCString(DirectFunctionCall1(pg_get_constraintdef,
																				  ObjectIdGetDatum(conoid)))));
	else
	{
		char	   *comment = GetComment(indexoid, RelationRelationId, 0);

		if (comment)
			attach = lappend(attach, psprintf("COMMENT ON INDEX %s IS %s",
											  ec_qualified(get_namespace_name(RelationGetNamespace(index)), name),
											  quote_literal_cstr(comment)));
	}
	if (OidIsValid(conoid) && GetComment(conoid, ConstraintRelationId, 0) != NULL)
		attach = lappend(attach, psprintf("COMMENT ON CONSTRAINT %s ON %s IS %s",
										  quote_identifier(get_constraint_name(conoid)),
										  ec_op_table_sql(table),
										  quote_literal_cstr(GetComment(conoid, ConstraintRelationId, 0))));
	table->after_drop_steps = list_concat(table->after_drop_steps, list_concat(create, attach));
	table->changed = true;
}

void
ec_carry_indexes(EcStartContext *cxt, EcTable *table, EcRebuildMap *map, bool before_backfill)
{
	Relation	rel = table_open(table->relid, AccessShareLock);
	Oid			nspid = RelationGetNamespace(rel);
	char	   *schema = get_namespace_name(nspid);
	char	   *tsql = ec_op_table_sql(table);
	List	   *indexes = RelationGetIndexList(rel);
	List	   *now = NIL;		/* run once the table is closed */
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	index = index_open(indexoid, AccessShareLock);
		Form_pg_index form = index->rd_index;
		char	   *name = pstrdup(RelationGetRelationName(index));
		char	   *qname = ec_qualified(schema, name);
		char	   *temp;
		Oid			conoid;
		char		contype = 0;
		char	   *conname = NULL;
		bool		deferrable = false;
		bool		deferred = false;
		bool		reads_dropped;
		char	   *comment;

		/*
		 * An INVALID index (a failed CREATE INDEX CONCURRENTLY) is no index to carry: it enforces
		 * and serves nothing, and complete's DROP COLUMN drops it.
		 */
		if (!form->indislive || !form->indisvalid || !reads_rebuilt(table, index, map, &reads_dropped) ||
			reads_dropped || form->indisunique != before_backfill)
		{
			index_close(index, AccessShareLock);
			continue;
		}
		conoid = get_index_constraint(indexoid);
		if (OidIsValid(conoid))
		{
			HeapTuple	tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
			Form_pg_constraint con;

			if (!HeapTupleIsValid(tuple))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg_internal("cache lookup failed for constraint %u", conoid)));
			con = (Form_pg_constraint) GETSTRUCT(tuple);
			contype = con->contype;
			conname = pstrdup(NameStr(con->conname));
			deferrable = con->condeferrable;
			deferred = con->condeferred;
			ReleaseSysCache(tuple);
		}
		/* Dropped with the old column by drop_constraint: not carried. */
		if (OidIsValid(conoid) && list_member_oid(table->dropped_constraints, conoid))
		{
			index_close(index, AccessShareLock);
			continue;
		}
		if (contype == CONSTRAINT_EXCLUSION)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot carry exclusion constraint \"%s\" to the new column", conname),
					 errdetail("An exclusion constraint cannot be attached to an index built "
							   "beforehand."),
					 errhint("Drop the constraint in a \"sql\" operation first and recreate it on "
							 "the new column after completing.")));
		if (contype == CONSTRAINT_PRIMARY)
		{
			require_not_null(table, index, map, "a primary key");
			if (table->primary_key_name)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
						 errmsg("multiple primary keys for table \"%s\" are not allowed",
								RelationGetRelationName(rel)),
						 errdetail("Primary key \"%s\" is rebuilt on the new column, and the "
								   "migration adds primary key \"%s\".", conname,
								   table->primary_key_name)));
		}
		if (form->indisreplident)
			require_not_null(table, index, map, "index used as replica identity");

		temp = ec_temp_name("_ec_idx_", name);
		if (OidIsValid(get_relname_relid(temp, nspid)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists in schema \"%s\"", temp, schema),
					 errdetail("expand_contract needs that name to rebuild index \"%s\" on the "
							   "new column.", name),
					 errhint("Drop or rename the relation left behind, then start the migration "
							 "again.")));
		if (index->rd_rel->relkind == RELKIND_PARTITIONED_INDEX)
		{
			carry_partitioned_index(cxt, table, index, map, contype, conoid, deferrable,
									before_backfill, &now);
			index_close(index, AccessShareLock);
			continue;
		}
		queue_build(cxt, table, schema, temp, build_sql(table, index, map, temp, true, NULL),
					before_backfill);

		/* At complete, once DROP COLUMN took the old index: the new one in its place. */
		if ((contype == CONSTRAINT_UNIQUE || contype == CONSTRAINT_PRIMARY) && !deferrable)
		{
			if (contype == CONSTRAINT_PRIMARY)
			{
				table->primary_key_index = temp;
				table->primary_key_name = conname;
			}
			else
			{
				table->unique_indexes = lappend(table->unique_indexes, temp);
				table->unique_names = lappend(table->unique_names, conname);
			}
		}
		else if (contype == CONSTRAINT_UNIQUE)
		{
			/*
			 * Deferrable unique: a constraint of its own on the new index as soon as the worker has
			 * built it (a catalog change under lock_timeout, retried), so that the new version
			 * defers its checks as the old one does; complete only renames it.
			 */
			char	   *attached = ec_temp_name("_ec_con_", conname);
			int			seq = ++cxt->ntasks + (before_backfill ? 0 : EC_SEQ_AFTER_BACKFILL);

			/* The worker takes a constraint of that name for its own attempt's (see worker.c). */
			if (OidIsValid(get_relation_constraint_oid(table->relid, attached, true)))
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("constraint \"%s\" for relation \"%s\" already exists", attached,
								RelationGetRelationName(rel)),
						 errdetail("expand_contract needs that name to carry constraint \"%s\".", conname),
						 errhint("Drop or rename the constraint left behind, then start the migration again.")));

			ec_add_task(cxt->migration_id, seq, "sql", table->relid, NIL,
						psprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s "
								 "DEFERRABLE INITIALLY %s", tsql, quote_identifier(attached),
								 quote_identifier(temp), deferred ? "DEFERRED" : "IMMEDIATE"));
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
								 quote_identifier(attached), quote_identifier(conname)));
		}
		else if (contype == CONSTRAINT_PRIMARY)
		{
			/*
			 * Deferrable primary key: plan.c's attachment does not say so, this one does.  Until
			 * complete the new index checks each row at once (a primary key needs NOT NULL, which
			 * the new column only gets at complete).
			 */
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s DEFERRABLE "
								 "INITIALLY %s", tsql, quote_identifier(conname),
								 contype == CONSTRAINT_PRIMARY ? "PRIMARY KEY" : "UNIQUE",
								 quote_identifier(temp), deferred ? "DEFERRED" : "IMMEDIATE"));
		}
		else
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("ALTER INDEX %s RENAME TO %s", ec_qualified(schema, temp),
								 quote_identifier(name)));
		/* ADD CONSTRAINT ... USING INDEX renamed the index to conname, the old index's name. */
		if (OidIsValid(conoid) && (comment = GetComment(conoid, ConstraintRelationId, 0)) != NULL)
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("COMMENT ON CONSTRAINT %s ON %s IS %s", quote_identifier(conname),
								 tsql, quote_literal_cstr(comment)));
		if ((comment = GetComment(indexoid, RelationRelationId, 0)) != NULL)
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("COMMENT ON INDEX %s IS %s", qname, quote_literal_cstr(comment)));
		if (form->indisreplident)
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("ALTER TABLE %s REPLICA IDENTITY USING INDEX %s", tsql,
								 quote_identifier(name)));
		if (form->indisclustered)
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("ALTER TABLE %s CLUSTER ON %s", tsql, quote_identifier(name)));
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	table_close(rel, NoLock);
	/* ALTER TABLE (and CREATE INDEX) refuses a table that this backend still has open. */
	ec_exec_list(now);
	if (before_backfill)
		carry_column_settings(table, map);
}
