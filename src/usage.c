/*
 * usage.c
 *	  Who still writes through which version: per migration and version, the last write and the
 *	  writes of the last minutes, counted by the dual-write trigger in shared memory.
 *
 * Only with shared_preload_libraries: the area is fixed in size and requested at server start.
 * Without it nothing is counted (ec_status shows NULL and says why, ec_complete's quiet check
 * cannot tell and refuses only when asked to require quiet).
 *
 * The write path takes no lock and writes no table.  A migration's slot, keyed by (database,
 * migration id), is claimed under a spinlock at the first write of the migration in a backend and
 * remembered in the trigger's per-relation plan; after that a write costs a few atomic operations:
 *
 *	  last_write	the start of the latest writing statement (no clock read per row), stored only
 *					when it moves on, so that a busy statement does not write the cache line on
 *					every row;
 *	  buckets		a ring of EC_USAGE_MINUTES per-minute counters, each one 64-bit word: the minute
 *					(since the area was created) in the high 24 bits, the count in the low 40, so that
 *					moving a bucket on to a new minute and counting in it is one compare-and-swap and
 *					no write is lost at the turn of a minute.
 *
 * "Recent" writes are those of the current minute and the EC_USAGE_MINUTES - 2 before it (one
 * bucket is always the oldest, about to be reused).  Counts are of rows written (each row an
 * INSERT or UPDATE wrote, the trigger's calls), attempted ones included: a write whose transaction
 * rolled back was still made by code using that version.  Everything is lost at a restart (counting
 * starts again then, which ec_status and ec_complete take into account).
 *
 * A completed or rolled-back migration's slot keeps its numbers but is marked retired when that
 * transaction commits; a claim that finds no free slot reuses a retired one.  So a long-lived
 * server that runs many migrations (a CI server) does not run out.  A backend's remembered slot is
 * checked against its key at each write, so that one reused meanwhile is looked up again.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "expand_contract.h"

#include "trigger.h"

PG_FUNCTION_INFO_V1(ec_version_usage);

#define EC_USAGE_COUNT_BITS 40
#define EC_USAGE_COUNT_MASK ((UINT64CONST(1) << EC_USAGE_COUNT_BITS) - 1)

typedef struct EcVersionUsage
{
	pg_atomic_uint64 last_write;	/* TimestampTz; 0: never */
	pg_atomic_uint64 buckets[EC_USAGE_MINUTES];	/* (minute << 40) | count */
} EcVersionUsage;

struct EcUsageSlot
{
	pg_atomic_uint32 in_use;	/* set last, after the key: readers test it first */
	pg_atomic_uint32 retired;	/* its migration is complete or rolled back: may be reused */
	Oid			dboid;
	int64		migration_id;
	EcVersionUsage versions[2]; /* [0] old, [1] new */
};

typedef struct EcUsageShared
{
	slock_t		mutex;			/* claiming a slot */
	TimestampTz counting_since; /* when the area was created: the server's start */
	pg_atomic_uint64 missed_at;	/* when a slot was last wanted and none was free (0: never) */
	int			nslots;
	EcUsageSlot slots[FLEXIBLE_ARRAY_MEMBER];
} EcUsageShared;

int			ec_usage_slots = 256;

static EcUsageShared *usage = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
usage_size(void)
{
	return add_size(offsetof(EcUsageShared, slots),
					mul_size(ec_usage_slots, sizeof(EcUsageSlot)));
}

static void
usage_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(usage_size());
}

static void
usage_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	usage = ShmemInitStruct("expand_contract usage", usage_size(), &found);
	if (!found)
	{
		SpinLockInit(&usage->mutex);
		usage->counting_since = GetCurrentTimestamp();
		pg_atomic_init_u64(&usage->missed_at, 0);
		usage->nslots = ec_usage_slots;
		for (int i = 0; i < usage->nslots; i++)
		{
			EcUsageSlot *slot = &usage->slots[i];

			pg_atomic_init_u32(&slot->in_use, 0);
			pg_atomic_init_u32(&slot->retired, 0);
			slot->dboid = InvalidOid;
			slot->migration_id = 0;
			for (int v = 0; v < 2; v++)
			{
				pg_atomic_init_u64(&slot->versions[v].last_write, 0);
				for (int b = 0; b < EC_USAGE_MINUTES; b++)
					pg_atomic_init_u64(&slot->versions[v].buckets[b], 0);
			}
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init, while shared_preload_libraries load. */
void
ec_usage_init(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = usage_shmem_request;
#else
	usage_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = usage_shmem_startup;
}

static EcUsageSlot *
find_slot(Oid dboid, int64 migration_id)
{
	for (int i = 0; i < usage->nslots; i++)
	{
		EcUsageSlot *slot = &usage->slots[i];

		if (pg_atomic_read_u32(&slot->in_use) == 0)
			return NULL;		/* claimed in order: none after a free one */
		pg_read_barrier();
		/* Being reused (claim_slot): its key is changing. */
		if (pg_atomic_read_u32(&slot->in_use) == 2)
			continue;
		if (slot->dboid == dboid && slot->migration_id == migration_id)
			return slot;
	}
	return NULL;
}

static void
reset_counts(EcUsageSlot *slot)
{
	for (int v = 0; v < 2; v++)
	{
		pg_atomic_write_u64(&slot->versions[v].last_write, 0);
		for (int b = 0; b < EC_USAGE_MINUTES; b++)
			pg_atomic_write_u64(&slot->versions[v].buckets[b], 0);
	}
}

/*
 * The migration's slot, claimed if it has none: a free one, else a retired one; NULL when all are
 * taken by migrations still active.
 */
static EcUsageSlot *
claim_slot(Oid dboid, int64 migration_id)
{
	EcUsageSlot *slot = find_slot(dboid, migration_id);
	EcUsageSlot *retired = NULL;

	if (slot == NULL)
	{
		SpinLockAcquire(&usage->mutex);
		slot = find_slot(dboid, migration_id);
		for (int i = 0; slot == NULL && i < usage->nslots; i++)
		{
			EcUsageSlot *s = &usage->slots[i];

			if (pg_atomic_read_u32(&s->in_use) == 0)
			{
				slot = s;
				slot->dboid = dboid;
				slot->migration_id = migration_id;
				pg_write_barrier();
				pg_atomic_write_u32(&slot->in_use, 1);
			}
			else if (retired == NULL && pg_atomic_read_u32(&s->retired) != 0)
				retired = s;
		}
		if (slot == NULL && retired != NULL)
		{
			/* Readers skip it while its key and counts change (in_use 2). */
			slot = retired;
			pg_atomic_write_u32(&slot->in_use, 2);
			pg_write_barrier();
			slot->dboid = dboid;
			slot->migration_id = migration_id;
			reset_counts(slot);
			pg_atomic_write_u32(&slot->retired, 0);
			pg_write_barrier();
			pg_atomic_write_u32(&slot->in_use, 1);
		}
		SpinLockRelease(&usage->mutex);
	}
	if (slot == NULL)
		pg_atomic_write_u64(&usage->missed_at, (uint64) GetCurrentTimestamp());
	else if (pg_atomic_read_u32(&slot->retired) != 0)
		pg_atomic_write_u32(&slot->retired, 0);	/* written again (after a revert, say) */
	return slot;
}

/* Minutes since the area was created (0 should the clock go back before it). */
static uint64
minute_of(TimestampTz t)
{
	if (t < usage->counting_since)
		return 0;
	return (uint64) ((t - usage->counting_since) / (60 * USECS_PER_SEC));
}

/*
 * The dual-write trigger, for a row written through the new or the old version of the plan's
 * migration.  Lock-free: atomics on the slot remembered in the plan.
 */
void
ec_usage_count(EcTriggerPlan *plan, bool from_new)
{
	EcVersionUsage *v;
	TimestampTz now;
	uint64		minute;
	uint64		last;
	pg_atomic_uint64 *bucket;
	uint64		old;

	if (usage == NULL || plan->migration_id == 0)
		return;
	/* Looked up again if the remembered one was reused by another migration meanwhile. */
	if (!plan->usage_looked_up ||
		(plan->usage_slot != NULL &&
		 (plan->usage_slot->migration_id != plan->migration_id ||
		  plan->usage_slot->dboid != MyDatabaseId)))
	{
		plan->usage_slot = claim_slot(MyDatabaseId, plan->migration_id);
		plan->usage_looked_up = true;
	}
	if (plan->usage_slot == NULL)
		return;
	v = &plan->usage_slot->versions[from_new ? 1 : 0];

	/* The statement's start, not a clock read per row: a write is as old as its statement. */
	now = GetCurrentStatementStartTimestamp();
	last = pg_atomic_read_u64(&v->last_write);
	if ((int64) last < now)
		pg_atomic_write_u64(&v->last_write, (uint64) now);

	minute = minute_of(now) & ((UINT64CONST(1) << (64 - EC_USAGE_COUNT_BITS)) - 1);
	bucket = &v->buckets[minute % EC_USAGE_MINUTES];
	old = pg_atomic_read_u64(bucket);
	for (;;)
	{
		uint64		next;

		if ((old >> EC_USAGE_COUNT_BITS) == minute && old != 0)
			next = old + 1;
		else
			next = (minute << EC_USAGE_COUNT_BITS) | 1;
		/* On failure, old is what the bucket holds now: count again from there. */
		if (pg_atomic_compare_exchange_u64(bucket, &old, next))
			break;
	}
}

/*
 * What is known of a migration's writes through one version (0 old, 1 new): the state, and with
 * EC_USAGE_TRACKED the last write (0 for none) and the writes of the recent minutes.
 */
EcUsageState
ec_usage_read(int64 migration_id, TimestampTz started_at, int version, TimestampTz *last_write,
			  int64 *recent)
{
	EcUsageSlot *slot;
	EcVersionUsage *v;
	uint64		minute;

	*last_write = 0;
	*recent = 0;
	if (usage == NULL)
		return EC_USAGE_NOT_PRELOADED;
	slot = find_slot(MyDatabaseId, migration_id);
	if (slot == NULL)
		/*
		 * No slot: no write yet, unless a claim failed since the migration started (it may have
		 * been this migration's; slots retired since do not bring those writes back).
		 */
		return (TimestampTz) pg_atomic_read_u64(&usage->missed_at) >= started_at ?
			EC_USAGE_NO_SLOT : EC_USAGE_TRACKED;
	v = &slot->versions[version];
	*last_write = (TimestampTz) pg_atomic_read_u64(&v->last_write);
	minute = minute_of(GetCurrentTimestamp()) &
		((UINT64CONST(1) << (64 - EC_USAGE_COUNT_BITS)) - 1);
	for (int b = 0; b < EC_USAGE_MINUTES; b++)
	{
		uint64		word = pg_atomic_read_u64(&v->buckets[b]);
		uint64		at = word >> EC_USAGE_COUNT_BITS;

		if (word != 0 && at <= minute && minute - at < EC_USAGE_MINUTES - 1)
			*recent += (int64) (word & EC_USAGE_COUNT_MASK);
	}
	return EC_USAGE_TRACKED;
}

/*
 * Retiring the slots of migrations that this transaction completes or rolls back, when it commits.
 * Each is remembered with the subtransaction level that asked, to forget it if that level aborts.
 */
#define EC_USAGE_MAX_RETIRE 16

static int64 retire_ids[EC_USAGE_MAX_RETIRE];
static int	retire_levels[EC_USAGE_MAX_RETIRE];
static int	nretire = 0;
static bool retire_callbacks = false;

static void
retire_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		for (int i = 0; i < nretire; i++)
		{
			EcUsageSlot *slot = find_slot(MyDatabaseId, retire_ids[i]);

			if (slot != NULL)
				pg_atomic_write_u32(&slot->retired, 1);
		}
		nretire = 0;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
			 event == XACT_EVENT_PREPARE)
		nretire = 0;			/* a prepared one may still roll back: its slots stay */
}

static void
retire_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();
		int			kept = 0;

		for (int i = 0; i < nretire; i++)
			if (retire_levels[i] < level)
			{
				retire_ids[kept] = retire_ids[i];
				retire_levels[kept++] = retire_levels[i];
			}
		nretire = kept;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();

		for (int i = 0; i < nretire; i++)
			if (retire_levels[i] >= level)
				retire_levels[i] = level - 1;
	}
}

/* From ec_complete and ec_rollback: the migration's slot may be reused once this commits. */
void
ec_usage_retire_at_commit(int64 migration_id)
{
	if (usage == NULL || nretire >= EC_USAGE_MAX_RETIRE)
		return;
	if (!retire_callbacks)
	{
		RegisterXactCallback(retire_xact_callback, NULL);
		RegisterSubXactCallback(retire_subxact_callback, NULL);
		retire_callbacks = true;
	}
	retire_ids[nretire] = migration_id;
	retire_levels[nretire++] = GetCurrentTransactionNestLevel();
}

/* Since when writes are counted: the server's start; 0 without the area. */
TimestampTz
ec_usage_counting_since(void)
{
	return usage ? usage->counting_since : 0;
}

/*
 * Why the numbers of a migration started at started_at are not the whole story, or NULL when they
 * are.
 */
char *
ec_usage_note(EcUsageState state, TimestampTz started_at)
{
	switch (state)
	{
		case EC_USAGE_NOT_PRELOADED:
			return pstrdup("not counted: expand_contract is not in shared_preload_libraries");
		case EC_USAGE_NO_SLOT:
			return psprintf("not counted: all %d slots of expand_contract.usage_slots are taken",
							usage->nslots);
		case EC_USAGE_TRACKED:
			break;
	}
	if (started_at < usage->counting_since)
		return psprintf("counted since the server started at %s",
						timestamptz_to_str(usage->counting_since));
	return NULL;
}

/*
 * expand_contract.version_usage(migration_id, started_at): for ec_status, per version the last
 * write and the recent writes, and a note when they are not the whole story.
 */
Datum
ec_version_usage(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	TimestampTz started_at = PG_GETARG_TIMESTAMPTZ(1);
	TupleDesc	desc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	EcUsageState state = EC_USAGE_TRACKED;
	char	   *note;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	for (int v = 0; v < 2; v++)
	{
		TimestampTz last;
		int64		recent;

		state = ec_usage_read(id, started_at, v, &last, &recent);
		if (state != EC_USAGE_TRACKED)
		{
			nulls[2 * v] = nulls[2 * v + 1] = true;
			continue;
		}
		nulls[2 * v] = last == 0;
		values[2 * v] = TimestampTzGetDatum(last);
		values[2 * v + 1] = Int64GetDatum(recent);
	}
	note = ec_usage_note(state, started_at);
	nulls[4] = note == NULL;
	values[4] = note ? CStringGetTextDatum(note) : (Datum) 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
