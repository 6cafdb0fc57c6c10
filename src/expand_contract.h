/*
 * expand_contract.h
 *	  Types and functions shared by the modules of expand_contract.
 *
 * The pieces, one file each:
 *	  init.c		module load, settings
 *	  api.c			SQL entry points ec_start, ec_complete, ec_rollback
 *	  document.c	the pgroll migration document, read into the operations' structs
 *	  model.c		the table/column model of the old and the new version of a schema
 *	  operations.c	the operation table (operations.h; one file per operation in ops/), the
 *					tables operations touch and the locks they need
 *	  expr.c		user expressions and types, parsed and analysed with PostgreSQL's parser
 *	  views.c		the version schema of views
 *	  sqlbuild.c	every piece of SQL text the extension builds, and running it
 *	  privileges.c	running as another role; grants copied to views and rebuilt columns
 *	  wait.c		waiting for a migration's background work (ec_complete, CALL ec_wait)
 *	  state.c		the extension's own tables: the history (migrations); state_tasks.c the
 *					work queue (tasks); state_dual_writes.c the dual-write plans (dual_writes)
 *	  horizon.c		which rows the backfill must fill (the horizon, and the test shared with the trigger)
 *	  trigger.c		the C dual-write trigger (firing); trigger_plan.c its per-relation plan and cache
 *	  carry*.c		what hangs on a rebuilt column (indexes, constraints, foreign keys, views)
 *	  control.c		ec_pause, ec_resume, ec_configure
 *	  worker.c		the background worker (its loop, queue, helpers); backfill.c one batch;
 *					toplevel.c statements run outside a transaction block
 *	  restore.c		migrations carried into another database by pg_dump/pg_restore
 *	  partitions.c	partitions created, attached or detached while a migration moves data
 *	  publications.c	tables in logical replication publications during a migration
 *	  ddl_guard.c	the event trigger that refuses plain DDL on what a migration covers
 *	  events.c		NOTIFY expand_contract at each phase change
 */
#ifndef EXPAND_CONTRACT_H
#define EXPAND_CONTRACT_H

#include "postgres.h"

#include "access/attnum.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"
#include "storage/lock.h"
#include "utils/reltrigger.h"
#include "utils/jsonb.h"

#include "compat.h"

#define EC_STATE_SCHEMA		"expand_contract"
/*
 * The two dual-write triggers of a table, on the same function, told apart by their argument.
 * BEFORE triggers fire in the order of their names (byte order): '!' sorts before any letter, digit,
 * '_' or quote that an ordinary name starts with, '~' after all of them.
 */
#define EC_TRIGGER_FIRST_NAME	"!ec_dual_write_first"
#define EC_TRIGGER_FIRST_ARG	"first"
#define EC_TRIGGER_LAST_NAME	"~ec_dual_write_last"
#define EC_TRIGGER_LAST_ARG		"last"
#define EC_NEW_COLUMN_PREFIX "_ec_new_"

/* ---- settings (init.c) ---- */
extern char *ec_version_setting;
extern int	ec_lock_timeout_ms;
extern int	ec_lock_retries;
extern bool ec_start_paused;
extern int	ec_quiet_period_ms;
extern bool ec_require_quiet;

/* ---- the migration document (document.c) ---- */

typedef struct EcCheckDef
{
	char	   *name;
	char	   *expr;
	bool		no_inherit;
} EcCheckDef;

/* A foreign key: single column (column-level "references") or several (table "constraints"). */
typedef struct EcForeignKeyDef
{
	char	   *name;
	char	   *table;
	List	   *columns;		/* referenced columns, char * */
	char	   *match_type;		/* SQL keyword, already validated */
	char	   *on_delete;
	char	   *on_update;
	bool		deferrable;
	bool		initially_deferred;
	List	   *on_delete_set_columns;	/* ON DELETE SET NULL/DEFAULT (these), char * */
} EcForeignKeyDef;

typedef struct EcColumnDef
{
	char	   *name;
	char	   *type;
	bool		pk;
	bool		unique;
	bool		nullable;
	char	   *default_expr;	/* NULL: none */
	EcCheckDef *check;
	EcForeignKeyDef *references;
	char	   *comment;
	char	   *generated_expr; /* "generated": {"expression"}: stored generated; NULL: none */
	bool		identity;		/* "generated": {"identity"} */
	bool		identity_always;	/* ALWAYS, else BY DEFAULT */
	char	   *identity_options;	/* sequence options, rebuilt from their parse tree; "" if none */
} EcColumnDef;

typedef struct EcConstraintDef
{
	char	   *name;
	char	   *type;			/* unique, check, primary_key, foreign_key, exclude */
	List	   *columns;		/* char * */
	bool		deferrable;
	bool		initially_deferred;
	bool		nulls_not_distinct;
	bool		no_inherit;
	char	   *check;
	EcForeignKeyDef *references;
	char	   *index_method;	/* exclude: NULL for the default */
	char	   *exclude_elements;	/* exclude: the element list, checked by the parser */
	char	   *exclude_predicate;	/* exclude: WHERE expression; NULL: none */
	List	   *include_columns;	/* index_parameters (unique, primary_key, exclude) */
	char	   *storage_parameters; /* rebuilt from their parse tree; NULL: none */
	char	   *tablespace;
} EcConstraintDef;

struct EcOpRoutine;

/*
 * One operation of the document.  Each operation's own struct (in its file under src/ops/) begins
 * with this; its routine (operations.h) says what it is and does.
 */
typedef struct EcOperation
{
	const struct EcOpRoutine *routine;
	const char *kind_name;		/* as spelled in the document */
	int			position;		/* 1-based, for error context */
} EcOperation;

typedef struct EcMigration
{
	char	   *version_schema; /* NULL: not set */
	List	   *operations;		/* EcOperation * */
} EcMigration;

extern EcMigration *ec_read_migration(Jsonb *doc);

/* ---- the model of one schema's old and new version (model.c) ---- */

typedef struct EcColumn
{
	char	   *old_name;		/* name in the old version; NULL: not there */
	char	   *new_name;		/* name in the new version; NULL: not there */
	AttrNumber	old_attnum;		/* physical column behind the old version; 0: none */
	AttrNumber	new_attnum;		/* physical column behind the new version; 0: none */
	bool		created;		/* new_attnum was added by this migration */
	Node	   *up;				/* analysed: new column from an old-version row */
	Node	   *down;			/* analysed: old column from a new-version row */
	bool		moves_data;		/* an operation of this migration set up/down for it */
	char	   *not_null_check; /* NOT VALID check standing in for NOT NULL until complete */
	bool		default_changed;	/* deferred to complete: the new version's default */
	char	   *new_default;	/* SQL text over physical names; NULL: no default */
	bool		comment_changed;
	char	   *new_comment;
	List	   *owned_sequences;	/* Oids of sequences the old column owns (serial) */
	char	   *identity_when;	/* "ALWAYS"/"BY DEFAULT": made an identity column at complete */
	char	   *identity_options;	/* its sequence options, " (...)" or "" */
	Oid			identity_filler;	/* the sequence that numbers it until then */
	Oid			identity_source;	/* rebuilt identity column: the old one's sequence, which
									 * numbers both versions until complete */
	char	   *identity_sequence;	/* ... and the new one's name until then */
	char	   *identity_grants;	/* the old one's privileges, granted on the new one */
	char	   *view_default;	/* the new version view's default when the column has none */
	char	   *op_name;		/* new_name before the current operation: the name "up" uses */
	struct EcColumnRebuild *rebuild;	/* how an operation rebuilt it: later ones compose */
	AttrNumber	prev_new_attnum;	/* while an operation composes: the earlier new column ... */
	Node	   *prev_up;		/* ... and the earlier operations' "up" and "down" */
	Node	   *prev_down;
	Node	   *prev_back;		/* this operation's "down": its column back to the earlier type */
} EcColumn;

typedef struct EcTable
{
	Oid			relid;
	char	   *old_name;		/* NULL: created by this migration */
	char	   *new_name;		/* NULL: dropped by this migration */
	bool		created;
	bool		changed;		/* physical DDL at start: lock at complete/rollback */
	List	   *columns;		/* EcColumn * */
	List	   *validate;		/* constraint names added NOT VALID, validated at complete */
	List	   *unique_indexes; /* built concurrently by the worker ... */
	List	   *unique_names;	/* ... and attached as these constraints at complete */
	List	   *renamed_constraints_from;	/* constraints renamed at complete, in order: ... */
	List	   *renamed_constraints_to; /* ... to these names */
	char	   *primary_key_index;	/* built concurrently by the worker ... */
	char	   *primary_key_name;	/* ... and attached as this primary key at complete */
	List	   *dropped_constraints;	/* Oids: dropped with their old column, never carried */
	List	   *after_drop_steps;	/* complete steps once old columns are dropped and new
									 * ones renamed (carried indexes and constraints) */
	List	   *before_drop_steps;	/* complete steps before old columns are dropped (the
									 * user views and triggers carried by carry_views.c) */
	List	   *carried_views;	/* Oids of those views: complete locks them up front */
} EcTable;

typedef struct EcModel
{
	Oid			nspid;
	char	   *schema;
	List	   *tables;			/* EcTable * */
} EcModel;

extern EcModel *ec_model_load(Oid nspid);
extern void ec_model_refresh(EcModel *model);
extern EcTable *ec_model_table(EcModel *model, const char *new_name, bool missing_ok);
extern EcTable *ec_model_table_by_physical(EcModel *model, const char *relname);
extern EcColumn *ec_model_column(EcTable *table, const char *new_name, bool missing_ok);
extern EcColumn *ec_model_add_column(EcTable *table, AttrNumber attnum, const char *old_name,
									 const char *new_name, bool created);
extern char **ec_model_names(EcTable *table, bool new_version, int *natts);
extern char **ec_model_names_before_operation(EcTable *table, int *natts);
extern void ec_model_begin_operation(EcModel *model);
extern EcTable *ec_model_add_table(EcModel *model, Oid relid);

/* ---- user expressions and types (expr.c) ---- */

extern Node *ec_parse_expression(const char *source, const char *what);
extern Node *ec_analyze_row_expression(const char *source, const char *what, Oid relid,
									   char **names, int nnames, Oid target_type,
									   int32 target_typmod, bool is_check);
extern Node *ec_analyze_default(const char *source, const char *what, Oid target_type,
								int32 target_typmod);
extern char *ec_deparse(Node *expr, Oid relid);
extern bool ec_expr_is_volatile(Node *expr);
extern char *ec_resolve_type(const char *source, Oid *typid, int32 *typmod);
extern bool ec_is_serial(const char *type_sql);

/* ---- SQL building and execution (sqlbuild.c) ---- */

extern char *ec_qualified(const char *schema, const char *name);
extern char *ec_rel_qualified(Oid relid);
extern char *ec_temp_name(const char *prefix, const char *name);
extern uint64 ec_spi(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
					 int expected);
extern uint64 ec_catalog_spi(const char *sql, int nargs, Oid *types, Datum *values,
							 const char *nulls, int expected);
extern List *ec_spi_oids(const char *sql, int nargs, Oid *types, Datum *values);
extern void ec_exec(const char *sql);
extern void ec_exec_list(List *steps);
extern void ec_exec_steps_reverse(List *steps);
extern void ec_lock_with_retry(List *relids, List *modes);
extern ErrorData *ec_in_subtransaction(void (*fn) (void *), void *arg, bool keep);
extern char *ec_fk_clause(EcForeignKeyDef *fk, List *columns_sql, const char *ref_table_sql,
						  List *ref_columns_sql);

/* ---- settings scoped to one step (init.c) ---- */

extern int	ec_guc_push(const char *name, const char *value);
extern void ec_guc_pop(int nestlevel);

/* ---- whose rights: running as another role, copying grants (privileges.c) ---- */

extern uint64 ec_state_spi(const char *sql, int nargs, Oid *types, Datum *values,
						   const char *nulls, int expected);
extern void ec_run_as(Oid roleid, const char *search_path, void (*fn) (void *), void *arg);
extern void ec_exec_steps_as(Oid roleid, const char *search_path, List *steps, bool reverse);
extern int	ec_push_step_settings(const char *schema);
extern void ec_exec_contract_steps(Oid roleid, const char *schema, List *steps, bool reverse);

/* ---- ec_plan (dryrun.c): ec_start rehearsed in a subtransaction that is rolled back ---- */

extern bool ec_planning;
extern char *ec_start_internal(FunctionCallInfo fcinfo, bool planning);
extern void ec_plan_record(const char *sql, const char *note);
extern void ec_plan_note_last(const char *note);
extern void ec_plan_record_locks(List *relids, List *modes);
extern void ec_plan_capture(int64 id, const char *schema);

extern void ec_copy_privileges(Oid from_relid, const char *to_qualified, char **column_map,
							   int ncolumns);
extern void ec_copy_column_privileges(Oid relid, AttrNumber from_attnum, const char *to_column);
extern void ec_copy_schema_privileges(Oid from_nspid, const char *to_schema);

/* ---- versioned views (views.c) ---- */

extern void ec_create_version_schema(EcModel *model, const char *version_schema);
extern void ec_complete_version_schema(Oid nspid, const char *version_schema);
extern List *ec_schema_relations(Oid nspid, bool views);

/* ---- operations (operations.c, ops/) ---- */

typedef struct EcStartContext
{
	int64		migration_id;
	const char *migration_name;
	const char *version_schema;
	EcModel    *model;
	Oid			old_version_nspid;	/* InvalidOid: the old version is the base tables */
	List	   *rollback_steps; /* char *, run in reverse */
	List	   *complete_tail;	/* char *, run last at complete (sql onComplete) */
	int			ntasks;			/* tasks queued for the worker so far */
	List	   *publication_drop;	/* char *, run first at complete (publications.c) */
	List	   *publication_restore;	/* char *, run after the renames at complete */
} EcStartContext;

extern void ec_apply_operation(EcStartContext *cxt, EcOperation *op);
extern void ec_check_operation_owners(Oid nspid, List *operations);
extern List *ec_relations_to_lock(Oid nspid, List *operations, List **modes);
extern List *ec_lock_partitions_too(List *relids, List **modes);
extern void ec_relations_named_by(List *steps, List **relids, List **modes);

/* ---- after the operations: triggers and the complete plan (plan.c) ---- */

extern void ec_setup_dual_writes(EcStartContext *cxt, const char *new_schema,
								 const char *old_schema, const char *old_migration);
extern List *ec_table_leaves(Oid relid);
extern EcTable *ec_partition_table(EcTable *table, Oid partition);
extern void ec_finish_plan(EcStartContext *cxt, List **validate_steps, List **complete_steps,
						   List **relids);

/* ---- tables in publications (publications.c) ---- */

#define EC_PUBLICATIONS_MANAGE	0
#define EC_PUBLICATIONS_IGNORE	1
extern int	ec_publications_mode;

extern List *ec_publications_snapshot(Oid nspid);
extern void ec_publications_apply(EcStartContext *cxt, List *snapshot);
/* One publication's entry for a table (pg_publication_rel), as publications.c reads it. */
typedef struct EcPublicationEntry
{
	char	   *pub;			/* the publication's name */
	bool		writes;			/* it publishes updates or deletes */
	bool		via_root;		/* publish_via_partition_root */
	bool		has_list;		/* the entry has a column list */
	List	   *listed;			/* its columns' names, in attnum order */
	char	   *filter;			/* its row filter, deparsed, or NULL */
	char	   *qual;			/* the same as a node string, or NULL */
} EcPublicationEntry;

extern List *ec_publication_entries(Oid relid);
extern char *ec_publication_without_lists(Oid relid, Oid nspid, char **why);
extern bool ec_is_publication_step(Node *stmt);
extern char *ec_publication_entries_sql(Oid relid, List *entries, List *omit, bool every_column,
										List *drop_also);
extern List *ec_publication_names(List *entries);

/* ---- which rows the backfill must fill (horizon.c) ---- */

/* The transactions in progress when a migration started. */
typedef struct EcXidList
{
	int			n;
	TransactionId *xids;
} EcXidList;

extern TransactionId ec_write_horizon(EcXidList *in_progress);
extern bool ec_row_unfilled(HeapTupleHeader tuple, TransactionId horizon, TransactionId next,
							TransactionId *in_progress, int nin_progress);

/* ---- the extension's tables (state.c, state_tasks.c, state_dual_writes.c) ---- */

typedef struct EcMigrationRow
{
	int64		id;
	char	   *name;
	char	   *parent;
	char	   *version_schema;
	bool		done;
	bool		paused;
	List	   *validate_steps;
	List	   *complete_steps;
	List	   *rollback_steps;
	List	   *relids;			/* Oid list */
	Oid			started_by;		/* the role that started it; its steps and worker run as it */
	TimestampTz started_at;
} EcMigrationRow;

/* A migration of the history met again by ec_start (ec_migration_rerun). */
typedef struct EcMigrationRerun
{
	char	   *version_schema;
	bool		done;
	bool		same;			/* the same document (jsonb equality) */
	char	   *difference;		/* otherwise what differs, a sentence */
} EcMigrationRerun;

/* state.c: migrations, and what the state files share */
extern void ec_lock_schema(Oid nspid);
extern char *ec_catalog_version(void);
extern bool ec_catalog_at_least(const char *version);
extern void ec_require_catalog(const char *version, const char *feature);
extern List *ec_text_array_to_list(Datum d);
extern List *ec_name_array_to_list(Datum d);
extern Datum ec_list_to_text_array(List *list);
extern Datum ec_list_to_oid_array(List *list);
extern uint64 ec_state_spi_id(const char *sql, int64 id, int expected);
extern Oid	ec_existing_role(HeapTuple tuple, TupleDesc desc, int column, bool missing_ok);
extern EcMigrationRow *ec_active_migration(const char *schema);
extern EcMigrationRow *ec_latest_completed_migration(const char *schema);
extern void ec_check_migration_privilege(EcMigrationRow *m, const char *action);
extern bool ec_migration_exists(const char *schema, const char *name);
extern EcMigrationRerun *ec_migration_rerun(const char *schema, const char *name, Jsonb *doc);
extern int64 ec_insert_migration(const char *schema, const char *name, const char *parent,
								 const char *version_schema, Jsonb *doc,
								 TransactionId trigger_xid, EcXidList *in_progress);
extern Datum ec_xid_array(EcXidList *xids);
extern void ec_save_plan(int64 id, List *validate_steps, List *complete_steps,
						 List *rollback_steps, List *relids);
extern void ec_mark_migration_done(int64 id);
extern void ec_finish_migration(int64 id);
extern char *ec_migration_version_schema(const char *schema, const char *name);
extern void ec_delete_migration(int64 id);
extern void ec_set_paused(int64 id, bool paused);
extern Jsonb *ec_merge_settings(int64 id, Jsonb *settings);
extern char *ec_migration_description(int64 id, Oid *login_roleid, Oid *roleid);
extern List *ec_migrations_wanting_workers(void);
extern bool ec_worker_migration(int64 id, bool *paused, Jsonb **settings, TransactionId *trigger_xid);
extern bool ec_migration_names(int64 id, char **schema, char **name);
extern bool ec_migration_row_xmin(int64 id, TransactionId *xmin);
extern uint64 ec_saved_steps(int64 id);
extern void ec_migrations_from_elsewhere(const char *origin, int64 migration_id, List **ids,
										 List **schemas);
extern bool ec_active_migration_origin(int64 id, char **origin);
extern void ec_set_migration_origin(int64 id, const char *origin, TransactionId horizon,
									EcXidList *in_progress);
extern uint64 ec_guarded_migrations(void);
extern uint64 ec_migration_guarding_relation(Datum relids);
extern Datum ec_relation_and_ancestors(Oid relid);

/* state_tasks.c: tasks */
extern void ec_add_task(int64 id, int seq, const char *kind, Oid relid, List *columns,
						const char *sql);
extern void ec_set_task_cleanup(int64 id, int seq, const char *cleanup);
extern bool ec_task_with_cleanup_exists(int64 id, const char *cleanup);
extern char *ec_task_failure_text(const char *last_error, const char *error_row);
extern int	ec_task_summary(int64 id, bool include_compaction, char **failure, int64 *progress);
extern void ec_requeue_tasks(int64 id);
extern uint64 ec_unfinished_tasks(int64 id);
extern void ec_set_task_state(int64 id, int seq, int part, const char *state, const char *detail);
extern void ec_record_task_failure(int64 id, int seq, int part, const char *message, const char *row);
extern Oid	ec_task_relid(int64 id, int seq);
extern bool ec_task_statement(int64 id, int seq, char **sql, char **cleanup, bool *compaction);
extern void ec_task_started(int64 id, int seq, int part);
extern void ec_task_filled(int64 id, int seq, int part, int64 total_blocks);
extern void ec_record_batch(int64 id, int seq, int part, int64 next_block, uint64 rows,
							int64 total_blocks, const char *detail);
extern void ec_split_task(int64 id, int seq, int64 size, int64 nblocks, int64 parts);
extern bool ec_task_all_parts_done(int64 id, int seq, int part);
extern List *ec_compaction_cleanups(int64 id);
extern uint64 ec_skip_compaction_tasks(int64 id);
extern void ec_restart_backfills(int64 id);
extern uint64 ec_finished_backfill_totals(void);
extern uint64 ec_finished_index_build_totals(void);
extern uint64 ec_planned_tasks(int64 id);

/* state_dual_writes.c: dual_writes */
extern void ec_save_dual_write(int64 id, EcTable *table, const char *new_schema,
							   const char *new_migration, const char *old_schema,
							   const char *old_migration);
extern bool ec_backfill_sources(Oid relid, Datum **new_columns, Datum **ups, int *n,
								char **in_progress);
extern char *ec_migration_moving_data(Oid relid);
extern char *ec_first_with_dual_writes(Datum relids);
extern uint64 ec_trigger_plan_row(Oid relid);
extern uint64 ec_stored_dual_writes(int64 id);
extern void ec_set_dual_write_trees(int64 id, Oid relid, Datum old_attnums, Datum new_attnums,
									Datum ups, Datum downs);
extern uint64 ec_dual_write_trees(int64 id);
extern void ec_set_dual_write_sources(Oid relid, Datum old_columns, Datum new_columns,
									  Datum up_sources, Datum down_sources);
extern bool ec_dual_write_has_down(Oid relid, AttrNumber attnum);
extern void ec_delete_dual_writes(int64 id);

/* ---- waiting for a migration's background work (wait.c) ---- */

typedef struct EcWaitFor
{
	const char *schema;
	int64		migration_id;	/* 0: whichever migration of the schema is active */
	bool		for_call;		/* CALL ec_wait (its messages), else ec_complete */
	bool		include_compaction;
	bool		commit_between_polls;	/* SPI connected non-atomic */
	TimestampTz deadline;		/* 0: none */
	const char *timeout_text;
} EcWaitFor;

extern void ec_wait_for_work(const EcWaitFor *w);

/* ---- migrations restored into another database (restore.c) ---- */

extern char *ec_current_origin(void);
extern bool ec_origin_is_current(const char *origin);
extern Node *ec_reanalyze(Oid relid, const char *source, AttrNumber target, const char *what);
extern AttrNumber ec_restored_attnum(Oid relid, const char *name);
extern void ec_adopt_restored(int64 migration_id);

/* ---- partitions created, attached or detached during a migration (partitions.c) ---- */

extern bool ec_partition_ddl_allowed;
extern void ec_check_partition_ddl(Node *parsetree);

/* ---- the DDL guard (ddl_guard.c) ---- */

extern bool ec_allow_ddl;
extern int	ec_own_ddl_depth;

/* ---- events: NOTIFY expand_contract at each phase change (events.c) ---- */

#define EC_NOTIFY_CHANNEL		"expand_contract"
#define EC_EVENT_STARTED		"started"
#define EC_EVENT_BACKFILL_DONE	"backfill_done"
#define EC_EVENT_INDEX_BUILT	"index_built"
#define EC_EVENT_TASK_FAILED	"task_failed"
#define EC_EVENT_PAUSED			"paused"
#define EC_EVENT_RESUMED		"resumed"
#define EC_EVENT_COMPLETED		"completed"
#define EC_EVENT_ROLLED_BACK	"rolled_back"
#define EC_EVENT_REVERTED		"reverted"
#define EC_EVENT_CLEANED_UP		"cleaned_up"

extern bool ec_events;
extern void ec_notify(const char *schema, const char *migration, const char *event,
					  const char *table, const char *key, const char *value);
extern void ec_notify_migration(int64 id, const char *event, const char *table, const char *key,
								const char *value);

/* ---- the dual-write trigger (trigger.c) ---- */

extern Oid	ec_backfill_relid;

extern void ec_trigger_init(void);
extern bool ec_other_before_row_triggers(TriggerDesc *trigdesc, int16 event, Oid dual_write);

/* ---- the background worker (worker.c) and its launching (launcher.c) ---- */

/* What a worker is for, in bgw_extra.  migration_id 0: probe the database for unfinished work. */
typedef struct EcWorkerArgs
{
	Oid			dboid;
	Oid			login_roleid;	/* connects as this role (the session user of ec_start) */
	Oid			roleid;			/* then acts as this one (its current user, as after SET ROLE) */
	int64		migration_id;
	bool		helper;			/* fills backfill parts beside the migration's worker */
} EcWorkerArgs;

/* Advisory lock tags' field4 (1 and 2: pg_advisory_lock). */
#define EC_SCHEMA_LOCK_FIELD4	3	/* the schema lock */
#define EC_WORKER_LOCK_FIELD4	4	/* the migration's worker, exclusive */
#define EC_HELPER_LOCK_FIELD4	5	/* its helpers, shared */
#define EC_CLAIM_LOCK_FIELD4	7	/* a backfill part being filled (worker.c) */
#define EC_HELPER_SLOT_FIELD4	8	/* a slot of expand_contract.max_parallel_workers_total */

extern int	ec_batch_size;
extern int	ec_batch_delay_ms;
extern int	ec_max_replication_lag_ms;
extern int	ec_batch_time_ms;
extern double ec_nice_ratio;
extern int	ec_max_load;
extern int	ec_max_parallel_workers;
extern int	ec_max_parallel_workers_total;

/* ---- the backfill's pace (throttle.c) ---- */

typedef struct EcLoad
{
	int			active;			/* other client sessions running a query now */
	int			busy;			/* those, and the others that ran one since the batch began */
} EcLoad;

typedef struct EcPace
{
	double		rows_per_ms;	/* of the last batch; 0: none yet */
	double		target_ms;		/* the next batch's target duration; 0: batch_time_ms */
	double		last_ms;		/* the last batch's duration */
	int			waiters;		/* sessions the last batch kept waiting */
} EcPace;

extern void ec_read_load(TimestampTz since, EcLoad *load);
extern int	ec_lock_waiters(void);
extern int64 ec_pace_rows(EcPace *pace, int batch_size, int batch_time_ms);
extern void ec_pace_record(EcPace *pace, uint64 rows, double ms, int waiters, int batch_time_ms);
extern long ec_pace_sleep_ms(EcPace *pace, double nice_ratio, int batch_delay_ms, bool busy);
extern long ec_nice_sleep_after(TimestampTz started, double nice_ratio);
extern void ec_sleep_ms(long ms);
extern void ec_set_worker_nice(int nice);
extern int	ec_worker_nice;

/* ---- leaving the table compact (compact.c) ---- */

extern bool ec_compact;
extern void ec_compact_after_batch(Oid relid, int64 first, int64 end);
extern int64 ec_compact_batch_blocks(Oid relid);
extern void ec_compact_prune(void);
extern void ec_queue_compaction(EcStartContext *cxt, EcTable *table);
extern char *ec_compact_cleanup(const char *cleanup);
extern uint64 ec_skip_compaction(int64 id);
extern void ec_check_repack(Node *parsetree);

PGDLLEXPORT void ec_worker_main(Datum main_arg);
PGDLLEXPORT void ec_launcher_main(Datum main_arg);
extern void ec_launch_after_commit(int64 migration_id);
extern void ec_cancel_launch(int64 migration_id);
extern bool ec_worker_alive(int64 migration_id);
extern void ec_worker_lock_tag(LOCKTAG *tag, Oid dboid, int64 migration_id);
extern void ec_helper_lock_tag(LOCKTAG *tag, Oid dboid, int64 migration_id);
extern bool ec_launch_helper(const EcWorkerArgs *args);
extern bool ec_ensure_worker(int64 migration_id, bool error_if_no_slot);
extern void ec_stop_worker(int64 migration_id);

/* ---- revert after complete (revert_complete.c: ec_complete's window; revert.c: the rest) ---- */

/* A prepare step that drops an interrupted build's invalid index (revert_complete.c, revert.c). */
#define EC_DROP_INVALID_PREFIX "DROP INDEX CONCURRENTLY IF EXISTS "


extern int	ec_revert_window_s;
extern int64 ec_revert_window_arg(FunctionCallInfo fcinfo, int argno);
extern void ec_complete_with_window(EcMigrationRow *m, const char *schema, List *steps, int64 usecs);
extern void ec_check_no_window(const char *schema);
extern bool ec_in_revert_window(const char *schema);
extern char *ec_revert_window_exists_sql(const char *id_expr);
extern void ec_open_revert_window(int64 id, TimestampTz ends_at, List *revert_steps,
								  List *cleanup_steps, List *prepare_steps);
extern bool ec_window_worker(int64 id);
extern void ec_register_launcher(void);

/* ---- writes per version, in shared memory when preloaded (usage.c) ---- */

/* Per-minute buckets per version; "recent" writes are those of the newest EC_USAGE_MINUTES - 1. */
#define EC_USAGE_MINUTES 16

typedef enum EcUsageState
{
	EC_USAGE_TRACKED,			/* counted (since the server started) */
	EC_USAGE_NOT_PRELOADED,		/* no shared memory: not in shared_preload_libraries */
	EC_USAGE_NO_SLOT			/* every slot taken: this migration is not counted */
} EcUsageState;

typedef struct EcUsageSlot EcUsageSlot;

extern int	ec_usage_slots;
extern void ec_usage_init(void);
extern EcUsageState ec_usage_read(int64 migration_id, TimestampTz started_at, int version,
								 TimestampTz *last_write, int64 *recent);
extern TimestampTz ec_usage_counting_since(void);
extern void ec_usage_retire_at_commit(int64 migration_id);
extern char *ec_usage_note(EcUsageState state, TimestampTz started_at);
extern void ec_probe_database(void);

#endif							/* EXPAND_CONTRACT_H */
