/*
 * ops/add_column.c
 *	  add_column: a new column, _ec_new_<name> until complete, filled from "up" for old-version writes
 *	  and by the backfill for existing rows.
 *
 * Nothing here rewrites an existing table under its ACCESS EXCLUSIVE lock, which PostgreSQL's own
 * ADD COLUMN does for a volatile default, a serial, an identity or a stored generated column: each
 * of these would compute a value for every row while the table is locked.
 *	  - volatile default: set after ADD COLUMN, for new rows; existing rows get it from the backfill
 *		("up" defaults to the default expression);
 *	  - serial: a plain integer column with its own sequence (owned by the column, named as
 *		PostgreSQL would) as its default; existing rows get a number from the backfill, never again:
 *		"up" is COALESCE(column, nextval(sequence)), so an old-version update keeps the number;
 *	  - identity: the same, numbered by a temporary sequence with the column's sequence options,
 *		and made an identity column at complete (once it is NOT NULL, a catalog change) whose
 *		sequence continues where the temporary one left off;
 *	  - stored generated: PostgreSQL can neither skip the rewrite nor make a filled column
 *		generated later (PostgreSQL 17's SET EXPRESSION rewrites too), so it is refused on an
 *		existing table.
 * On a table created by this migration there are no rows to fill: these columns are added as they
 * are (PostgreSQL rewrites an empty table).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "operations.h"

typedef struct AddColumnOp
{
	EcOperation base;
	char	   *table;
	EcColumnDef *coldef;
	char	   *up;
} AddColumnOp;

static void
add_column_read(EcOperation *base, EcDocObject *o)
{
	AddColumnOp *op = (AddColumnOp *) base;
	JsonbValue *sub;

	op->table = ec_doc_identifier(o, "table", true);
	if ((sub = ec_doc_get(o, "column")) == NULL)
		ec_doc_missing(o, "column");
	op->coldef = ec_doc_column(sub);
	op->up = ec_doc_sql(o, "up", false);
	if (op->up && (op->coldef->generated_expr || op->coldef->identity))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"add_column\" of %s column \"%s\" cannot have \"up\"",
						op->coldef->identity ? "identity" : "generated", op->coldef->name),
				 errdetail("PostgreSQL computes its values.")));
}

static void
add_column_touches(EcOperation *base, EcTouches *touches)
{
	AddColumnOp *op = (AddColumnOp *) base;

	ec_touch(touches, op->table, AccessExclusiveLock, true);
	if (op->coldef->references && strcmp(op->coldef->references->table, op->table) != 0)
		ec_touch(touches, op->coldef->references->table, ShareRowExclusiveLock, false);
}

/*
 * A sequence for the column, of its type and with the given options, owned by the table's owner
 * (a member of the owning role may run the migration; OWNED BY needs the same owner).  Returns its
 * qualified name; *seqid its OID.
 */
static char *
create_sequence(EcTable *table, const char *name, const char *type_sql, const char *options,
				Oid *seqid)
{
	Oid			nspid = get_rel_namespace(table->relid);
	char	   *schema = get_namespace_name(nspid);
	char	   *seq = ec_qualified(schema, name);
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(table->relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg_internal("cache lookup failed for relation %u", table->relid)));
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	if (OidIsValid(get_relname_relid(name, get_rel_namespace(table->relid))))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", name, schema),
				 errdetail("expand_contract needs that name for the sequence of a new column."),
				 errhint("Drop or rename the relation left behind, then start the migration again.")));
	ec_exec(psprintf("CREATE SEQUENCE %s AS %s%s%s", seq, type_sql, options[0] ? " " : "", options));
	if (owner != GetUserId())
		ec_exec(psprintf("ALTER SEQUENCE %s OWNER TO %s", seq,
						 quote_identifier(GetUserNameFromId(owner, false))));
	if (seqid)
		*seqid = get_relname_relid(name, nspid);
	return seq;
}

/* The column numbered from seq: existing rows by the backfill, new rows by the default. */
static void
number_from_sequence(EcStartContext *cxt, EcTable *table, EcColumn *col, const char *seq,
					 Oid typid, int32 typmod)
{
	char	   *tsql = ec_op_table_sql(table);
	const char *column = quote_identifier(ec_op_attname(table, col->new_attnum));
	char	   *next = psprintf("pg_catalog.nextval(%s::pg_catalog.regclass)", quote_literal_cstr(seq));

	/* Owned by the column, the sequence goes with it at rollback and follows its rename. */
	ec_exec(psprintf("ALTER SEQUENCE %s OWNED BY %s.%s", seq, tsql, column));
	ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", tsql, column, next));
	/* Over physical names: the old version does not see the column, but this must read it. */
	col->up = ec_analyze_row_expression(psprintf("COALESCE(%s, %s)", column, next),
										psprintf("numbering of column \"%s\"", col->new_name),
										table->relid, NULL, 0, typid, typmod, false);
	col->moves_data = true;
}

static void
add_column_start(EcStartContext *cxt, EcOperation *base)
{
	AddColumnOp *op = (AddColumnOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	EcColumnDef *c = op->coldef;
	Oid			nspid = get_rel_namespace(table->relid);
	Oid			typid;
	int32		typmod;
	char	   *type_sql;
	char	   *tmpname;
	char	   *dflt = NULL;
	bool		volatile_default = false;
	bool		serial;
	bool		self_filling;
	const char *up = op->up;
	StringInfoData extra;
	AttrNumber	attnum;
	EcColumn   *col;

	ec_op_require_owner(table);
	if (ec_model_column(table, c->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" already exists", c->name, op->table)));
	if (c->pk)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot add primary key column \"%s\" to existing table \"%s\"", c->name,
						op->table)));

	type_sql = ec_resolve_type(c->type, &typid, &typmod);
	serial = ec_is_serial(type_sql);
	self_filling = serial || c->identity || c->generated_expr;
	if (serial && (c->identity || c->generated_expr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("column \"%s\" of a serial type cannot have \"generated\"", c->name),
				 errhint("Use an integer type with \"identity\".")));
	if (serial && c->default_expr)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("column \"%s\" of a serial type cannot have \"default\"", c->name),
				 errdetail("Its default is the next value of its sequence.")));
	if (c->generated_expr && !table->created)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot add stored generated column \"%s\" to existing table \"%s\"", c->name,
						op->table),
				 errdetail("PostgreSQL computes a stored generated column for every row when it is "
						   "added, rewriting the table under an ACCESS EXCLUSIVE lock, and cannot "
						   "make a filled column generated later without rewriting it again."),
				 errhint("Add a plain column filled by \"up\" instead, or add the generated column "
						 "in a \"sql\" operation if the table may be locked while it is rewritten.")));
	if (serial)
		type_sql = format_type_extended(typid, typmod,
										FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	if (c->default_expr)
		dflt = ec_op_default_sql(c->default_expr, c->name, typid, typmod, &volatile_default);
	if (!c->nullable && !self_filling && (dflt == NULL || volatile_default) && up == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"add_column\" of NOT NULL column \"%s\" needs \"up\" or a non-volatile "
						"\"default\"", c->name),
				 errdetail("Existing rows and rows written through the old version need a value."),
				 errhint("Set \"up\", set \"default\", or set \"nullable\": true.")));

	/*
	 * A non-volatile default is stored once in the catalog and costs no rewrite; a volatile one
	 * would rewrite the table under ACCESS EXCLUSIVE, so it is set afterwards (for new rows) and
	 * existing rows get it through the backfill instead.
	 */
	initStringInfo(&extra);
	tmpname = ec_temp_name(EC_NEW_COLUMN_PREFIX, c->name);
	if (table->created && self_filling)
	{
		/* No rows to fill: as PostgreSQL would add it, but named after the final column name. */
		char	   *seqname = ChooseRelationName(table->new_name, c->name, "seq", nspid, false);

		if (c->generated_expr)
		{
			char	   *what = psprintf("generation expression of column \"%s\"", c->name);
			Node	   *expr;

			ec_op_refuse_subquery(c->generated_expr, what, "column generation expression");
			appendStringInfo(&extra, " GENERATED ALWAYS AS (%s) STORED",
							 ec_op_analyze(table, true, c->generated_expr, what, typid, typmod,
										   false, &expr));
		}
		else if (c->identity)
			appendStringInfo(&extra, " GENERATED %s AS IDENTITY (SEQUENCE NAME %s%s%s)",
							 c->identity_always ? "ALWAYS" : "BY DEFAULT",
							 ec_qualified(get_namespace_name(nspid), seqname),
							 c->identity_options[0] ? " " : "", c->identity_options);
		else
			appendStringInfo(&extra, " DEFAULT pg_catalog.nextval(%s::pg_catalog.regclass)",
							 quote_literal_cstr(create_sequence(table, seqname, type_sql, "", NULL)));
		if (!c->nullable || serial)
			appendStringInfoString(&extra, " NOT NULL");
		attnum = ec_op_add_new_column(cxt, table, tmpname, type_sql, extra.data);
		col = ec_model_add_column(table, attnum, NULL, c->name, true);
		if (serial)
			ec_exec(psprintf("ALTER SEQUENCE %s OWNED BY %s.%s",
							 ec_qualified(get_namespace_name(nspid), seqname), ec_op_table_sql(table),
							 quote_identifier(tmpname)));
	}
	else
	{
		if (dflt && !volatile_default)
		{
			appendStringInfo(&extra, " DEFAULT %s", dflt);
			if (!c->nullable)
				appendStringInfoString(&extra, " NOT NULL");
		}
		attnum = ec_op_add_new_column(cxt, table, tmpname, type_sql, extra.data);
		col = ec_model_add_column(table, attnum, NULL, c->name, true);
		if (serial)
		{
			char	   *seq = create_sequence(table,
											  ChooseRelationName(table->new_name, c->name, "seq",
																 nspid, false),
											  type_sql, "", NULL);

			number_from_sequence(cxt, table, col, seq, typid, typmod);
		}
		else if (c->identity)
		{
			/* Numbers until complete, then the identity's own sequence takes over. */
			char	   *seq = create_sequence(table,
											  ec_temp_name("_ec_identity_",
														   psprintf("%s_%s", table->new_name, c->name)),
											  type_sql, c->identity_options, &col->identity_filler);

			number_from_sequence(cxt, table, col, seq, typid, typmod);
			col->identity_when = c->identity_always ? "ALWAYS" : "BY DEFAULT";
			col->identity_options = c->identity_options[0] ?
				psprintf(" (%s)", c->identity_options) : "";
		}
		if (volatile_default)
		{
			ec_exec(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", ec_op_table_sql(table),
							 quote_identifier(tmpname), dflt));
			if (up == NULL)
				up = c->default_expr;
		}
		/* Serial and identity columns are NOT NULL whatever "nullable" says, as in PostgreSQL. */
		if ((!c->nullable && (dflt == NULL || volatile_default)) || serial || c->identity)
		{
			col->not_null_check = ec_temp_name("_ec_not_null_", c->name);
			ec_op_add_not_valid_check(cxt, table, col->not_null_check,
									  psprintf("%s IS NOT NULL", quote_identifier(tmpname)));
		}
	}
	if (c->unique)
		ec_op_queue_unique(cxt, table, attnum, ec_temp_name("", psprintf("%s_%s_key", op->table, c->name)));
	if (c->check)
		ec_op_add_check(cxt, table, c->check);
	if (c->references)
		ec_op_add_foreign_key(cxt, table, list_make1(c->name), c->references);
	if (c->comment)
		ec_op_comment_on_column(table, attnum, c->comment);
	if (up)
	{
		(void) ec_op_analyze(table, false, up, psprintf("up expression of column \"%s\"", c->name),
						   typid, typmod, false, &col->up);
		col->moves_data = true;
	}
}

const EcOpRoutine ec_op_add_column = {
	.name = "add_column",
	.size = sizeof(AddColumnOp),
	.read = add_column_read,
	.touches = add_column_touches,
	.start = add_column_start,
};
