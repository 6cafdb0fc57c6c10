/*
 * carry_views.c
 *	  User views over rebuilt columns, and user triggers naming them, carried to the new columns
 *	  (see carry.c).
 *
 * A view binds the columns it reads by attribute number, and a trigger's UPDATE OF list and WHEN
 * clause do too: left alone they would keep reading the old column and block its DROP COLUMN at
 * complete.  So at ec_start, while each column's name still means the old column, their definitions
 * are captured by name (pg_get_viewdef, pg_get_triggerdef, with search_path pinned to pg_catalog so
 * that every name comes out qualified), together with what CREATE does not restore: a view's owner,
 * grants, column grants, comments, column defaults and options (security_barrier, security_invoker,
 * check_option, part of reloptions); a trigger's enabled state and comment.  Complete drops them
 * before the old column goes (EcTable.before_drop_steps) and runs the captured definitions again
 * once the rebuilt column has the old name (after_drop_steps), views on views in dependency order;
 * the views are locked with complete's other relations, with retries.  Until complete nothing about
 * them changes, so rollback has nothing to undo.  A trigger keeps its name, so it keeps firing
 * between the two dual-write triggers (expand_contract.h).
 *
 * Until complete a trigger's UPDATE OF list names the old column, so it fires for updates that set
 * the old column (the old version's, and direct ones), not for new-version updates, which set the
 * new one (the dual-write trigger then fills the old column, but UPDATE OF looks at the statement's
 * target list).  So start adds a stand-in, "_ec_new_<name>": the same trigger for UPDATE OF the new
 * columns, with its WHEN and-ed with expand_contract.writes_new_version(table), which keeps it off
 * the backfill's batches (they set the new columns too) and off old-version writes.  A new-version
 * update that also sets a column of the list that is not rebuilt fires both.  Complete and rollback
 * drop the stand-in.  WHEN clauses see both columns filled, as every BEFORE trigger between the two
 * dual-write triggers does.
 *
 * Each carried definition is tried at ec_start: in a subtransaction that is always rolled back, the
 * drops run, the old and new columns swap names and the definitions run again, so that a view whose
 * query does not parse over the new type (say "a + 1" when "a" becomes text) fails ec_start, naming
 * the view, instead of complete.
 *
 * A materialized view cannot simply be re-created at complete: that re-runs its query while
 * complete holds ACCESS EXCLUSIVE locks.  So one that reads the table is built again beside the old
 * one at start and filled by the worker (carry_matview).
 *
 * Refused at ec_start, naming the object: materialized views that read a view (their copy would
 * read the view's old column), rules other than a view's own, triggers on the views, other objects depending on the views (such as SQL
 * functions with a BEGIN ATOMIC body), grants made by a role other than the view's owner (they would
 * come back from the owner), views reading rebuilt columns of two tables, views and triggers reading
 * a column this migration renames (the captured text names the old name), and views owned by a role
 * the starting role cannot act as.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parser.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "rewrite/rewriteSupport.h"

#include "operations.h"

/* What the dry run is re-creating, for its error context. */
static const char *dry_run_object = NULL;

static void
dry_run_context(void *arg)
{
	if (dry_run_object)
		errcontext("re-creating %s over the rebuilt columns", dry_run_object);
}

static Datum
rebuilt_array(EcRebuildMap *map)
{
	int			n = bms_num_members(map->rebuilt);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	int			attnum = -1;

	while ((attnum = bms_next_member(map->rebuilt, attnum)) >= 0)
		elems[i++] = Int16GetDatum((int16) attnum);
	return PointerGetDatum(construct_array(elems, n, INT2OID, 2, true, TYPALIGN_SHORT));
}

static char *
value(int row, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return v ? pstrdup(v) : NULL;
}

/* A view's definition as pg_get_viewdef gives it, without the trailing semicolon, to embed. */
static void
trim_definition(char *def)
{
	int			len = strlen(def);

	while (len > 0 && (def[len - 1] == ';' || def[len - 1] == ' ' || def[len - 1] == '\n'))
		def[--len] = '\0';
}

/* Every statement of a query's one text column, in its order. */
static List *
generated(const char *sql, int nargs, Oid *types, Datum *values)
{
	List	   *result = NIL;

	(void) ec_spi(sql, nargs, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
		result = lappend(result, value(i, 1));
	return result;
}

/*
 * Refuses an object that reads a column of some table of the migration that complete renames: the
 * captured definition names the column as it is now.
 */
static void
refuse_renamed_columns(EcStartContext *cxt, Oid classid, Oid objid, const char *what)
{
	ListCell   *lc,
			   *lc2;

	foreach(lc, cxt->model->tables)
	{
		EcTable    *t = lfirst(lc);

		foreach(lc2, t->columns)
		{
			EcColumn   *col = lfirst(lc2);
			Oid			types[4] = {OIDOID, OIDOID, OIDOID, INT2OID};
			Datum		values[4];
			char	   *physical;

			if (!col->old_attnum || col->new_name == NULL || t->new_name == NULL)
				continue;
			physical = get_attname(t->relid, col->old_attnum, false);
			if (strcmp(physical, col->new_name) == 0)
				continue;
			values[0] = ObjectIdGetDatum(classid);
			values[1] = ObjectIdGetDatum(objid);
			values[2] = ObjectIdGetDatum(t->relid);
			values[3] = Int16GetDatum(col->old_attnum);
			if (ec_spi("SELECT FROM pg_catalog.pg_depend d"
					   " WHERE d.classid = $1 AND d.objid = $2"
					   "   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
					   "   AND d.refobjid = $3 AND d.refobjsubid = $4",
					   4, types, values, NULL, SPI_OK_SELECT) > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot carry %s to the rebuilt columns", what),
						 errdetail("It reads column \"%s\" of table \"%s\", which the migration renames to \"%s\".",
								   physical, get_rel_name(t->relid), col->new_name),
						 errhint("Drop it in a \"sql\" operation first and recreate it after completing.")));
		}
	}
}

/*
 * The stand-in of an UPDATE OF trigger for new-version updates of the rebuilt columns of its list
 * (see the file header), made from its definition's parse tree.  Nothing for constraint triggers,
 * which have no column list that PostgreSQL lets a second one share.
 */
static void
add_update_of_stand_in(EcStartContext *cxt, EcTable *table, EcRebuildMap *map, const char *name,
					   const char *def, const char *enabled, const char *tgattr, List **before)
{
	List	   *raw = raw_parser(def, RAW_PARSE_DEFAULT);
	CreateTrigStmt *stmt;
	char	   *tsql = ec_rel_qualified(table->relid);
	char	   *stand_in = ec_temp_name("_ec_new_", name);
	const char *qstand_in = quote_identifier(stand_in);
	List	   *columns = NIL;
	FuncCall   *only_new;
	A_Const    *relname = makeNode(A_Const);
	TypeCast   *cast = makeNode(TypeCast);
	char	   *copy = pstrdup(tgattr);
	char	   *tok;
	char	   *save;

	if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, CreateTrigStmt))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("unexpected definition of trigger \"%s\"", name)));
	stmt = (CreateTrigStmt *) linitial_node(RawStmt, raw)->stmt;
	if (stmt->isconstraint || !(stmt->events & TRIGGER_TYPE_UPDATE))
		return;
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
	{
		AttrNumber	attnum = (AttrNumber) atoi(tok);

		if (attnum > 0 && attnum <= map->natts && bms_is_member(attnum, map->rebuilt))
			columns = lappend(columns,
							  makeString(get_attname(table->relid, map->new_attnum[attnum - 1], false)));
	}
	if (columns == NIL)
		return;
	if (OidIsValid(get_trigger_oid(table->relid, stand_in, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("trigger \"%s\" for relation \"%s\" already exists", stand_in,
						get_rel_name(table->relid)),
				 errdetail("expand_contract needs that name for the new version's copy of trigger \"%s\".",
						   name),
				 errhint("Drop or rename the trigger left behind, then start the migration again.")));

	relname->val.sval.type = T_String;
	relname->val.sval.sval = tsql;
	relname->location = -1;
	cast->arg = (Node *) relname;
	cast->typeName = makeTypeNameFromNameList(list_make2(makeString("pg_catalog"),
														 makeString("regclass")));
	cast->location = -1;
	only_new = makeFuncCall(list_make2(makeString(EC_STATE_SCHEMA), makeString("writes_new_version")),
							list_make1(cast), COERCE_EXPLICIT_CALL, -1);
	stmt->trigname = stand_in;
	stmt->events = TRIGGER_TYPE_UPDATE;
	stmt->columns = columns;
	stmt->whenClause = stmt->whenClause ?
		(Node *) makeBoolExpr(AND_EXPR, list_make2(stmt->whenClause, only_new), -1) :
		(Node *) only_new;
	(void) CreateTrigger(stmt, def, table->relid, InvalidOid, InvalidOid, InvalidOid, InvalidOid,
						 InvalidOid, NULL, false, false);
	CommandCounterIncrement();
	{
		char	   *enable = ec_trigger_enabled_statement(table->relid, stand_in, enabled[0]);

		if (enable)
			ec_exec(enable);
	}
	/* It depends on the new columns: it must go before they do at rollback, and at complete. */
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP TRIGGER IF EXISTS %s ON %s", qstand_in, tsql));
	*before = lappend(*before, psprintf("DROP TRIGGER IF EXISTS %s ON %s", qstand_in, tsql));
}

/*
 * The statement that gives trigger `name` of relid its enabled state (pg_trigger.tgenabled), or
 * NULL for the default, which a created trigger has.
 */
char *
ec_trigger_enabled_statement(Oid relid, const char *name, char enabled)
{
	const char *how;

	switch (enabled)
	{
		case TRIGGER_DISABLED:
			how = "DISABLE";
			break;
		case TRIGGER_FIRES_ON_REPLICA:
			how = "ENABLE REPLICA";
			break;
		case TRIGGER_FIRES_ALWAYS:
			how = "ENABLE ALWAYS";
			break;
		default:
			return NULL;
	}
	return psprintf("ALTER TABLE %s %s TRIGGER %s", ec_rel_qualified(relid), how,
					quote_identifier(name));
}

/* User triggers whose UPDATE OF list or WHEN clause reads a rebuilt column. */
static void
carry_triggers(EcStartContext *cxt, EcTable *table, EcRebuildMap *map, Datum attnums, List **before,
			   List **after, List **whats)
{
	Oid			types[2] = {OIDOID, INT2ARRAYOID};
	Datum		values[2] = {ObjectIdGetDatum(table->relid), attnums};
	char	   *tsql = ec_rel_qualified(table->relid);
	uint64		n;

	n = ec_spi("SELECT t.oid, t.tgname, pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled,"
			   "       pg_catalog.obj_description(t.oid, 'pg_trigger'), t.tgattr::pg_catalog.text"
			   "  FROM pg_catalog.pg_trigger t"
			   " WHERE t.tgrelid = $1 AND NOT t.tgisinternal"
			   "   AND EXISTS (SELECT FROM pg_catalog.pg_depend d"
			   "                WHERE d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass"
			   "                  AND d.objid = t.oid"
			   "                  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "                  AND d.refobjid = $1 AND d.refobjsubid = ANY ($2))"
			   " ORDER BY t.tgname",
			   2, types, values, NULL, SPI_OK_SELECT);
	if (n == 0)
		return;
	{
		/* Copied out: the checks below run queries of their own. */
		char	  **oids = palloc(sizeof(char *) * n);
		char	  **names = palloc(sizeof(char *) * n);
		char	  **defs = palloc(sizeof(char *) * n);
		char	  **enabled = palloc(sizeof(char *) * n);
		char	  **comments = palloc(sizeof(char *) * n);
		char	  **columns = palloc(sizeof(char *) * n);

		for (uint64 i = 0; i < n; i++)
		{
			oids[i] = value(i, 1);
			names[i] = value(i, 2);
			defs[i] = value(i, 3);
			enabled[i] = value(i, 4);
			comments[i] = value(i, 5);
			columns[i] = value(i, 6);
		}
		for (uint64 i = 0; i < n; i++)
		{
			char	   *what = psprintf("trigger \"%s\" on table \"%s\"", names[i],
										get_rel_name(table->relid));
			const char *qname = quote_identifier(names[i]);
			int			first = list_length(*after);

			refuse_renamed_columns(cxt, TriggerRelationId, (Oid) strtoul(oids[i], NULL, 10), what);
			if (columns[i] && columns[i][0])
				add_update_of_stand_in(cxt, table, map, names[i], defs[i], enabled[i], columns[i],
									   before);
			*before = lappend(*before, psprintf("DROP TRIGGER %s ON %s", qname, tsql));
			*after = lappend(*after, defs[i]);
			{
				char	   *enable = ec_trigger_enabled_statement(table->relid, names[i],
																  enabled[i][0]);

				if (enable)
					*after = lappend(*after, enable);
			}
			if (comments[i])
				*after = lappend(*after, psprintf("COMMENT ON TRIGGER %s ON %s IS %s", qname, tsql,
												  quote_literal_cstr(comments[i])));
			for (int k = first; k < list_length(*after); k++)
				*whats = lappend(*whats, what);
		}
	}
}

/*
 * The grants on relid and its columns, for target (the same relation made again, or its copy), and
 * the ALTER <kind> that gives target relid's owner: grants made by the owner, issued while the role
 * running them owns target, and changing the owner afterwards makes the owner their grantor again,
 * as they were.
 */
static List *
privilege_statements(Oid relid, const char *target, const char *kind, const char *owner)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	List	   *result = NIL;

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(target);
	result = list_concat(result,
						 generated("SELECT pg_catalog.format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, $2,"
								   "       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END,"
								   "       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)"
								   "  FROM pg_catalog.pg_class c"
								   "  CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a"
								   "  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
								   " WHERE c.oid = $1 AND a.grantee <> c.relowner"
								   " ORDER BY 1",
								   2, types, values));
	result = list_concat(result,
						 generated("SELECT pg_catalog.format('GRANT %s (%I) ON TABLE %s TO %s%s', a.privilege_type,"
								   "       att.attname, $2,"
								   "       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END,"
								   "       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)"
								   "  FROM pg_catalog.pg_attribute att"
								   "  JOIN pg_catalog.pg_class c ON c.oid = att.attrelid"
								   "  CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a"
								   "  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
								   " WHERE att.attrelid = $1 AND att.attnum > 0 AND NOT att.attisdropped"
								   "   AND a.grantee <> c.relowner"
								   " ORDER BY 1",
								   2, types, values));
	result = lappend(result, psprintf("ALTER %s %s OWNER TO %s", kind, target, owner));
	return result;
}

/* The statements that re-create one view as it is now, but for its query's columns. */
static List *
view_statements(Oid viewid)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	char	   *qview = ec_rel_qualified(viewid);
	char	   *def;
	char	   *owner;
	char	   *comment;
	Datum		d;
	bool		isnull;
	StringInfoData sql;
	List	   *result = NIL;
	List	   *options = NIL;
	ListCell   *lc;

	values[0] = ObjectIdGetDatum(viewid);
	values[1] = CStringGetTextDatum(qview);
	(void) ec_spi("SELECT pg_catalog.pg_get_viewdef(c.oid, true),"
				  "       pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner)),"
				  "       pg_catalog.obj_description(c.oid, 'pg_class'), c.reloptions"
				  "  FROM pg_catalog.pg_class c WHERE c.oid = $1",
				  1, types, values, NULL, SPI_OK_SELECT);
	def = value(0, 1);
	owner = value(0, 2);
	comment = value(0, 3);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (!isnull)
		options = ec_text_array_to_list(d);
	trim_definition(def);

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE VIEW %s (", qview);
	foreach(lc, generated("SELECT pg_catalog.quote_ident(attname) FROM pg_catalog.pg_attribute"
						  " WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
						  1, types, values))
		appendStringInfo(&sql, "%s%s", sql.data[sql.len - 1] == '(' ? "" : ", ", (char *) lfirst(lc));
	appendStringInfoChar(&sql, ')');
	/* name=value, as reloptions stores them; each part quoted again. */
	foreach(lc, options)
	{
		char	   *opt = pstrdup(lfirst(lc));
		char	   *eq = strchr(opt, '=');

		if (eq == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("malformed reloption \"%s\"", opt)));
		*eq = '\0';
		appendStringInfo(&sql, "%s%s = %s", lc == list_head(options) ? " WITH (" : ", ",
						 quote_identifier(opt), quote_literal_cstr(eq + 1));
	}
	if (options != NIL)
		appendStringInfoChar(&sql, ')');
	appendStringInfo(&sql, " AS %s", def);
	result = lappend(result, sql.data);

	/* Column defaults (for inserts through the view) and comments. */
	result = list_concat(result,
						 generated("SELECT pg_catalog.format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s',"
								   "       $2, a.attname, pg_catalog.pg_get_expr(d.adbin, d.adrelid))"
								   "  FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a"
								   "    ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
								   " WHERE d.adrelid = $1 ORDER BY a.attnum",
								   2, types, values));
	if (comment)
		result = lappend(result, psprintf("COMMENT ON VIEW %s IS %s", qview, quote_literal_cstr(comment)));
	result = list_concat(result,
						 generated("SELECT pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', $2, a.attname,"
								   "       pg_catalog.col_description(a.attrelid, a.attnum))"
								   "  FROM pg_catalog.pg_attribute a"
								   " WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped"
								   "   AND pg_catalog.col_description(a.attrelid, a.attnum) IS NOT NULL"
								   " ORDER BY a.attnum",
								   2, types, values));

	return list_concat(result, privilege_statements(viewid, qview, "VIEW", owner));
}

/* Refuses what cannot be carried with view viewid; what names it. */
static void
check_view(EcStartContext *cxt, EcTable *table, Oid viewid, char relkind, const char *what)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(viewid)};
	Oid			owner;
	ListCell   *lc;

	if (relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change column of table \"%s\": a rule on relation \"%s\" depends on it",
						get_rel_name(table->relid), get_rel_name(viewid)),
				 errhint("Drop the rule in a \"sql\" operation first and recreate it after completing.")));
	foreach(lc, generated("SELECT pg_catalog.format('rule \"%s\"', rulename) FROM pg_catalog.pg_rewrite"
						  " WHERE ev_class = $1 AND rulename <> '_RETURN'"
						  " UNION ALL"
						  " SELECT pg_catalog.format('trigger \"%s\"', tgname) FROM pg_catalog.pg_trigger"
						  " WHERE tgrelid = $1"
						  " UNION ALL"
						  " SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)"
						  "   FROM pg_catalog.pg_depend d"
						  "  WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
						  "    AND d.refobjid = $1 AND d.deptype = 'n'"
						  "    AND d.classid <> 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
						  " UNION ALL"
						  " SELECT 'a grant made by ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantor))"
						  "   FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a"
						  "  WHERE c.oid = $1 AND a.grantor <> c.relowner"
						  " UNION ALL"
						  " SELECT 'a column grant made by ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantor))"
						  "   FROM pg_catalog.pg_attribute att JOIN pg_catalog.pg_class c ON c.oid = att.attrelid"
						  "  CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a"
						  "  WHERE att.attrelid = $1 AND a.grantor <> c.relowner"
						  " ORDER BY 1 LIMIT 1",
						  1, types, values))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot carry %s to the rebuilt columns: %s depends on it or on its definition",
						what, (char *) lfirst(lc)),
				 errdetail("Complete drops the view and creates it again over the new columns; this would "
						   "be lost."),
				 errhint("Drop it in a \"sql\" operation first and recreate it after completing.")));
	foreach(lc, cxt->model->tables)
	{
		EcTable    *other = lfirst(lc);

		if (other != table && list_member_oid(other->carried_views, viewid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot carry %s to the rebuilt columns", what),
					 errdetail("It reads rebuilt columns of tables \"%s\" and \"%s\".",
							   get_rel_name(other->relid), get_rel_name(table->relid)),
					 errhint("Drop it in a \"sql\" operation first and recreate it after completing.")));
	}
	/* Complete runs as the starting role, which must be able to drop it and give it back. */
	{
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(viewid));

		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg_internal("cache lookup failed for relation %u", viewid)));
		owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
		ReleaseSysCache(tuple);
	}
	if (!is_member_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot carry %s to the rebuilt columns", what),
				 errdetail("Complete re-creates it, and the current role is not a member of its owner \"%s\".",
						   GetUserNameFromId(owner, false)),
				 errhint("Start the migration as a role that is a member of \"%s\".",
						 GetUserNameFromId(owner, false))));
	refuse_renamed_columns(cxt, RewriteRelationId,
						   get_rewrite_oid(viewid, "_RETURN", false), what);
}

/*
 * Gives the rebuilt columns the old columns' names (the old ones "_ec_dry_<name>"), so that a
 * definition captured by name binds to the new columns; returns what undoes it.  With undo (what an
 * earlier call returned), undoes it.
 */
static List *
swap_rebuilt_names(EcTable *table, EcRebuildMap *map, List *undo)
{
	char	   *tsql = ec_rel_qualified(table->relid);
	List	   *result = NIL;
	int			attnum = -1;

	if (undo != NIL)
	{
		ec_exec_list(undo);
		return NIL;
	}
	while ((attnum = bms_next_member(map->rebuilt, attnum)) >= 0)
	{
		char	   *old_name = get_attname(table->relid, attnum, false);
		char	   *new_name = get_attname(table->relid, map->new_attnum[attnum - 1], false);
		char	   *aside = ec_temp_name("_ec_dry_", old_name);

		ec_exec(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql, quote_identifier(old_name),
						 quote_identifier(aside)));
		ec_exec(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql, quote_identifier(new_name),
						 quote_identifier(old_name)));
		result = lappend(result, psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
										  quote_identifier(old_name), quote_identifier(new_name)));
		result = lappend(result, psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
										  quote_identifier(aside), quote_identifier(old_name)));
	}
	return result;
}

/*
 * A materialized view reading rebuilt columns of the table (directly: through a view it would read
 * the view's old columns) is built again beside the old one at start, "_ec_mv_<name>", WITH NO
 * DATA, with its access method, options, tablespace, indexes ("_ec_idx_<name>"), comments, grants
 * and owner, its query bound to the new columns (parsed while they have the old names); the worker
 * fills it with REFRESH MATERIALIZED VIEW after the backfill, outside anyone's locks.  Complete
 * drops the old one and gives the copy and its indexes their names; rollback drops the copy.  The
 * copy holds the rows as of the worker's refresh: a REFRESH of the old one after that is not
 * carried over.
 */
static void
carry_matview(EcStartContext *cxt, EcTable *table, EcRebuildMap *map, Oid mvid, const char *what,
			  List **before, List **after, List **whats)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	char	   *qmv = ec_rel_qualified(mvid);
	char	   *mvname = get_rel_name(mvid);
	char	   *schema = get_namespace_name(get_rel_namespace(mvid));
	char	   *shadow = ec_temp_name("_ec_mv_", mvname);
	char	   *qshadow = ec_qualified(schema, shadow);
	char	   *def,
			   *am,
			   *options,
			   *tablespace,
			   *owner;
	uint64		n;
	List	   *undo;
	List	   *statements = NIL;
	char	  **index_defs;
	char	  **index_names;
	StringInfoData sql;

	values[0] = ObjectIdGetDatum(mvid);
	values[1] = ObjectIdGetDatum(table->relid);
	types[1] = OIDOID;
	if (ec_spi("SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
			   "  JOIN pg_catalog.pg_class c ON c.oid = d.refobjid"
			   " WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.ev_class = $1"
			   "   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "   AND c.relkind IN ('v', 'm') AND c.oid <> $1",
			   1, types, values, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot carry %s to the rebuilt columns of table \"%s\"", what,
						get_rel_name(table->relid)),
				 errdetail("It reads a view; only a materialized view that reads tables alone is "
						   "built again over the new columns."),
				 errhint("Drop the materialized view in a \"sql\" operation first and create it again "
						 "after completing.")));
	if (OidIsValid(get_relname_relid(shadow, get_rel_namespace(mvid))))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in schema \"%s\"", shadow, schema),
				 errdetail("expand_contract needs that name to build %s again.", what),
				 errhint("Drop or rename the relation left behind, then start the migration again.")));

	types[1] = TEXTOID;
	values[1] = CStringGetTextDatum(qshadow);
	(void) ec_spi("SELECT pg_catalog.pg_get_viewdef(c.oid, true),"
				  "       CASE WHEN am.amname <> 'heap' THEN pg_catalog.quote_ident(am.amname) END,"
				  "       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(split_part(o, '=', 1)) || ' = ' ||"
				  "               pg_catalog.quote_literal(substr(o, strpos(o, '=') + 1)), ', ')"
				  "          FROM pg_catalog.unnest(c.reloptions) o),"
				  "       (SELECT pg_catalog.quote_ident(spcname) FROM pg_catalog.pg_tablespace"
				  "         WHERE oid = c.reltablespace),"
				  "       pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner))"
				  "  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am am ON am.oid = c.relam"
				  " WHERE c.oid = $1",
				  1, types, values, NULL, SPI_OK_SELECT);
	def = value(0, 1);
	am = value(0, 2);
	options = value(0, 3);
	tablespace = value(0, 4);
	owner = value(0, 5);
	trim_definition(def);
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE MATERIALIZED VIEW %s", qshadow);
	if (am)
		appendStringInfo(&sql, " USING %s", am);
	if (options)
		appendStringInfo(&sql, " WITH (%s)", options);
	if (tablespace)
		appendStringInfo(&sql, " TABLESPACE %s", tablespace);
	appendStringInfo(&sql, " AS %s WITH NO DATA", def);

	n = ec_spi("SELECT pg_catalog.pg_get_indexdef(i.indexrelid), c.relname"
			   "  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
			   " WHERE i.indrelid = $1 ORDER BY c.relname",
			   1, types, values, NULL, SPI_OK_SELECT);
	index_defs = palloc(sizeof(char *) * (n + 1));
	index_names = palloc(sizeof(char *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		index_defs[i] = value(i, 1);
		index_names[i] = value(i, 2);
	}
	/* Grants, comments and owner of the old one, for the copy. */
	statements = list_concat(statements,
							 generated("SELECT pg_catalog.format('COMMENT ON MATERIALIZED VIEW %s IS %L', $2,"
									   "       pg_catalog.obj_description($1, 'pg_class'))"
									   " WHERE pg_catalog.obj_description($1, 'pg_class') IS NOT NULL"
									   " UNION ALL"
									   " SELECT pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', $2, a.attname,"
									   "       pg_catalog.col_description(a.attrelid, a.attnum))"
									   "  FROM pg_catalog.pg_attribute a"
									   " WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped"
									   "   AND pg_catalog.col_description(a.attrelid, a.attnum) IS NOT NULL",
									   2, types, values));
	statements = list_concat(statements,
							 privilege_statements(mvid, qshadow, "MATERIALIZED VIEW", owner));

	/* The query parsed while the new columns have the old names: it binds to them. */
	undo = swap_rebuilt_names(table, map, NIL);
	ec_exec(sql.data);
	(void) swap_rebuilt_names(table, map, undo);
	cxt->rollback_steps = lappend(cxt->rollback_steps,
								  psprintf("DROP MATERIALIZED VIEW IF EXISTS %s", qshadow));
	for (uint64 i = 0; i < n; i++)
	{
		List	   *raw = raw_parser(index_defs[i], RAW_PARSE_DEFAULT);
		IndexStmt  *stmt;
		PlannedStmt *wrapper = makeNode(PlannedStmt);
		char	   *temp = ec_temp_name("_ec_idx_", index_names[i]);

		if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, IndexStmt))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("unexpected definition of index \"%s\"", index_names[i])));
		if (OidIsValid(get_relname_relid(temp, get_rel_namespace(mvid))))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists in schema \"%s\"", temp, schema),
					 errdetail("expand_contract needs that name to build index \"%s\" again.",
							   index_names[i]),
					 errhint("Drop or rename the relation left behind, then start the migration "
							 "again.")));
		stmt = (IndexStmt *) linitial_node(RawStmt, raw)->stmt;
		stmt->idxname = temp;
		stmt->relation = makeRangeVar(schema, shadow, -1);
		wrapper->commandType = CMD_UTILITY;
		wrapper->canSetTag = false;
		wrapper->utilityStmt = (Node *) stmt;
		wrapper->stmt_location = -1;
		if (ec_planning)
			ec_plan_record(index_defs[i], psprintf("runs as index \"%s\" of \"%s\"", temp, shadow));
		ProcessUtility(wrapper, index_defs[i], false, PROCESS_UTILITY_QUERY, NULL, NULL,
					   None_Receiver, NULL);
		CommandCounterIncrement();
		*after = lappend(*after, psprintf("ALTER INDEX %s RENAME TO %s", ec_qualified(schema, temp),
										  quote_identifier(index_names[i])));
		*whats = lappend(*whats, (char *) what);
	}
	ec_exec_list(statements);

	ec_add_task(cxt->migration_id, ++cxt->ntasks + EC_SEQ_AFTER_BACKFILL, "sql", table->relid, NIL,
				psprintf("REFRESH MATERIALIZED VIEW %s", qshadow));
	*before = lappend(*before, psprintf("DROP MATERIALIZED VIEW %s", qmv));
	*after = lcons(psprintf("ALTER MATERIALIZED VIEW %s RENAME TO %s", qshadow,
							quote_identifier(mvname)), *after);
	*whats = lcons((char *) what, *whats);
}

/*
 * Runs the steps with the rebuilt columns under the old names, then undoes it all.  An error is
 * raised again once the subtransaction is gone, with the object it was about in its context.
 */
typedef struct DryRun
{
	EcTable    *table;
	EcRebuildMap *map;
	List	   *before;
	List	   *after;
	List	   *what;
} DryRun;

static void
dry_run_steps(void *arg)
{
	DryRun	   *d = arg;
	ErrorContextCallback callback;
	ListCell   *lc,
			   *lc2;

	callback.callback = dry_run_context;
	callback.arg = NULL;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	dry_run_object = NULL;
	ec_exec_list(d->before);
	(void) swap_rebuilt_names(d->table, d->map, NIL);
	forboth(lc, d->after, lc2, d->what)
	{
		dry_run_object = lfirst(lc2);
		ec_exec(lfirst(lc));
	}
	dry_run_object = NULL;
	error_context_stack = callback.previous;
}

static void
dry_run(EcTable *table, EcRebuildMap *map, List *before, List *after, List *what)
{
	DryRun		d = {table, map, before, after, what};
	ErrorData  *edata = ec_in_subtransaction(dry_run_steps, &d, false);

	dry_run_object = NULL;
	if (edata)
		ReThrowError(edata);
}

void
ec_carry_views(EcStartContext *cxt, EcTable *table, EcRebuildMap *map)
{
	Oid			types[3] = {OIDOID, INT2ARRAYOID, OIDOID};
	Datum		values[3];
	List	   *before = NIL;
	List	   *after = NIL;
	List	   *what = NIL;
	List	   *views = NIL;
	List	   *kinds = NIL;
	List	   *matview_drops = NIL;
	StringInfoData drop;
	ListCell   *lc,
			   *lc2;
	int			nestlevel;
	uint64		n;

	/* Every name in the captured definitions qualified, whatever the session's search_path. */
	nestlevel = ec_guc_push("search_path", "pg_catalog");
	values[0] = ObjectIdGetDatum(table->relid);
	values[1] = rebuilt_array(map);
	values[2] = ObjectIdGetDatum(cxt->old_version_nspid);

	carry_triggers(cxt, table, map, values[1], &before, &after, &what);

	/*
	 * The views reading a rebuilt column, and those reading them, outermost last: each at the depth
	 * of its longest path from the table.  The old version schema's views are dropped by complete
	 * before anything else.
	 */
	n = ec_spi("WITH RECURSIVE v(oid, depth) AS ("
			   "  SELECT r.ev_class, 1 FROM pg_catalog.pg_depend d"
			   "    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
			   "    JOIN pg_catalog.pg_class c ON c.oid = r.ev_class"
			   "   WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
			   "     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "     AND d.refobjid = $1 AND d.refobjsubid = ANY ($2) AND r.ev_class <> $1"
			   "     AND c.relnamespace <> $3"
			   "  UNION ALL"
			   "  SELECT r.ev_class, v.depth + 1 FROM v"
			   "    JOIN pg_catalog.pg_depend d ON d.refobjid = v.oid"
			   "     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			   "     AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
			   "    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
			   "   WHERE r.ev_class <> v.oid AND v.depth < 100)"
			   " SELECT v.oid, c.relkind, pg_catalog.format('view \"%s.%s\"', n.nspname, c.relname)"
			   "   FROM v JOIN pg_catalog.pg_class c ON c.oid = v.oid"
			   "   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
			   "  GROUP BY v.oid, c.relkind, n.nspname, c.relname"
			   "  ORDER BY max(v.depth), n.nspname, c.relname",
			   3, types, values, NULL, SPI_OK_SELECT);
	{
		List	   *names = NIL;

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			views = lappend_oid(views, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	  SPI_tuptable->tupdesc, 1,
																	  &isnull)));
			kinds = lappend_int(kinds, value(i, 2)[0]);
			names = lappend(names, value(i, 3));
		}
		forboth(lc, views, lc2, kinds)
			check_view(cxt, table, lfirst_oid(lc), (char) lfirst_int(lc2),
					   list_nth(names, foreach_current_index(lc)));
		initStringInfo(&drop);
		forboth(lc, views, lc2, kinds)
		{
			List	   *stmts;

			if ((char) lfirst_int(lc2) == RELKIND_MATVIEW)
			{
				carry_matview(cxt, table, map, lfirst_oid(lc),
							  list_nth(names, foreach_current_index(lc)), &matview_drops, &after,
							  &what);
				continue;
			}
			stmts = view_statements(lfirst_oid(lc));
			appendStringInfo(&drop, "%s%s", drop.len ? ", " : "DROP VIEW ",
							 ec_rel_qualified(lfirst_oid(lc)));
			after = list_concat(after, stmts);
			for (int i = 0; i < list_length(stmts); i++)
				what = lappend(what, list_nth(names, foreach_current_index(lc)));
		}
	}
	/* One statement: DROP resolves the dependencies among the views listed, and refuses others. */
	if (drop.len)
		before = lappend(before, drop.data);
	/* After the views, which may read them. */
	before = list_concat(before, matview_drops);

	if (before != NIL)
		dry_run(table, map, before, after, what);
	ec_guc_pop(nestlevel);

	table->before_drop_steps = list_concat(table->before_drop_steps, before);
	table->after_drop_steps = list_concat(table->after_drop_steps, after);
	table->carried_views = list_concat(table->carried_views, views);
}
