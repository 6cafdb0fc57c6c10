/*
 * revert_window.h
 *	  What the parts of ec_complete with a revert window share: revert_complete.c runs the
 *	  complete steps and records their undo, revert_aside.c keeps aside what they would destroy,
 *	  revert_carried.c does both for carried triggers and materialized views.
 */
#ifndef EC_REVERT_WINDOW_H
#define EC_REVERT_WINDOW_H

#include "postgres.h"

#include "access/attnum.h"
#include "nodes/pg_list.h"

/* A table's leftover from complete, dropped at the window's end (by OID: it may be renamed later). */
typedef struct Deferred
{
	Oid			relid;
	const char *column;			/* NULL: the relation itself (a table, or drop_index's index) */
	const char *trigger;		/* a dual-write trigger of the table */
	const char *constraint;		/* a kept-aside foreign key of the table */
	const char *sql;			/* a statement as is (DROP SCHEMA) */
} Deferred;

typedef struct WindowRun
{
	const char *migration;
	const char *schema;
	List	   *steps;
	List	   *relids;			/* the tables complete locks (the migration's relids) */
	List	   *on_complete;	/* the "up" of its onComplete "sql" operations, as complete steps */
	List	   *parsed;			/* the steps' statements */
	List	   *undo;			/* in the order to run: last step's undo first */
	List	   *deferred;
	List	   *prepare;		/* for the worker at the window's start */
	const char *step;			/* for the error context */
	List	   *created_views;	/* OIDs of the carried views the steps created again */
	List	   *created_triggers;	/* "<relid>/<name>" of the triggers the steps created */
	List	   *aside_triggers; /* OIDs of the triggers' copies on kept-aside columns */
	List	   *foreign_key_copies;	/* foreign keys to kept-aside primary keys (revert_aside.c) */
} WindowRun;

/* revert_complete.c */
extern void ec_window_refuse(WindowRun *run, const char *step, const char *why);
extern char *ec_window_sibling(Oid relid, const char *name);
extern void ec_window_undo(WindowRun *run, char *sql);
extern void ec_window_defer(WindowRun *run, Oid relid, const char *column, const char *trigger,
							const char *sql);
extern void ec_window_defer_constraint(WindowRun *run, Oid relid, const char *constraint);

/* revert_aside.c */
extern bool ec_window_is_foreign_key(Oid conoid);
extern void ec_window_rename_prepared(WindowRun *run, RenameStmt *rename);
extern Oid ec_window_constraint_relid(Oid conoid);
extern Oid ec_keep_dependents_aside(WindowRun *run, Oid relid, AttrNumber attnum, const char *name);
extern char *ec_window_column_default(Oid relid, AttrNumber attnum);
extern char *ec_window_column_comment(Oid relid, AttrNumber attnum);
extern bool ec_window_is_check(Oid conoid);
extern bool ec_window_attnotnull(Oid relid, AttrNumber attnum);
extern List *ec_window_foreign_keys_on_index(Oid index);
extern void ec_keep_foreign_key_aside(WindowRun *run, const char *step, Oid relid, Oid conoid, const char *name);
extern void ec_keep_primary_key_aside(WindowRun *run, Oid relid, Oid conoid);
extern void ec_keep_indexes_aside(WindowRun *run, Oid relid);
extern void ec_keep_identity_sequence_aside(WindowRun *run, Oid relid, AttrNumber attnum);
extern void ec_window_carry_sequence_defaults(WindowRun *run, Oid old_seq, Oid new_seq);
extern void ec_window_hide_kept_aside_default(WindowRun *run, Oid relid, const char *column);
extern void ec_window_prepare_foreign_keys(WindowRun *run);

/* revert_publications.c */
extern void ec_window_publication_step(WindowRun *run, const char *step);
extern void ec_window_publications(WindowRun *run);
/* revert_carried.c */
extern void ec_window_drop_trigger(WindowRun *run, Oid relid, const char *name);
extern void ec_window_created_trigger(WindowRun *run, Oid relid, const char *name);
extern void ec_window_require_created_trigger(WindowRun *run, const char *step, Oid relid,
											  const char *name);
extern void ec_window_keep_matview_aside(WindowRun *run, Oid relid);

#endif							/* EC_REVERT_WINDOW_H */
