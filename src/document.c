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

#include "expand_contract.h"

/* The fields of one JSON object, with a flag per field saying whether the reader asked for it. */
typedef struct JObj
{
	const char *what;			/* "add_column" operation, column definition, ... */
	int			n;
	char	  **keys;
	JsonbValue *vals;
	bool	   *used;
} JObj;

static void
jobj_load(JObj *o, JsonbValue *v, const char *what)
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

static JsonbValue *
jobj_get(JObj *o, const char *key)
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
static void
jobj_finish(JObj *o)
{
	for (int i = 0; i < o->n; i++)
	{
		if (!o->used[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown field \"%s\" in %s", o->keys[i], o->what)));
	}
}

static void
missing_field(JObj *o, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("missing field \"%s\" in %s", key, o->what)));
}

static void
wrong_type(JObj *o, const char *key, const char *type)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("field \"%s\" in %s must be %s", key, o->what, type)));
}

/* A string field; NULL when absent (or JSON null when null_ok). */
static char *
jobj_string(JObj *o, const char *key, bool required, bool null_ok, bool *present)
{
	JsonbValue *v = jobj_get(o, key);

	if (present)
		*present = (v != NULL);
	if (v == NULL)
	{
		if (required)
			missing_field(o, key);
		return NULL;
	}
	if (v->type == jbvNull && null_ok)
		return NULL;
	if (v->type != jbvString)
		wrong_type(o, key, null_ok ? "a string or null" : "a string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An SQL identifier: a non-empty string that fits in NAMEDATALEN without truncation. */
static char *
jobj_identifier(JObj *o, const char *key, bool required)
{
	char	   *s = jobj_string(o, key, required, false, NULL);

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
static char *
jobj_sql(JObj *o, const char *key, bool required)
{
	char	   *s = jobj_string(o, key, required, false, NULL);

	if (s != NULL && s[0] == '\0')
	{
		if (required)
			missing_field(o, key);
		return NULL;
	}
	return s;
}

static bool
jobj_bool(JObj *o, const char *key, bool default_value, bool *present)
{
	JsonbValue *v = jobj_get(o, key);

	if (present)
		*present = (v != NULL);
	if (v == NULL)
		return default_value;
	if (v->type != jbvBool)
		wrong_type(o, key, "a boolean");
	return v->val.boolean;
}

/* The elements of an array field, as JsonbValues (objects stay jbvBinary). */
static List *
jobj_array(JObj *o, const char *key, bool required, const char *type)
{
	JsonbValue *v = jobj_get(o, key);
	JsonbIterator *it;
	JsonbValue	jv;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (v == NULL)
	{
		if (required)
			missing_field(o, key);
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
jobj_identifier_array(JObj *o, const char *key, bool required)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, jobj_array(o, key, required, "an array of strings"))
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
keyword_field(JObj *o, const char *key, const char *const *allowed, const char *default_value)
{
	char	   *s = jobj_string(o, key, false, false, NULL);

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

static EcCheckDef *
read_check(JsonbValue *v)
{
	JObj		o;
	EcCheckDef *c = palloc0(sizeof(EcCheckDef));

	jobj_load(&o, v, "check constraint definition");
	c->name = jobj_identifier(&o, "name", true);
	c->expr = jobj_sql(&o, "constraint", true);
	c->no_inherit = jobj_bool(&o, "no_inherit", false, NULL);
	jobj_finish(&o);
	return c;
}

static void
read_fk_actions(JObj *o, EcForeignKeyDef *fk)
{
	fk->match_type = keyword_field(o, "match_type", fk_match_types, "SIMPLE");
	fk->on_delete = keyword_field(o, "on_delete", fk_actions, "NO ACTION");
	fk->on_update = keyword_field(o, "on_update", fk_actions, "NO ACTION");
}

/* A column's "references": one referenced column. */
static EcForeignKeyDef *
read_column_fk(JsonbValue *v)
{
	JObj		o;
	EcForeignKeyDef *fk = palloc0(sizeof(EcForeignKeyDef));

	jobj_load(&o, v, "foreign key reference");
	fk->name = jobj_identifier(&o, "name", true);
	fk->table = jobj_identifier(&o, "table", true);
	fk->columns = list_make1(jobj_identifier(&o, "column", true));
	read_fk_actions(&o, fk);
	fk->deferrable = jobj_bool(&o, "deferrable", false, NULL);
	fk->initially_deferred = jobj_bool(&o, "initially_deferred", false, NULL);
	jobj_finish(&o);
	return fk;
}

/* A table constraint's "references": the constraint carries name, deferrability and columns. */
static EcForeignKeyDef *
read_table_fk(JsonbValue *v)
{
	JObj		o;
	EcForeignKeyDef *fk = palloc0(sizeof(EcForeignKeyDef));

	jobj_load(&o, v, "foreign key reference");
	fk->table = jobj_identifier(&o, "table", true);
	fk->columns = jobj_identifier_array(&o, "columns", true);
	read_fk_actions(&o, fk);
	if (jobj_get(&o, "on_delete_set_columns") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("field \"on_delete_set_columns\" is not supported")));
	jobj_finish(&o);
	return fk;
}

static EcColumnDef *
read_column(JsonbValue *v)
{
	JObj		o;
	JsonbValue *sub;
	EcColumnDef *c = palloc0(sizeof(EcColumnDef));

	jobj_load(&o, v, "column definition");
	c->name = jobj_identifier(&o, "name", true);
	c->type = jobj_sql(&o, "type", true);
	c->pk = jobj_bool(&o, "pk", false, NULL);
	c->unique = jobj_bool(&o, "unique", false, NULL);
	c->nullable = jobj_bool(&o, "nullable", false, NULL);
	c->default_expr = jobj_sql(&o, "default", false);
	c->comment = jobj_string(&o, "comment", false, false, NULL);
	if ((sub = jobj_get(&o, "check")) != NULL)
		c->check = read_check(sub);
	if ((sub = jobj_get(&o, "references")) != NULL)
		c->references = read_column_fk(sub);
	if (jobj_get(&o, "generated") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("generated columns are not supported"),
				 errdetail("Column \"%s\" has field \"generated\".", c->name)));
	jobj_finish(&o);
	return c;
}

static EcConstraintDef *
read_constraint(JsonbValue *v)
{
	static const char *const types[] = {"unique", "check", "primary_key", "foreign_key", NULL};
	JObj		o;
	JsonbValue *sub;
	EcConstraintDef *c = palloc0(sizeof(EcConstraintDef));

	jobj_load(&o, v, "constraint definition");
	c->name = jobj_identifier(&o, "name", true);
	c->type = jobj_string(&o, "type", true, false, NULL);
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
	c->deferrable = jobj_bool(&o, "deferrable", false, NULL);
	c->initially_deferred = jobj_bool(&o, "initially_deferred", false, NULL);
	c->nulls_not_distinct = jobj_bool(&o, "nulls_not_distinct", false, NULL);
	c->no_inherit = jobj_bool(&o, "no_inherit", false, NULL);
	c->check = jobj_sql(&o, "check", strcmp(c->type, "check") == 0);
	if ((sub = jobj_get(&o, "references")) != NULL)
	{
		c->references = read_table_fk(sub);
		c->references->name = c->name;
		c->references->deferrable = c->deferrable;
		c->references->initially_deferred = c->initially_deferred;
	}
	else if (strcmp(c->type, "foreign_key") == 0)
		missing_field(&o, "references");
	if (jobj_get(&o, "exclude") != NULL || jobj_get(&o, "index_parameters") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fields \"exclude\" and \"index_parameters\" of constraints are not supported")));
	jobj_finish(&o);
	return c;
}

static void
read_operation_body(EcOperation *op, JsonbValue *body)
{
	JObj		o;
	JsonbValue *sub;
	char	   *what = psprintf("\"%s\" operation", op->kind_name);

	jobj_load(&o, body, what);
	switch (op->kind)
	{
		case EC_OP_CREATE_TABLE:
			{
				ListCell   *lc;

				op->name = jobj_identifier(&o, "name", true);
				foreach(lc, jobj_array(&o, "columns", true, "an array"))
					op->columns = lappend(op->columns, read_column(lfirst(lc)));
				if (op->columns == NIL)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("table \"%s\" must have at least one column", op->name)));
				foreach(lc, jobj_array(&o, "constraints", false, "an array"))
					op->constraints = lappend(op->constraints, read_constraint(lfirst(lc)));
				op->comment = jobj_string(&o, "comment", false, false, &op->has_comment);
				break;
			}
		case EC_OP_ADD_COLUMN:
			op->table = jobj_identifier(&o, "table", true);
			if ((sub = jobj_get(&o, "column")) == NULL)
				missing_field(&o, "column");
			op->coldef = read_column(sub);
			op->column = op->coldef->name;
			op->up = jobj_sql(&o, "up", false);
			break;
		case EC_OP_DROP_COLUMN:
			op->table = jobj_identifier(&o, "table", true);
			op->column = jobj_identifier(&o, "column", true);
			op->down = jobj_sql(&o, "down", false);
			break;
		case EC_OP_RENAME_COLUMN:
			op->table = jobj_identifier(&o, "table", true);
			op->from = jobj_identifier(&o, "from", true);
			op->to = jobj_identifier(&o, "to", true);
			break;
		case EC_OP_ALTER_COLUMN:
			op->table = jobj_identifier(&o, "table", true);
			op->column = jobj_identifier(&o, "column", true);
			op->new_name = jobj_identifier(&o, "name", false);
			op->type = jobj_sql(&o, "type", false);
			op->nullable = jobj_bool(&o, "nullable", false, &op->has_nullable);
			op->default_expr = jobj_string(&o, "default", false, true, &op->has_default);
			op->comment = jobj_string(&o, "comment", false, true, &op->has_comment);
			if ((sub = jobj_get(&o, "check")) != NULL)
				op->check = read_check(sub);
			if ((sub = jobj_get(&o, "unique")) != NULL)
			{
				JObj		u;

				jobj_load(&u, sub, "unique constraint definition");
				op->unique_name = jobj_identifier(&u, "name", true);
				jobj_finish(&u);
			}
			if ((sub = jobj_get(&o, "references")) != NULL)
				op->references = read_column_fk(sub);
			op->up = jobj_sql(&o, "up", false);
			op->down = jobj_sql(&o, "down", false);
			if (op->new_name == NULL && op->type == NULL && !op->has_nullable &&
				!op->has_default && !op->has_comment && op->check == NULL &&
				op->unique_name == NULL && op->references == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"alter_column\" operation on column \"%s\" changes nothing", op->column),
						 errhint("Set at least one of \"name\", \"type\", \"nullable\", \"default\", "
								 "\"comment\", \"check\", \"unique\" or \"references\".")));
			break;
		case EC_OP_RENAME_TABLE:
			op->from = jobj_identifier(&o, "from", true);
			op->to = jobj_identifier(&o, "to", true);
			break;
		case EC_OP_DROP_TABLE:
			op->name = jobj_identifier(&o, "name", true);
			break;
		case EC_OP_SQL:
			op->up = jobj_sql(&o, "up", true);
			op->down = jobj_sql(&o, "down", false);
			op->on_complete = jobj_bool(&o, "onComplete", false, NULL);
			if (op->on_complete && op->down != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"sql\" operation cannot have both \"down\" and \"onComplete\"")));
			break;
	}
	jobj_finish(&o);
}

static const struct
{
	const char *name;
	EcOpKind	kind;
}			known_operations[] =
{
	{"create_table", EC_OP_CREATE_TABLE},
	{"add_column", EC_OP_ADD_COLUMN},
	{"drop_column", EC_OP_DROP_COLUMN},
	{"rename_column", EC_OP_RENAME_COLUMN},
	{"alter_column", EC_OP_ALTER_COLUMN},
	{"rename_table", EC_OP_RENAME_TABLE},
	{"drop_table", EC_OP_DROP_TABLE},
	{"sql", EC_OP_SQL},
};

/* pgroll operations that this version does not implement yet: named as such, not as unknown. */
static const char *const unsupported_operations[] = {
	"create_index", "drop_index", "create_constraint", "drop_constraint",
	"drop_multicolumn_constraint", "rename_constraint", "set_replica_identity", NULL
};

static EcOperation *
read_operation(JsonbValue *v, int position)
{
	JObj		o;
	EcOperation *op = palloc0(sizeof(EcOperation));
	char	   *what = psprintf("operation %d", position);

	jobj_load(&o, v, what);
	if (o.n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation %d must have exactly one key, the operation's name", position),
				 errdetail("It has %d keys.", o.n)));

	op->position = position;
	op->kind_name = o.keys[0];
	for (int i = 0; i < lengthof(known_operations); i++)
	{
		if (strcmp(o.keys[0], known_operations[i].name) == 0)
		{
			op->kind = known_operations[i].kind;
			read_operation_body(op, &o.vals[0]);
			return op;
		}
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
	JObj		o;
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

	jobj_load(&o, &root, "migration");
	/* pgroll's documents may carry their own name; the name passed to ec_start is the one used. */
	(void) jobj_string(&o, "name", false, false, NULL);
	m->version_schema = jobj_identifier(&o, "version_schema", false);
	ops = jobj_array(&o, "operations", true, "an array");
	jobj_finish(&o);

	if (ops == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration has no operations")));

	foreach(lc, ops)
		m->operations = lappend(m->operations, read_operation(lfirst(lc), ++position));
	return m;
}
