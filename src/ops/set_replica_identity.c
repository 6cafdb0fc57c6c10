/*
 * ops/set_replica_identity.c
 *	  set_replica_identity: applied to the table at start, as pgroll does; both versions share the
 *	  table, so both have the new identity from then on.  Rollback restores the previous identity
 *	  exactly (pgroll's rollback leaves the new one), USING INDEX of the previous index included.
 *
 * An identity that would make the table's UPDATE and DELETE fail (NOTHING, or DEFAULT without a
 * primary key, on a table that a publication publishes them for) is refused: it would break the
 * running application at once, whichever version it uses.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef struct SetReplicaIdentityOp
{
	EcOperation base;
	char	   *table;
	char		identity;		/* REPLICA_IDENTITY_DEFAULT, _NOTHING, _FULL or _INDEX */
	char	   *index;			/* for REPLICA_IDENTITY_INDEX */
} SetReplicaIdentityOp;

static void
set_replica_identity_read(EcOperation *base, EcDocObject *o)
{
	static const struct
	{
		const char *name;
		char		identity;
	}			types[] =
	{
		{"default", REPLICA_IDENTITY_DEFAULT}, {"nothing", REPLICA_IDENTITY_NOTHING},
		{"full", REPLICA_IDENTITY_FULL}, {"index", REPLICA_IDENTITY_INDEX}
	};
	SetReplicaIdentityOp *op = (SetReplicaIdentityOp *) base;
	JsonbValue *sub;
	EcDocObject id;
	char	   *type;

	op->table = ec_doc_identifier(o, "table", true);
	if ((sub = ec_doc_get(o, "identity")) == NULL)
		ec_doc_missing(o, "identity");
	ec_doc_load(&id, sub, "replica identity definition");
	type = ec_doc_string(&id, "type", true, false, NULL);
	op->index = ec_doc_sql(&id, "index", false);
	ec_doc_finish(&id);

	/* pgroll takes the type in any case. */
	for (int i = 0;; i++)
	{
		if (i == lengthof(types))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid replica identity type \"%s\" for table \"%s\"", type, op->table),
					 errhint("The type is one of \"default\", \"full\", \"nothing\" and \"index\".")));
		if (pg_strcasecmp(type, types[i].name) == 0)
		{
			op->identity = types[i].identity;
			break;
		}
	}
	if (op->identity == REPLICA_IDENTITY_INDEX && op->index == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replica identity of type \"index\" for table \"%s\" needs field \"index\"",
						op->table),
				 errhint("Name the index that identifies the table's rows.")));
	/* pgroll ignores it; a name that does nothing is more likely a mistake than meant. */
	if (op->identity != REPLICA_IDENTITY_INDEX && op->index != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field \"index\" of a replica identity must be empty unless its type is "
						"\"index\""),
				 errdetail("Table \"%s\" gets replica identity \"%s\" and index \"%s\".", op->table,
						   type, op->index)));
	if (op->index && strlen(op->index) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("identifier \"%s\" in field \"index\" of replica identity definition is too "
						"long", op->index),
				 errdetail("Identifiers are limited to %d bytes.", NAMEDATALEN - 1)));
}

/* ALTER TABLE ... REPLICA IDENTITY takes ACCESS EXCLUSIVE: taken up front, with retries. */
static void
set_replica_identity_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((SetReplicaIdentityOp *) base)->table, AccessExclusiveLock, true);
}

/* The clause that sets the table's current replica identity again. */
static char *
current_identity_sql(EcTable *table, char *identity)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	bool		isnull;
	char	   *index;

	(void) ec_spi("SELECT c.relreplident, (SELECT i.relname::text FROM pg_catalog.pg_index x"
				  "   JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid"
				  "  WHERE x.indrelid = c.oid AND x.indisreplident)"
				  "  FROM pg_catalog.pg_class c WHERE c.oid = $1",
				  1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_internal("cache lookup failed for relation %u", table->relid)));
	*identity = DatumGetChar(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull));
	index = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	switch (*identity)
	{
		case REPLICA_IDENTITY_NOTHING:
			return "NOTHING";
		case REPLICA_IDENTITY_FULL:
			return "FULL";
		case REPLICA_IDENTITY_INDEX:
			/* An index dropped since leaves "i" that acts as NOTHING, and SQL cannot say it. */
			return index ? psprintf("USING INDEX %s", quote_identifier(index)) : "NOTHING";
		default:
			return "DEFAULT";
	}
}

static bool
has_primary_key(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	return ec_spi("SELECT FROM pg_catalog.pg_index WHERE indrelid = $1 AND indisprimary",
				  1, types, values, NULL, SPI_OK_SELECT) > 0;
}

/* A publication that publishes the table's UPDATE or DELETE, or NULL. */
static char *
publication_of_writes(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	(void) ec_spi("SELECT p.pubname::text FROM pg_catalog.pg_publication p"
				  "  JOIN pg_catalog.pg_publication_tables t ON t.pubname = p.pubname"
				  "  JOIN pg_catalog.pg_class c ON c.relname = t.tablename"
				  "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
				  "   AND n.nspname = t.schemaname"
				  " WHERE c.oid = $1 AND (p.pubupdate OR p.pubdelete)"
				  " ORDER BY 1 LIMIT 1",
				  1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static void
set_replica_identity_start(EcStartContext *cxt, EcOperation *base)
{
	SetReplicaIdentityOp *op = (SetReplicaIdentityOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	char	   *tsql = ec_op_table_sql(table);
	char		before;
	char	   *undo;
	char	   *clause;
	char	   *publication;

	ec_op_require_owner(table);
	undo = current_identity_sql(table, &before);
	switch (op->identity)
	{
		case REPLICA_IDENTITY_NOTHING:
			clause = "NOTHING";
			break;
		case REPLICA_IDENTITY_FULL:
			clause = "FULL";
			break;
		case REPLICA_IDENTITY_INDEX:
			clause = psprintf("USING INDEX %s", quote_identifier(op->index));
			break;
		default:
			clause = "DEFAULT";
			break;
	}

	/* No identity after, one before, and published writes: every UPDATE and DELETE would fail. */
	if ((op->identity == REPLICA_IDENTITY_NOTHING ||
		 (op->identity == REPLICA_IDENTITY_DEFAULT && !has_primary_key(table->relid))) &&
		!(before == REPLICA_IDENTITY_NOTHING ||
		  (before == REPLICA_IDENTITY_DEFAULT && !has_primary_key(table->relid))) &&
		(publication = publication_of_writes(table->relid)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("replica identity %s would make UPDATE and DELETE on table \"%s\" fail",
						clause, op->table),
				 errdetail("Publication \"%s\" publishes them, and a table without a replica "
						   "identity cannot be updated or deleted from while it does.", publication),
				 errhint("Remove the table from the publication first, or choose an identity.")));

	/* A table created by this migration goes at rollback: nothing to restore. */
	ec_op_run(cxt, psprintf("ALTER TABLE %s REPLICA IDENTITY %s", tsql, clause),
			  table->created ? NULL :
			  psprintf("ALTER TABLE %s REPLICA IDENTITY %s", tsql, undo));
	table->changed = true;
}

const EcOpRoutine ec_op_set_replica_identity = {
	.name = "set_replica_identity",
	.size = sizeof(SetReplicaIdentityOp),
	.read = set_replica_identity_read,
	.touches = set_replica_identity_touches,
	.start = set_replica_identity_start,
};
