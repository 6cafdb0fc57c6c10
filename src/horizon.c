/*
 * horizon.c
 *	  Which rows the backfill must fill.  ec_start takes the horizon (the next xid once the tables
 *	  are locked) and the transactions then in progress; a row version needs filling when it was
 *	  written before the horizon by none of those.  The same test serves the worker, which lists the
 *	  rows of a batch with expand_contract.unfilled_rows(), and the dual-write trigger, which fills
 *	  such a row's new columns itself when the new version writes it first.
 */
#include "postgres.h"

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
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/standby.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
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

PG_FUNCTION_INFO_V1(ec_unfilled_rows);

/*
 * expand_contract.unfilled_rows(rel, first_block, end_block, horizon, in_progress): the ctids of
 * the rows in blocks [first_block, end_block) that the backfill has still to fill, as the
 * statement's snapshot sees them.  Only the table's owner may list them.
 */
Datum
ec_unfilled_rows(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		first = PG_GETARG_INT64(1);
	int64		end = PG_GETARG_INT64(2);
	TransactionId horizon = DatumGetTransactionId(PG_GETARG_DATUM(3));
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(4);
	TransactionId next = XidFromFullTransactionId(ReadNextFullTransactionId());
	Datum	   *elems;
	int			n;
	TransactionId *in_progress;
	Relation	rel;
	ArrayBuildState *rows = initArrayResult(TIDOID, CurrentMemoryContext, false);

	/* Checked before any lock; errors cleanly for a relation that does not exist. */
	if (!ec_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	rel = try_table_open(relid, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_tableam->scan_set_tidrange == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table that can be scanned by block range",
						RelationGetRelationName(rel))));

	deconstruct_array(array, XIDOID, sizeof(TransactionId), true, TYPALIGN_INT, &elems, NULL, &n);
	in_progress = palloc(sizeof(TransactionId) * (n + 1));
	for (int i = 0; i < n; i++)
		in_progress[i] = DatumGetTransactionId(elems[i]);
	qsort(in_progress, n, sizeof(TransactionId), xidComparator);

	first = Max(first, 0);
	end = Min(end, (int64) MaxBlockNumber + 1);
	if (first < end)
	{
		ItemPointerData mintid;
		ItemPointerData maxtid;
		TableScanDesc scan;
		TupleTableSlot *slot = table_slot_create(rel, NULL);

		ItemPointerSet(&mintid, (BlockNumber) first, FirstOffsetNumber);
		ItemPointerSet(&maxtid, (BlockNumber) (end - 1), MaxOffsetNumber);
		scan = table_beginscan_tidrange(rel, GetActiveSnapshot(), &mintid, &maxtid);
		while (table_scan_getnextslot_tidrange(scan, ForwardScanDirection, slot))
		{
			bool		should_free;
			HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, &should_free);

			CHECK_FOR_INTERRUPTS();
			if (ec_row_unfilled(tuple->t_data, horizon, next, in_progress, n))
				accumArrayResult(rows, PointerGetDatum(&tuple->t_self), false, TIDOID,
								 CurrentMemoryContext);
			if (should_free)
				heap_freetuple(tuple);
		}
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
	}
	table_close(rel, AccessShareLock);
	PG_RETURN_DATUM(makeArrayResult(rows, CurrentMemoryContext));
}
