/*
 * revert_publications.c
 *	  A revert window and logical replication: during the window the publications of the
 *	  migration's tables publish none of what the window keeps aside (see revert_complete.c, which
 *	  runs complete's steps).
 *
 * A subscriber's table has the columns a plain ec_complete leaves; a change that carries a
 * column it lacks stops its apply worker for good ("missing replicated column").  The kept-aside
 * columns (_ec_old_<name>) and tables (_ec_dropped_<name>) are such columns and tables.  So once
 * complete's steps have run, each explicit publication entry of a table that has kept-aside
 * columns gets a column list without them (the table's publishable columns if it had none), and
 * the entries of a kept-aside table go; each change is undone by ec_revert, and the window's
 * cleanup, once the kept-aside columns are dropped, gives the entries the lists a plain complete
 * leaves.  Both touch only the publications whose entries the window changed: an entry made
 * during the window, in another publication, is the DBA's and stays as it is.  The publication
 * steps of complete itself (publications.c: the entries dropped before the columns go and added
 * again under the final names) run as they are, their undo putting the entries back as they
 * were.  Everything is in complete's transaction, so the walsender, which decodes each change
 * with the catalog of its time, never sees a kept-aside column published.
 *
 * Refused, with nothing changed: a table with kept-aside columns, or kept aside, that a FOR ALL
 * TABLES or FOR TABLES IN SCHEMA publication publishes (no column list there), a partition
 * published as itself through a partitioned table's entry (no column list without
 * publish_via_partition_root), and an entry that publishes updates or deletes of a table whose
 * replica identity a column list without the kept-aside columns would not cover (FULL, or an index
 * on a kept-aside column).
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/bitmapset.h"
#include "access/sysattr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "expand_contract.h"
#include "revert_window.h"

/* Is relid a table that complete's steps kept aside (_ec_dropped_<name>)? */
static bool
kept_aside_table(WindowRun *run, Oid relid)
{
	ListCell   *lc;

	foreach(lc, run->deferred)
	{
		Deferred   *d = lfirst(lc);

		if (d->relid == relid && !d->column && !d->trigger && !d->constraint && !d->sql &&
			get_rel_relkind(relid) == RELKIND_RELATION)
			return true;
	}
	return false;
}

/* The names of relid's kept-aside columns (on a partition, its partitioned table's). */
static List *
kept_aside_columns(WindowRun *run, Oid relid)
{
	List	   *owners = lcons_oid(relid, get_partition_ancestors(relid));
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, run->deferred)
	{
		Deferred   *d = lfirst(lc);

		if (d->column && list_member_oid(owners, d->relid))
			names = lappend(names, (char *) d->column);
	}
	return names;
}

/* The tables that publication entries may name: the migration's, their partitions, the kept-aside. */
static List *
window_tables(WindowRun *run)
{
	List	   *tables = NIL;
	ListCell   *lc;

	foreach(lc, run->relids)
	{
		Oid			relid = lfirst_oid(lc);
		char		kind = get_rel_relkind(relid);

		if (kind == RELKIND_RELATION)
			tables = list_append_unique_oid(tables, relid);
		else if (kind == RELKIND_PARTITIONED_TABLE)
		{
			ListCell   *lc2;

			foreach(lc2, find_all_inheritors(relid, NoLock, NULL))
				tables = list_append_unique_oid(tables, lfirst_oid(lc2));
		}
	}
	foreach(lc, run->deferred)
	{
		Deferred   *d = lfirst(lc);

		if (OidIsValid(d->relid) && kept_aside_table(run, d->relid))
			tables = list_append_unique_oid(tables, d->relid);
	}
	return tables;
}

static bool
same_names(List *a, List *b)
{
	ListCell   *la,
			   *lb;

	if (list_length(a) != list_length(b))
		return false;
	forboth(la, a, lb, b)
		if (strcmp(lfirst(la), lfirst(lb)) != 0)
			return false;
	return true;
}

/* Are two reads of a table's entries (ec_publication_entries, by publication name) the same? */
static bool
same_entries(List *a, List *b)
{
	ListCell   *la,
			   *lb;

	if (list_length(a) != list_length(b))
		return false;
	forboth(la, a, lb, b)
	{
		EcPublicationEntry *ea = lfirst(la);
		EcPublicationEntry *eb = lfirst(lb);

		if (strcmp(ea->pub, eb->pub) != 0 || ea->has_list != eb->has_list ||
			!same_names(ea->listed, eb->listed) ||
			(ea->filter == NULL) != (eb->filter == NULL) ||
			(ea->filter && strcmp(ea->filter, eb->filter) != 0))
			return false;
	}
	return true;
}

/*
 * One of complete's publication steps (they drop or add entries of the migration's tables): runs
 * it, with an undo for each table whose entries it changed, which gives the table the entries it
 * had before in the publications that had or now have an entry for it (and touches no other).
 */
void
ec_window_publication_step(WindowRun *run, const char *step)
{
	List	   *tables = window_tables(run);
	List	   *before = NIL;
	ListCell   *lc,
			   *lc2;

	foreach(lc, tables)
		before = lappend(before, ec_publication_entries(lfirst_oid(lc)));
	ec_exec(step);
	forboth(lc, tables, lc2, before)
	{
		Oid			relid = lfirst_oid(lc);
		List	   *after = ec_publication_entries(relid);

		if (!same_entries(lfirst(lc2), after))
			ec_window_undo(run, ec_publication_entries_sql(relid, lfirst(lc2), NIL, false,
														   ec_publication_names(after)));
	}
}

static void
refuse(WindowRun *run, Oid relid, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("migration \"%s\" cannot be completed with a revert window", run->migration),
			 errdetail("Table \"%s\" %s, and its subscribers would receive the columns the window keeps aside.",
					   get_rel_name(relid), detail),
			 errhint("Complete it without a window, with ec_complete(%s, revert_window => '0'), or set "
					 "expand_contract.publications to 'ignore' if you take care of the subscribers.",
					 quote_literal_cstr(run->schema))));
}

/* Does a replica identity of relid (or of a partition below it) need one of the names? */
static bool
identity_needs(Oid relid, List *names, char **why)
{
	List	   *rels = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
		find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid);
	ListCell   *lc;

	foreach(lc, rels)
	{
		Oid			rel_id = lfirst_oid(lc);
		Relation	rel;
		Bitmapset  *key;
		int			k = -1;
		bool		full;

		if (get_rel_relkind(rel_id) != RELKIND_RELATION)
			continue;
		rel = relation_open(rel_id, NoLock);
		full = rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL;
		key = full ? NULL : RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
		relation_close(rel, NoLock);
		if (full)
		{
			*why = psprintf("has REPLICA IDENTITY FULL%s, which a column list must cover",
							rel_id == relid ? "" : psprintf(" (partition \"%s\")", get_rel_name(rel_id)));
			return true;
		}
		while ((k = bms_next_member(key, k)) >= 0)
		{
			char	   *name = get_attname(rel_id, k + FirstLowInvalidHeapAttributeNumber, false);

			if (list_member_str(names, name))
			{
				*why = rel_id == relid ?
					psprintf("has a replica identity on the kept-aside column \"%s\"", name) :
					psprintf("has a replica identity on the kept-aside column \"%s\" (partition \"%s\")",
							 name, get_rel_name(rel_id));
				return true;
			}
		}
	}
	return false;
}

/* Does the entry publish one of the names (every column, without a list)? */
static bool
publishes_any(EcPublicationEntry *e, List *names)
{
	ListCell   *lc;

	if (!e->has_list)
		return true;
	foreach(lc, e->listed)
		if (list_member_str(names, lfirst(lc)))
			return true;
	return false;
}

/*
 * After complete's steps: the entries of every table with kept-aside columns get lists without
 * them, those of a kept-aside table go; each with its undo and, for the former, the cleanup step
 * that gives them the lists a plain complete leaves.
 */
void
ec_window_publications(WindowRun *run)
{
	ListCell   *lc;

	foreach(lc, window_tables(run))
	{
		Oid			relid = lfirst_oid(lc);
		bool		aside = kept_aside_table(run, relid);
		List	   *kept = aside ? NIL : kept_aside_columns(run, relid);
		List	   *ancestors = get_partition_ancestors(relid);
		char	   *pub;
		char	   *why;
		bool		change = false;
		List	   *entries;
		ListCell   *lc2;

		if (!aside && kept == NIL)
			continue;
		pub = ec_publication_without_lists(relid, get_rel_namespace(relid), &why);
		if (pub)
			refuse(run, relid, psprintf("is in publication \"%s\", which %s", pub, why));
		if (ancestors != NIL)
		{
			Oid			atypes[1] = {OIDARRAYOID};
			Datum		avalues[1] = {ec_list_to_oid_array(ancestors)};

			if (ec_catalog_spi("SELECT p.pubname::pg_catalog.text FROM pg_catalog.pg_publication_rel r"
							   "  JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid"
							   " WHERE r.prrelid = ANY ($1) AND NOT p.pubviaroot ORDER BY 1 LIMIT 1",
							   1, atypes, avalues, NULL, SPI_OK_SELECT) > 0)
				refuse(run, relid,
					   psprintf("is a partition that publication \"%s\" publishes as itself through its partitioned table, which takes no column list without publish_via_partition_root",
								SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)));
		}

		entries = ec_publication_entries(relid);
		foreach(lc2, entries)
		{
			EcPublicationEntry *e = lfirst(lc2);

			if (!aside && !publishes_any(e, kept))
				continue;
			if (!aside && get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE && !e->via_root)
				refuse(run, relid,
					   psprintf("is a partitioned table that publication \"%s\" publishes as its partitions, which takes no column list without publish_via_partition_root",
								e->pub));
			if (!aside && e->writes && identity_needs(relid, kept, &why))
				refuse(run, relid, psprintf("is in publication \"%s\" and %s", e->pub, why));
			change = true;
		}
		if (!change)
			continue;
		ec_window_undo(run, ec_publication_entries_sql(relid, entries, NIL, false, NIL));
		if (!aside)
			ec_window_defer(run, InvalidOid, NULL, NULL,
							ec_publication_entries_sql(relid, entries, kept, false, NIL));
		ec_exec(ec_publication_entries_sql(relid, aside ? NIL : entries, kept, true,
										   ec_publication_names(entries)));
	}
}
