/*
 * document.c
 *	  Reads a pgroll migration document (jsonb) into EcMigration/EcOperation structs.
 *
 * Field names and defaults are pgroll's (schema.json in github.com/xataio/pgroll): a column is
 * NOT NULL unless "nullable": true, and so on.  Anything the document holds that we do not understand
 * is an error naming it, never silently ignored: a typo in a migration must not turn into a migration
 * that quietly does less than its author meant.  Nothing here touches the database.
 */
#include "postgres.h"

#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "operations.h"

/* A Float node's text; a boolean option's value (PostgreSQL 14 gives it as an Integer). */
#if PG_VERSION_NUM >= 150000
#define EC_FLOAT_TEXT(n)	(castNode(Float, (n))->fval)
#define EC_DEFELEM_TRUE(n)	((n) == NULL || (IsA((n), Boolean) ? boolVal(n) : intVal(n) != 0))
#else
#define EC_FLOAT_TEXT(n)	strVal(n)
#define EC_DEFELEM_TRUE(n)	((n) == NULL || intVal(n) != 0)
#endif

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
List *
ec_doc_identifier_array(EcDocObject *o, const char *key, bool required)
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
static const char *const fk_match_types[] = {"SIMPLE", "FULL", "PARTIAL", NULL};

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
	/* pgroll's schema allows it; PostgreSQL has the keyword but not the feature. */
	if (strcmp(fk->match_type, "PARTIAL") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"match_type\" PARTIAL in %s is not supported", o->what),
				 errdetail("PostgreSQL does not implement MATCH PARTIAL."),
				 errhint("Use SIMPLE or FULL.")));
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
EcForeignKeyDef *
ec_doc_table_fk(JsonbValue *v)
{
	EcDocObject o;
	EcForeignKeyDef *fk = palloc0(sizeof(EcForeignKeyDef));

	ec_doc_load(&o, v, "foreign key reference");
	fk->table = ec_doc_identifier(&o, "table", true);
	fk->columns = ec_doc_identifier_array(&o, "columns", true);
	read_fk_actions(&o, fk);
	fk->on_delete_set_columns = ec_doc_identifier_array(&o, "on_delete_set_columns", false);
	ec_doc_finish(&o);
	return fk;
}

/*
 * A string of SQL that we parse inside a statement we build around it (sequence options, the
 * elements of an exclusion constraint, storage parameters): a syntax error points into that
 * statement, shown as an internal query, and names the field, not the ec_start call.
 */
typedef struct FragmentError
{
	const char *sql;
	const char *key;
	const char *what;
} FragmentError;

static void
fragment_error_callback(void *arg)
{
	FragmentError *f = arg;
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery(f->sql);
	}
	errcontext("field \"%s\" of %s", f->key, f->what);
}

static void
invalid_fragment(EcDocObject *o, const char *key, const char *text, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for field \"%s\" in %s", key, o->what),
			 errdetail("%s", detail),
			 errhint("The text given was: %s", text)));
}

/*
 * Parses sql, a statement we built with the field's text in one place, as exactly one statement
 * (a semicolon in the text makes two, and is refused).  The callers then check that every part of
 * the parse tree is where they put it: only the part that the text fills may differ.
 */
static Node *
parse_fragment(EcDocObject *o, const char *key, const char *text, const char *sql, NodeTag tag)
{
	FragmentError f = {sql, key, o->what};
	ErrorContextCallback callback;
	List	   *raw;

	callback.callback = fragment_error_callback;
	callback.arg = &f;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	error_context_stack = callback.previous;

	if (list_length(raw) != 1 || nodeTag(linitial_node(RawStmt, raw)->stmt) != tag)
		invalid_fragment(o, key, text, "It must not end the statement it is part of.");
	return linitial_node(RawStmt, raw)->stmt;
}

/*
 * The one constraint of "ALTER TABLE ec_t ADD CONSTRAINT ec_c ...", checked to be just that (an
 * exclusion constraint with "USING ec_m").
 */
static Constraint *
fragment_constraint(EcDocObject *o, const char *key, const char *text, const char *sql,
					ConstrType contype)
{
	AlterTableStmt *stmt = (AlterTableStmt *) parse_fragment(o, key, text, sql, T_AlterTableStmt);
	AlterTableCmd *cmd;
	Constraint *con;

	if (stmt->relation->schemaname != NULL || strcmp(stmt->relation->relname, "ec_t") != 0 ||
		list_length(stmt->cmds) != 1)
		invalid_fragment(o, key, text, "It must not change the statement it is part of.");
	cmd = linitial_node(AlterTableCmd, stmt->cmds);
	con = (Constraint *) cmd->def;
	if (cmd->subtype != AT_AddConstraint || con == NULL || !IsA(con, Constraint) ||
		con->contype != contype || con->conname == NULL || strcmp(con->conname, "ec_c") != 0 ||
		con->deferrable || con->initdeferred || con->skip_validation || con->is_no_inherit ||
		con->indexspace != NULL || con->where_clause != NULL ||
		(contype == CONSTR_EXCLUSION ? con->access_method == NULL ||
		 strcmp(con->access_method, "ec_m") != 0 : con->access_method != NULL) ||
		con->including != NIL || con->nulls_not_distinct)
		invalid_fragment(o, key, text, "It must not change the statement it is part of.");
	return con;
}

/* A whole number of sequence option d, as SQL text. */
static char *
sequence_number(EcDocObject *o, const char *text, DefElem *d, const char *keyword)
{
	if (d->arg != NULL && IsA(d->arg, Integer))
		return psprintf("%d", intVal(d->arg));
	if (d->arg != NULL && IsA(d->arg, Float))
	{
		const char *s = EC_FLOAT_TEXT(d->arg);
		const char *p = s[0] == '-' ? s + 1 : s;

		if (p[0] != '\0' && strspn(p, "0123456789") == strlen(p))
			return pstrdup(s);
	}
	invalid_fragment(o, "sequence_options", text,
					 psprintf("The value of %s must be a whole number.", keyword));
	return NULL;				/* keep compiler quiet */
}

/*
 * "sequence_options", as in CREATE SEQUENCE ("START WITH 10 INCREMENT BY 5"): parsed by
 * PostgreSQL's parser as the options of a CREATE SEQUENCE statement, and rebuilt from the parse
 * tree, so that the text itself never reaches SQL.  AS, OWNED BY, SEQUENCE NAME and RESTART are
 * refused: an identity's sequence takes the column's type, belongs to it and is named after it.
 * "" for none.
 */
static char *
read_sequence_options(EcDocObject *o)
{
	char	   *text = ec_doc_string(o, "sequence_options", false, false, NULL);
	CreateSeqStmt *stmt;
	StringInfoData buf;
	ListCell   *lc;

	if (text == NULL || strspn(text, " \t\n\r") == strlen(text))
		return pstrdup("");
	stmt = (CreateSeqStmt *) parse_fragment(o, "sequence_options", text,
											psprintf("CREATE SEQUENCE ec_s %s", text),
											T_CreateSeqStmt);
	if (stmt->sequence->schemaname != NULL || strcmp(stmt->sequence->relname, "ec_s") != 0 ||
		stmt->if_not_exists || stmt->for_identity)
		invalid_fragment(o, "sequence_options", text,
						 "It must not change the statement it is part of.");

	initStringInfo(&buf);
	foreach(lc, stmt->options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);
		const char *name = d->defname;

		if (buf.len > 0)
			appendStringInfoChar(&buf, ' ');
		if (strcmp(name, "start") == 0)
			appendStringInfo(&buf, "START WITH %s", sequence_number(o, text, d, "START"));
		else if (strcmp(name, "increment") == 0)
			appendStringInfo(&buf, "INCREMENT BY %s", sequence_number(o, text, d, "INCREMENT"));
		else if (strcmp(name, "cache") == 0)
			appendStringInfo(&buf, "CACHE %s", sequence_number(o, text, d, "CACHE"));
		else if ((strcmp(name, "minvalue") == 0 || strcmp(name, "maxvalue") == 0) && d->arg == NULL)
			appendStringInfo(&buf, "NO %s", name[1] == 'i' ? "MINVALUE" : "MAXVALUE");
		else if (strcmp(name, "minvalue") == 0)
			appendStringInfo(&buf, "MINVALUE %s", sequence_number(o, text, d, "MINVALUE"));
		else if (strcmp(name, "maxvalue") == 0)
			appendStringInfo(&buf, "MAXVALUE %s", sequence_number(o, text, d, "MAXVALUE"));
		else if (strcmp(name, "cycle") == 0)
			appendStringInfoString(&buf, EC_DEFELEM_TRUE(d->arg) ? "CYCLE" : "NO CYCLE");
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sequence option %s is not allowed in field \"sequence_options\" of %s",
							strcmp(name, "as") == 0 ? "AS" :
							strcmp(name, "owned_by") == 0 ? "OWNED BY" :
							strcmp(name, "sequence_name") == 0 ? "SEQUENCE NAME" :
							strcmp(name, "restart") == 0 ? "RESTART" : name, o->what),
					 errdetail("An identity column's sequence has the column's type, belongs to the "
							   "column and is named after it."),
					 errhint("Use START, INCREMENT, MINVALUE, MAXVALUE, CACHE and CYCLE, or their NO "
							 "forms.")));
	}
	return buf.data;
}

static const char *const identity_kinds[] = {"ALWAYS", "BY DEFAULT", NULL};

/* A column's "generated": a stored generated column from "expression", or an identity column. */
static void
read_generated(JsonbValue *v, EcColumnDef *c)
{
	EcDocObject g;
	JsonbValue *sub;

	ec_doc_load(&g, v, psprintf("\"generated\" of column \"%s\"", c->name));
	c->generated_expr = ec_doc_sql(&g, "expression", false);
	if ((sub = ec_doc_get(&g, "identity")) != NULL)
	{
		EcDocObject id;

		ec_doc_load(&id, sub, psprintf("\"identity\" of column \"%s\"", c->name));
		c->identity = true;
		c->identity_always = strcmp(keyword_field(&id, "user_specified_values", identity_kinds,
												  "ALWAYS"), "ALWAYS") == 0;
		c->identity_options = read_sequence_options(&id);
		ec_doc_finish(&id);
	}
	ec_doc_finish(&g);
	if (c->generated_expr && c->identity)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column \"%s\" cannot have both \"expression\" and \"identity\" in \"generated\"",
						c->name)));
	if (!c->generated_expr && !c->identity)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"generated\" of column \"%s\" must set \"expression\" or \"identity\"",
						c->name)));
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
	if ((sub = ec_doc_get(&o, "generated")) != NULL)
	{
		read_generated(sub, c);
		if (c->default_expr)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" cannot have both \"default\" and \"generated\"",
							c->name)));
	}
	ec_doc_finish(&o);
	return c;
}

/*
 * "index_parameters" of a unique, primary key or exclusion constraint.  "storage_parameters"
 * ("fillfactor=70, deduplicate_items=off") is parsed as the WITH clause of such a constraint and
 * rebuilt from the parse tree: each name quoted, each value a number or a quoted literal.
 */
static void
read_index_parameters(JsonbValue *v, EcConstraintDef *c)
{
	EcDocObject p;
	char	   *text;

	ec_doc_load(&p, v, psprintf("\"index_parameters\" of constraint \"%s\"", c->name));
	c->tablespace = ec_doc_string(&p, "tablespace", false, false, NULL);
	if (c->tablespace && c->tablespace[0] == '\0')
		c->tablespace = NULL;
	if (c->tablespace && strlen(c->tablespace) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("identifier \"%s\" in field \"tablespace\" of %s is too long", c->tablespace,
						p.what)));
	c->include_columns = ec_doc_identifier_array(&p, "include_columns", false);
	text = ec_doc_string(&p, "storage_parameters", false, false, NULL);
	if (text && strspn(text, " \t\n\r") != strlen(text))
	{
		Constraint *con = fragment_constraint(&p, "storage_parameters", text,
											  psprintf("ALTER TABLE ec_t ADD CONSTRAINT ec_c UNIQUE "
													   "(ec_a) WITH (%s)", text),
											  CONSTR_UNIQUE);
		StringInfoData buf;
		ListCell   *lc;

		if (list_length(con->keys) != 1 || strcmp(strVal(linitial(con->keys)), "ec_a") != 0)
			invalid_fragment(&p, "storage_parameters", text,
							 "It must not change the statement it is part of.");
		initStringInfo(&buf);
		foreach(lc, con->options)
		{
			DefElem    *d = lfirst_node(DefElem, lc);
			Node	   *arg = d->arg;

			if (buf.len > 0)
				appendStringInfoString(&buf, ", ");
			if (d->defnamespace != NULL)
				invalid_fragment(&p, "storage_parameters", text,
								 "Parameter names must not be qualified.");
			appendStringInfoString(&buf, quote_identifier(d->defname));
			if (arg == NULL)
				continue;
			if (IsA(arg, Integer))
				appendStringInfo(&buf, " = %d", intVal(arg));
			else if (IsA(arg, Float))
				appendStringInfo(&buf, " = %s", quote_literal_cstr(EC_FLOAT_TEXT(arg)));
			else if (IsA(arg, String))
				appendStringInfo(&buf, " = %s", quote_literal_cstr(strVal(arg)));
			else if (IsA(arg, TypeName) && list_length(((TypeName *) arg)->names) == 1 &&
					 ((TypeName *) arg)->typmods == NIL && ((TypeName *) arg)->arrayBounds == NIL &&
					 !((TypeName *) arg)->setof && !((TypeName *) arg)->pct_type)
				/* A bare word (off, on): the parser reads it as a type name. */
				appendStringInfo(&buf, " = %s",
								 quote_literal_cstr(strVal(linitial(((TypeName *) arg)->names))));
			else
				invalid_fragment(&p, "storage_parameters", text,
								 psprintf("The value of parameter \"%s\" must be a number, a word "
										  "or a quoted string.", d->defname));
		}
		c->storage_parameters = buf.data;
	}
	ec_doc_finish(&p);
}

/*
 * "exclude": the index method, the elements ("col WITH =, during WITH &&") and a predicate.  The
 * elements are parsed as the element list of an EXCLUDE constraint, "(" + elements + ")", and the
 * parse tree checked to hold nothing else: the text is then known to be one element list, which
 * create_table puts between the same two parentheses.  The predicate is an expression, analysed
 * against the table when the constraint is made.
 */
static void
read_exclude(JsonbValue *v, EcConstraintDef *c)
{
	EcDocObject x;
	Constraint *con;

	ec_doc_load(&x, v, psprintf("\"exclude\" of constraint \"%s\"", c->name));
	c->index_method = ec_doc_string(&x, "index_method", false, false, NULL);
	if (c->index_method && c->index_method[0] == '\0')
		c->index_method = NULL;
	if (c->index_method && strlen(c->index_method) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("identifier \"%s\" in field \"index_method\" of %s is too long",
						c->index_method, x.what)));
	c->exclude_elements = ec_doc_sql(&x, "elements", true);
	con = fragment_constraint(&x, "elements", c->exclude_elements,
							  psprintf("ALTER TABLE ec_t ADD CONSTRAINT ec_c EXCLUDE USING ec_m (%s)",
									   c->exclude_elements),
							  CONSTR_EXCLUSION);
	if (con->exclusions == NIL || con->options != NIL)
		invalid_fragment(&x, "elements", c->exclude_elements,
						 "It must not change the statement it is part of.");
	c->exclude_predicate = ec_doc_sql(&x, "predicate", false);
	ec_doc_finish(&x);
}

/* A field that pgroll's schema allows only for some types of constraint. */
static void
not_for_type(EcConstraintDef *c, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("field \"%s\" does not apply to constraint \"%s\" of type \"%s\"", key, c->name,
					c->type)));
}

EcConstraintDef *
ec_doc_constraint(JsonbValue *v)
{
	static const char *const types[] = {"unique", "check", "primary_key", "foreign_key", "exclude",
	NULL};
	EcDocObject o;
	JsonbValue *sub;
	EcConstraintDef *c = palloc0(sizeof(EcConstraintDef));
	bool		is_check,
				is_fk,
				is_exclude,
				is_unique;
	ListCell   *lc;

	ec_doc_load(&o, v, "constraint definition");
	c->name = ec_doc_identifier(&o, "name", true);
	c->type = ec_doc_string(&o, "type", true, false, NULL);
	for (int i = 0;; i++)
	{
		if (types[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid constraint type \"%s\" for constraint \"%s\"", c->type, c->name)));
		if (strcmp(c->type, types[i]) == 0)
			break;
	}
	is_check = strcmp(c->type, "check") == 0;
	is_fk = strcmp(c->type, "foreign_key") == 0;
	is_exclude = strcmp(c->type, "exclude") == 0;
	is_unique = strcmp(c->type, "unique") == 0;

	/* What pgroll's schema allows for each type (its "allOf"), field by field. */
	c->columns = ec_doc_identifier_array(&o, "columns", !is_check && !is_exclude);
	if (is_exclude && c->columns != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("exclusion constraint \"%s\" takes its columns from \"exclude\", not from "
						"\"columns\"", c->name)));
	c->deferrable = ec_doc_bool(&o, "deferrable", false, NULL);
	c->initially_deferred = ec_doc_bool(&o, "initially_deferred", false, NULL);
	if (is_check && (c->deferrable || c->initially_deferred))
		not_for_type(c, c->deferrable ? "deferrable" : "initially_deferred");
	c->nulls_not_distinct = ec_doc_bool(&o, "nulls_not_distinct", false, NULL);
	if (c->nulls_not_distinct && !is_unique)
		not_for_type(c, "nulls_not_distinct");
	c->no_inherit = ec_doc_bool(&o, "no_inherit", false, NULL);
	if (c->no_inherit && !is_check)
		not_for_type(c, "no_inherit");
	c->check = ec_doc_sql(&o, "check", is_check);
	if (c->check && !is_check)
		not_for_type(c, "check");
	if ((sub = ec_doc_get(&o, "references")) != NULL)
	{
		if (!is_fk)
			not_for_type(c, "references");
		c->references = ec_doc_table_fk(sub);
		c->references->name = c->name;
		c->references->deferrable = c->deferrable;
		c->references->initially_deferred = c->initially_deferred;
		foreach(lc, c->references->on_delete_set_columns)
		{
			ListCell   *lc2;
			bool		found = false;

			foreach(lc2, c->columns)
				found |= strcmp(lfirst(lc2), lfirst(lc)) == 0;
			if (strcmp(c->references->on_delete, "SET NULL") != 0 &&
				strcmp(c->references->on_delete, "SET DEFAULT") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"on_delete_set_columns\" of constraint \"%s\" needs "
								"\"on_delete\" SET NULL or SET DEFAULT", c->name)));
			if (!found)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" in field \"on_delete_set_columns\" of constraint \"%s\" "
								"is not one of its \"columns\"", (char *) lfirst(lc), c->name)));
		}
	}
	else if (is_fk)
		ec_doc_missing(&o, "references");
	if ((sub = ec_doc_get(&o, "exclude")) != NULL)
	{
		if (!is_exclude)
			not_for_type(c, "exclude");
		read_exclude(sub, c);
	}
	else if (is_exclude)
		ec_doc_missing(&o, "exclude");
	if ((sub = ec_doc_get(&o, "index_parameters")) != NULL)
	{
		read_index_parameters(sub, c);
		if ((is_check || is_fk) &&
			(c->tablespace || c->storage_parameters || c->include_columns != NIL))
			not_for_type(c, "index_parameters");
	}
	ec_doc_finish(&o);
	return c;
}

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
