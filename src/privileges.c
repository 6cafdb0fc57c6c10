/*
 * privileges.c
 *	  Whose rights SQL runs with, and whose rights the new objects get: running as another role (a
 *	  migration's stored steps as the role that started it, queries on the extension's tables as
 *	  their owner) and copying grants to version views, version schemas and rebuilt columns.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "expand_contract.h"

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

/*
 * Settings for running complete, rollback, revert or cleanup steps, until ec_guc_pop of the
 * returned level: lock waits bounded, the schema as search_path (for "sql" operations), and no
 * NOTICE for each view that DROP SCHEMA ... CASCADE drops: that is our business, not the caller's.
 */
int
ec_push_step_settings(const char *schema)
{
	char		timeout[32];
	int			nestlevel;

	snprintf(timeout, sizeof(timeout), "%d", ec_lock_timeout_ms);
	nestlevel = ec_guc_push("lock_timeout", timeout);
	(void) ec_guc_push("search_path", quote_identifier(schema));
	(void) ec_guc_push("client_min_messages", "warning");
	return nestlevel;
}

/*
 * A migration's stored contract steps (complete, rollback, revert, cleanup), as the role that
 * started it; they may create, attach or detach partitions (partitions.c lets them).
 *
 * A step that drops a column or table fails when something the migration did not make depends on
 * it (a view made since, a publication's column list): PostgreSQL's detail names those objects,
 * but its hint, DROP ... CASCADE, is not a way forward here.  Ours says what is.
 */
void
ec_exec_contract_steps(Oid roleid, const char *schema, List *steps, bool reverse)
{
	MemoryContext cxt = CurrentMemoryContext;

	ec_partition_ddl_allowed = true;
	PG_TRY();
	{
		ec_exec_steps_as(roleid, quote_identifier(schema), steps, reverse);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		ec_partition_ddl_allowed = false;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST || edata->detail == NULL ||
			edata->hint == NULL ||
			strcmp(edata->hint, _("Use DROP ... CASCADE to drop the dependent objects too.")) != 0)
			PG_RE_THROW();
		FlushErrorState();
		edata->hint = pstrdup("The objects named in the detail depend on a column or table that "
							  "this step removes, and the migration did not make them: drop or "
							  "change them, then try again.  Nothing was changed.");
		ReThrowError(edata);
	}
	PG_END_TRY();
	ec_partition_ddl_allowed = false;
}
