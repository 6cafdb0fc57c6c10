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
	int			max_load;		/* resolved: 0 = no load gate */
	int			max_parallel;	/* workers for this migration's backfills, this one included */
	bool		compact;		/* vacuum the filled blocks as the backfill goes, reindex after */
	bool		paused;
	TransactionId trigger_xid;
} Settings;

/* The worker's lock_timeout, for the batches: they hold row locks, and never wait long. */
#define BATCH_LOCK_TIMEOUT	"1s"

/* worker.c: the step in flight, and what a batch leaves for after its commit. */
extern int64 batch_migration;	/* set by a backfill batch: only those are diagnosed row by row */
extern int	batch_seq;
extern int	batch_part;
extern char *parallel_note;
extern char *vacuum_due;
extern bool release_after_commit;
extern void set_task_state(int64 id, int seq, int part, const char *state, const char *detail);
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
