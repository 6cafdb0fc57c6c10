/*
 * trigger.h
 *	  What the dual-write trigger's two halves share: the per-relation plan that trigger_plan.c
 *	  builds and caches, and that trigger.c runs for each row.
 */
#ifndef EC_TRIGGER_H
#define EC_TRIGGER_H

#include "executor/execdesc.h"
#include "executor/spi.h"
#include "nodes/params.h"
#include "utils/rel.h"

typedef enum EcFillTest
{
	EC_FILL_XMIN,				/* those written before the horizon (ec_row_unfilled) */
	EC_FILL_ALL,				/* restored, not adopted yet, backfill unfinished: every row */
	EC_FILL_NONE				/* the backfill has finished */
} EcFillTest;

typedef struct EcTriggerPlan
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below, but the per-transaction state */

	char	   *schema;			/* the table's schema, an accepted name for the old version */
	char	   *new_schema;
	char	   *new_migration;
	char	   *old_schema;		/* NULL: the old version is the base tables */
	char	   *old_migration;
	Oid			new_nspid;
	Oid			old_nspid;
	bool		window;			/* complete, in its revert window: writes are new unless old */
	EcFillTest	fill_test;		/* which rows the backfill has still to fill: */
	TransactionId horizon;		/* EC_FILL_XMIN: rows last written before it, */
	int			nin_progress;	/* unless by one of these (sorted): they wrote through us */
	TransactionId *in_progress;

	int			npairs;
	AttrNumber *old_attnums;	/* 0: no old column */
	AttrNumber *new_attnums;	/* 0: no new column */
	Expr	  **up;				/* planned (analysed only, where up_sub); NULL: none */
	Expr	  **down;
	struct EcSubquery **up_sub; /* non-NULL: the expression has a subquery, run by SPI */
	struct EcSubquery **down_sub;
	List	   *spi_plans;		/* every SPIPlanPtr kept for this plan, freed with it */
	bool		in_use;			/* an expression of this plan is being evaluated */

	/* Counting writes per version (usage.c): the slot, looked up at the first write. */
	int64		migration_id;
	bool		usage_looked_up;
	struct EcUsageSlot *usage_slot; /* NULL: not counted */

	/* Execution state, valid in transaction lxid only; lives in a child of TopTransactionContext. */
	LocalTransactionId lxid;
	struct EcEval **up_eval;	/* NULL: no expression */
	struct EcEval **down_eval;
	ExprContext *econtext;
	TupleTableSlot *filled;		/* a row after its new columns were filled */
	int		   *columns;		/* scratch for heap_modify_tuple_by_cols */
	Datum	   *values;
	bool	   *nulls;
	bool		spi_connected;	/* SPI connected during this call */
} EcTriggerPlan;

/*
 * An expression with a subquery: the analysed tree, with parameters $1..$n that stand for the
 * row's columns in place of its Vars, run as "SELECT $1" (see the file header).
 */
typedef struct EcSubquery
{
	Node	   *expr;
	int			nparams;
	AttrNumber *attnums;		/* parameter $i is the row's column attnums[i - 1] */
	Oid		   *types;
	Oid			target_type;	/* of the column it computes, as expr is */
	int16		target_len;
	bool		target_byval;
	char	   *what;			/* "up expression for column ..." for the error context */
	SPIPlanPtr	spiplan;		/* prepared on first use */
} EcSubquery;

/* One up or down expression, ready to run in this transaction. */
typedef struct EcEval
{
	ExprState  *state;			/* compiled; NULL for a subquery */
	EcSubquery *sub;
	ParamListInfo params;		/* sub's parameters: the row's columns */
} EcEval;

extern EcTriggerPlan *ec_trigger_plan(Relation rel);
extern void ec_prepare_subquery(EcTriggerPlan *plan, EcSubquery *sub);

/* usage.c */
extern void ec_usage_count(EcTriggerPlan *plan, bool from_new);

#endif							/* EC_TRIGGER_H */
