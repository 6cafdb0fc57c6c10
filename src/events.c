/*
 * events.c
 *	  NOTIFY expand_contract at each phase change of a migration, so that a deploy pipeline can
 *	  LISTEN instead of polling ec_status().
 *
 * The payload is a JSON object: {"schema": ..., "migration": ..., "event": ...}, with "table" where
 * the event is about one table, and for some events one more key ("index" for index_built, "error"
 * for task_failed).  Async_Notify queues it with the transaction that made the change, so it is
 * sent when (and only if) that transaction commits, in the order the notifications were queued;
 * identical payloads in one transaction are sent once, as for any NOTIFY.  The setting
 * expand_contract.events turns them off (PREPARE TRANSACTION refuses a transaction that notified).
 */
#include "postgres.h"

#include "commands/async.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

#include "expand_contract.h"

/*
 * PostgreSQL refuses a payload of NOTIFY_PAYLOAD_MAX_LENGTH (8000) bytes or more: the extra value
 * (an error message may be long) is cut to keep the payload below this.
 */
#define EC_PAYLOAD_MAX	7900

bool		ec_events = true;

static char *
build_payload(const char *schema, const char *migration, const char *event, const char *table,
			  const char *key, const char *value, int value_len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"schema\": ");
	escape_json(&buf, schema);
	appendStringInfoString(&buf, ", \"migration\": ");
	escape_json(&buf, migration);
	appendStringInfoString(&buf, ", \"event\": ");
	escape_json(&buf, event);
	if (table)
	{
		appendStringInfoString(&buf, ", \"table\": ");
		escape_json(&buf, table);
	}
	if (key && value)
	{
		char	   *cut = value_len < (int) strlen(value) ?
			psprintf("%.*s...", value_len, value) : pstrdup(value);

		appendStringInfoString(&buf, ", ");
		escape_json(&buf, key);
		appendStringInfoString(&buf, ": ");
		escape_json(&buf, cut);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Queues the event on channel "expand_contract", sent at commit.  table, and key with value, may
 * be NULL; value is cut short (on a character boundary) when the payload would be too long.
 */
void
ec_notify(const char *schema, const char *migration, const char *event, const char *table,
		  const char *key, const char *value)
{
	int			value_len = value ? strlen(value) : 0;
	char	   *payload;

	if (!ec_events)
		return;
	payload = build_payload(schema, migration, event, table, key, value, value_len);
	while (strlen(payload) >= EC_PAYLOAD_MAX && value_len > 0)
	{
		value_len = pg_mbcliplen(value, value_len, value_len / 2);
		payload = build_payload(schema, migration, event, table, key, value, value_len);
	}
	Async_Notify(EC_NOTIFY_CHANNEL, payload);
}

/* The same for migration id, whose names are looked up (the worker knows only its id). */
void
ec_notify_migration(int64 id, const char *event, const char *table, const char *key,
					const char *value)
{
	char	   *schema;
	char	   *name;

	SPI_connect();
	if (ec_migration_names(id, &schema, &name))
		ec_notify(schema, name, event, table, key, value);
	SPI_finish();
}
