/*
 * horizon.c
 *	  Which rows the backfill must fill.  ec_start takes the horizon (the next xid once the tables
 *	  are locked) and the transactions then in progress; a row version needs filling when it was
 *	  written before the horizon by none of those.  The same test serves the worker, which lists the
 *	  rows of a batch with expand_contract.unfilled(), and the dual-write trigger, which fills
 *	  such a row's new columns itself when the new version writes it first.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/standby.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "expand_contract.h"

/*
 * The backfill's horizon, taken once the tables are locked.  Every transaction that wrote them
 * without the dual-write trigger held a lock that we have now waited for, so its xid is below the
 * next xid to be assigned, which is the horizon; every later writer goes through the trigger.  So do
 * the transactions in progress now (returned in *in_progress, with their subtransactions): they
 * cannot have written the tables yet, but may later, through the trigger, with xids below the
 * horizon.  The backfill fills the rows whose xmin is below the horizon and not in that list, and
 * nothing else.  Our own xid is taken first, so that rows written by this start's "sql"
 * operations count as ones to fill.
 */
TransactionId
ec_write_horizon(EcXidList *in_progress)
{
	RunningTransactions running;
	TransactionId horizon;
	TransactionId overflowed = InvalidTransactionId;

	(void) GetTopTransactionId();
	/* Returns with ProcArrayLock and XidGenLock held: nothing starts or ends meanwhile. */
	running = GetRunningTransactionData();
	horizon = running->nextXid;
	in_progress->xids = palloc(sizeof(TransactionId) * (running->xcnt + 1));
	in_progress->n = 0;
	for (int i = 0; i < running->xcnt; i++)
		if (!TransactionIdIsCurrentTransactionId(running->xids[i]))
			in_progress->xids[in_progress->n++] = running->xids[i];
	/* A transaction with more subtransactions than PGPROC caches is listed without them. */
	for (int i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];

		if (TransactionIdIsValid(proc->xid) && proc->subxidStatus.overflowed &&
			proc != MyProc)
			overflowed = proc->xid;
	}
	LWLockRelease(XidGenLock);
	LWLockRelease(ProcArrayLock);

	if (TransactionIdIsValid(overflowed))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot start a migration while transaction %u has more than %d subtransactions",
						overflowed, PGPROC_MAX_CACHED_SUBXIDS),
				 errdetail("The backfill must know every transaction in progress when the migration "
						   "starts."),
				 errhint("Retry once that transaction has ended.")));
	return horizon;
}

/*
 * Has the backfill still to fill this row version?  It has if the version was written before the
 * horizon by a transaction that was not in progress at the horizon (in_progress, sorted: those
 * write through the trigger).  Freezing keeps the raw xmin, which for a version frozen long ago no
 * longer compares as a recent xid would: a frozen version counts as written since the horizon
 * only if its raw xmin lies between the horizon and next (the next xid to be assigned, or invalid
 * to read it now).  Shared with the trigger.
 */
bool
ec_row_unfilled(HeapTupleHeader tuple, TransactionId horizon, TransactionId next,
				TransactionId *in_progress, int nin_progress)
{
	TransactionId xmin = HeapTupleHeaderGetRawXmin(tuple);

	if (HeapTupleHeaderXminFrozen(tuple))
	{
		if (!TransactionIdIsValid(next))
			next = XidFromFullTransactionId(ReadNextFullTransactionId());
		return !TransactionIdIsNormal(xmin) || TransactionIdPrecedes(xmin, horizon) ||
			!TransactionIdPrecedes(xmin, next);
	}
	return TransactionIdPrecedes(xmin, horizon) &&
		bsearch(&xmin, in_progress, nin_progress, sizeof(TransactionId), xidComparator) == NULL;
}

PG_FUNCTION_INFO_V1(ec_unfilled);

/*
 * What expand_contract.unfilled() keeps between its calls of one statement: the owner check, the
 * sorted in-progress list, and the answers for every line pointer of the page of the last row asked.
 */
typedef struct UnfilledCache
{
	MemoryContext cxt;			/* the arrays below, reset when the arguments change */
	Oid			relid;
	TransactionId horizon;
	ArrayType  *in_progress_arg;	/* a copy, to notice a different list */
	TransactionId *in_progress;
	int			nin_progress;
	BlockNumber block;			/* InvalidBlockNumber: no page read yet */
	OffsetNumber maxoff;
	bool		unfilled[MaxHeapTuplesPerPage + 1];
} UnfilledCache;

static UnfilledCache *
unfilled_cache(FunctionCallInfo fcinfo, Oid relid, TransactionId horizon, ArrayType *in_progress)
{
	UnfilledCache *cache = fcinfo->flinfo->fn_extra;
	MemoryContext old;
	Datum	   *elems;
	int			n;

	if (cache != NULL && cache->relid == relid && cache->horizon == horizon &&
		VARSIZE(cache->in_progress_arg) == VARSIZE(in_progress) &&
		memcmp(cache->in_progress_arg, in_progress, VARSIZE(in_progress)) == 0)
		return cache;

	/* Checked before any lock; errors cleanly for a relation that does not exist. */
	if (!ec_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(UnfilledCache));
		cache->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "expand_contract.unfilled",
										   ALLOCSET_SMALL_SIZES);
	}
	else
		MemoryContextReset(cache->cxt);
	old = MemoryContextSwitchTo(cache->cxt);
	cache->relid = relid;
	cache->horizon = horizon;
	cache->in_progress_arg = palloc(VARSIZE(in_progress));
	memcpy(cache->in_progress_arg, in_progress, VARSIZE(in_progress));
	deconstruct_array(in_progress, XIDOID, sizeof(TransactionId), true, TYPALIGN_INT, &elems, NULL, &n);
	cache->in_progress = palloc(sizeof(TransactionId) * (n + 1));
	for (int i = 0; i < n; i++)
		cache->in_progress[i] = DatumGetTransactionId(elems[i]);
	qsort(cache->in_progress, n, sizeof(TransactionId), xidComparator);
	cache->nin_progress = n;
	cache->block = InvalidBlockNumber;
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

/* Reads the answers for every row version on a page. */
static void
read_page(UnfilledCache *cache, BlockNumber block)
{
	Relation	rel = try_table_open(cache->relid, AccessShareLock);
	TransactionId next = XidFromFullTransactionId(ReadNextFullTransactionId());
	Buffer		buffer;
	Page		page;

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", cache->relid)));
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_tableam != GetHeapamTableAmRoutine())
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a heap table", RelationGetRelationName(rel))));
	cache->block = InvalidBlockNumber;
	cache->maxoff = InvalidOffsetNumber;
	if (block < RelationGetNumberOfBlocks(rel))
	{
		buffer = ReadBufferExtended(rel, MAIN_FORKNUM, block, RBM_NORMAL, NULL);
		LockBuffer(buffer, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buffer);
		cache->maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= cache->maxoff; off++)
		{
			ItemId		item = PageGetItemId(page, off);
			HeapTupleData tuple;

			cache->unfilled[off] = false;
			if (!ItemIdIsNormal(item))
				continue;
			tuple.t_data = (HeapTupleHeader) PageGetItem(page, item);
			tuple.t_len = ItemIdGetLength(item);
			tuple.t_tableOid = cache->relid;
			ItemPointerSet(&tuple.t_self, block, off);
			/* Only versions the statement's snapshot sees: see ec_unfilled. */
			cache->unfilled[off] = ActiveSnapshotSet() &&
				HeapTupleSatisfiesVisibility(&tuple, GetActiveSnapshot(), buffer) &&
				ec_row_unfilled(tuple.t_data, cache->horizon, next, cache->in_progress,
								cache->nin_progress);
		}
		UnlockReleaseBuffer(buffer);
		cache->block = block;
	}
	table_close(rel, AccessShareLock);
}

/*
 * expand_contract.unfilled(rel, row_ctid, horizon, in_progress): has the backfill still to fill the
 * row version at row_ctid of rel?  The filter of the batch statement, over a range scan of its
 * blocks: it reads the version's header (its raw xmin and whether it is frozen, which no column
 * shows) from the page, a whole page at a time, and answers "unfilled" only for versions the
 * statement's snapshot sees.  Those cannot be pruned while the statement runs, so their line
 * pointers are not reused: a cached "unfilled" stays right even for a page nobody pins any more,
 * as in the EvalPlanQual recheck of a row a concurrent writer updated (its new version, which the
 * snapshot does not see, is never "unfilled": that writer went through the trigger).  A version
 * added to a cached page meanwhile is at an offset not read yet, or at a reused one cached as not
 * "unfilled", which is right for it.  Only the table's owner may ask.
 */
Datum
ec_unfilled(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ItemPointer tid = (ItemPointer) PG_GETARG_POINTER(1);
	TransactionId horizon = DatumGetTransactionId(PG_GETARG_DATUM(2));
	UnfilledCache *cache = unfilled_cache(fcinfo, relid, horizon, PG_GETARG_ARRAYTYPE_P(3));
	BlockNumber block = ItemPointerGetBlockNumberNoCheck(tid);
	OffsetNumber offset = ItemPointerGetOffsetNumberNoCheck(tid);

	if (block != cache->block || offset > cache->maxoff)
		read_page(cache, block);
	PG_RETURN_BOOL(block == cache->block && offset >= FirstOffsetNumber && offset <= cache->maxoff &&
				   cache->unfilled[offset]);
}
