/*
 * ops/create_constraint.c
 *	  create_constraint: a unique, check, foreign key or primary key constraint on columns of an
 *	  existing table, binding the new version only until complete.
 *
 * Each listed column is duplicated beside the old one (ec_op_rebuild_column: _ec_new_<name>, kept in
 * step by the dual-write trigger from "up" and "down", filled by the backfill), and the copies carry
 * the constraint, so the old version keeps its old rules meanwhile:
 *	  check, foreign key	NOT VALID at start (enforced for every write from then on), validated by
 *							the worker after the backfill;
 *	  unique				a unique index the worker builds concurrently, attached at complete with
 *							ADD CONSTRAINT ... UNIQUE USING INDEX;
 *	  primary key			the same index, the columns NOT NULL through NOT VALID checks the worker
 *							validates, then at complete SET NOT NULL (no scan) and ADD CONSTRAINT ...
 *							PRIMARY KEY USING INDEX.
 * At complete the old columns are dropped and the copies renamed (plan.c), so the constraint ends
 * on the final columns under its own name, as if it had been added offline.
 *
 * A column that is the new version's alone already (its table created by this migration, or the
 * column added or rebuilt by an earlier operation) is not duplicated again: it gets the constraint
 * directly, and its "up" and "down" can only be the column itself (pgroll's documents list them for
 * every column).
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/reloptions.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "operations.h"

typedef enum ConstraintType
{
	CON_UNIQUE,
	CON_CHECK,
	CON_FOREIGN_KEY,
	CON_PRIMARY_KEY
} ConstraintType;

static const char *const constraint_types[] = {"unique", "check", "foreign_key", "primary_key", NULL};

typedef struct CreateConstraintOp
{
	EcOperation base;
	char	   *table;
	char	   *name;
	ConstraintType type;
	List	   *columns;		/* char *, new-version names */
	char	   *check;
	bool		no_inherit;
	EcForeignKeyDef *references;
	List	   *set_columns;	/* references.on_delete_set_columns, char * */
	char	   *tablespace;		/* index_parameters */
	char	   *storage_text;
	List	   *storage;		/* DefElem *, read from storage_text */
	List	   *include;		/* char * */
	List	   *up;				/* EcColumnExpr * */
	List	   *down;
} CreateConstraintOp;

/* Each column named once in field key of what. */
static void
reject_duplicates(List *names, const char *key, const char *what)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		for (ListCell *lc2 = list_head(names); lc2 != lc; lc2 = lnext(names, lc2))
		{
			if (strcmp(lfirst(lc2), lfirst(lc)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" appears twice in field \"%s\" of %s",
								(char *) lfirst(lc), key, what)));
		}
	}
}

/* An array of identifiers, each named once; NIL when absent. */
static List *
read_names(EcDocObject *o, const char *key, bool required)
{
	List	   *result = ec_doc_identifier_array(o, key, required);

	reject_duplicates(result, key, o->what);
	return result;
}

/* pgroll's TableForeignKeyReference (document.c); the constraint's own name is the foreign key's. */
static void
read_references(CreateConstraintOp *op, JsonbValue *v)
{
	EcForeignKeyDef *fk = ec_doc_table_fk(v);

	fk->name = op->name;
	reject_duplicates(fk->columns, "columns", "foreign key reference");
	op->set_columns = fk->on_delete_set_columns;
	if (op->set_columns != NIL && strcmp(fk->on_delete, "SET NULL") != 0 &&
		strcmp(fk->on_delete, "SET DEFAULT") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"on_delete_set_columns\" of foreign key \"%s\" needs \"on_delete\" SET NULL or SET DEFAULT",
						op->name)));
#if PG_VERSION_NUM < 150000
	if (op->set_columns != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"on_delete_set_columns\" requires PostgreSQL 15 or later")));
#endif
	op->references = fk;
}

static void
read_index_parameters(CreateConstraintOp *op, JsonbValue *v)
{
	EcDocObject o;

	ec_doc_load(&o, v, "index parameters");
	op->tablespace = ec_doc_sql(&o, "tablespace", false);
	if (op->tablespace && strlen(op->tablespace) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("identifier \"%s\" in field \"tablespace\" of index parameters is too long",
						op->tablespace),
				 errdetail("Identifiers are limited to %d bytes.", NAMEDATALEN - 1)));
	op->storage_text = ec_doc_sql(&o, "storage_parameters", false);
	if (op->storage_text)
		op->storage = ec_op_parse_parameters(op->storage_text, "storage parameters");
	op->include = read_names(&o, "include_columns", false);
	ec_doc_finish(&o);
}

static void
not_for_type(CreateConstraintOp *op, const char *field)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("field \"%s\" does not apply to constraint \"%s\" of type \"%s\"", field, op->name,
					constraint_types[op->type])));
}

static void
create_constraint_read(EcOperation *base, EcDocObject *o)
{
	CreateConstraintOp *op = (CreateConstraintOp *) base;
	JsonbValue *sub;
	char	   *type;
	int			i;

	op->table = ec_doc_identifier(o, "table", true);
	op->name = ec_doc_identifier(o, "name", true);
	type = ec_doc_string(o, "type", true, false, NULL);
	for (i = 0; constraint_types[i] != NULL; i++)
	{
		if (strcmp(type, constraint_types[i]) == 0)
			break;
	}
	if (constraint_types[i] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid constraint type \"%s\" for constraint \"%s\"", type, op->name),
				 errhint("The type is one of \"unique\", \"check\", \"foreign_key\" and \"primary_key\".")));
	op->type = (ConstraintType) i;

	/*
	 * The listed columns are the ones duplicated for the new version; a constraint on none would
	 * bind both versions at once, so even a check lists the columns it reads.
	 */
	op->columns = read_names(o, "columns", true);
	op->check = ec_doc_sql(o, "check", op->type == CON_CHECK);
	op->no_inherit = ec_doc_bool(o, "no_inherit", false, NULL);
	if ((sub = ec_doc_get(o, "references")) != NULL)
	{
		if (op->type != CON_FOREIGN_KEY)
			not_for_type(op, "references");
		read_references(op, sub);
	}
	else if (op->type == CON_FOREIGN_KEY)
		ec_doc_missing(o, "references");
	if ((sub = ec_doc_get(o, "index_parameters")) != NULL)
	{
		if (op->type != CON_UNIQUE && op->type != CON_PRIMARY_KEY)
			not_for_type(op, "index_parameters");
		read_index_parameters(op, sub);
	}
	if (op->check && op->type != CON_CHECK)
		not_for_type(op, "check");
	if (op->no_inherit && op->type != CON_CHECK)
		not_for_type(op, "no_inherit");
	op->up = ec_op_read_column_map(o, "up");
	op->down = ec_op_read_column_map(o, "down");
}

static void
create_constraint_touches(EcOperation *base, EcTouches *touches)
{
	CreateConstraintOp *op = (CreateConstraintOp *) base;

	ec_touch(touches, op->table, AccessExclusiveLock, true);
	if (op->references && strcmp(op->references->table, op->table) != 0)
		ec_touch(touches, op->references->table, ShareRowExclusiveLock, false);
}

static bool
name_in(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

/* "up" and "down" map only the constraint's columns. */
static void
check_map(CreateConstraintOp *op, List *map, const char *field)
{
	ListCell   *lc;

	foreach(lc, map)
	{
		EcColumnExpr *entry = lfirst(lc);

		if (!name_in(op->columns, entry->column))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("field \"%s\" of constraint \"%s\" maps column \"%s\", which is not one of its columns",
							field, op->name, entry->column),
					 errhint("\"up\" and \"down\" map only the columns listed in \"columns\".")));
	}
}

static bool
is_the_column(EcColumnExpr *entry, const char *column)
{
	return entry == NULL || entry->expr == NULL || strcmp(entry->expr, column) == 0 ||
		strcmp(entry->expr, quote_identifier(column)) == 0;
}

/* A constraint name the table does not use, nor this migration for it. */
static void
check_name_free(EcTable *table, CreateConstraintOp *op)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	bool		taken;
	ListCell   *lc;

	values[0] = ObjectIdGetDatum(table->relid);
	values[1] = CStringGetTextDatum(op->name);
	taken = ec_spi("SELECT FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND conname = $2::pg_catalog.name",
				   2, types, values, NULL, SPI_OK_SELECT) > 0;
	foreach(lc, table->unique_names)
		taken |= strcmp(lfirst(lc), op->name) == 0;
	taken |= table->primary_key_name && strcmp(table->primary_key_name, op->name) == 0;
	if (taken)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("constraint \"%s\" of table \"%s\" already exists", op->name, op->table)));
	if ((op->type == CON_UNIQUE || op->type == CON_PRIMARY_KEY) &&
		OidIsValid(get_relname_relid(op->name, get_rel_namespace(table->relid))))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", op->name,
						get_namespace_name(get_rel_namespace(table->relid))),
				 errdetail("The constraint's index needs that name.")));
}

static void
check_no_primary_key(EcTable *table, CreateConstraintOp *op)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(table->relid)};
	char	   *existing = table->primary_key_name;

	if (existing == NULL &&
		ec_spi("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'p'",
			   1, types, values, NULL, SPI_OK_SELECT) > 0)
		existing = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (existing)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" already has a primary key", op->table),
				 errdetail("Its primary key is \"%s\"; a table has only one.", existing),
				 errhint("Make constraint \"%s\" \"unique\", or drop the primary key in a \"sql\" "
						 "operation first.", op->name)));
}

/*
 * What follows the column list of the constraint's index: INCLUDE, WITH and the tablespace, as
 * CREATE INDEX (using_index false) or ADD CONSTRAINT (true) spells them.  Checked now, so that the
 * worker's CREATE INDEX does not fail on them later.
 */
static char *
index_options_sql(EcTable *table, CreateConstraintOp *op, bool using_index)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	if (op->include != NIL)
	{
		appendStringInfoString(&buf, " INCLUDE (");
		foreach(lc, op->include)
		{
			EcColumn   *col = ec_model_column(table, lfirst(lc), false);

			if (name_in(op->columns, lfirst(lc)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" of constraint \"%s\" cannot be both a key and an included column",
								(char *) lfirst(lc), op->name)));
			appendStringInfo(&buf, "%s%s", lc == list_head(op->include) ? "" : ", ",
							 quote_identifier(ec_op_attname(table, col->new_attnum)));
		}
		appendStringInfoChar(&buf, ')');
	}
	if (op->storage != NIL)
	{
		IndexAmRoutine *am = GetIndexAmRoutineByAmId(BTREE_AM_OID, false);

		(void) index_reloptions(am->amoptions,
								transformRelOptions((Datum) 0, op->storage, NULL, NULL, false,
													false),
								true);
		appendStringInfoString(&buf, " WITH (");
		foreach(lc, op->storage)
		{
			DefElem    *def = lfirst(lc);

			appendStringInfo(&buf, "%s%s", lc == list_head(op->storage) ? "" : ", ",
							 quote_identifier(def->defname));
			if (def->arg)
				appendStringInfo(&buf, " = %s", quote_literal_cstr(strVal(def->arg)));
		}
		appendStringInfoChar(&buf, ')');
	}
	if (op->tablespace)
	{
		Oid			spcid = get_tablespace_oid(op->tablespace, false);
		Oid			types[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(spcid)};

		/* As CREATE INDEX checks it (the database's own tablespace needs no grant). */
		if (spcid != MyDatabaseTableSpace &&
			ec_spi("SELECT FROM pg_catalog.pg_tablespace WHERE oid = $1"
				   "   AND NOT pg_catalog.has_tablespace_privilege(oid, 'CREATE')",
				   1, types, values, NULL, SPI_OK_SELECT) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for tablespace %s", op->tablespace)));
		appendStringInfo(&buf, "%s %s", using_index ? " USING INDEX TABLESPACE" : " TABLESPACE",
						 quote_identifier(op->tablespace));
	}
	return buf.data;
}

static char *
column_list_sql(EcTable *table, List *columns)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, columns)
		appendStringInfo(&buf, "%s%s", lc == list_head(columns) ? "" : ", ",
						 quote_identifier(ec_op_attname(table,
														ec_model_column(table, lfirst(lc),
																		false)->new_attnum)));
	return buf.data;
}

static void
add_check(EcStartContext *cxt, EcTable *table, CreateConstraintOp *op)
{
	Node	   *expr;
	char	   *sql = ec_op_analyze(table, true, op->check,
									psprintf("check constraint \"%s\"", op->name), InvalidOid, -1,
									true, &expr);
	Bitmapset  *attrs = NULL;
	bool		reads_own = false;
	ListCell   *lc;

	/*
	 * A check that reads none of the constraint's (new-version) columns would bind the old
	 * version's writes as well; and the columns' drop at rollback takes it away with them.
	 */
	pull_varattnos(expr, 1, &attrs);
	foreach(lc, op->columns)
	{
		EcColumn   *col = ec_model_column(table, lfirst(lc), false);

		reads_own |= bms_is_member(col->new_attnum - FirstLowInvalidHeapAttributeNumber, attrs);
	}
	if (!reads_own)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check constraint \"%s\" reads none of its columns", op->name),
				 errdetail("Only the columns in \"columns\" get a new version; a check on the others "
						   "would bind the old version too."),
				 errhint("List the columns the check reads in \"columns\".")));
	ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)%s%s", ec_op_table_sql(table),
					 quote_identifier(op->name), sql, op->no_inherit ? " NO INHERIT" : "",
					 table->created ? "" : " NOT VALID"));
	if (!table->created)
		table->validate = lappend(table->validate, pstrdup(op->name));
}

static void
add_foreign_key(EcStartContext *cxt, EcTable *table, CreateConstraintOp *op)
{
	EcForeignKeyDef *fk = op->references;
	EcTable    *ref = ec_model_table(cxt->model, fk->table, false);
	StringInfoData sql;

	ec_op_refuse_on_partitioned(table, true, op->name);
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s)"
					 " MATCH %s ON DELETE %s", ec_op_table_sql(table), quote_identifier(op->name),
					 column_list_sql(table, op->columns), ec_op_table_sql(ref),
					 column_list_sql(ref, fk->columns), fk->match_type, fk->on_delete);
	if (op->set_columns != NIL)
	{
		ListCell   *lc;

		foreach(lc, op->set_columns)
		{
			if (!name_in(op->columns, lfirst(lc)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" in \"on_delete_set_columns\" is not a column of foreign key \"%s\"",
								(char *) lfirst(lc), op->name)));
		}
		appendStringInfo(&sql, " (%s)", column_list_sql(table, op->set_columns));
	}
	appendStringInfo(&sql, " ON UPDATE %s%s", fk->on_update, table->created ? "" : " NOT VALID");
	ec_exec(sql.data);
	if (!table->created)
		table->validate = lappend(table->validate, pstrdup(op->name));
}

static void
add_unique(EcStartContext *cxt, EcTable *table, CreateConstraintOp *op)
{
	bool		pk = op->type == CON_PRIMARY_KEY;
	List	   *attnums = NIL;
	ListCell   *lc;

	/* A table new in this migration is the new version's alone: its index is built now. */
	if (table->created)
	{
		ec_exec(psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s (%s)%s", ec_op_table_sql(table),
						 quote_identifier(op->name), pk ? "PRIMARY KEY" : "UNIQUE",
						 column_list_sql(table, op->columns), index_options_sql(table, op, true)));
		return;
	}
	foreach(lc, op->columns)
		attnums = lappend_int(attnums, ec_model_column(table, lfirst(lc), false)->new_attnum);
	ec_op_queue_unique_index(cxt, table, attnums, op->name, index_options_sql(table, op, false), pk);
}

static void
create_constraint_start(EcStartContext *cxt, EcOperation *base)
{
	CreateConstraintOp *op = (CreateConstraintOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	bool		index = op->type == CON_UNIQUE || op->type == CON_PRIMARY_KEY;
	List	   *rebuilt = NIL;
	ListCell   *lc;

	ec_op_require_owner(table);
	check_name_free(table, op);
	check_map(op, op->up, "up");
	check_map(op, op->down, "down");
	if (op->type == CON_PRIMARY_KEY)
		check_no_primary_key(table, op);
	foreach(lc, op->columns)
	{
		EcColumn   *col = ec_model_column(table, lfirst(lc), false);

		if (index)
		{
			Oid			typid = get_atttype(table->relid, col->new_attnum);

			/* Found now rather than by the worker's CREATE INDEX. */
			if (!OidIsValid(GetDefaultOpClass(typid, BTREE_AM_OID)))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("data type %s has no default operator class for access method \"btree\"",
								format_type_be(typid)),
						 errdetail("Column \"%s\" of constraint \"%s\" needs one for its unique index.",
								   (char *) lfirst(lc), op->name)));
		}
	}
	if (op->type == CON_FOREIGN_KEY)
	{
		EcForeignKeyDef *fk = op->references;
		EcTable    *ref = ec_model_table(cxt->model, fk->table, false);
		const char *writes = NULL;

		foreach(lc, fk->columns)
			(void) ec_model_column(ref, lfirst(lc), false);

		/*
		 * An action that updates the referencing rows runs as the session's version: for a
		 * session on the old version the dual-write trigger would recompute the new columns from
		 * "up" and undo it, leaving rows that break the constraint.  DELETE (CASCADE) is safe.
		 */
		if (strcmp(fk->on_delete, "SET NULL") == 0 || strcmp(fk->on_delete, "SET DEFAULT") == 0)
			writes = psprintf("ON DELETE %s", fk->on_delete);
		else if (strcmp(fk->on_update, "CASCADE") == 0 || strcmp(fk->on_update, "SET NULL") == 0 ||
				 strcmp(fk->on_update, "SET DEFAULT") == 0)
			writes = psprintf("ON UPDATE %s", fk->on_update);
		if (writes && !table->created)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("foreign key \"%s\" with %s cannot be created on existing table \"%s\"",
							op->name, writes, op->table),
					 errdetail("The action writes the new version's columns of the referencing rows, "
							   "and the dual-write trigger would undo that for sessions on the old "
							   "version, leaving rows that break the constraint."),
					 errhint("Create it with NO ACTION, RESTRICT or ON DELETE CASCADE, and change the "
							 "action in a \"sql\" operation after completing.")));
	}
	if (index)
		(void) index_options_sql(table, op, false);

	/* Duplicate every column first: a "down" may read another one's new version. */
	foreach(lc, op->columns)
	{
		char	   *name = lfirst(lc);
		EcColumn   *col = ec_model_column(table, name, false);
		EcColumnRebuild how = {0};

		if (table->created || (col->created && !ec_op_column_rebuilt(col)))
		{
			if (!is_the_column(ec_op_column_expr(op->up, name), name) ||
				!is_the_column(ec_op_column_expr(op->down, name), name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"up\" and \"down\" of column \"%s\" can only be the column itself",
								name),
						 errdetail("The column is new in this migration: only the new version has it, "
								   "and the operation that made it fills it.")));
			continue;
		}
		if (col->old_attnum == 0 || (col->moves_data && !ec_op_column_rebuilt(col)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of table \"%s\" is already changed by an earlier operation "
							"of this migration", name, op->table)));
		how.not_null = op->type == CON_PRIMARY_KEY;
		ec_op_rebuild_column(cxt, table, col, name, &how);
		rebuilt = lappend(rebuilt, col);
	}
	foreach(lc, rebuilt)
	{
		EcColumn   *col = lfirst(lc);
		EcColumnExpr *up = ec_op_column_expr(op->up, col->new_name);
		EcColumnExpr *down = ec_op_column_expr(op->down, col->new_name);

		ec_op_rebuild_expressions(table, col, up ? up->expr : NULL, down ? down->expr : NULL);
	}

	switch (op->type)
	{
		case CON_CHECK:
			add_check(cxt, table, op);
			break;
		case CON_FOREIGN_KEY:
			add_foreign_key(cxt, table, op);
			break;
		case CON_PRIMARY_KEY:
			/* Columns new in this migration that may hold NULL: NOT NULL by complete. */
			if (!table->created)
			{
				foreach(lc, op->columns)
					ec_op_new_column_not_null(cxt, table,
											  ec_model_column(table, lfirst(lc), false));
			}
			add_unique(cxt, table, op);
			break;
		case CON_UNIQUE:
			add_unique(cxt, table, op);
			break;
	}
}

const EcOpRoutine ec_op_create_constraint = {
	.name = "create_constraint",
	.size = sizeof(CreateConstraintOp),
	.read = create_constraint_read,
	.touches = create_constraint_touches,
	.start = create_constraint_start,
};
