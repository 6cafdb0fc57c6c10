/*
 * worker.h
 *	  What the background worker's files share: worker.c (the loop, the queue, claims and helpers),
 *	  backfill.c (a backfill batch and the diagnosis of a failed one) and toplevel.c (the "sql"
 *	  tasks' statements, run outside any transaction block).
 */
#ifndef EC_WORKER_H
#define EC_WORKER_H

#include "executor/spi.h"
#include "utils/jsonb.h"

#include "expand_contract.h"

typedef enum StepResult
{
	STEP_NEXT,					/* go on (after the delay, if any) */
	STEP_FINISHED				/* nothing left, or stopped: exit */
} StepResult;

typedef struct Task
{
	int			seq;
	int			part;			/* of a backfill split into block ranges; else 0 */
	int64		first_block;
	char	   *kind;
	Oid			relid;
	char	   *sql;
	char	   *cleanup;		/* NULL: none */
	bool		attempted;		/* the worker took it up before */
	int64		next_block;
	int64		total_blocks;	/* -1: not started */
	int64		rows_done;
	char	   *state;
} Task;

typedef struct Settings
{
	int			batch_size;
	int			batch_delay_ms;
	int			max_lag_ms;
	int			batch_time_ms;
	double		nice_ratio;
	int			worker_nice;	/* see ec_set_worker_nice */
	int			max_load;		/* resolved: 0 = no load gate */
	int			max_parallel;	/* workers for this migration's backfills, this one included */
	bool		compact;		/* vacuum the filled blocks as the backfill goes, reindex after */
	bool		paused;
	TransactionId trigger_xid;
} Settings;

/* The worker's lock_timeout, for the batches: they hold row locks, and never wait long. */
#define BATCH_LOCK_TIMEOUT	"1s"

/*
 * Everything a worker process keeps from one step to the next, in one place (worker.c defines it;
 * backfill.c, toplevel.c and compact.c use their parts).  Zero is every field's starting value.
 */
typedef struct EcWorkerState
{
	EcWorkerArgs args;			/* what this worker was started with, for its helpers */
	bool		am_helper;		/* a helper fills backfill parts only, then leaves */

	/* The step in flight, for recording its failure after its transaction aborted. */
	int64		batch_migration;	/* set by a backfill batch: only those are diagnosed row by row */
	int			batch_seq;
	int			batch_part;

	/*
	 * The claim on a backfill part: a session lock per (migration, seq, part), held while this
	 * worker fills it, dropped with the process if it dies.
	 */
	bool		claim_held;
	LOCKTAG		claim_tag;
	int			claim_seq;
	int			claim_part;
	bool		release_after_commit;	/* the claimed part is done */
	char	   *parallel_note;	/* how many workers fill the backfill, for ec_status */

	/* The committed batches whose pages are not pruned yet, oldest first (compact.c). */
	Oid			prune_relid;
	int			prune_pending;
	struct
	{
		int64		first;		/* a batch's blocks, [first, end) */
		int64		end;
		TransactionId xid;		/* and its transaction */
	}			prune_batches[64];

	/* The batch in flight (backfill.c), for diagnosing a failure after its transaction aborted. */
	Oid			batch_relid;
	int64		batch_first_block;
	int64		batch_end_block;
	char	   *batch_sql;		/* the batch statement, kept for the table's next batches */
	SPIPlanPtr	batch_plan;		/* and its plan: parsed and planned once per table */
	char	   *batch_unfilled; /* its condition for the rows to fill */
	int64		statement_migration;
	Oid			statement_relid;
	TransactionId batch_trigger_xid;
	bool		batch_running;	/* the batch statement is being started */

	/* The previous batch of the table being filled (any of its parts), to size the next (backfill.c). */
	EcPace		pace;
	int64		prev_migration;
	int			prev_seq;
	int64		prev_blocks;
	int64		prev_planned_blocks;	/* before the part's end cut it */
	uint64		prev_rows;

	/* The most blocks a batch of cap_relid may fill while compact is on (compact.c). */
	Oid			cap_relid;
	int64		cap_blocks;

	/* The last work the worker reported in pg_stat_activity, for its waits' "after:" (worker.c). */
	char	   *last_work;
} EcWorkerState;

extern EcWorkerState ec_worker;
extern bool ec_worker_transient(int sqlerrcode);

/* backfill.c */
extern StepResult backfill_batch(int64 id, Task *task, Settings *s, long *wait_ms);
extern void ec_backfill_install_hook(void);
extern void ec_backfill_batch_done(void);
extern char *failing_row(void);
extern bool ec_backfill_has_statement(void);

/* toplevel.c */
extern void run_toplevel(const char *sql);
extern char *run_cleanup(const char *cleanup);

#endif							/* EC_WORKER_H */
