/*
 * publications.c
 *	  Tables in logical replication publications keep replicating during a migration.
 *
 * A subscriber's apply worker fails on every change that carries a column its table lacks ("missing
 * replicated column"), for good: the change stays in the stream.  The helper columns that ec_start
 * adds (_ec_new_...) are such columns.  So for each publication that lists a table whose columns the
 * migration adds to, ec_start gives the table's entry a column list of the columns it had before
 * (the entry's own list if it had one), in the same transaction as the DDL: the stream never
 * carries a helper column.  Rollback puts the entry back as it was; complete drops the entry before
 * the old columns go (a column list or row filter depends on the columns it names, which blocks
 * DROP COLUMN) and adds it again once the new columns have their final names: without a column list
 * if it had none, else with the final names of the columns it named.  Both within complete's
 * transaction, so that the walsender, which decodes each change with the catalog of its time, sees
 * the table in the publication all along.
 *
 * PostgreSQL has no ALTER PUBLICATION form that changes one table's column list: SET TABLE replaces
 * the whole list of tables, ADD TABLE refuses a member.  DROP TABLE and ADD TABLE of the one table
 * in one transaction leave the other tables and the subscribers' view of the table untouched.
 *
 * FOR ALL TABLES and FOR TABLES IN SCHEMA publications accept no column list: ec_start refuses,
 * unless expand_contract.publications = 'ignore' says the DBA takes care of the subscribers.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "expand_contract.h"

int			ec_publications_mode = EC_PUBLICATIONS_MANAGE;

/* One table of the schema that a publication may publish, as it was before the operations. */
typedef struct EcPublishedTable
{
	Oid			relid;
	List	   *columns;		/* names of its published columns (not dropped, not generated) */
} EcPublishedTable;

/* The columns a publication can publish: generated columns are never published in 15. */
#define PUBLISHABLE_COLUMNS \
	"ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a" \
	" WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''" \
	" ORDER BY a.attnum)"

static List *
publishable_columns(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;

	ec_spi(psprintf("SELECT " PUBLISHABLE_COLUMNS, "$1"), 1, types, values, NULL, SPI_OK_SELECT);
	return ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull));
}

static bool
replica_identity_full(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		full;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	full = ((Form_pg_class) GETSTRUCT(tup))->relreplident == REPLICA_IDENTITY_FULL;
	ReleaseSysCache(tup);
	return full;
}

/* The entries of the publications that list relid, by publication name. */
List *
ec_publication_entries(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	List	   *entries = NIL;
	uint64		n;

	n = ec_spi("SELECT p.pubname::pg_catalog.text, p.pubupdate OR p.pubdelete, p.pubviaroot,"
			   "       r.prattrs IS NOT NULL,"
			   "       ARRAY(SELECT a.attname::pg_catalog.text"
			   "               FROM pg_catalog.unnest(r.prattrs::pg_catalog.int2[]) k"
			   "               JOIN pg_catalog.pg_attribute a ON a.attrelid = r.prrelid AND a.attnum = k"
			   "              ORDER BY a.attnum),"
			   "       pg_catalog.pg_get_expr(r.prqual, r.prrelid), r.prqual::pg_catalog.text"
			   "  FROM pg_catalog.pg_publication_rel r"
			   "  JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid"
			   " WHERE r.prrelid = $1 ORDER BY p.pubname", 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		EcPublicationEntry *e = palloc0(sizeof(EcPublicationEntry));
		bool		isnull;

		e->pub = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		e->writes = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		e->via_root = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		e->has_list = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		e->listed = ec_text_array_to_list(SPI_getbinval(tup, desc, 5, &isnull));
		e->filter = SPI_getvalue(tup, desc, 6);
		e->qual = SPI_getvalue(tup, desc, 7);
		entries = lappend(entries, e);
	}
	return entries;
}

/*
 * Before the operations: the schema's tables that some publication publishes (listed, or every
 * table of the schema when a FOR ALL TABLES or FOR TABLES IN SCHEMA publication exists), with their
 * columns.
 */
List *
ec_publications_snapshot(Oid nspid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspid)};
	List	   *result = NIL;
	uint64		n;

	if (ec_publications_mode == EC_PUBLICATIONS_IGNORE)
		return NIL;
	n = ec_spi(psprintf("SELECT c.oid, " PUBLISHABLE_COLUMNS " FROM pg_catalog.pg_class c"
						" WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p')"
						"   AND (EXISTS (SELECT FROM pg_catalog.pg_publication_rel r WHERE r.prrelid = c.oid)"
						"     OR EXISTS (SELECT FROM pg_catalog.pg_publication p WHERE p.puballtables)"
						"     OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace s"
						"                 WHERE s.pnnspid = $1))"
						" ORDER BY c.oid", "c.oid"),
			   1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		EcPublishedTable *t = palloc0(sizeof(EcPublishedTable));
		bool		isnull;

		t->relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
												  &isnull));
		t->columns = ec_text_array_to_list(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 2, &isnull));
		result = lappend(result, t);
	}
	return result;
}

/* The model's table for relid, or for the partitioned table that relid is a partition of. */
static EcTable *
model_table(EcModel *model, Oid relid)
{
	List	   *candidates = lcons_oid(relid, get_partition_ancestors(relid));
	ListCell   *lc,
			   *lc2;

	foreach(lc, candidates)
		foreach(lc2, model->tables)
		{
			EcTable    *table = lfirst(lc2);

			if (table->relid == lfirst_oid(lc))
				return table;
		}
	return NULL;
}

/* The model's column named name in the old version; NULL: the migration leaves it be. */
static EcColumn *
old_column(EcTable *table, const char *name)
{
	ListCell   *lc;

	if (table == NULL)
		return NULL;
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->old_name && strcmp(col->old_name, name) == 0)
			return col;
	}
	return NULL;
}

/* Does complete drop the physical column behind name (dropped, or rebuilt as another column)? */
static bool
complete_drops(EcTable *table, const char *name)
{
	EcColumn   *col = old_column(table, name);

	return col && col->old_attnum &&
		(col->new_name == NULL || col->new_attnum != col->old_attnum);
}

static char *
column_list_sql(List *names)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, " (");
	foreach(lc, names)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_identifier(lfirst(lc)));
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

static char *
add_table_sql(const char *pub, const char *table_sql, List *columns, const char *filter)
{
	return psprintf("ALTER PUBLICATION %s ADD TABLE %s%s%s", quote_identifier(pub), table_sql,
					columns ? column_list_sql(columns) : "",
					filter ? psprintf(" WHERE (%s)", filter) : "");
}

/*
 * The steps of complete and rollback, which run later: a publication dropped meanwhile (a CDC
 * pipeline retired, say) is not theirs to bring back, and must not fail them.  So each step looks
 * first: drop the entry if it is there; add it if the publication exists and the table is not in it.
 */
/* How guarded_drop's and guarded_add's tests begin: ec_is_publication_step knows the steps by it. */
#define GUARD_START "IF EXISTS (SELECT FROM pg_catalog.pg_publication"

static char *
member_test(const char *pub, const char *table_sql)
{
	return psprintf("EXISTS (SELECT FROM pg_catalog.pg_publication_rel r"
					" JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid"
					" WHERE p.pubname = %s AND r.prrelid = %s::pg_catalog.regclass)",
					quote_literal_cstr(pub), quote_literal_cstr(table_sql));
}

static char *
guarded_drop(const char *pub, const char *table_sql)
{
	return psprintf("IF %s THEN ALTER PUBLICATION %s DROP TABLE %s; END IF;",
					member_test(pub, table_sql), quote_identifier(pub), table_sql);
}

static char *
guarded_add(const char *pub, const char *table_sql, const char *add_sql)
{
	return psprintf(GUARD_START " WHERE pubname = %s) AND NOT %s"
					" THEN %s; END IF;", quote_literal_cstr(pub), member_test(pub, table_sql), add_sql);
}

/* A DO block, quoted as a literal: a dollar-quote tag could occur in a quoted name. */
static char *
do_block(const char *body)
{
	return psprintf("DO %s", quote_literal_cstr(psprintf("BEGIN %s END", body)));
}

/*
 * The first publication (by name) that publishes relid, of schema nspid, and takes no column list
 * for it: one FOR ALL TABLES, FOR TABLES IN SCHEMA of its schema, or one that lists it but has a
 * FOR TABLES IN SCHEMA element too (in 15 such a publication takes no column list at all).  NULL
 * if there is none; otherwise *why says which, as the end of a sentence.
 */
char *
ec_publication_without_lists(Oid relid, Oid nspid, char **why)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2] = {ObjectIdGetDatum(nspid), ObjectIdGetDatum(relid)};
	char	   *pub;
	char	   *kind;

	if (ec_spi("SELECT p.pubname::pg_catalog.text,"
			   "       CASE WHEN p.puballtables THEN 'all'"
			   "            WHEN EXISTS (SELECT FROM pg_catalog.pg_publication_namespace s"
			   "                          WHERE s.pnpubid = p.oid AND s.pnnspid = $1) THEN 'schema'"
			   "            ELSE 'mixed' END"
			   "  FROM pg_catalog.pg_publication p"
			   " WHERE p.puballtables"
			   "    OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace s"
			   "                WHERE s.pnpubid = p.oid"
			   "                  AND (s.pnnspid = $1"
			   "                       OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel r"
			   "                                   WHERE r.prpubid = p.oid AND r.prrelid = $2)))"
			   " ORDER BY p.pubname LIMIT 1", 2, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	pub = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (strcmp(kind, "all") == 0)
		*why = pstrdup("is for all tables and so takes no column list");
	else if (strcmp(kind, "schema") == 0)
		*why = psprintf("is for the tables in schema \"%s\" and so takes no column list",
						get_namespace_name(nspid));
	else
		*why = pstrdup("lists it but also has FOR TABLES IN SCHEMA elements, and so takes no column list");
	return pub;
}

static void
refuse_whole_schema_publications(Oid relid, Oid nspid)
{
	char	   *why;
	char	   *pub = ec_publication_without_lists(relid, nspid, &why);

	if (pub == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot add columns to table \"%s\": publication \"%s\" publishes it without a column list",
					get_rel_name(relid), pub),
			 errdetail("Publication \"%s\" %s; its subscribers would receive the migration's helper "
					   "columns, which their tables lack, and stop replicating.", pub, why),
			 errhint("Publish the table with FOR TABLE instead, or set expand_contract.publications "
					 "to 'ignore' if you take care of the subscribers.")));
}

/*
 * After the operations: for each table of the snapshot that the migration adds columns to, or whose
 * listed columns complete drops, the publication entries as described above.
 */
void
ec_publications_apply(EcStartContext *cxt, List *snapshot)
{
	ListCell   *lc;

	foreach(lc, snapshot)
	{
		EcPublishedTable *t = lfirst(lc);
		EcTable    *table = model_table(cxt->model, t->relid);
		bool		added = false;
		char	   *tsql = ec_rel_qualified(t->relid);
		char	   *final_sql = NULL;
		bool		full_identity;
		ListCell   *lc2,
				   *lc3;

		foreach(lc2, publishable_columns(t->relid))
			if (!list_member_str(t->columns, lfirst(lc2)))
				added = true;
		if (added)
			refuse_whole_schema_publications(t->relid, get_rel_namespace(t->relid));
		/* A dropped table takes its publication entries along. */
		if (table && table->new_name == NULL)
			continue;
		if (table && table->relid == t->relid)
			final_sql = ec_qualified(cxt->model->schema, table->new_name);
		else
			final_sql = tsql;	/* a partition: complete renames only the tables it migrates */

		full_identity = replica_identity_full(t->relid);
		foreach(lc3, ec_publication_entries(t->relid))
		{
			EcPublicationEntry *e = lfirst(lc3);
			char	   *pub = e->pub;
			bool		updates = e->writes;
			bool		has_list = e->has_list;
			List	   *listed = e->listed;
			char	   *filter = e->filter;
			bool		leaves_published = get_rel_relkind(t->relid) == RELKIND_PARTITIONED_TABLE &&
				!e->via_root;
			List	   *during = has_list ? listed : t->columns;
			List	   *final = NIL;
			bool		listed_dropped = false;
			char	   *drop_sql = psprintf("ALTER PUBLICATION %s DROP TABLE %s",
											quote_identifier(pub), tsql);

			foreach(lc2, listed)
				if (complete_drops(table, lfirst(lc2)))
					listed_dropped = true;
			if (added && leaves_published)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot add columns to partitioned table \"%s\" of publication \"%s\": its partitions are published as themselves",
								get_rel_name(t->relid), pub),
						 errdetail("The publication's column list would have to leave the helper columns "
								   "out, and PostgreSQL takes column lists for a partitioned table only "
								   "with publish_via_partition_root."),
						 errhint("Set publish_via_partition_root = true on the publication (its "
								 "subscribers then apply the changes to the partitioned table), or set "
								 "expand_contract.publications to 'ignore' if you take care of the subscribers.")));
			if (filter)
			{
				Bitmapset  *attnos = NULL;
				int			k = -1;

				/*
				 * A row filter depends on its columns: one that complete drops (or rebuilds) would
				 * block it, and one that it renames could not be named again in the filter's text.
				 */
				pull_varattnos(stringToNode(e->qual), 1, &attnos);
				while ((k = bms_next_member(attnos, k)) >= 0)
				{
					AttrNumber	attnum = k + FirstLowInvalidHeapAttributeNumber;
					char	   *name = get_attname(t->relid, attnum, false);
					EcColumn   *col = old_column(table, name);

					if (col && (col->moves_data || complete_drops(table, name) ||
								((added || listed_dropped) &&
								 (col->new_name == NULL || strcmp(col->new_name, name) != 0))))
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("cannot migrate column \"%s\" of table \"%s\": the row filter of publication \"%s\" uses it",
										name, get_rel_name(t->relid), pub),
								 errhint("Publish the table without the row filter during the migration "
										 "(ALTER PUBLICATION ... DROP TABLE, then ADD TABLE without WHERE), "
										 "or set expand_contract.publications to 'ignore' and see to the "
										 "publication yourself.")));
				}
			}
			if (!added && !listed_dropped)
				continue;

			if (added && updates && full_identity)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot add columns to table \"%s\" of publication \"%s\": the table has REPLICA IDENTITY FULL",
								get_rel_name(t->relid), pub),
						 errdetail("While the migration is active, the publication's column list leaves "
								   "the helper columns out, and a column list must cover the replica "
								   "identity, which FULL makes every column."),
						 errhint("Give the table a replica identity on its primary key or a unique index "
								 "(ALTER TABLE ... REPLICA IDENTITY DEFAULT or USING INDEX), or set "
								 "expand_contract.publications to 'ignore' if you take care of the subscribers.")));

			if (added)
			{
				/* While the migration is active: the columns the subscribers know. */
				ec_exec(drop_sql);
				ec_exec(add_table_sql(pub, tsql, during, filter));
				cxt->rollback_steps =
					lappend(cxt->rollback_steps,
							do_block(psprintf("%s %s", guarded_drop(pub, tsql),
											  guarded_add(pub, tsql,
														  add_table_sql(pub, tsql,
																		has_list ? listed : NIL,
																		filter)))));
			}
			foreach(lc2, listed)
			{
				EcColumn   *col = old_column(table, lfirst(lc2));

				if (col == NULL)
					final = lappend(final, lfirst(lc2));
				else if (col->new_name)
					final = lappend(final, col->new_name);
			}
			/* Every listed column dropped: the entry goes (an empty column list is no list). */
			cxt->publication_drop = lappend(cxt->publication_drop,
											do_block(guarded_drop(pub, tsql)));
			if (!has_list || final != NIL)
				cxt->publication_restore =
					lappend(cxt->publication_restore,
							do_block(guarded_add(pub, final_sql,
												 add_table_sql(pub, final_sql,
															   has_list ? final : NIL, filter))));
		}
	}
}

/*
 * Is this complete step one of ours (publication_drop or publication_restore above)?  A revert
 * window runs them and records their undo (revert_publications.c).  They are DO blocks of
 * guarded_drop or guarded_add; a migration's onComplete "sql", which could look the same, refuses
 * the window before its steps are looked at.
 */
bool
ec_is_publication_step(Node *stmt)
{
	ListCell   *lc;

	if (stmt == NULL || !IsA(stmt, DoStmt))
		return false;
	foreach(lc, ((DoStmt *) stmt)->args)
	{
		DefElem    *arg = lfirst(lc);

		if (strcmp(arg->defname, "as") == 0 && IsA(arg->arg, String) &&
			strncmp(strVal(arg->arg), "BEGIN " GUARD_START, strlen("BEGIN " GUARD_START)) == 0)
			return true;
	}
	return false;
}

/*
 * A statement that gives relid the publication entries "entries" (read earlier with
 * ec_publication_entries) in the publications that they and drop_also name, and leaves the table's
 * entries in other publications alone (one made during a revert window, say): it drops the table
 * from each of those publications where it is there, then adds back each entry, with its row
 * filter and its column list less the names in omit; with every_column, an entry without a list
 * gets one, of the table's publishable columns less omit.  An entry whose list ends empty is not
 * added back (an empty list is no list), nor one whose publication is gone.  The table is named as
 * it is now: a revert window's undo steps run in reverse order, and its cleanup steps after the
 * renames, when it has that name again.
 */
char *
ec_publication_entries_sql(Oid relid, List *entries, List *omit, bool every_column,
						   List *drop_also)
{
	char	   *tsql = ec_rel_qualified(relid);
	List	   *all = every_column ? publishable_columns(relid) : NIL;
	List	   *pubs = ec_publication_names(entries);
	StringInfoData body;
	ListCell   *lc;

	foreach(lc, drop_also)
		if (!list_member_str(pubs, lfirst(lc)))
			pubs = lappend(pubs, lfirst(lc));
	initStringInfo(&body);
	foreach(lc, pubs)
		appendStringInfo(&body, " %s", guarded_drop(lfirst(lc), tsql));
	foreach(lc, entries)
	{
		EcPublicationEntry *e = lfirst(lc);
		bool		has_list = e->has_list || every_column;
		List	   *columns = NIL;
		ListCell   *lc2;

		foreach(lc2, e->has_list ? e->listed : all)
			if (!list_member_str(omit, lfirst(lc2)))
				columns = lappend(columns, lfirst(lc2));
		if (has_list && columns == NIL)
			continue;
		appendStringInfo(&body, " %s",
						 guarded_add(e->pub, tsql,
									 add_table_sql(e->pub, tsql, has_list ? columns : NIL, e->filter)));
	}
	return do_block(body.data);
}

/* The names of the publications of entries (ec_publication_entries). */
List *
ec_publication_names(List *entries)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, entries)
		names = lappend(names, ((EcPublicationEntry *) lfirst(lc))->pub);
	return names;
}
