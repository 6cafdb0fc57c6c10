/*
 * sqlbuild.c
 *	  Building SQL text and running it: quoting, running statements through SPI, lock acquisition
 *	  with timeout and retries.  (Running as another role and copying grants: privileges.c;
 *	  settings scoped to one step: init.c.)
 *
 * Every identifier goes through quote_identifier, every
 * literal through quote_literal_cstr or a bound parameter.  Statements run through SPI in the caller's
 * transaction; the caller has connected SPI.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "expand_contract.h"

char *
ec_qualified(const char *schema, const char *name)
{
	return quote_qualified_identifier(schema, name);
}

char *
ec_rel_qualified(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_internal("cache lookup failed for relation %u", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
}

/*
 * prefix + name, kept under NAMEDATALEN: a long name is cut and given a hash of the whole name, so
 * that two long names sharing a prefix do not collide.
 */
char *
ec_temp_name(const char *prefix, const char *name)
{
	char	   *result = psprintf("%s%s", prefix, name);

	if (strlen(result) >= NAMEDATALEN)
	{
		uint32		hash = hash_bytes((const unsigned char *) name, strlen(name));
		int			keep = NAMEDATALEN - 1 - strlen(prefix) - 9;

		keep = pg_mbcliplen(name, strlen(name), keep);
		result = psprintf("%s%.*s_%08x", prefix, keep, name, hash);
	}
	return result;
}

/*
 * Runs a query with bound parameters (nulls as in SPI: 'n' for null) and returns SPI_processed.  A
 * result code other than `expected` is an internal error: the queries are ours.
 */
uint64
ec_spi(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expected)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_internal("SPI_execute_with_args returned %s, not %s, for: %s", SPI_result_code_string(rc), SPI_result_code_string(expected), sql)));
	return SPI_processed;
}

/*
 * ec_spi for the extension's own queries on the system catalogs and views, on paths that run under
 * the caller's search_path (complete's wait, stopping a worker): a caller whose search_path puts
 * another schema before pg_catalog must not have its operators and functions stand in for the
 * ones the query means.
 */
uint64
ec_catalog_spi(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expected)
{
	int			nestlevel = ec_guc_push("search_path", "pg_catalog, pg_temp");
	uint64		n = ec_spi(sql, nargs, types, values, nulls, expected);

	ec_guc_pop(nestlevel);
	return n;
}

/* The first column of a query's rows, as Oids. */
List *
ec_spi_oids(const char *sql, int nargs, Oid *types, Datum *values)
{
	List	   *result = NIL;
	uint64		n = ec_spi(sql, nargs, types, values, NULL, SPI_OK_SELECT);

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		result = lappend_oid(result, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 1,
																	&isnull)));
	}
	return result;
}

/*
 * Runs SQL text (DDL, or several statements); any error is the statement's own.  Its DDL is the
 * extension's own, which the DDL guard lets pass (ddl_guard.c).
 */
void
ec_exec(const char *sql)
{
	int			rc;

	if (ec_planning)
		ec_plan_record(sql, NULL);

	ec_own_ddl_depth++;
	PG_TRY();
	{
		rc = SPI_execute(sql, false, 0);
	}
	PG_FINALLY();
	{
		ec_own_ddl_depth--;
	}
	PG_END_TRY();
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg_internal("SPI_execute returned %s for: %s", SPI_result_code_string(rc), sql)));
}

void
ec_exec_list(List *steps)
{
	ListCell   *lc;

	foreach(lc, steps)
		ec_exec((const char *) lfirst(lc));
}

void
ec_exec_steps_reverse(List *steps)
{
	for (int i = list_length(steps) - 1; i >= 0; i--)
		ec_exec((const char *) list_nth(steps, i));
}

/*
 * Takes each lock in relids/modes, every attempt bounded by expand_contract.lock_timeout, retrying
 * with exponential backoff.  A DDL statement queued for ACCESS EXCLUSIVE blocks every later query on
 * its table; bounding each wait keeps a migration that waits for a long transaction from stalling
 * the application.  An attempt that times out releases what it took (subtransaction rollback), so
 * between attempts others proceed.
 *
 * An attempt waits for one relation only, holding none of the others: it waits for the first one
 * (the one found busy last time), then takes the rest only if they are free at once.  Waiting for
 * the second table while holding the first would queue every query on the first behind us, and
 * with a transaction that holds the second and is about to read the first (an INSERT checking a
 * foreign key reads the referenced table at the end of its statement) that is a lock cycle which
 * only lock_timeout breaks: the application would stall for all of it.  When one of the rest is
 * busy, the attempt gives back what it took and the next one waits for that relation first, at once
 * (that wait is bounded too); only a timed-out wait counts against lock_retries and backs off.
 */
void
ec_lock_with_retry(List *relids, List *modes)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char		timeout[32];
	int			nestlevel;
	int			nrels = list_length(relids);
	int			first = 0;
	int			timeouts = 0;
	int			bounces = 0;

	/*
	 * ec_plan's rehearsal takes the same locks, but never queues for one: each attempt waits 1 ms at
	 * most, so no query on the table waits behind it for longer.
	 */
	int			timeout_ms = ec_planning ? 1 : ec_lock_timeout_ms;

	if (ec_planning)
		ec_plan_record_locks(relids, modes);
	snprintf(timeout, sizeof(timeout), "%d", timeout_ms);
	nestlevel = ec_guc_push("lock_timeout", timeout);

	for (;;)
	{
		volatile int busy = -1;
		volatile bool done = false;

		if (nrels == 0)
			break;
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			LockRelationOid(list_nth_oid(relids, first), (LOCKMODE) list_nth_int(modes, first));
			for (int i = 0; i < nrels && busy < 0; i++)
			{
				if (i != first &&
					!ConditionalLockRelationOid(list_nth_oid(relids, i),
												(LOCKMODE) list_nth_int(modes, i)))
					busy = i;
			}
			if (busy < 0)
			{
				ReleaseCurrentSubTransaction();
				done = true;
			}
			else
				RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;
			long		delay_ms;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;

			if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
				ReThrowError(edata);
			if (timeouts >= ec_lock_retries)
			{
				char	   *relname = get_rel_name(list_nth_oid(relids, first));

				if (ec_planning)
					ereport(ERROR,
							(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
							 errmsg_plural("could not lock relation \"%s\" after %d attempt",
										   "could not lock relation \"%s\" after %d attempts",
										   timeouts + 1, relname ? relname : "?", timeouts + 1),
							 errdetail("ec_plan rehearses ec_start with the locks ec_start takes, waiting "
									   "at most 1 ms for each, so that no query waits behind it; another "
									   "transaction holds a conflicting lock."),
							 errhint("Retry when long-running transactions on the table have finished, "
									 "or raise expand_contract.lock_retries.")));
				ereport(ERROR,
						(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
						 errmsg_plural("could not lock relation \"%s\" after %d attempt",
									   "could not lock relation \"%s\" after %d attempts",
									   timeouts + 1, relname ? relname : "?", timeouts + 1),
						 errdetail("Each attempt waited %d ms (expand_contract.lock_timeout); another "
								   "transaction holds a conflicting lock.", ec_lock_timeout_ms),
						 errhint("Retry when long-running transactions on the table have finished, or "
								 "raise expand_contract.lock_timeout or expand_contract.lock_retries.")));
			}
			FreeErrorData(edata);

			/*
			 * The whole delay (ec_sleep_ms): a lock wait that lock_timeout ends before
			 * deadlock_timeout leaves the deadlock check's SIGALRM scheduled, and its handler sets
			 * the latch; a single WaitLatch cut every pause to at most deadlock_timeout -
			 * lock_timeout (500 ms by default).
			 */
			delay_ms = Min(50L << Min(timeouts, 10), 2000L);
			delay_ms += random() % (delay_ms / 2 + 1);
			timeouts++;
			ec_sleep_ms(delay_ms);
		}
		PG_END_TRY();
		if (done)
			break;
		if (busy >= 0)
		{
			/*
			 * Each bounce follows a wait that was granted, so the others are moving; the cap only
			 * guarantees an end under a pathological workload, with the same error as timeouts.
			 */
			if (++bounces > 10 * (ec_lock_retries + 1))
			{
				char	   *relname = get_rel_name(list_nth_oid(relids, busy));

				ereport(ERROR,
						(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
						 errmsg("could not lock relation \"%s\" after %d attempts",
								relname ? relname : "?", bounces + timeouts),
						 errdetail("The relations to lock were never all free at once."),
						 errhint("Retry when the load on the tables is lower, or raise "
								 "expand_contract.lock_retries.")));
			}
			first = busy;
			CHECK_FOR_INTERRUPTS();
		}
	}
	ec_guc_pop(nestlevel);
}

static void
append_column_list(StringInfo buf, List *columns_sql)
{
	ListCell   *lc;

	appendStringInfoChar(buf, '(');
	foreach(lc, columns_sql)
	{
		if (lc != list_head(columns_sql))
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, (const char *) lfirst(lc));
	}
	appendStringInfoChar(buf, ')');
}

/* "FOREIGN KEY (...) REFERENCES t (...) ..." from quoted column names and a qualified table. */
char *
ec_fk_clause(EcForeignKeyDef *fk, List *columns_sql, const char *ref_table_sql,
			 List *ref_columns_sql)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "FOREIGN KEY ");
	append_column_list(&buf, columns_sql);
	appendStringInfo(&buf, " REFERENCES %s ", ref_table_sql);
	append_column_list(&buf, ref_columns_sql);
	appendStringInfo(&buf, " MATCH %s ON DELETE %s ON UPDATE %s", fk->match_type, fk->on_delete,
					 fk->on_update);
	if (fk->deferrable)
		appendStringInfoString(&buf, " DEFERRABLE");
	if (fk->initially_deferred)
		appendStringInfoString(&buf, " INITIALLY DEFERRED");
	return buf.data;
}

/*
 * Runs fn(arg) in a subtransaction of its own, kept if keep and fn succeeds, else rolled back
 * (a rehearsal).  Returns NULL, or fn's error once the subtransaction is gone (copied, and the
 * error state flushed): the caller raises it again, or reports it and goes on.
 */
ErrorData *
ec_in_subtransaction(void (*fn) (void *), void *arg, bool keep)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	if (keep && edata == NULL)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}
