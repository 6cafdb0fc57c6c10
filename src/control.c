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
#include "lib/stringinfo.h"
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

Datum
ec_pause(PG_FUNCTION_ARGS)
{
	EcMigrationRow *m;

	SPI_connect();
	m = active_for(fcinfo, "pause");
	ec_set_paused(m->id, true);
	ec_notify(text_to_cstring(PG_GETARG_TEXT_PP(0)), m->name, EC_EVENT_PAUSED, NULL, NULL, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/* Unpauses, and puts failed or stalled tasks back in the queue from where they stopped. */
Datum
ec_resume(PG_FUNCTION_ARGS)
{
	EcMigrationRow *m;

	SPI_connect();
	m = active_for(fcinfo, "resume");
	ec_set_paused(m->id, false);
	ec_requeue_tasks(m->id);
	/* A worker that stopped on a failure is gone; a paused one notices by itself. */
	ec_launch_after_commit(m->id);
	ec_notify(text_to_cstring(PG_GETARG_TEXT_PP(0)), m->name, EC_EVENT_RESUMED, NULL, NULL, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/* What ec_configure may set, each overriding the server setting of the same name. */
typedef enum SettableKind
{
	SETTABLE_INT,
	SETTABLE_REAL,
	SETTABLE_BOOL
} SettableKind;

typedef struct Settable
{
	const char *name;
	double		min;
	double		max;
	SettableKind kind;
} Settable;

static const Settable settable[] = {
	{"batch_size", 1, PG_INT32_MAX, SETTABLE_INT},
	{"batch_delay_ms", 0, PG_INT32_MAX, SETTABLE_INT},
	{"batch_time_ms", 0, 600000, SETTABLE_INT},
	{"nice_ratio", 0, 100, SETTABLE_REAL},
	{"max_load", -1, 100000, SETTABLE_INT},
	{"max_parallel_workers", 1, 64, SETTABLE_INT},
	{"max_replication_lag_ms", 0, PG_INT32_MAX, SETTABLE_INT},
	{"compact", 0, 1, SETTABLE_BOOL},
	{"worker_nice", 0, 19, SETTABLE_INT},
	{NULL}
};

static const Settable *
find_settable(const char *key)
{
	StringInfoData names;

	for (int i = 0; settable[i].name != NULL; i++)
		if (strcmp(key, settable[i].name) == 0)
			return &settable[i];
	initStringInfo(&names);
	for (int i = 0; settable[i].name != NULL; i++)
		appendStringInfo(&names, "%s\"%s\"", i == 0 ? "" : ", ", settable[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown setting \"%s\"", key),
			 errhint("Settable are %s.", names.data)));
	return NULL;				/* keep the compiler quiet */
}

static void
check_value(const Settable *setting, JsonbValue *v)
{
	double		n = 0;
	bool		ok;

	if (setting->kind == SETTABLE_BOOL)
	{
		if (v->type != jbvBool)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("setting \"%s\" must be true or false", setting->name)));
		return;
	}
	ok = v->type == jbvNumeric;
	if (ok)
	{
		n = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											   NumericGetDatum(v->val.numeric)));
		ok = n >= setting->min && n <= setting->max &&
			(setting->kind != SETTABLE_INT || n == (double) (int64) n);
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"%s\" must be %s between %g and %g", setting->name,
						setting->kind == SETTABLE_INT ? "an integer" : "a number", setting->min,
						setting->max)));
}

/*
 * Per-migration overrides of the worker's settings.  A JSON null removes the override, so the
 * server setting applies again.  Returns the migration's settings.
 */
Datum
ec_configure(PG_FUNCTION_ARGS)
{
	EcMigrationRow *m;
	Jsonb	   *settings;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	const Settable *setting = NULL;
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
			setting = find_settable(pnstrdup(v.val.string.val, v.val.string.len));
		else if (tok == WJB_VALUE && v.type != jbvNull)
			check_value(setting, &v);
	}

	SPI_connect();
	m = active_for(fcinfo, "configure");
	result = JsonbPGetDatum(ec_merge_settings(m->id, settings));
	SPI_finish();
	PG_RETURN_DATUM(result);
}
