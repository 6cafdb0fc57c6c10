/*
 * compact.c
 *	  Leaving the table compact.  Every backfilled row gets a new version, and on a full page that
 *	  version goes to a new page, with new index entries: left alone, a migration doubles the
 *	  table and its indexes.  So, unless expand_contract.compact is off:
 *
 *	  during the backfill	after each batch commits, the worker prunes the pages of the batches
 *							whose old versions no snapshot can see any more (heap_page_prune_opt,
 *							what any scan of a page does) and enters their free space in the free
 *							space map, so that the next batches' new versions go there instead of
 *							the table's end.  The pruned versions leave dead line pointers and
 *							index entries behind until the VACUUM after the backfill; meanwhile
 *							the indexes' bottom-up deletion removes the entries on pages that would
 *							split.  No batch fills more than a twentieth of the table, so that
 *							what goes to the table's end before the first prune stays small.
 *	  after the backfill	a VACUUM (SKIP_LOCKED, TRUNCATE false) of each table, then the
 *							surviving indexes the migration did not build rebuilt with REINDEX
 *							INDEX CONCURRENTLY, each a task of its own (kind "compact", see
 *							ec_queue_compaction).  SKIP_LOCKED: a VACUUM already running
 *							(autovacuum's) does the same; TRUNCATE false: truncating takes ACCESS
 *							EXCLUSIVE.  The worker skips compaction tasks when compact is off by
 *							the time it reaches them.
 *
 *	  Until 2026-12-03 the worker ran a VACUUM after each twentieth of the table instead of pruning:
 *	  as compact (1M rows of t(id bigint primary key, a text, b text), a to bigint: heap 1.16-1.17x of
 *	  the table before in both), but each VACUUM scans every index whole, and the backfill took
 *	  1.25-1.32x one UPDATE against 0.75-1.07x with pruning (fast server, four interleaved rounds).
 *	  Pruning was faster than no compaction too: the new versions go to pages already in the buffer
 *	  cache instead of extending the table.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parser.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "expand_contract.h"
#include "operations.h"
#include "worker.h"

bool		ec_compact = true;

#define BATCH_FRACTION	20			/* no batch fills more than a twentieth of the table */
#define BATCH_CAP_MIN_BLOCKS	128	/* 1 MB: a small table's batches are not cut smaller */
#define VACUUM_MIN_BLOCKS	128		/* 1 MB: smaller tables are left to autovacuum */

/*
 * Below 8 MB at start a table's indexes are not rebuilt: the bloat is small, autovacuum deals with
 * it, and every REINDEX CONCURRENTLY is a task that ec_complete would have to wait for.
 */
#define COMPACT_MIN_BLOCKS	1024

static char *
vacuum_statement(Oid relid)
{
	return psprintf("VACUUM (SKIP_LOCKED, TRUNCATE false) %s", ec_rel_qualified(relid));
}

/*
 * The most blocks of relid one batch may fill: a twentieth.  The batches are sized by time, and on
 * a fast server one batch of a small table could fill most of it before anything was pruned; its
 * new versions would all go to the table's end.
 */
int64
ec_compact_batch_blocks(Oid relid)
{
	Relation	rel;

	if (relid == ec_worker.cap_relid)
		return ec_worker.cap_blocks;
	rel = table_open(relid, AccessShareLock);
	ec_worker.cap_blocks = Max(BATCH_CAP_MIN_BLOCKS,
							   (int64) RelationGetNumberOfBlocks(rel) / BATCH_FRACTION);
	table_close(rel, AccessShareLock);
	ec_worker.cap_relid = relid;
	return ec_worker.cap_blocks;
}

/*
 * In the transaction of a batch that filled relid's blocks [first, end): its pages, to prune once
 * its transaction's deletions are visible to every snapshot (ec_compact_prune).  Kept per worker
 * (each of several workers filling one table prunes its own batches' pages, which need not follow
 * each other when it moves from one part of the table to another) and for the table it is
 * filling: a worker moving on to another table leaves the last pages of the previous one to that
 * table's VACUUM.  When a long transaction holds the horizon back, the batches not pruned yet are
 * merged into the newest, which is pruned once the newest is.
 */
void
ec_compact_after_batch(Oid relid, int64 first, int64 end)
{
	TransactionId xid = GetCurrentTransactionIdIfAny();
	int			n = ec_worker.prune_pending;

	if (relid != ec_worker.prune_relid)
	{
		ec_worker.prune_relid = relid;
		n = 0;
	}
	/* Without an xid of its own the batch deleted nothing: any later xid is a safe bound. */
	if (!TransactionIdIsValid(xid))
		xid = ReadNextTransactionId();
	if (n == lengthof(ec_worker.prune_batches))
	{
		n--;
		first = Min(first, ec_worker.prune_batches[n].first);
		end = Max(end, ec_worker.prune_batches[n].end);
	}
	ec_worker.prune_batches[n].first = first;
	ec_worker.prune_batches[n].end = end;
	ec_worker.prune_batches[n].xid = xid;
	ec_worker.prune_pending = n + 1;
}

/*
 * After a batch committed, in a transaction of its own: prunes the pages of the earlier batches
 * (ec_compact_after_batch) whose deletions every snapshot sees, oldest first, and enters their free
 * space in the free space map.  Pruning takes no lock beyond a page's, and only a page no one else
 * has pinned (heap_page_prune_opt skips the others); a page it cannot prune keeps the free space
 * it has.  Only heap tables: another access method's pages are its own.
 */
void
ec_compact_prune(void)
{
	Relation	rel;
	GlobalVisState *vistest;
	BlockNumber nblocks;
	int			ready = 0;

	if (ec_worker.prune_pending == 0)
		return;
	rel = try_table_open(ec_worker.prune_relid, AccessShareLock);
	if (rel == NULL || rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		ec_worker.prune_pending = 0;
		if (rel)
			table_close(rel, AccessShareLock);
		return;
	}
	vistest = GlobalVisTestFor(rel);
	nblocks = RelationGetNumberOfBlocks(rel);
	for (; ready < ec_worker.prune_pending; ready++)
	{
		BlockNumber first = (BlockNumber) ec_worker.prune_batches[ready].first;
		BlockNumber end = Min((BlockNumber) ec_worker.prune_batches[ready].end, nblocks);

		if (!GlobalVisTestIsRemovableXid(vistest, ec_worker.prune_batches[ready].xid))
			break;
		for (BlockNumber blkno = first; blkno < end; blkno++)
		{
			Buffer		buffer;
			Size		free_space;

			CHECK_FOR_INTERRUPTS();
			buffer = ReadBuffer(rel, blkno);
			heap_page_prune_opt(rel, buffer);
			LockBuffer(buffer, BUFFER_LOCK_SHARE);
			free_space = PageGetHeapFreeSpace(BufferGetPage(buffer));
			UnlockReleaseBuffer(buffer);
			RecordPageWithFreeSpace(rel, blkno, free_space);
		}
		/* The map's upper levels, which its searches start from. */
		if (end > first)
			FreeSpaceMapVacuumRange(rel, first, end);
	}
	memmove(ec_worker.prune_batches, ec_worker.prune_batches + ready,
			sizeof(ec_worker.prune_batches[0]) * (ec_worker.prune_pending - ready));
	ec_worker.prune_pending -= ready;
	table_close(rel, AccessShareLock);
}

/* Does the index read a column of the table that complete drops (dropped: attnums, offset)? */
static bool
reads_dropped_column(Oid indexid, Bitmapset *dropped)
{
	HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
	Form_pg_index index;
	Bitmapset  *read = NULL;
	bool		isnull;
	Datum		d;
	bool		result;

	if (!HeapTupleIsValid(tuple))
		return true;
	index = (Form_pg_index) GETSTRUCT(tuple);
	for (int i = 0; i < index->indnatts; i++)
		if (index->indkey.values[i] != 0)
			read = bms_add_member(read, index->indkey.values[i] - FirstLowInvalidHeapAttributeNumber);
	d = SysCacheGetAttr(INDEXRELID, tuple, Anum_pg_index_indexprs, &isnull);
	if (!isnull)
		pull_varattnos(stringToNode(TextDatumGetCString(d)), 1, &read);
	d = SysCacheGetAttr(INDEXRELID, tuple, Anum_pg_index_indpred, &isnull);
	if (!isnull)
		pull_varattnos(stringToNode(TextDatumGetCString(d)), 1, &read);
	ReleaseSysCache(tuple);
	result = bms_overlap(read, dropped);
	bms_free(read);
	return result;
}

/* An index named `name` in the index's schema, other than the index itself? */
static bool
name_taken(Oid indexid, const char *label)
{
	char	   *name = makeObjectName(get_rel_name(indexid), NULL, label);

	return OidIsValid(get_relname_relid(name, get_rel_namespace(indexid)));
}

/*
 * The REINDEX tasks of one heap: its indexes that survive complete (none reads a column complete
 * drops: those go with their column), built before the migration (the worker builds the
 * migration's own on filled data, compact already).  Each carries a cleanup for what a failed
 * REINDEX CONCURRENTLY leaves behind, the invalid <name>_ccnew (or, failing at its very end,
 * <name>_ccold); an index whose <name>_ccnew or <name>_ccold name is taken already is left as it
 * is, as REINDEX would pick another name that the cleanup could not know.
 */
static void
queue_reindexes(EcStartContext *cxt, Relation rel, Bitmapset *dropped)
{
	Oid			heapid = RelationGetRelid(rel);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Oid			indexid = lfirst_oid(lc);
		char	   *schema = get_namespace_name(get_rel_namespace(indexid));
		char	   *qname;

		if (!get_index_isvalid(indexid) || reads_dropped_column(indexid, dropped) ||
			name_taken(indexid, "ccnew") || name_taken(indexid, "ccold"))
			continue;
		qname = quote_qualified_identifier(schema, get_rel_name(indexid));
		ec_add_task(cxt->migration_id, ++cxt->ntasks + EC_SEQ_AFTER_BACKFILL, "compact", heapid, NIL,
					psprintf("REINDEX INDEX CONCURRENTLY %s", qname));
		ec_set_task_cleanup(cxt->migration_id, cxt->ntasks + EC_SEQ_AFTER_BACKFILL,
							psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s;"
									 " DROP INDEX CONCURRENTLY IF EXISTS %s",
									 quote_qualified_identifier(schema,
																makeObjectName(get_rel_name(indexid),
																			   NULL, "ccnew")),
									 quote_qualified_identifier(schema,
																makeObjectName(get_rel_name(indexid),
																			   NULL, "ccold"))));
	}
}

/*
 * After the backfill of table (queued just before): its compaction tasks, the VACUUM and the
 * REINDEXes, per leaf partition of a partitioned table.  They are queued whatever expand_contract.compact says now; the worker skips
 * them if it is off when it reaches them (ec_configure may turn it off after ec_start).
 */
void
ec_queue_compaction(EcStartContext *cxt, EcTable *table)
{
	List	   *names = NIL;
	ListCell   *lc;
	List	   *heaps;

	/* By name: a leaf partition's attribute numbers may differ from its parent's. */
	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (col->old_attnum > 0 && col->old_attnum != col->new_attnum)
			names = lappend(names, get_attname(table->relid, col->old_attnum, false));
	}
	heaps = get_rel_relkind(table->relid) == RELKIND_PARTITIONED_TABLE ?
		find_all_inheritors(table->relid, NoLock, NULL) : list_make1_oid(table->relid);
	foreach(lc, heaps)
	{
		Oid			heapid = lfirst_oid(lc);
		Bitmapset  *dropped = NULL;
		ListCell   *lc2;
		Relation	rel;
		BlockNumber nblocks;

		if (get_rel_relkind(heapid) != RELKIND_RELATION)
			continue;
		foreach(lc2, names)
		{
			AttrNumber	attnum = get_attnum(heapid, lfirst(lc2));

			if (attnum != InvalidAttrNumber)
				dropped = bms_add_member(dropped, attnum - FirstLowInvalidHeapAttributeNumber);
		}
		rel = table_open(heapid, AccessShareLock);
		nblocks = RelationGetNumberOfBlocks(rel);
		/* A table too small for its VACUUM to matter is left to autovacuum. */
		if (nblocks >= VACUUM_MIN_BLOCKS)
			ec_add_task(cxt->migration_id, ++cxt->ntasks + EC_SEQ_AFTER_BACKFILL, "compact", heapid,
						NIL, vacuum_statement(heapid));
		if (nblocks >= COMPACT_MIN_BLOCKS)
			queue_reindexes(cxt, rel, dropped);
		table_close(rel, AccessShareLock);
	}
}

/*
 * The part of a compaction task's cleanup to run: the DROP INDEX of an index that exists and is
 * valid is left out (a user's index of that name, or the rebuilt index itself once the swap is
 * done), so that it only ever drops what a failed REINDEX CONCURRENTLY left invalid.
 */
char *
ec_compact_cleanup(const char *cleanup)
{
	List	   *stmts = raw_parser(cleanup, RAW_PARSE_DEFAULT);
	StringInfoData out;
	ListCell   *lc;
	int			location = 0;

	initStringInfo(&out);
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst(lc);
		int			len = raw->stmt_len > 0 ? raw->stmt_len : (int) strlen(cleanup) - raw->stmt_location;
		bool		keep = true;

		location = raw->stmt_location;
		if (IsA(raw->stmt, DropStmt))
		{
			List	   *names = linitial(((DropStmt *) raw->stmt)->objects);
			Oid			indexid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);

			keep = !OidIsValid(indexid) ? false : !get_index_isvalid(indexid);
		}
		if (keep)
			appendStringInfo(&out, "%.*s;", len, cleanup + location);
	}
	return out.data;
}

PG_FUNCTION_INFO_V1(ec_repack_guard);

/*
 * Refuses pg_repack's trigger (a function of schema "repack", made by CREATE TRIGGER) on a table
 * whose data an active migration moves.  pg_repack copies every row into a new table and swaps it
 * in: the copies carry pg_repack's transaction id, which the backfill takes for a write made after
 * the migration started (so through the dual-write trigger), and the rows it had not filled yet
 * would stay unconverted.  After ec_complete it is safe (test/t/014_compact.pl).  pg_repack
 * --only-indexes makes no such trigger and goes through.  Run by the DDL guard (ddl_guard.c) and
 * by 0.1.0's event trigger below.
 */
void
ec_check_repack(Node *parsetree)
{
	CreateTrigStmt *stmt;
	Oid			relid;
	char	   *migration = NULL;

	if (!IsA(parsetree, CreateTrigStmt))
		return;
	stmt = (CreateTrigStmt *) parsetree;
	if (list_length(stmt->funcname) != 2 ||
		strcmp(strVal(linitial(stmt->funcname)), "repack") != 0)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	SPI_connect();
	migration = ec_migration_moving_data(relid);
	if (migration)
		migration = MemoryContextStrdup(TopTransactionContext, migration);
	SPI_finish();
	if (migration)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot repack table \"%s\" while migration \"%s\" moves its data",
						get_rel_name(relid), migration),
				 errdetail("pg_repack copies every row into a new table; the backfill would take the "
						   "copies for rows already converted and leave them unconverted."),
				 errhint("Run pg_repack after ec_complete() or ec_rollback(); pg_repack "
						 "--only-indexes is safe now.")));
}

/*
 * expand_contract.repack_guard(), 0.1.0's event trigger on CREATE TRIGGER, kept for a 0.1.0
 * catalog: 0.2.0's update replaces it with expand_contract.ddl_guard().
 */
Datum
ec_repack_guard(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired as an event trigger",
						"expand_contract.repack_guard")));
	ec_check_repack(((EventTriggerData *) fcinfo->context)->parsetree);
	PG_RETURN_VOID();
}

/*
 * At ec_complete, with the worker stopped and the tables locked: the compaction tasks not done yet
 * are skipped (complete cannot wait for a REINDEX CONCURRENTLY, which waits for its transaction;
 * the caller says so); what an interrupted one left behind, an invalid <name>_ccnew or
 * <name>_ccold, is dropped under complete's own locks.  Returns how many it skipped.
 */
uint64
ec_skip_compaction(int64 id)
{
	List	   *cleanups = ec_compaction_cleanups(id);
	ListCell   *lc;

	foreach(lc, cleanups)
	{
		char	   *cleanup = ec_compact_cleanup(lfirst(lc));
		List	   *stmts = raw_parser(cleanup, RAW_PARSE_DEFAULT);
		ListCell   *lc2;

		foreach(lc2, stmts)
		{
			RawStmt    *raw = lfirst(lc2);
			DropStmt   *drop = (DropStmt *) raw->stmt;

			if (!IsA(drop, DropStmt))
				continue;
			ec_exec(psprintf("DROP INDEX IF EXISTS %s",
							 NameListToQuotedString(linitial(drop->objects))));
		}
	}
	return ec_skip_compaction_tasks(id);
}
