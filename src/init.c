/*
 * init.c
 *	  Module load: settings and cache callbacks; settings scoped to one step of the extension's SQL.
 *
 * Nothing here needs shared_preload_libraries: the library is loaded by the first call of an ec_*
 * function or of the dual-write trigger in a backend.  Preloaded, it also starts the launcher and
 * counts writes per version in shared memory (usage.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "expand_contract.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *ec_version_setting = NULL;
int			ec_lock_timeout_ms = 500;
int			ec_lock_retries = 10;
bool		ec_start_paused = false;
int			ec_quiet_period_ms = 300000;
bool		ec_require_quiet = false;

static const struct config_enum_entry publications_options[] = {
	{"manage", EC_PUBLICATIONS_MANAGE, false},
	{"ignore", EC_PUBLICATIONS_IGNORE, false},
	{NULL, 0, false}
};

void
_PG_init(void)
{
	DefineCustomStringVariable("expand_contract.version",
							   "Version that this session's or transaction's writes come from.",
							   "A version schema name (for example public_v2) or a migration name. "
							   "Takes precedence over the search_path; meant for connection poolers "
							   "in transaction mode, with SET LOCAL.",
							   &ec_version_setting,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.lock_timeout",
							"Lock timeout for each attempt to take the locks that migration DDL needs.",
							"A migration never queues other queries behind it for longer than this.",
							&ec_lock_timeout_ms,
							500, 1, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.lock_retries",
							"How many times migration DDL retries after a lock timeout, with backoff.",
							NULL,
							&ec_lock_retries,
							10, 0, 1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("expand_contract.start_paused",
							 "Start migrations with their background work paused.",
							 "The expand takes effect at once; the backfill waits for ec_resume(), "
							 "for instance until off-peak hours.",
							 &ec_start_paused,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("expand_contract.publications",
							 "What ec_start does about publications of the tables it adds columns to.",
							 "manage: column lists leave the helper columns out while the migration "
							 "is active, and ec_start refuses where a publication takes no column list; "
							 "ignore: publications are left alone (the DBA takes care of subscribers).",
							 &ec_publications_mode,
							 EC_PUBLICATIONS_MANAGE,
							 publications_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("expand_contract.events",
							 "Send NOTIFY expand_contract at each phase change of a migration.",
							 "Sent at commit, with a JSON payload; off for a transaction that must "
							 "PREPARE TRANSACTION, which refuses one that notified.",
							 &ec_events,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("expand_contract.allow_ddl",
							 "Let plain DDL run on what an active migration covers, with a warning.",
							 "Without it, DDL that would break a migration's version views, dual-write "
							 "trigger or contract steps is refused; run it as a \"sql\" operation instead.",
							 &ec_allow_ddl,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.batch_size",
							"Rows per backfill batch (one transaction each).",
							"Per migration: ec_configure(schema, '{\"batch_size\": n}').",
							&ec_batch_size,
							50000, 1, 10000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.batch_delay_ms",
							"Pause between backfill batches.",
							NULL,
							&ec_batch_delay_ms,
							0, 0, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.batch_time_ms",
							"Target duration of a backfill batch; 0 sizes batches by batch_size alone.",
							"The worker shrinks batches that take longer (batch_size stays the "
							"maximum), so that no row stays locked by a batch for long, and halves "
							"the target while sessions wait for a batch's row locks.",
							&ec_batch_time_ms,
							50, 0, 600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomRealVariable("expand_contract.nice_ratio",
							 "Sleep after each backfill batch for this fraction of its duration while "
							 "other sessions are busy.",
							 "0 never sleeps; 1 gives the application at least half of the worker's "
							 "time.  On an idle server the backfill runs flat out.",
							 &ec_nice_ratio,
							 0.5, 0.0, 100.0,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.worker_nice",
							"The operating system's scheduling priority (nice value) of the backfill "
							"workers.",
							"Above 0 the kernel gives the application's backends the CPU first while "
							"both want it; on an idle server the backfill runs flat out all the same.  "
							"A worker's priority is only ever lowered: a smaller value applies to the "
							"workers started after the change.  0 leaves the priority as it is.",
							&ec_worker_nice,
							0, 0, 19,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.max_load",
							"The backfill waits while more client sessions than this are running a "
							"query; -1: the number of CPUs; 0: never.",
							NULL,
							&ec_max_load,
							-1, -1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.max_parallel_workers",
							"Background workers that fill one migration's backfills at once, its own "
							"worker included.",
							"Tables of more than 16 MB are filled as parts that workers share; the "
							"tables of a migration, partitions included, are filled side by side.  "
							"Per migration: ec_configure(schema, '{\"max_parallel_workers\": n}').",
							&ec_max_parallel_workers,
							1, 1, 64,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.max_parallel_workers_total",
							"Helper workers that all migrations of the server may run at once, beyond "
							"each migration's own worker.",
							"Each also needs a slot of max_worker_processes.",
							&ec_max_parallel_workers_total,
							8, 0, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("expand_contract.compact",
							 "Leave migrated tables compact: vacuum the filled blocks during the "
							 "backfill and rebuild the surviving indexes concurrently after it.",
							 "Off leaves it to autovacuum and your own tooling.  Per migration: "
							 "ec_configure(schema, '{\"compact\": false}').",
							 &ec_compact,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.max_replication_lag_ms",
							"The backfill waits while any standby replays further behind than this; 0 disables.",
							"Lag is read from pg_stat_replication, which shows it only to roles with "
							"pg_read_all_stats or superuser.",
							&ec_max_replication_lag_ms,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.revert_window",
							"How long ec_complete keeps the old structure so that ec_revert can undo it.",
							"0 contracts at once. ec_complete(revert_window => ...) overrides it per call.",
							&ec_revert_window_s,
							0, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.quiet_period",
							"ec_complete warns if the old version wrote more recently than this; 0 disables.",
							"Writes are counted only when expand_contract is in shared_preload_libraries.",
							&ec_quiet_period_ms,
							300000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("expand_contract.require_quiet",
							 "ec_complete refuses, instead of warning, unless the old version was quiet "
							 "for expand_contract.quiet_period.",
							 "The default of ec_complete's require_quiet argument.",
							 &ec_require_quiet,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	/* Sizes the shared memory requested at server start: there only. */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("expand_contract.usage_slots",
								"Migrations whose writes per version are counted in shared memory at once, "
								"since the server started.",
								"Only with shared_preload_libraries; a slot is taken at a migration's first "
								"write, and reused once that migration is complete (its cleanup done) or rolled back.",
								&ec_usage_slots,
								256, 1, 100000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	MarkGUCPrefixReserved("expand_contract");

	if (process_shared_preload_libraries_in_progress)
	{
		ec_register_launcher();
		ec_usage_init();
	}

	ec_trigger_init();
}

/*
 * Sets a setting until ec_guc_pop, the way a function's SET clause does: the caller's own value
 * comes back afterwards, and on error the transaction's abort restores it.
 */
int
ec_guc_push(const char *name, const char *value)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option(name, value, superuser() ? PGC_SUSET : PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
ec_guc_pop(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}
