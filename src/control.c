/*
 * control.c
 *	  SQL functions that steer a running migration's worker: ec_pause, ec_resume, ec_configure.
 *
 * They change the migration's row; the worker reads it before every batch, so a change applies
 * from the next batch on, without restarting anything.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "expand_contract.h"

PG_FUNCTION_INFO_V1(ec_pause);
PG_FUNCTION_INFO_V1(ec_resume);
PG_FUNCTION_INFO_V1(ec_configure);

static EcMigrationRow *
active_for(FunctionCallInfo fcinfo, const char *action)
{
	char	   *schema;
	Oid			nspid;
	EcMigrationRow *m;

	PreventCommandDuringRecovery(psprintf("ec_%s()", action));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schema must not be null")));
	schema = text_to_cstring(PG_GETARG_TEXT_PP(0));
	nspid = get_namespace_oid(schema, false);
	ec_lock_schema(nspid);
	m = ec_active_migration(schema);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema \"%s\" has no active migration", schema)));
	ec_check_migration_privilege(m, action);
	return m;
}

static void
update_migration(const char *set, int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	(void) ec_state_spi(psprintf("UPDATE " EC_STATE_SCHEMA ".migrations SET %s WHERE id = $1", set),
						1, types, values, NULL, SPI_OK_UPDATE);
}

Datum
ec_pause(PG_FUNCTION_ARGS)
{
	EcMigrationRow *m;

	SPI_connect();
	m = active_for(fcinfo, "pause");
	update_migration("paused = true", m->id);
	SPI_finish();
	PG_RETURN_VOID();
}

/* Unpauses, and puts failed or stalled tasks back in the queue from where they stopped. */
Datum
ec_resume(PG_FUNCTION_ARGS)
{
	EcMigrationRow *m;
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	SPI_connect();
	m = active_for(fcinfo, "resume");
	values[0] = Int64GetDatum(m->id);
	update_migration("paused = false", m->id);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".tasks SET state = 'pending', detail = NULL,"
						" last_error = NULL, error_row = NULL"
						" WHERE migration_id = $1 AND state IN ('failed', 'paused', 'throttled')",
						1, types, values, NULL, SPI_OK_UPDATE);
	/* A worker that stopped on a failure is gone; a paused one notices by itself. */
	ec_launch_after_commit(m->id);
	SPI_finish();
	PG_RETURN_VOID();
}

static const char *const settable[] = {"batch_size", "batch_delay_ms", "max_replication_lag_ms",
NULL};

/*
 * Per-migration overrides of the expand_contract.batch_* settings.  A JSON null removes the
 * override, so the server setting applies again.  Returns the migration's settings.
 */
Datum
ec_configure(PG_FUNCTION_ARGS)
{
	EcMigrationRow *m;
	Jsonb	   *settings;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2];
	bool		isnull;
	Datum		result;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("settings must not be null")));
	settings = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_OBJECT(settings))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("settings must be a JSON object")));

	it = JsonbIteratorInit(&settings->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			bool		known = false;

			key = pnstrdup(v.val.string.val, v.val.string.len);
			for (int i = 0; settable[i] != NULL; i++)
				known |= strcmp(key, settable[i]) == 0;
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown setting \"%s\"", key),
						 errhint("Settable are \"batch_size\", \"batch_delay_ms\" and "
								 "\"max_replication_lag_ms\".")));
		}
		else if (tok == WJB_VALUE && v.type != jbvNull)
		{
			int64		n;

			if (v.type != jbvNumeric ||
				(n = DatumGetInt64(DirectFunctionCall1(numeric_int8,
													   NumericGetDatum(v.val.numeric)))) < 0 ||
				n > PG_INT32_MAX || (strcmp(key, "batch_size") == 0 && n == 0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("setting \"%s\" must be a %s integer", key,
								strcmp(key, "batch_size") == 0 ? "positive" : "non-negative")));
		}
	}

	SPI_connect();
	m = active_for(fcinfo, "configure");
	values[0] = Int64GetDatum(m->id);
	values[1] = JsonbPGetDatum(settings);
	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".migrations"
						" SET settings = pg_catalog.jsonb_strip_nulls(settings || $2)"
						" WHERE id = $1 RETURNING settings",
						2, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &isnull), false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
