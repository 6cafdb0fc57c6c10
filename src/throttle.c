/*
 * throttle.c
 *	  How hard the backfill pushes: the size of each batch, the sleep after it, and when to wait for
 *	  the server to calm down.  Defaults that need no tuning, after gh-ost's controls:
 *
 *	  batch time	each batch is sized to take about expand_contract.batch_time_ms (batch_size
 *					rows at most, 1000 for a table's first), from the rate of the batch before (the
 *					time target, not batch_size, bounds batches by default): a row a batch writes stays
 *					locked until the batch commits, so a session that wants it waits that long at
 *					most.  When sessions were found waiting for the batch's locks, the next batch's
 *					target halves (10 ms at least); it grows back by a quarter per batch without.
 *	  nice ratio	after a batch, the worker sleeps nice_ratio times the batch's duration, if any
 *					other client session ran a query since the batch began (an idle server gets the
 *					backfill flat out).  The default, 0.5, was the best trade-off make bench
 *					measured: under traffic the batches also slow down while the clients have the
 *					CPU, so 1 took 2.2-3.4x the unthrottled backfill's time, 0.5 1.2-1.8x, with as
 *					much throughput kept.  The compaction's VACUUMs and REINDEXes (compact.c) are
 *					followed by the same sleep.
 *	  load gate		before a batch, the worker waits while more client sessions than max_load run
 *					a query (the number of CPUs by default), and ec_status says "throttled: load".
 *	  OS priority	worker_nice (0, off, by default) lowers the workers' scheduling priority, so
 *					that the kernel runs the application's backends first when both want a CPU.
 *					(A batch flushing its own WAL as it went, for the clients' commits to find less
 *					to flush, was measured worse: its syncs hold WALWriteLock, and the commits queue.)
 *
 *	  The signals come from the backend status array and the PGPROC wait events, which
 *	  pg_stat_activity shows, read in C: no privilege over other roles' sessions needed, and no
 *	  query text.  A session that runs a query but sleeps in it (pg_sleep, CALL ec_wait(), a wait
 *	  for its client) is not load.  Only when some session waits for a heavyweight lock does the worker ask the lock
 *	  manager (pg_locks) whether it waits for the batch.
 */
#include "postgres.h"

#include <sys/resource.h>

#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "expand_contract.h"
#include "worker.h"

#define MIN_TARGET_MS	10.0
#define FIRST_BATCH_ROWS	1000

int			ec_worker_nice = 0;

/*
 * Is the session running a query asleep: waiting for a timeout, a latch of its own (an extension's
 * wait, as in ec_wait) or its client, rather than working or waiting for I/O, a lock or WAL?
 */
static bool
sleeping(int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);
	uint32		class;

	if (proc == NULL)
		return true;			/* gone */
	class = proc->wait_event_info & 0xFF000000;
	return class == PG_WAIT_TIMEOUT || class == PG_WAIT_EXTENSION || class == PG_WAIT_CLIENT ||
		class == PG_WAIT_ACTIVITY;
}

/* Other client sessions: running a query now, and having run one since `since`. */
void
ec_read_load(TimestampTz since, EcLoad *load)
{
	int			n;

	load->active = 0;
	load->busy = 0;
	/* The array is copied once per transaction; each batch is one. */
	pgstat_clear_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *status = local ? &local->backendStatus : NULL;

		if (status == NULL || status->st_procpid == MyProcPid ||
			status->st_backendType != B_BACKEND)
			continue;
		switch (status->st_state)
		{
			case STATE_RUNNING:
			case STATE_FASTPATH:
				if (sleeping(status->st_procpid))
				{
					/* CALL ec_wait(), pg_sleep(): counts once it did something since */
					if (status->st_state_start_timestamp >= since)
						load->busy++;
					break;
				}
				load->active++;
				load->busy++;
				break;
			case STATE_DISABLED:
				/* track_activities off: no way to tell, so assume it works */
				load->busy++;
				break;
			default:
				/* idle, or idle in transaction: busy if it ran something since */
				if (status->st_state_start_timestamp >= since)
					load->busy++;
				break;
		}
	}
}

/*
 * Sessions waiting for a lock this transaction holds (the batch's row locks, which they wait for
 * as its transaction id).  Before the batch commits.
 */
int
ec_lock_waiters(void)
{
	bool		someone_waits = false;

	for (int i = 0; i < ProcGlobal->allProcCount && !someone_waits; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];

		/* Racy reads of one word, as pg_stat_activity's; the lock manager has the last say. */
		someone_waits = proc != MyProc && proc->pid != 0 &&
			(proc->wait_event_info & 0xFF000000) == PG_WAIT_LOCK;
	}
	if (!someone_waits)
		return 0;
	(void) ec_spi("SELECT count(*)::int4 FROM pg_catalog.pg_locks"
				  " WHERE NOT granted AND pg_catalog.pg_backend_pid()"
				  "       OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids(pid))",
				  0, NULL, NULL, NULL, SPI_OK_SELECT);
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		return isnull ? 0 : DatumGetInt32(d);
	}
}

/*
 * Rows for the next batch: batch_size, or fewer if that would take longer than the target.  With
 * no rate yet (a table's first batch) a short one measures it: batch_size, the most a batch may
 * fill, is sized for fast rows and would hold wide ones locked far longer than the target.
 */
int64
ec_pace_rows(EcPace *pace, int batch_size, int batch_time_ms)
{
	double		rows;

	if (batch_time_ms <= 0)
		return batch_size;
	if (pace->rows_per_ms <= 0)
		return Min(batch_size, FIRST_BATCH_ROWS);
	if (pace->target_ms <= 0 || pace->target_ms > batch_time_ms)
		pace->target_ms = batch_time_ms;
	rows = pace->rows_per_ms * pace->target_ms;
	return (int64) Max(1.0, Min(rows, (double) batch_size));
}

/* After a batch of `rows` that took `ms` and kept `waiters` sessions waiting. */
void
ec_pace_record(EcPace *pace, uint64 rows, double ms, int waiters, int batch_time_ms)
{
	if (rows > 0 && ms > 0)
		pace->rows_per_ms = rows / ms;
	pace->last_ms = ms;
	if (batch_time_ms <= 0)
		return;
	if (pace->target_ms <= 0)
		pace->target_ms = batch_time_ms;
	if (waiters > 0)
		pace->target_ms = Max(MIN_TARGET_MS, pace->target_ms / 2);
	else
		pace->target_ms = Min((double) batch_time_ms, pace->target_ms * 1.25);
	pace->waiters = waiters;
}

/* The sleep after a batch: nice_ratio of its time while others work, batch_delay_ms at least. */
long
ec_pace_sleep_ms(EcPace *pace, double nice_ratio, int batch_delay_ms, bool busy)
{
	double		nice = busy ? nice_ratio * pace->last_ms : 0;

	/* Kept waiting, they get a batch's time to catch up whatever the ratio. */
	if (pace->waiters > 0)
		nice = Max(nice, pace->last_ms);
	return Max((long) batch_delay_ms, (long) nice);
}

/*
 * The sleep after a compaction step (a VACUUM of the filled blocks, a REINDEX CONCURRENTLY) that
 * began at `started`: nice_ratio of its time if other sessions worked meanwhile, as after a batch.
 * Such a step is one statement, which cannot pause inside; sleeping after it gives the application
 * the same share of the server over the backfill's whole run.  At most a minute: the load of an
 * hour-long REINDEX is over once it ends, and a half-hour sleep after it would only delay the rest
 * of the work, not spread that load.
 */
#define NICE_SLEEP_AFTER_STEP_MAX_MS	(60 * 1000)

long
ec_nice_sleep_after(TimestampTz started, double nice_ratio)
{
	EcLoad		load;
	double		ms;

	if (nice_ratio <= 0)
		return 0;
	ec_read_load(started, &load);
	if (load.busy == 0)
		return 0;
	ms = nice_ratio * TimestampDifferenceMilliseconds(started, GetCurrentTimestamp());
	return (long) Min(ms, NICE_SLEEP_AFTER_STEP_MAX_MS);
}

/*
 * Sleep ms milliseconds on the latch, the whole time: the latch is set by more than the end of the
 * delay (a parallel worker of the last statement exiting, a lock wait's deadlock timer firing
 * late), and a single WaitLatch would cut the sleep short at the first of those.  Interrupts are
 * served meanwhile (a SIGTERM ends the process here).
 */
void
ec_sleep_ms(long ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		/* rounds up, so 0 only once the deadline has passed */
		long		remaining_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		if (remaining_ms <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, remaining_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Before a batch: the worker's operating-system priority lowered to worker_nice, so that while
 * the application's backends want the CPU the kernel runs them first.  Only ever lowered: an
 * unprivileged process cannot raise it again, so a smaller value applies from the next worker on.
 */
void
ec_set_worker_nice(int nice)
{
	static int	tried = 0;
	int			current;

	if (nice <= tried)
		return;
	tried = nice;
	errno = 0;
	current = getpriority(PRIO_PROCESS, 0);
	if (errno != 0 || current >= nice)
		return;
	if (setpriority(PRIO_PROCESS, 0, nice) != 0)
		ereport(LOG,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("could not lower the backfill worker's priority to nice %d: %m", nice)));
}
