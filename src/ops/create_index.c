/*
 * ops/create_index.c
 *	  create_index: an index on columns of the new version, built by the background worker with
 *	  CREATE INDEX CONCURRENTLY so that no write of either version waits for it; on a table that the
 *	  same migration creates, built at once (nobody else can see that table yet).
 *
 * ec_start checks everything about the index against the catalogs, as CREATE INDEX itself would
 * (method, operator classes and their parameters, collations, sort options, storage parameters, the
 * predicate), so that the build can only fail on the data: a duplicate for a unique index, a
 * predicate that raises for some row.  The statement the worker runs is built from the analysed
 * pieces, every name quoted and schema-qualified (the worker's search_path is pg_catalog), and no
 * text of the document is pasted into it.
 *
 * When the build runs: a unique index before the table's backfill, like the unique constraints of
 * add_column and alter_column, so that a duplicate fails it at once and a duplicate that "up" would
 * create fails the backfill batch with the row's key; any other index after every backfill and
 * validation of the migration, because an index that exists during the backfill gets an entry for
 * every row the backfill rewrites (its updates touch every row and are rarely HOT), and ends up
 * bloated by them.  The backfill tasks are queued after all operations have run (plan.c), so an
 * index built afterwards takes a sequence number from EC_SEQ_AFTER_BACKFILL on: the worker works
 * through the tasks in seq order.  Either way the index is there when CALL ec_wait() returns.
 *
 * A failed build leaves no INVALID index behind: the task carries a cleanup statement (DROP INDEX
 * CONCURRENTLY) that the worker runs after a failure and before it tries the task again (after
 * ec_resume(), a crash or a stop).  The index name belongs to the migration from ec_start on.
 * Complete has nothing to do (the index is on the physical columns: a helper column's rename at
 * complete carries it along); rollback drops it, under rollback's up-front lock on the table.
 *
 * The index is on the table, so from its build on it serves (and a unique one constrains) writes
 * of both versions, as pgroll's does.  Its columns are resolved when the operation runs: an
 * operation after it that rebuilds one of them (alter_column with a new type, say) cannot see the
 * index, which is not built yet, and complete would drop it with the old column; the operation
 * belongs after the one that changes the column.
 *
 * On a partitioned table (create_partitioned) the partitioned indexes are created at start ON ONLY
 * each partitioned table, the worker builds each leaf's concurrently, under the name CREATE INDEX
 * on the parent would give it, and complete attaches them.
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "operations.h"

/* One element of "columns": pgroll's IndexField. */
typedef struct IndexField
{
	char	   *column;
	char	   *collate;		/* NULL: the column's collation */
	char	   *sort;			/* "ASC", "DESC" or NULL */
	char	   *nulls;			/* "FIRST", "LAST" or NULL */
	char	   *opclass;		/* NULL: the type's default operator class */
	List	   *opclass_params; /* DefElem * */
} IndexField;

typedef struct CreateIndexOp
{
	EcOperation base;
	char	   *table;
	char	   *name;
	List	   *columns;		/* IndexField * */
	char	   *method;
	bool		unique;
	char	   *predicate;		/* NULL: none */
	char	   *storage_source; /* "storage_parameters" as written, for errors */
	List	   *storage;		/* DefElem * */
} CreateIndexOp;

static const char *const methods[] = {"btree", "hash", "gist", "spgist", "gin", "brin", NULL};
static const char *const sorts[] = {"ASC", "DESC", NULL};
static const char *const nulls_orders[] = {"FIRST", "LAST", NULL};

/* ---- reading ---- */

/*
 * A keyword field (any case, as SQL keywords are); absent, null and "" mean none, as in pgroll,
 * where they are Go's zero value.
 */
static char *
keyword(EcDocObject *o, const char *key, const char *const *allowed, const char *allowed_text)
{
	char	   *s = ec_doc_string(o, key, false, true, NULL);

	if (s == NULL || s[0] == '\0')
		return NULL;
	for (int i = 0; allowed[i] != NULL; i++)
	{
		if (pg_strcasecmp(s, allowed[i]) == 0)
			return pstrdup(allowed[i]);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value \"%s\" for field \"%s\" in %s", s, key, o->what),
			 errhint("Use %s.", allowed_text)));
	return NULL;				/* keep compiler quiet */
}

static IndexField *
read_index_field(JsonbValue *v, int position)
{
	EcDocObject f;
	IndexField *field = palloc0(sizeof(IndexField));
	JsonbValue *sub;
	char	   *what = psprintf("index field %d", position);

	ec_doc_load(&f, v, what);
	field->column = ec_doc_identifier(&f, "column", true);
	field->collate = ec_doc_string(&f, "collate", false, true, NULL);
	if (field->collate && field->collate[0] == '\0')
		field->collate = NULL;
	field->sort = keyword(&f, "sort", sorts, "\"ASC\" or \"DESC\"");
	field->nulls = keyword(&f, "nulls", nulls_orders, "\"FIRST\" or \"LAST\"");
	if ((sub = ec_doc_get(&f, "opclass")) != NULL && sub->type != jbvNull)
	{
		EcDocObject oc;
		ListCell   *lc;

		ec_doc_load(&oc, sub, psprintf("operator class of index field %d", position));
		field->opclass = ec_doc_string(&oc, "name", false, false, NULL);
		if (field->opclass && field->opclass[0] == '\0')
			field->opclass = NULL;
		foreach(lc, ec_doc_array(&oc, "params", false, "an array of strings"))
		{
			JsonbValue *p = lfirst(lc);

			if (p->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"params\" in %s must be an array of strings", oc.what)));
			field->opclass_params =
				list_concat(field->opclass_params,
							ec_op_parse_parameters(pnstrdup(p->val.string.val, p->val.string.len),
											 "operator class parameters"));
		}
		if (field->opclass == NULL && field->opclass_params != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("operator class parameters of index field %d need an operator class "
							"\"name\"", position)));
		ec_doc_finish(&oc);
	}
	ec_doc_finish(&f);
	return field;
}

static void
create_index_read(EcOperation *base, EcDocObject *o)
{
	CreateIndexOp *op = (CreateIndexOp *) base;
	JsonbValue *columns;
	ListCell   *lc;
	int			position = 0;
	const char *old_format_hint =
		"Write each column as an object, [{\"column\": \"name\"}, ...]; a list of column names, or "
		"a map of column names to settings, is an older pgroll format that \"pgroll update\" "
		"converts.";

	op->table = ec_doc_identifier(o, "table", true);
	op->name = ec_doc_identifier(o, "name", true);

	/* pgroll reads "columns" as an array of IndexField objects and nothing else. */
	if ((columns = ec_doc_get(o, "columns")) == NULL)
		ec_doc_missing(o, "columns");
	if (columns->type == jbvBinary && JsonContainerIsObject(columns->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field \"columns\" in %s must be an array of objects", o->what),
				 errhint("%s", old_format_hint)));
	foreach(lc, ec_doc_array(o, "columns", true, "an array of objects"))
	{
		JsonbValue *elem = lfirst(lc);

		position++;
		if (elem->type == jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("element %d of field \"columns\" in %s must be an object", position,
							o->what),
					 errhint("%s", old_format_hint)));
		op->columns = lappend(op->columns, read_index_field(elem, position));
	}
	if (op->columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("index \"%s\" must have at least one column", op->name)));

	op->method = keyword(o, "method", methods,
						 "\"btree\", \"hash\", \"gist\", \"spgist\", \"gin\" or \"brin\"");
	if (op->method == NULL)
		op->method = "btree";
	op->unique = ec_doc_bool(o, "unique", false, NULL);
	op->predicate = ec_doc_sql(o, "predicate", false);
	op->storage_source = ec_doc_string(o, "storage_parameters", false, false, NULL);
	if (op->storage_source && op->storage_source[0] != '\0')
		op->storage = ec_op_parse_parameters(op->storage_source, "storage parameters");
}

/* ---- start ---- */

/* Only the table's owner may index it; the build itself needs no lock at start. */
static void
create_index_touches(EcOperation *base, EcTouches *touches)
{
	ec_touch(touches, ((CreateIndexOp *) base)->table, AccessShareLock, true);
}

static char *
cleanup_sql(const char *schema, const char *name)
{
	return psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", ec_qualified(schema, name));
}

/*
 * Index names share the schema's namespace with every relation; besides the relations there now,
 * this migration may already have claimed the name for an index it builds later or for a unique
 * constraint it attaches at complete.
 */
static void
check_name_free(EcStartContext *cxt, const char *name)
{
	EcModel    *model = cxt->model;
	ListCell   *lc;

	if (OidIsValid(get_relname_relid(name, model->nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", name, model->schema),
				 errdetail("Indexes share their schema's namespace with tables, views, sequences "
						   "and other indexes.")));
	foreach(lc, model->tables)
	{
		EcTable    *table = lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, list_concat_copy(table->unique_indexes, table->unique_names))
		{
			if (strcmp(lfirst(lc2), name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_TABLE),
						 errmsg("relation \"%s\" already exists in schema \"%s\"", name,
								model->schema),
						 errdetail("A unique constraint of this migration takes that name.")));
		}
	}
	if (ec_task_with_cleanup_exists(cxt->migration_id, cleanup_sql(model->schema, name)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", name, model->schema),
				 errdetail("An earlier \"create_index\" operation of this migration builds an index "
						   "of that name.")));
}

/*
 * Validates an operator class's parameters as CREATE INDEX does once it has built the index's
 * catalog entry: through the operator family's options support function, which declares them.
 */
static void
check_opclass_options(IndexAmRoutine *am, Oid opclassid, const char *opclass, List *params)
{
	Oid			intype = get_opclass_input_type(opclassid);
	Oid			procid = InvalidOid;
	local_relopts relopts;

	if (am->amoptsprocnum != 0)
		procid = get_opfamily_proc(get_opclass_family(opclassid), intype, intype,
								   am->amoptsprocnum);
	if (!OidIsValid(procid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operator class \"%s\" has no options", opclass)));
	init_local_reloptions(&relopts, 0);
	(void) OidFunctionCall1(procid, PointerGetDatum(&relopts));
	(void) build_local_reloptions(&relopts,
								  transformRelOptions((Datum) 0, params, NULL, NULL, false, false),
								  true);
}

/* One index element: the column (physical name), collation, operator class, ordering. */
static void
append_element(StringInfo buf, EcTable *table, IndexField *field, const char *method, Oid amoid,
			   IndexAmRoutine *am)
{
	EcColumn   *col = ec_model_column(table, field->column, false);
	Oid			typid,
				collid;
	int32		typmod;
	Oid			opclassid;

	if (col->new_attnum == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist", field->column,
						table->new_name)));
	get_atttypetypmodcoll(table->relid, col->new_attnum, &typid, &typmod, &collid);
	appendStringInfoString(buf, quote_identifier(ec_op_attname(table, col->new_attnum)));

	if (field->collate)
	{
		collid = get_collation_oid(stringToQualifiedNameList(field->collate), false);
		if (!type_is_collatable(typid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("collations are not supported by type %s", format_type_be(typid)),
					 errdetail("Index field \"%s\" has \"collate\".", field->column)));
		appendStringInfo(buf, " COLLATE %s", ec_op_qualified_collation(collid));
	}

	/* Also for the default: a type without one for this method is an error now, not in the worker. */
	opclassid = ResolveOpClass(field->opclass ? stringToQualifiedNameList(field->opclass) : NIL,
							   typid, method, amoid);
	if (field->opclass)
	{
		appendStringInfo(buf, " %s", ec_op_qualified_opclass(opclassid, NULL, NULL));
		if (field->opclass_params != NIL)
		{
			check_opclass_options(am, opclassid, field->opclass, field->opclass_params);
			appendStringInfo(buf, " (%s)", ec_op_parameters_sql(field->opclass_params));
		}
	}

	if (!am->amcanorder && field->sort)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support ASC/DESC options", method),
				 errdetail("Index field \"%s\" has \"sort\".", field->column)));
	if (!am->amcanorder && field->nulls)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support NULLS FIRST/LAST options", method),
				 errdetail("Index field \"%s\" has \"nulls\".", field->column)));
	if (field->sort)
		appendStringInfo(buf, " %s", field->sort);
	if (field->nulls)
		appendStringInfo(buf, " NULLS %s", field->nulls);
}

/*
 * The predicate, over the new version's column names, analysed as a check constraint is (no
 * subqueries, aggregates, window or set-returning functions), then as CREATE INDEX requires
 * (immutable), and deparsed over the physical column names.
 */
static char *
predicate_sql(EcTable *table, const char *index, const char *source)
{
	Node	   *expr;
	char	   *sql = ec_op_analyze(table, true, source, psprintf("predicate of index \"%s\"", index),
									InvalidOid, -1, true, &expr);

	if (contain_mutable_functions((Node *) expression_planner((Expr *) expr)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("functions in index predicate must be marked IMMUTABLE"),
				 errdetail("The predicate of index \"%s\" is: %s", index, source)));
	return sql;
}

/* Queues the build of name (schema-qualified by schema) by sql, with its cleanup. */
static void
queue_build(EcStartContext *cxt, Oid relid, const char *schema, const char *name, const char *sql,
			bool unique)
{
	int			seq = ++cxt->ntasks;

	if (!unique)
		seq += EC_SEQ_AFTER_BACKFILL;
	ec_add_task(cxt->migration_id, seq, "sql", relid, NIL, sql);
	ec_set_task_cleanup(cxt->migration_id, seq, cleanup_sql(schema, name));
}

/*
 * The name of a partition's index, as CREATE INDEX on the partitioned table would choose it
 * (<partition>_<columns>_idx, numbered if taken), and free of the names that earlier operations
 * of this migration claimed for indexes the worker has yet to build.
 */
static char *
partition_index_name(EcStartContext *cxt, Oid relid, CreateIndexOp *op)
{
	Oid			nspid = get_rel_namespace(relid);
	char	   *schema = get_namespace_name(nspid);
	StringInfoData columns;
	ListCell   *lc;

	initStringInfo(&columns);
	foreach(lc, op->columns)
		appendStringInfo(&columns, "%s%s", columns.len ? "_" : "",
						 ((IndexField *) lfirst(lc))->column);
	for (int pass = 0;; pass++)
	{
		char		label[NAMEDATALEN];
		char	   *name;

		if (pass == 0)
			strlcpy(label, "idx", sizeof(label));
		else
			snprintf(label, sizeof(label), "idx%d", pass);
		name = makeObjectName(get_rel_name(relid), columns.data, label);
		if (OidIsValid(get_relname_relid(name, nspid)))
			continue;
		if (!ec_task_with_cleanup_exists(cxt->migration_id, cleanup_sql(schema, name)))
			return name;
	}
}

/*
 * On a partitioned table, where CREATE INDEX CONCURRENTLY cannot run: the partitioned index is
 * created now ON ONLY the table, and ON ONLY each partitioned table below it, attached to each
 * other (a catalog change; INVALID, so the planner ignores them), and the worker builds each leaf
 * partition's index concurrently (a task per leaf, each with its cleanup); complete attaches them
 * (ALTER INDEX ... ATTACH PARTITION, under its locks on every partition), which makes the
 * partitioned index valid.  Until then each leaf's index serves its leaf, and a unique one
 * constrains it; PostgreSQL refuses here a unique index without the partition key.
 */
static void
create_partitioned(EcStartContext *cxt, EcTable *table, CreateIndexOp *op, const char *body)
{
	const char *create = op->unique ? "CREATE UNIQUE INDEX" : "CREATE INDEX";
	List	   *hierarchy = find_all_inheritors(table->relid, NoLock, NULL);
	List	   *names = NIL;	/* qualified index name per member of hierarchy */
	ListCell   *lc;

	foreach(lc, hierarchy)
	{
		Oid			relid = lfirst_oid(lc);
		char	   *schema = get_namespace_name(get_rel_namespace(relid));
		char	   *name = relid == table->relid ? pstrdup(op->name) :
			partition_index_name(cxt, relid, op);
		char	   *qualified = ec_qualified(schema, name);
		char	   *parent = NULL;

		if (relid != table->relid)
		{
			Oid			parent_relid = get_partition_parent(relid, false);
			ListCell   *lc2;
			ListCell   *lc3;

			/* find_all_inheritors lists each partitioned table before its partitions. */
			forboth(lc2, hierarchy, lc3, names)
			{
				if (lfirst_oid(lc2) == parent_relid)
					parent = lfirst(lc3);
			}
		}
		names = lappend(names, qualified);
		if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		{
			ec_exec(psprintf("%s %s ON ONLY %s%s", create, quote_identifier(name),
							 ec_rel_qualified(relid), body));
			if (parent)
				ec_exec(psprintf("ALTER INDEX %s ATTACH PARTITION %s", parent, qualified));
			else
				cxt->rollback_steps = lappend(cxt->rollback_steps,
											  psprintf("DROP INDEX IF EXISTS %s", qualified));
		}
		else
		{
			queue_build(cxt, relid, schema, name,
						psprintf("%s CONCURRENTLY %s ON %s%s", create, quote_identifier(name),
								 ec_rel_qualified(relid), body),
						op->unique);
			cxt->rollback_steps = lappend(cxt->rollback_steps,
										  psprintf("DROP INDEX IF EXISTS %s", qualified));
			table->after_drop_steps =
				lappend(table->after_drop_steps,
						psprintf("ALTER INDEX %s ATTACH PARTITION %s", parent, qualified));
		}
	}
	/* Rollback's DROP INDEX and complete's ATTACH need the table locked up front, with retries. */
	table->changed = true;
}

static void
create_index_start(EcStartContext *cxt, EcOperation *base)
{
	CreateIndexOp *op = (CreateIndexOp *) base;
	EcTable    *table = ec_model_table(cxt->model, op->table, false);
	const char *schema = cxt->model->schema;
	Oid			amoid;
	IndexAmRoutine *am;
	StringInfoData elements;
	StringInfoData tail;
	ListCell   *lc;
	char	   *build;
	int			seq;

	ec_op_require_owner(table);
	check_name_free(cxt, op->name);

	amoid = get_index_am_oid(op->method, false);
	am = GetIndexAmRoutineByAmId(amoid, false);
	if (op->unique && !am->amcanunique)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support unique indexes", op->method)));
	if (list_length(op->columns) > 1 && !am->amcanmulticol)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("access method \"%s\" does not support multicolumn indexes", op->method)));
	if (list_length(op->columns) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("cannot use more than %d columns in an index", INDEX_MAX_KEYS)));

	initStringInfo(&elements);
	foreach(lc, op->columns)
	{
		if (lc != list_head(op->columns))
			appendStringInfoString(&elements, ", ");
		append_element(&elements, table, lfirst(lc), op->method, amoid, am);
	}

	initStringInfo(&tail);
	if (op->storage != NIL)
	{
		/* Checked as CREATE INDEX checks them: by the method's own reloptions parser. */
		(void) index_reloptions(am->amoptions,
								transformRelOptions((Datum) 0, op->storage, NULL, NULL, false,
													false),
								true);
		appendStringInfo(&tail, " WITH (%s)", ec_op_parameters_sql(op->storage));
	}
	if (op->predicate)
		appendStringInfo(&tail, " WHERE %s", predicate_sql(table, op->name, op->predicate));

	if (!table->created && get_rel_relkind(table->relid) == RELKIND_PARTITIONED_TABLE)
	{
		create_partitioned(cxt, table, op, psprintf(" USING %s (%s)%s", quote_identifier(op->method),
													elements.data, tail.data));
		return;
	}

	build = psprintf("CREATE %sINDEX %s%s ON %s USING %s (%s)%s", op->unique ? "UNIQUE " : "",
					 table->created ? "" : "CONCURRENTLY ", quote_identifier(op->name),
					 ec_op_table_sql(table), quote_identifier(op->method), elements.data, tail.data);

	/* A table of this migration is seen by nobody else until it commits; its DROP takes the index. */
	if (table->created)
	{
		ec_exec(build);
		return;
	}

	seq = ++cxt->ntasks;
	if (!op->unique)
		seq += EC_SEQ_AFTER_BACKFILL;
	ec_add_task(cxt->migration_id, seq, "sql", table->relid, NIL, build);
	ec_set_task_cleanup(cxt->migration_id, seq, cleanup_sql(schema, op->name));
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP INDEX IF EXISTS %s", ec_qualified(schema, op->name)));
	/* Rollback's DROP INDEX needs the table locked up front, with retries. */
	table->changed = true;
}

const EcOpRoutine ec_op_create_index = {
	.name = "create_index",
	.size = sizeof(CreateIndexOp),
	.read = create_index_read,
	.touches = create_index_touches,
	.start = create_index_start,
};
