/*
 * document.c
 *	  Reads a pgroll migration document (jsonb) into EcMigration/EcOperation structs.
 *
 * Field names and defaults are pgroll's (shared/reference/pgroll-migration-schema.json): a column is
 * NOT NULL unless "nullable": true, and so on.  Anything the document holds that we do not understand
 * is an error naming it, never silently ignored: a typo in a migration must not turn into a migration
 * that quietly does less than its author meant.  Nothing here touches the database.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "operations.h"

void
ec_doc_load(EcDocObject *o, JsonbValue *v, const char *what)
{
	JsonbIterator *it;
	JsonbValue	jv;
	JsonbIteratorToken tok;
	int			cap = 8;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what)));

	o->what = what;
	o->n = 0;
	o->keys = palloc(sizeof(char *) * cap);
	o->vals = palloc(sizeof(JsonbValue) * cap);
	o->used = palloc0(sizeof(bool) * cap);

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &jv, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			if (o->n == cap)
			{
				cap *= 2;
				o->keys = repalloc(o->keys, sizeof(char *) * cap);
				o->vals = repalloc(o->vals, sizeof(JsonbValue) * cap);
				o->used = repalloc(o->used, sizeof(bool) * cap);
			}
			o->keys[o->n] = pnstrdup(jv.val.string.val, jv.val.string.len);
			o->used[o->n] = false;
		}
		else if (tok == WJB_VALUE)
			o->vals[o->n++] = jv;
	}
}

JsonbValue *
ec_doc_get(EcDocObject *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
	{
		if (strcmp(o->keys[i], key) == 0)
		{
			o->used[i] = true;
			return &o->vals[i];
		}
	}
	return NULL;
}

/* Rejects every field that no reader asked for. */
void
ec_doc_finish(EcDocObject *o)
{
	for (int i = 0; i < o->n; i++)
	{
		if (!o->used[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown field \"%s\" in %s", o->keys[i], o->what)));
	}
}

void
ec_doc_missing(EcDocObject *o, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("missing field \"%s\" in %s", key, o->what)));
}

static void
wrong_type(EcDocObject *o, const char *key, const char *type)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("field \"%s\" in %s must be %s", key, o->what, type)));
}

/* A string field; NULL when absent (or JSON null when null_ok). */
char *
ec_doc_string(EcDocObject *o, const char *key, bool required, bool null_ok, bool *present)
{
	JsonbValue *v = ec_doc_get(o, key);

	if (present)
		*present = (v != NULL);
	if (v == NULL)
	{
		if (required)
			ec_doc_missing(o, key);
		return NULL;
	}
	if (v->type == jbvNull && null_ok)
		return NULL;
	if (v->type != jbvString)
		wrong_type(o, key, null_ok ? "a string or null" : "a string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An SQL identifier: a non-empty string that fits in NAMEDATALEN without truncation. */
char *
ec_doc_identifier(EcDocObject *o, const char *key, bool required)
{
	char	   *s = ec_doc_string(o, key, required, false, NULL);

	if (s == NULL)
		return NULL;
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("field \"%s\" in %s must not be empty", key, o->what)));
	if (strlen(s) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("identifier \"%s\" in field \"%s\" of %s is too long", s, key, o->what),
				 errdetail("Identifiers are limited to %d bytes.", NAMEDATALEN - 1)));
	return s;
}

/* An expression or SQL text: absent and "" both mean none, as in pgroll. */
char *
ec_doc_sql(EcDocObject *o, const char *key, bool required)
{
	char	   *s = ec_doc_string(o, key, required, false, NULL);

	if (s != NULL && s[0] == '\0')
	{
		if (required)
			ec_doc_missing(o, key);
		return NULL;
	}
	return s;
}

bool
ec_doc_bool(EcDocObject *o, const char *key, bool default_value, bool *present)
{
	JsonbValue *v = ec_doc_get(o, key);

	if (present)
		*present = (v != NULL);
	if (v == NULL)
		return default_value;
	if (v->type != jbvBool)
		wrong_type(o, key, "a boolean");
	return v->val.boolean;
}

/* The elements of an array field, as JsonbValues (objects stay jbvBinary). */
List *
ec_doc_array(EcDocObject *o, const char *key, bool required, const char *type)
{
	JsonbValue *v = ec_doc_get(o, key);
	JsonbIterator *it;
	JsonbValue	jv;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (v == NULL)
	{
		if (required)
			ec_doc_missing(o, key);
		return NIL;
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerIsScalar(v->val.binary.data))
		wrong_type(o, key, type);

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &jv, true)) != WJB_DONE)
	{
		if (tok == WJB_ELEM)
		{
			JsonbValue *copy = palloc(sizeof(JsonbValue));

			*copy = jv;
			result = lappend(result, copy);
		}
	}
	return result;
}

/* An array of identifiers, e.g. the columns of a constraint. */
static List *
jobj_identifier_array(EcDocObject *o, const char *key, bool required)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, ec_doc_array(o, key, required, "an array of strings"))
	{
		JsonbValue *jv = lfirst(lc);
		char	   *s;

		if (jv->type != jbvString)
			wrong_type(o, key, "an array of strings");
		s = pnstrdup(jv->val.string.val, jv->val.string.len);
		if (s[0] == '\0' || strlen(s) >= NAMEDATALEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid identifier \"%s\" in field \"%s\" of %s", s, key, o->what)));
		result = lappend(result, s);
	}
	if (required && result == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field \"%s\" in %s must not be empty", key, o->what)));
	return result;
}

/* Maps a pgroll keyword (any case) to the SQL keyword, or errors listing the allowed ones. */
static char *
keyword_field(EcDocObject *o, const char *key, const char *const *allowed, const char *default_value)
{
	char	   *s = ec_doc_string(o, key, false, false, NULL);

	if (s == NULL)
		return pstrdup(default_value);
	for (int i = 0; allowed[i] != NULL; i++)
	{
		if (pg_strcasecmp(s, allowed[i]) == 0)
			return pstrdup(allowed[i]);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value \"%s\" for field \"%s\" in %s", s, key, o->what)));
	return NULL;				/* keep compiler quiet */
}

static const char *const fk_actions[] = {"NO ACTION", "RESTRICT", "CASCADE", "SET NULL",
"SET DEFAULT", NULL};
static const char *const fk_match_types[] = {"SIMPLE", "FULL", NULL};

EcCheckDef *
ec_doc_check(JsonbValue *v)
{
	EcDocObject o;
	EcCheckDef *c = palloc0(sizeof(EcCheckDef));

	ec_doc_load(&o, v, "check constraint definition");
	c->name = ec_doc_identifier(&o, "name", true);
	c->expr = ec_doc_sql(&o, "constraint", true);
	c->no_inherit = ec_doc_bool(&o, "no_inherit", false, NULL);
	ec_doc_finish(&o);
	return c;
}

static void
read_fk_actions(EcDocObject *o, EcForeignKeyDef *fk)
{
	fk->match_type = keyword_field(o, "match_type", fk_match_types, "SIMPLE");
	fk->on_delete = keyword_field(o, "on_delete", fk_actions, "NO ACTION");
	fk->on_update = keyword_field(o, "on_update", fk_actions, "NO ACTION");
}

/* A column's "references": one referenced column. */
EcForeignKeyDef *
ec_doc_column_fk(JsonbValue *v)
{
	EcDocObject o;
	EcForeignKeyDef *fk = palloc0(sizeof(EcForeignKeyDef));

	ec_doc_load(&o, v, "foreign key reference");
	fk->name = ec_doc_identifier(&o, "name", true);
	fk->table = ec_doc_identifier(&o, "table", true);
	fk->columns = list_make1(ec_doc_identifier(&o, "column", true));
	read_fk_actions(&o, fk);
	fk->deferrable = ec_doc_bool(&o, "deferrable", false, NULL);
	fk->initially_deferred = ec_doc_bool(&o, "initially_deferred", false, NULL);
	ec_doc_finish(&o);
	return fk;
}

/* A table constraint's "references": the constraint carries name, deferrability and columns. */
static EcForeignKeyDef *
read_table_fk(JsonbValue *v)
{
	EcDocObject o;
	EcForeignKeyDef *fk = palloc0(sizeof(EcForeignKeyDef));

	ec_doc_load(&o, v, "foreign key reference");
	fk->table = ec_doc_identifier(&o, "table", true);
	fk->columns = jobj_identifier_array(&o, "columns", true);
	read_fk_actions(&o, fk);
	if (ec_doc_get(&o, "on_delete_set_columns") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("field \"on_delete_set_columns\" is not supported")));
	ec_doc_finish(&o);
	return fk;
}

EcColumnDef *
ec_doc_column(JsonbValue *v)
{
	EcDocObject o;
	JsonbValue *sub;
	EcColumnDef *c = palloc0(sizeof(EcColumnDef));

	ec_doc_load(&o, v, "column definition");
	c->name = ec_doc_identifier(&o, "name", true);
	c->type = ec_doc_sql(&o, "type", true);
	c->pk = ec_doc_bool(&o, "pk", false, NULL);
	c->unique = ec_doc_bool(&o, "unique", false, NULL);
	c->nullable = ec_doc_bool(&o, "nullable", false, NULL);
	c->default_expr = ec_doc_sql(&o, "default", false);
	c->comment = ec_doc_string(&o, "comment", false, false, NULL);
	if ((sub = ec_doc_get(&o, "check")) != NULL)
		c->check = ec_doc_check(sub);
	if ((sub = ec_doc_get(&o, "references")) != NULL)
		c->references = ec_doc_column_fk(sub);
	if (ec_doc_get(&o, "generated") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("generated columns are not supported"),
				 errdetail("Column \"%s\" has field \"generated\".", c->name)));
	ec_doc_finish(&o);
	return c;
}

EcConstraintDef *
ec_doc_constraint(JsonbValue *v)
{
	static const char *const types[] = {"unique", "check", "primary_key", "foreign_key", NULL};
	EcDocObject o;
	JsonbValue *sub;
	EcConstraintDef *c = palloc0(sizeof(EcConstraintDef));

	ec_doc_load(&o, v, "constraint definition");
	c->name = ec_doc_identifier(&o, "name", true);
	c->type = ec_doc_string(&o, "type", true, false, NULL);
	if (strcmp(c->type, "exclude") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("exclusion constraints are not supported"),
				 errdetail("Constraint \"%s\" has type \"exclude\".", c->name)));
	for (int i = 0;; i++)
	{
		if (types[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid constraint type \"%s\" for constraint \"%s\"", c->type, c->name)));
		if (strcmp(c->type, types[i]) == 0)
			break;
	}
	c->columns = jobj_identifier_array(&o, "columns", strcmp(c->type, "check") != 0);
	c->deferrable = ec_doc_bool(&o, "deferrable", false, NULL);
	c->initially_deferred = ec_doc_bool(&o, "initially_deferred", false, NULL);
	c->nulls_not_distinct = ec_doc_bool(&o, "nulls_not_distinct", false, NULL);
	c->no_inherit = ec_doc_bool(&o, "no_inherit", false, NULL);
	c->check = ec_doc_sql(&o, "check", strcmp(c->type, "check") == 0);
	if ((sub = ec_doc_get(&o, "references")) != NULL)
	{
		c->references = read_table_fk(sub);
		c->references->name = c->name;
		c->references->deferrable = c->deferrable;
		c->references->initially_deferred = c->initially_deferred;
	}
	else if (strcmp(c->type, "foreign_key") == 0)
		ec_doc_missing(&o, "references");
	if (ec_doc_get(&o, "exclude") != NULL || ec_doc_get(&o, "index_parameters") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fields \"exclude\" and \"index_parameters\" of constraints are not supported")));
	ec_doc_finish(&o);
	return c;
}

/* pgroll operations that this version does not implement yet: named as such, not as unknown. */
static const char *const unsupported_operations[] = {
	"create_index", "drop_index", "create_constraint", "drop_constraint",
	"drop_multicolumn_constraint", "rename_constraint", "set_replica_identity", NULL
};

static EcOperation *
read_operation(JsonbValue *v, int position)
{
	EcDocObject o;
	EcOperation *op;
	const EcOpRoutine *routine;
	char	   *what = psprintf("operation %d", position);

	ec_doc_load(&o, v, what);
	if (o.n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation %d must have exactly one key, the operation's name", position),
				 errdetail("It has %d keys.", o.n)));

	routine = ec_find_operation(o.keys[0]);
	if (routine != NULL)
	{
		EcDocObject body;

		op = palloc0(routine->size);
		op->routine = routine;
		op->position = position;
		op->kind_name = o.keys[0];
		ec_doc_load(&body, &o.vals[0], psprintf("\"%s\" operation", op->kind_name));
		routine->read(op, &body);
		ec_doc_finish(&body);
		return op;
	}
	for (int i = 0; unsupported_operations[i] != NULL; i++)
	{
		if (strcmp(o.keys[0], unsupported_operations[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("operation \"%s\" is not supported", o.keys[0]),
					 errdetail("Operation %d of the migration uses it.", position),
					 errhint("A \"sql\" operation with \"up\" and \"down\" can do the same.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown operation \"%s\"", o.keys[0]),
			 errdetail("Operation %d of the migration is not a pgroll operation.", position)));
	return NULL;				/* keep compiler quiet */
}

EcMigration *
ec_read_migration(Jsonb *doc)
{
	JsonbValue	root;
	EcDocObject o;
	ListCell   *lc;
	List	   *ops;
	EcMigration *m = palloc0(sizeof(EcMigration));
	int			position = 0;

	root.type = jbvBinary;
	root.val.binary.data = &doc->root;
	root.val.binary.len = VARSIZE(doc) - VARHDRSZ;
	if (JB_ROOT_IS_SCALAR(doc) || !JB_ROOT_IS_OBJECT(doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration must be a JSON object with an \"operations\" array")));

	ec_doc_load(&o, &root, "migration");
	/* pgroll's documents may carry their own name; the name passed to ec_start is the one used. */
	(void) ec_doc_string(&o, "name", false, false, NULL);
	m->version_schema = ec_doc_identifier(&o, "version_schema", false);
	ops = ec_doc_array(&o, "operations", true, "an array");
	ec_doc_finish(&o);

	if (ops == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration has no operations")));

	foreach(lc, ops)
		m->operations = lappend(m->operations, read_operation(lfirst(lc), ++position));
	return m;
}
