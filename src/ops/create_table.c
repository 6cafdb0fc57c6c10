/*
 * ops/create_table.c
 *	  create_table: a new table, in the new version only until complete.
 *
 * The table gets its name at once, unless a table that this migration drops or renames away still
 * holds it: that one serves the old version until complete, so the new one is created as
 * _ec_new_<name> and complete renames it after dropping or renaming the other (plan.c drops tables
 * before it renames any, and renames them in the model's order, where the new table comes last).
 * Its indexes and sequences that PostgreSQL names after the table get the names they would have
 * had under the final name; one that a dropped table still holds is taken under a temporary name
 * too and renamed at complete.
 *
 * Stored generated columns: PostgreSQL analyses a generation expression against the table it is
 * part of, so the expression is analysed against a scratch table of the same columns (created and
 * dropped here, in ec_start's transaction), and the CREATE TABLE gets ruleutils' deparse of it,
 * never the document's text.
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "operations.h"

typedef struct CreateTableOp
{
	EcOperation base;
	char	   *name;
	List	   *columns;		/* EcColumnDef * */
	List	   *constraints;	/* EcConstraintDef * */
	bool		has_comment;
	char	   *comment;
} CreateTableOp;

static void
create_table_read(EcOperation *base, EcDocObject *o)
{
	CreateTableOp *op = (CreateTableOp *) base;
	ListCell   *lc;
	bool		pk_column = false;

	op->name = ec_doc_identifier(o, "name", true);
	foreach(lc, ec_doc_array(o, "columns", true, "an array"))
	{
		EcColumnDef *c = ec_doc_column(lfirst(lc));

		pk_column |= c->pk;
		op->columns = lappend(op->columns, c);
	}
	if (op->columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table \"%s\" must have at least one column", op->name)));
	foreach(lc, ec_doc_array(o, "constraints", false, "an array"))
	{
		EcConstraintDef *c = ec_doc_constraint(lfirst(lc));

		if (pk_column && strcmp(c->type, "primary_key") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("primary key of table \"%s\" is set twice", op->name),
					 errdetail("Constraint \"%s\" is a primary key, and so are the columns marked "
							   "\"pk\".", c->name),
					 errhint("Set it either with \"pk\" on columns or with a \"primary_key\" "
							 "constraint.")));
		op->constraints = lappend(op->constraints, c);
	}
	op->comment = ec_doc_string(o, "comment", false, false, &op->has_comment);
}

/* Only the tables its foreign keys reference: ADD FOREIGN KEY locks them SHARE ROW EXCLUSIVE. */
static void
create_table_touches(EcOperation *base, EcTouches *touches)
{
	CreateTableOp *op = (CreateTableOp *) base;
	ListCell   *lc;

	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if (c->references && strcmp(c->references->table, op->name) != 0)
			ec_touch(touches, c->references->table, ShareRowExclusiveLock, false);
	}
	foreach(lc, op->constraints)
	{
		EcConstraintDef *c = lfirst(lc);

		if (c->references && strcmp(c->references->table, op->name) != 0)
			ec_touch(touches, c->references->table, ShareRowExclusiveLock, false);
	}
}

/* The table being created: where, and under which name until complete. */
typedef struct NewTable
{
	EcStartContext *cxt;
	CreateTableOp *op;
	char	   *physical;		/* its name until complete */
	Oid		   *typids;			/* per column of op */
	int32	   *typmods;
	char	  **types_sql;
} NewTable;

/*
 * Will complete drop the relation?  So it does with a table the migration drops, and with the
 * indexes and owned sequences of one.
 */
static bool
freed_at_complete(EcModel *model, Oid relid)
{
	char		relkind = get_rel_relkind(relid);
	Oid			owner = relid;
	ListCell   *lc;

	if (relkind == RELKIND_INDEX || relkind == RELKIND_PARTITIONED_INDEX)
		owner = IndexGetRelation(relid, false);
	else if (relkind == RELKIND_SEQUENCE)
	{
		int32		attnum;

		if (!sequenceIsOwned(relid, DEPENDENCY_AUTO, &owner, &attnum) &&
			!sequenceIsOwned(relid, DEPENDENCY_INTERNAL, &owner, &attnum))
			return false;
	}
	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);

		if (table->relid == owner)
			return table->new_name == NULL;
	}
	return false;
}

/* Has an earlier rename at complete (ours, or a "sql" operation's) taken the name already? */
static bool
claimed_at_complete(EcStartContext *cxt, const char *name)
{
	char	   *suffix = psprintf(" RENAME TO %s", quote_identifier(name));
	size_t		len = strlen(suffix);
	ListCell   *lc;

	foreach(lc, cxt->complete_tail)
	{
		const char *step = lfirst(lc);
		size_t		steplen = strlen(step);

		if (steplen >= len && strcmp(step + steplen - len, suffix) == 0)
			return true;
	}
	return false;
}

static bool
name_free(EcStartContext *cxt, const char *name, Oid self)
{
	Oid			holder = get_relname_relid(name, cxt->model->nspid);

	return (!OidIsValid(holder) || holder == self) && !claimed_at_complete(cxt, name);
}

/* Does the document give one of the table's constraints this name? */
static bool
named_in_document(NewTable *nt, const char *name)
{
	ListCell   *lc;

	foreach(lc, nt->op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if ((c->check && c->check->name && strcmp(c->check->name, name) == 0) ||
			(c->references && c->references->name && strcmp(c->references->name, name) == 0))
			return true;
	}
	foreach(lc, nt->op->constraints)
	{
		EcConstraintDef *c = lfirst(lc);

		if (c->name && strcmp(c->name, name) == 0)
			return true;
	}
	return false;
}

/*
 * The name to give now to an index (kind "INDEX") or sequence ("SEQUENCE") of the new table that
 * should be called wanted in the end.  self: the relation itself if it exists already.  A name that
 * complete frees (a dropped table's index, say) is taken under a temporary name and renamed at
 * complete, after the drop.  A name in use otherwise is an error for a name the document gives,
 * and numbered, as PostgreSQL would, for one it makes up from name2 and label.
 */
static char *
claim_name(NewTable *nt, const char *wanted, const char *kind, Oid self, bool given,
		   const char *name2, const char *label)
{
	EcStartContext *cxt = nt->cxt;
	Oid			nspid = cxt->model->nspid;
	Oid			holder = get_relname_relid(wanted, nspid);
	char	   *now;

	/* A made-up name that one of the document's own constraints takes: numbered, as PostgreSQL does. */
	if (!given && named_in_document(nt, wanted))
		holder = InvalidOid;
	else if (name_free(cxt, wanted, self))
		return pstrdup(wanted);
	if (OidIsValid(holder) && holder != self && freed_at_complete(cxt->model, holder) &&
		!claimed_at_complete(cxt, wanted))
	{
		now = ec_temp_name(EC_NEW_COLUMN_PREFIX, wanted);
		if (!name_free(cxt, now, self))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists in schema \"%s\"", now,
							cxt->model->schema),
					 errdetail("expand_contract needs that name for \"%s\" of table \"%s\" until "
							   "complete.", wanted, nt->op->name),
					 errhint("Drop or rename the relation left behind, then start the migration "
							 "again.")));
		cxt->complete_tail = lappend(cxt->complete_tail,
									 psprintf("ALTER %s IF EXISTS %s RENAME TO %s", kind,
											  ec_qualified(cxt->model->schema, now),
											  quote_identifier(wanted)));
		return now;
	}
	if (given)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", wanted, cxt->model->schema),
				 errdetail("The index of constraint \"%s\" of table \"%s\" needs that name.", wanted,
						   nt->op->name)));
	/* As ChooseRelationName, also past the names that renames at complete will take. */
	for (int pass = 1;; pass++)
	{
		now = makeObjectName(nt->op->name, name2, psprintf("%s%d", label, pass));
		if (name_free(cxt, now, self) && !ConstraintNameExists(now, nspid) &&
			!named_in_document(nt, now))
			return now;
	}
}

/*
 * The deparsed generation expression of each column of op (NULL where it has none), analysed
 * against a scratch table with the same columns under the same names.
 */
static char **
generation_expressions(NewTable *nt)
{
	CreateTableOp *op = nt->op;
	EcStartContext *cxt = nt->cxt;
	char	  **result = palloc0(sizeof(char *) * list_length(op->columns));
	char	   *shape = ec_temp_name("_ec_shape_", op->name);
	char	   *shape_sql = ec_qualified(cxt->model->schema, shape);
	StringInfoData sql;
	ListCell   *lc;
	bool		any = false;
	Oid			relid;
	int			i;

	foreach(lc, op->columns)
		any |= ((EcColumnDef *) lfirst(lc))->generated_expr != NULL;
	if (!any)
		return result;
	if (OidIsValid(get_relname_relid(shape, cxt->model->nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", shape, cxt->model->schema),
				 errdetail("expand_contract needs that name for a moment, to analyse generation "
						   "expressions."),
				 errhint("Drop or rename the relation left behind, then start the migration again.")));

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (", shape_sql);
	i = 0;
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		/* Plain types only: a serial's sequence, a default or a constraint would be noise here. */
		appendStringInfo(&sql, "%s%s %s", i == 0 ? "" : ", ", quote_identifier(c->name),
						 format_type_extended(nt->typids[i], nt->typmods[i],
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
		i++;
	}
	appendStringInfoChar(&sql, ')');
	ec_exec(sql.data);
	relid = get_relname_relid(shape, cxt->model->nspid);

	i = 0;
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if (c->generated_expr)
		{
			char	   *what = psprintf("generation expression of column \"%s\"", c->name);
			Node	   *expr;

			ec_op_refuse_subquery(c->generated_expr, what, "column generation expression");
			expr = ec_analyze_row_expression(c->generated_expr, what, relid, NULL, 0,
											 nt->typids[i], nt->typmods[i], false);
			result[i] = ec_deparse(expr, relid);
		}
		i++;
	}
	ec_exec(psprintf("DROP TABLE %s", shape_sql));
	return result;
}

/* INCLUDE, WITH and USING INDEX TABLESPACE of a unique, primary key or exclusion constraint. */
static void
append_index_parameters(StringInfo buf, EcTable *table, EcConstraintDef *c)
{
	ListCell   *lc;

	if (c->include_columns != NIL)
	{
		appendStringInfoString(buf, " INCLUDE (");
		foreach(lc, c->include_columns)
		{
			EcColumn   *col = ec_model_column(table, lfirst(lc), false);

			if (lc != list_head(c->include_columns))
				appendStringInfoString(buf, ", ");
			appendStringInfoString(buf, quote_identifier(ec_op_attname(table, col->new_attnum)));
		}
		appendStringInfoChar(buf, ')');
	}
	if (c->storage_parameters)
		appendStringInfo(buf, " WITH (%s)", c->storage_parameters);
	if (c->tablespace)
		appendStringInfo(buf, " USING INDEX TABLESPACE %s", quote_identifier(c->tablespace));
}

static void
add_table_constraint(NewTable *nt, EcTable *table, EcConstraintDef *c)
{
	char	   *tsql = ec_op_table_sql(table);
	StringInfoData csql;
	ListCell   *lc;

	if (strcmp(c->type, "check") == 0)
	{
		EcCheckDef	check = {c->name, c->check, c->no_inherit};

		ec_op_add_check(nt->cxt, table, &check);
		return;
	}
	if (strcmp(c->type, "foreign_key") == 0)
	{
		ec_op_add_foreign_key(nt->cxt, table, c->columns, c->references);
		return;
	}

	initStringInfo(&csql);
	appendStringInfo(&csql, "ALTER TABLE %s ADD CONSTRAINT %s ", tsql,
					 quote_identifier(claim_name(nt, c->name, "INDEX", InvalidOid, true, NULL, NULL)));
	if (strcmp(c->type, "exclude") == 0)
	{
		/* Elements checked by the document reader to be one element list, and nothing else. */
		appendStringInfo(&csql, "EXCLUDE%s%s (%s)", c->index_method ? " USING " : "",
						 c->index_method ? quote_identifier(c->index_method) : "",
						 c->exclude_elements);
		append_index_parameters(&csql, table, c);
		if (c->exclude_predicate)
		{
			Node	   *expr;
			char	   *what = psprintf("predicate of exclusion constraint \"%s\"", c->name);

			ec_op_refuse_subquery(c->exclude_predicate, what, "index predicate");
			appendStringInfo(&csql, " WHERE (%s)",
							 ec_op_analyze(table, true, c->exclude_predicate, what, InvalidOid, -1,
										   true, &expr));
		}
	}
	else
	{
		appendStringInfoString(&csql, strcmp(c->type, "unique") == 0 ? "UNIQUE" : "PRIMARY KEY");
		if (c->nulls_not_distinct)
		{
#if PG_VERSION_NUM >= 150000
			appendStringInfoString(&csql, " NULLS NOT DISTINCT");
#else
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("NULLS NOT DISTINCT requires PostgreSQL 15 or later")));
#endif
		}
		appendStringInfoString(&csql, " (");
		foreach(lc, c->columns)
		{
			EcColumn   *col = ec_model_column(table, lfirst(lc), false);

			if (lc != list_head(c->columns))
				appendStringInfoString(&csql, ", ");
			appendStringInfoString(&csql, quote_identifier(ec_op_attname(table, col->new_attnum)));
		}
		appendStringInfoChar(&csql, ')');
		append_index_parameters(&csql, table, c);
	}
	if (c->deferrable)
		appendStringInfoString(&csql, " DEFERRABLE");
	if (c->initially_deferred)
		appendStringInfoString(&csql, " INITIALLY DEFERRED");
	ec_exec(csql.data);
}

/*
 * Under a temporary table name, PostgreSQL names a serial's sequence after that: rename it to the
 * name it would have had under the final one.
 */
static void
name_serial_sequences(NewTable *nt, Oid relid)
{
	ListCell   *lc;

	foreach(lc, getOwnedSequences(relid))
	{
		Oid			seqid = lfirst_oid(lc);
		Oid			owner;
		int32		attnum;
		char	   *column;
		char	   *current = get_rel_name(seqid);
		char	   *now;

		if (!sequenceIsOwned(seqid, DEPENDENCY_AUTO, &owner, &attnum))
			continue;			/* identity sequences were named by the CREATE TABLE */
		column = get_attname(relid, attnum, false);
		now = claim_name(nt, makeObjectName(nt->op->name, column, "seq"), "SEQUENCE", seqid, false,
						 column, "seq");
		if (strcmp(now, current) != 0)
			ec_exec(psprintf("ALTER SEQUENCE %s RENAME TO %s",
							 ec_qualified(nt->cxt->model->schema, current), quote_identifier(now)));
	}
}

static void
create_table_start(EcStartContext *cxt, EcOperation *base)
{
	CreateTableOp *op = (CreateTableOp *) base;
	EcModel    *model = cxt->model;
	NewTable	nt;
	char	   *qualified;
	char	  **generated;
	StringInfoData sql;
	List	   *pk = NIL;
	ListCell   *lc;
	EcTable    *table;
	bool		temporary = false;
	int			i;

	if (ec_model_table(model, op->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", op->name, model->schema)));
	nt.cxt = cxt;
	nt.op = op;
	nt.physical = op->name;
	if (OidIsValid(get_relname_relid(op->name, model->nspid)))
	{
		EcTable    *holder = ec_model_table_by_physical(model, op->name);
		Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
											CStringGetDatum(op->name),
											ObjectIdGetDatum(model->nspid));

		/* Not a table the new version still calls so (ec_model_table said): dropped or renamed. */
		if (holder == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists in schema \"%s\"", op->name,
							model->schema)));
		if (OidIsValid(typid) && typid != get_rel_type_id(holder->relid))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("type \"%s\" already exists in schema \"%s\"", op->name, model->schema)));
		nt.physical = ec_temp_name(EC_NEW_COLUMN_PREFIX, op->name);
		temporary = true;
		if (OidIsValid(get_relname_relid(nt.physical, model->nspid)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists in schema \"%s\"", nt.physical,
							model->schema),
					 errdetail("Table \"%s\" is still served to the old version, so expand_contract "
							   "creates the new one under that name until complete.", op->name),
					 errhint("Drop or rename the relation left behind, then start the migration "
							 "again.")));
	}
	qualified = ec_qualified(model->schema, nt.physical);

	nt.typids = palloc(sizeof(Oid) * list_length(op->columns));
	nt.typmods = palloc(sizeof(int32) * list_length(op->columns));
	nt.types_sql = palloc(sizeof(char *) * list_length(op->columns));
	i = 0;
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		nt.types_sql[i] = ec_resolve_type(c->type, &nt.typids[i], &nt.typmods[i]);
		if ((c->generated_expr || c->identity) && ec_is_serial(nt.types_sql[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("column \"%s\" of a serial type cannot have \"generated\"", c->name),
					 errhint("Use an integer type with \"identity\".")));
		i++;
	}
	generated = generation_expressions(&nt);

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (", qualified);
	i = 0;
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if (lc != list_head(op->columns))
			appendStringInfoString(&sql, ", ");
		appendStringInfo(&sql, "%s %s", quote_identifier(c->name), nt.types_sql[i]);
		if (!c->nullable || c->pk)
			appendStringInfoString(&sql, " NOT NULL");
		if (c->default_expr)
			appendStringInfo(&sql, " DEFAULT %s",
							 ec_op_default_sql(c->default_expr, c->name, nt.typids[i],
											   nt.typmods[i], NULL));
		if (generated[i])
			appendStringInfo(&sql, " GENERATED ALWAYS AS (%s) STORED", generated[i]);
		if (c->identity)
		{
			char	   *options = c->identity_options;

			if (temporary)
				options = psprintf("SEQUENCE NAME %s%s%s",
								   ec_qualified(model->schema,
												claim_name(&nt, makeObjectName(op->name, c->name, "seq"),
														   "SEQUENCE", InvalidOid, false, c->name,
														   "seq")),
								   options[0] ? " " : "", options);
			appendStringInfo(&sql, " GENERATED %s AS IDENTITY", c->identity_always ? "ALWAYS" :
							 "BY DEFAULT");
			if (options[0])
				appendStringInfo(&sql, " (%s)", options);
		}
		if (c->unique && temporary)
			appendStringInfo(&sql, " CONSTRAINT %s UNIQUE",
							 quote_identifier(claim_name(&nt, makeObjectName(op->name, c->name, "key"),
														 "INDEX", InvalidOid, false, c->name,
														 "key")));
		else if (c->unique)
			appendStringInfoString(&sql, " UNIQUE");
		if (c->pk)
			pk = lappend(pk, (char *) quote_identifier(c->name));
		i++;
	}
	if (pk != NIL)
	{
		appendStringInfoString(&sql, ", ");
		if (temporary)
			appendStringInfo(&sql, "CONSTRAINT %s ",
							 quote_identifier(claim_name(&nt, makeObjectName(op->name, NULL, "pkey"),
														 "INDEX", InvalidOid, false, NULL, "pkey")));
		appendStringInfoString(&sql, "PRIMARY KEY (");
		foreach(lc, pk)
		{
			if (lc != list_head(pk))
				appendStringInfoString(&sql, ", ");
			appendStringInfoString(&sql, (char *) lfirst(lc));
		}
		appendStringInfoChar(&sql, ')');
	}
	appendStringInfoChar(&sql, ')');
	ec_op_run(cxt, sql.data, psprintf("DROP TABLE %s", qualified));

	ec_model_refresh(model);
	table = ec_model_table_by_physical(model, nt.physical);
	table->created = true;
	table->old_name = NULL;
	table->new_name = pstrdup(op->name);
	foreach(lc, table->columns)
		((EcColumn *) lfirst(lc))->old_name = NULL;
	if (temporary)
		name_serial_sequences(&nt, table->relid);

	if (op->has_comment)
		ec_exec(psprintf("COMMENT ON TABLE %s IS %s", qualified, quote_literal_cstr(op->comment)));
	foreach(lc, op->columns)
	{
		EcColumnDef *c = lfirst(lc);

		if (c->check)
			ec_op_add_check(cxt, table, c->check);
		if (c->references)
			ec_op_add_foreign_key(cxt, table, list_make1(c->name), c->references);
		if (c->comment)
			ec_op_comment_on_column(table, ec_model_column(table, c->name, false)->new_attnum, c->comment);
	}
	foreach(lc, op->constraints)
		add_table_constraint(&nt, table, lfirst(lc));
}

const EcOpRoutine ec_op_create_table = {
	.name = "create_table",
	.size = sizeof(CreateTableOp),
	.read = create_table_read,
	.touches = create_table_touches,
	.start = create_table_start,
};
