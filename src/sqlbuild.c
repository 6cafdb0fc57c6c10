/*
 * sqlbuild.c
 *	  Building SQL text and running it: quoting, settings scoped to one step, lock acquisition with
 *	  timeout and retries, privilege copying.
 *
 * Every identifier goes through quote_identifier (or quote_ident/format in generated GRANTs), every
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

/* The role that owns the extension's tables: the only role that may change them. */
static Oid
state_owner(void)
{
	Oid			nspid = get_namespace_oid(EC_STATE_SCHEMA, false);
	Oid			relid = get_relname_relid("migrations", nspid);
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_internal("cache lookup failed for relation %u", relid)));
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Runs `fn(arg)` as `roleid`, the way a SECURITY DEFINER function would: nothing it runs can change
 * role, and search_path is `search_path` until it returns.  On error the (sub)transaction's abort
 * restores both; a caller that catches the error gets them restored here first.
 */
void
ec_run_as(Oid roleid, const char *search_path, void (*fn) (void *), void *arg)
{
	Oid			save_userid;
	int			save_sec;
	int			nestlevel = ec_guc_push("search_path", search_path);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(roleid, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	ec_guc_pop(nestlevel);
}

typedef struct StateQuery
{
	const char *sql;
	int			nargs;
	Oid		   *types;
	Datum	   *values;
	const char *nulls;
	int			expected;
	uint64		processed;
} StateQuery;

static void
run_state_query(void *arg)
{
	StateQuery *q = arg;

	q->processed = ec_spi(q->sql, q->nargs, q->types, q->values, q->nulls, q->expected);
}

/*
 * ec_spi for our own queries on the extension's tables, which grant nothing but SELECT to anyone:
 * run as their owner, with search_path pinned to pg_catalog so that no object a user created can
 * stand in for one the query means.  Callers have checked that the current role may do what the
 * query does.
 */
uint64
ec_state_spi(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expected)
{
	StateQuery	q = {sql, nargs, types, values, nulls, expected, 0};

	ec_run_as(state_owner(), "pg_catalog, pg_temp", run_state_query, &q);
	return q.processed;
}

static void
run_steps(void *arg)
{
	ec_exec_list((List *) arg);
}

static void
run_steps_reverse(void *arg)
{
	ec_exec_steps_reverse((List *) arg);
}

/*
 * Runs a migration's stored steps as the role that started it, with `search_path` (its schema):
 * they include the migration's own "sql" operations, which must never run with the rights of
 * whoever completes or rolls back the migration.
 */
void
ec_exec_steps_as(Oid roleid, const char *search_path, List *steps, bool reverse)
{
	/* A dropped role's migration is a superuser's to finish (ec_check_migration_privilege). */
	if (!OidIsValid(roleid))
		roleid = GetUserId();
	ec_run_as(roleid, search_path, reverse ? run_steps_reverse : run_steps, steps);
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

	snprintf(timeout, sizeof(timeout), "%d", ec_lock_timeout_ms);
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
			TimestampTz deadline;

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
			 * Sleep until the deadline, not until the first wakeup: the latch is set by more than
			 * the end of the delay.  A lock wait that lock_timeout ends before deadlock_timeout
			 * leaves one behind: the deadlock check's SIGALRM stays scheduled for deadlock_timeout
			 * after the wait began, and its handler sets the latch.  A single WaitLatch therefore
			 * cut every pause to at most deadlock_timeout - lock_timeout (500 ms by default).
			 */
			delay_ms = Min(50L << Min(timeouts, 10), 2000L);
			delay_ms += random() % (delay_ms / 2 + 1);
			timeouts++;
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
			for (;;)
			{
				/* rounds up, so 0 only once the deadline has passed */
				long		remaining_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																		   deadline);

				if (remaining_ms <= 0)
					break;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 remaining_ms, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
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
exec_generated(const char *query, int nargs, Oid *types, Datum *values)
{
	uint64		n = ec_spi(query, nargs, types, values, NULL, SPI_OK_SELECT);
	SPITupleTable *tuptable = SPI_tuptable;
	List	   *statements = NIL;

	for (uint64 i = 0; i < n; i++)
		statements = lappend(statements, SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 1));
	ec_exec_list(statements);
}

/* Grants columns of to_qualified what the columns attnums (int2[]) of from_relid grant, by names (text[]). */
static void
copy_column_grants(Oid from_relid, const char *to_qualified, Datum attnums, Datum names)
{
	Oid			types[4] = {OIDOID, TEXTOID, INT2ARRAYOID, TEXTARRAYOID};
	Datum		values[4];

	values[0] = ObjectIdGetDatum(from_relid);
	values[1] = CStringGetTextDatum(to_qualified);
	values[2] = attnums;
	values[3] = names;
	exec_generated("SELECT pg_catalog.format('GRANT %s (%s) ON TABLE %s TO %s', a.privilege_type,"
				   "       pg_catalog.quote_ident(m.name), $2,"
				   "       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END)"
				   "  FROM pg_catalog.pg_attribute att"
				   "  JOIN pg_catalog.pg_class c ON c.oid = att.attrelid"
				   "  JOIN ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS m(attnum, name)"
				   "    ON m.attnum = att.attnum"
				   "  CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a"
				   "  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
				   " WHERE att.attrelid = $1 AND att.attacl IS NOT NULL AND a.grantee <> c.relowner",
				   4, types, values);
}

/*
 * Grants on a view what the table's ACL grants (table and column level), so that the roles that
 * use the table can use its views; security_invoker views then check the table's own privileges
 * and row-level security as the querying role too.  column_map[attnum - 1] is the view's name for
 * that attribute, or NULL.
 */
void
ec_copy_privileges(Oid from_relid, const char *to_qualified, char **column_map, int ncolumns)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	Datum	   *attnums = palloc(sizeof(Datum) * (ncolumns + 1));
	Datum	   *names = palloc(sizeof(Datum) * (ncolumns + 1));
	int			n = 0;

	for (int i = 0; i < ncolumns; i++)
	{
		if (column_map[i] == NULL)
			continue;
		attnums[n] = Int16GetDatum(i + 1);
		names[n] = CStringGetTextDatum(column_map[i]);
		n++;
	}
	values[0] = ObjectIdGetDatum(from_relid);
	values[1] = CStringGetTextDatum(to_qualified);
	exec_generated("SELECT pg_catalog.format('GRANT %s ON TABLE %s TO %s', a.privilege_type, $2,"
				   "       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END)"
				   "  FROM pg_catalog.pg_class c"
				   "  CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a"
				   "  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
				   " WHERE c.oid = $1 AND a.grantee <> c.relowner",
				   2, types, values);
	copy_column_grants(from_relid, to_qualified,
					   PointerGetDatum(construct_array(attnums, n, INT2OID, 2, true, TYPALIGN_SHORT)),
					   PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT)));
}

/*
 * A column rebuilt beside an old one gets the old one's column privileges: the new version's view
 * reads and writes it as the querying role, who must be able to do there what it could do with the
 * old column.  At complete it takes the old one's name, and its grants go with it.
 */
void
ec_copy_column_privileges(Oid relid, AttrNumber from_attnum, const char *to_column)
{
	Datum		attnum = Int16GetDatum(from_attnum);
	Datum		name = CStringGetTextDatum(to_column);

	copy_column_grants(relid, ec_rel_qualified(relid),
					   PointerGetDatum(construct_array(&attnum, 1, INT2OID, 2, true, TYPALIGN_SHORT)),
					   PointerGetDatum(construct_array(&name, 1, TEXTOID, -1, false, TYPALIGN_INT)));
}

void
ec_copy_schema_privileges(Oid from_nspid, const char *to_schema)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];

	values[0] = ObjectIdGetDatum(from_nspid);
	values[1] = CStringGetTextDatum(quote_identifier(to_schema));
	exec_generated("SELECT pg_catalog.format('GRANT %s ON SCHEMA %s TO %s', a.privilege_type, $2,"
				   "       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END)"
				   "  FROM pg_catalog.pg_namespace n"
				   "  CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a"
				   "  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
				   " WHERE n.oid = $1 AND a.grantee <> n.nspowner AND a.privilege_type = 'USAGE'",
				   2, types, values);
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
