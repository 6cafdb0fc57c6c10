/*
 * ddl_guard.c
 *	  The one ddl_command_start event trigger that decides which DDL may run during a migration.
 *
 * While a migration of a schema is active, the version schemas' views (the new one, and the
 * previous migration's one that the old version reads through) select the schema's tables column
 * by column, the dual-write trigger converts between columns by attribute number and type, and
 * ec_complete's and ec_rollback's steps, computed at ec_start, name the columns, constraints and
 * tables they drop or rename.  Plain DDL that changes those (a column dropped, renamed, retyped or
 * given another default, a table dropped, renamed or moved to another schema, a version view or
 * schema dropped, the dual-write triggers disabled) breaks the views, the trigger or the contract
 * later and far from its cause.  So it is refused with an error that names the migration and how to
 * proceed; DDL that none of them depend on (an index, a comment, a grant, a constraint added,
 * TRUNCATE, storage settings) passes, and so does any DDL on a relation the migration does not
 * cover (relation_guard: a table created since ec_start, another schema's).
 *
 * What passes regardless: the extension's own DDL (everything ec_exec runs, which includes the
 * "sql" operations of a migration: that is the way to run user DDL during one; and everything its
 * background workers run), CREATE/ALTER
 * EXTENSION's scripts, and, with a WARNING, everything when the session sets
 * expand_contract.allow_ddl.  The override does not cover the checks of partitions.c and
 * compact.c, which this trigger also runs: what they refuse would leave rows silently unconverted,
 * where what the guard refuses breaks loudly and can be repaired by whoever asked for it.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "expand_contract.h"

PG_FUNCTION_INFO_V1(ec_ddl_guard);
PG_FUNCTION_INFO_V1(ec_ddl_guard_end);

bool		ec_allow_ddl = false;

/*
 * How many ec_exec calls are running in this backend: DDL inside one is the extension's own.  A
 * counter, since a step's DDL may call back into the extension (a "sql" operation that calls a
 * function that runs ec_exec); ec_exec decrements it in PG_FINALLY, so an error, caught or not,
 * leaves it as it was before the call.
 */
int			ec_own_ddl_depth = 0;

/* A schema that an active migration covers. */
typedef struct Guard
{
	Oid			nspid;
	bool		version_schema; /* one of its version schemas, else the migrated schema */
	char	   *schema;			/* the migrated schema */
	char	   *migration;
	bool		window;			/* complete, in its revert window (revert.c) */
} Guard;

/* The schemas of every active migration: each migrated schema and its version schemas. */
static List *
active_guards(void)
{
	List	   *guards = NIL;
	uint64		n;
	MemoryContext cxt = CurrentMemoryContext;

	SPI_connect();
	n = ec_guarded_migrations();
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		char	   *schema = pstrdup(SPI_getvalue(tuple, desc, 1));
		char	   *migration = pstrdup(SPI_getvalue(tuple, desc, 2));
		bool		window = strcmp(SPI_getvalue(tuple, desc, 5), "t") == 0;

		for (int col = 1; col <= 4; col++)
		{
			char	   *name = col == 2 ? NULL : SPI_getvalue(tuple, desc, col);
			Oid			nspid = name ? get_namespace_oid(name, true) : InvalidOid;
			Guard	   *g;

			if (!OidIsValid(nspid))
				continue;
			g = palloc(sizeof(Guard));
			g->nspid = nspid;
			g->version_schema = col != 1;
			g->schema = schema;
			g->migration = migration;
			g->window = window;
			guards = lappend(guards, g);
		}
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return guards;
}

static Guard *
schema_guard(List *guards, Oid nspid)
{
	ListCell   *lc;

	foreach(lc, guards)
	{
		Guard	   *g = lfirst(lc);

		if (g->nspid == nspid)
			return g;
	}
	return NULL;
}

/*
 * The guard of a relation, or NULL when no active migration covers it.  A migration covers the
 * relations of its version schemas (and of the previous migration's, which the old version reads
 * through), the tables it changes or moves data of, and every relation a view of those version
 * schemas reads; a partition, through its ancestors too.  A table created in the schema after
 * ec_start is in none of them, and its DDL is nobody's business.
 */
static Guard *
relation_guard(List *guards, Oid relid)
{
	Guard	   *g;
	Datum		relids;
	char	   *schema = NULL;
	char	   *migration = NULL;
	bool		window = false;

	if (!OidIsValid(relid) || guards == NIL)
		return NULL;
	if ((g = schema_guard(guards, get_rel_namespace(relid))) != NULL && g->version_schema)
		return g;
	relids = ec_relation_and_ancestors(relid);
	SPI_connect();
	if (ec_migration_guarding_relation(relids) > 0)
	{
		schema = MemoryContextStrdup(TopTransactionContext,
									 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		migration = MemoryContextStrdup(TopTransactionContext,
										SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		window = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "t") == 0;
	}
	SPI_finish();
	if (schema == NULL)
		return NULL;
	g = palloc(sizeof(Guard));
	g->nspid = InvalidOid;
	g->version_schema = false;
	g->schema = schema;
	g->migration = migration;
	g->window = window;
	return g;
}

static Oid
range_var_relid(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

static const char *
relkind_word(Oid relid)
{
	char		kind = get_rel_relkind(relid);

	return kind == RELKIND_VIEW ? "view" :
		kind == RELKIND_MATVIEW ? "materialized view" :
		kind == RELKIND_FOREIGN_TABLE ? "foreign table" : "table";
}

static bool
is_dual_write_trigger(const char *name)
{
	return name != NULL && (strcmp(name, EC_TRIGGER_FIRST_NAME) == 0 ||
							strcmp(name, EC_TRIGGER_LAST_NAME) == 0);
}

/*
 * Refuses "what" (as in "cannot <what>"), or lets it pass with a WARNING when the session allows
 * DDL.
 */
static void
refuse(Guard *g, const char *what)
{
	if (ec_allow_ddl)
	{
		ereport(WARNING,
				(errmsg("allowed to %s while migration \"%s\" of schema \"%s\" is %s",
						what, g->migration, g->schema, g->window ? "in its revert window" : "active"),
				 errdetail("expand_contract.allow_ddl is on; the migration's version views, "
						   "dual-write trigger or %s steps may break.",
						   g->window ? "revert and cleanup" : "contract")));
		return;
	}
	if (g->window)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot %s: migration \"%s\" of schema \"%s\" is in its revert window",
						what, g->migration, g->schema),
				 errdetail("ec_revert and the window's end still need what it kept aside, its "
						   "dual-write trigger and the previous version's views."),
				 errhint("End the window first with ec_cleanup(%s), or undo the migration with "
						 "ec_revert(%s), or SET expand_contract.allow_ddl = on to run it anyway.",
						 quote_literal_cstr(g->schema), quote_literal_cstr(g->schema))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("cannot %s: migration \"%s\" of schema \"%s\" is active",
					what, g->migration, g->schema),
			 errdetail("The migration's version views, dual-write trigger and contract steps "
					   "depend on it."),
			 errhint("Run it as a \"sql\" operation of a migration, or complete or roll back the "
					 "migration first with ec_complete(%s) or ec_rollback(%s), or SET "
					 "expand_contract.allow_ddl = on to run it anyway.",
					 quote_literal_cstr(g->schema), quote_literal_cstr(g->schema))));
}

static void
check_alter_table(List *guards, AlterTableStmt *stmt)
{
	Oid			relid = range_var_relid(stmt->relation);
	Guard	   *g = NULL;
	bool		looked_up = false;
	const char *rel;
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	rel = psprintf("%s \"%s\"", relkind_word(relid), get_rel_name(relid));
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		const char *what = NULL;

		if (!IsA(cmd, AlterTableCmd))
			continue;
		switch (cmd->subtype)
		{
			case AT_AddColumn:
			case AT_AddColumnToView:
				what = psprintf("add column \"%s\" to %s",
								((ColumnDef *) cmd->def)->colname, rel);
				break;
			case AT_DropColumn:
				what = psprintf("drop column \"%s\" of %s", cmd->name, rel);
				break;
			case AT_AlterColumnType:
				what = psprintf("alter type of column \"%s\" of %s", cmd->name, rel);
				break;
			case AT_ColumnDefault:
			case AT_SetNotNull:
			case AT_DropNotNull:
			case AT_DropExpression:
			case AT_AddIdentity:
			case AT_SetIdentity:
			case AT_DropIdentity:
				what = psprintf("alter column \"%s\" of %s", cmd->name, rel);
				break;
			case AT_DropConstraint:
				what = psprintf("drop constraint \"%s\" of %s", cmd->name, rel);
				break;
			case AT_EnableTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
				/* ENABLE ALWAYS is what they are (pg_dump's output says so again). */
				if (is_dual_write_trigger(cmd->name))
					what = psprintf("change trigger \"%s\" of %s", cmd->name, rel);
				break;
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
				what = psprintf("disable the triggers of %s", rel);
				break;
			case AT_ReplicaIdentity:
				/* A publication's column list from ec_start must cover it (publications.c). */
				what = psprintf("change the replica identity of %s", rel);
				break;
			default:
				break;
		}
		/* Whether a migration covers the table is asked only of a command the guard refuses. */
		if (what && !looked_up)
		{
			g = relation_guard(guards, relid);
			looked_up = true;
		}
		if (what && g)
			refuse(g, what);
	}
}

static void
check_rename(List *guards, RenameStmt *stmt)
{
	Oid			relid;
	Guard	   *g;

	switch (stmt->renameType)
	{
		case OBJECT_SCHEMA:
			g = schema_guard(guards, get_namespace_oid(stmt->subname, true));
			if (g)
				refuse(g, psprintf("rename schema \"%s\"", stmt->subname));
			return;
		case OBJECT_TABLE:
		case OBJECT_VIEW:
		case OBJECT_FOREIGN_TABLE:
		case OBJECT_COLUMN:
		case OBJECT_TABCONSTRAINT:
		case OBJECT_TRIGGER:
			break;
		default:
			return;
	}
	relid = range_var_relid(stmt->relation);
	if ((g = relation_guard(guards, relid)) == NULL)
		return;
	switch (stmt->renameType)
	{
		case OBJECT_COLUMN:
			refuse(g, psprintf("rename column \"%s\" of %s \"%s\"", stmt->subname,
							   relkind_word(relid), get_rel_name(relid)));
			break;
		case OBJECT_TABCONSTRAINT:
			refuse(g, psprintf("rename constraint \"%s\" of %s \"%s\"", stmt->subname,
							   relkind_word(relid), get_rel_name(relid)));
			break;
		case OBJECT_TRIGGER:
			if (is_dual_write_trigger(stmt->subname))
				refuse(g, psprintf("rename trigger \"%s\" of %s \"%s\"", stmt->subname,
								   relkind_word(relid), get_rel_name(relid)));
			break;
		default:
			refuse(g, psprintf("rename %s \"%s\"", relkind_word(relid), get_rel_name(relid)));
			break;
	}
}

static void
check_drop(List *guards, DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		Guard	   *g;

		switch (stmt->removeType)
		{
			case OBJECT_SCHEMA:
				{
					char	   *name = strVal(lfirst(lc));

					if ((g = schema_guard(guards, get_namespace_oid(name, true))) != NULL)
						refuse(g, psprintf("drop schema \"%s\"", name));
					break;
				}
			case OBJECT_TABLE:
			case OBJECT_VIEW:
			case OBJECT_FOREIGN_TABLE:
				{
					Oid			relid = range_var_relid(makeRangeVarFromNameList(lfirst(lc)));

					if ((g = relation_guard(guards, relid)) != NULL)
						refuse(g, psprintf("drop %s \"%s\"", relkind_word(relid),
										   get_rel_name(relid)));
					break;
				}
			case OBJECT_TRIGGER:
				{
					/* The trigger's name last, its table before. */
					List	   *names = lfirst(lc);
					char	   *trigger = strVal(llast(names));
					Oid			relid;

					if (!is_dual_write_trigger(trigger) || list_length(names) < 2)
						break;
					relid = range_var_relid(makeRangeVarFromNameList(list_truncate(list_copy(names),
																				   list_length(names) - 1)));
					if ((g = relation_guard(guards, relid)) != NULL)
						refuse(g, psprintf("drop trigger \"%s\" of %s \"%s\"", trigger,
										   relkind_word(relid), get_rel_name(relid)));
					break;
				}
			default:
				return;
		}
	}
}

static void
check_set_schema(List *guards, AlterObjectSchemaStmt *stmt)
{
	Oid			relid;
	Guard	   *g;

	if (stmt->objectType != OBJECT_TABLE && stmt->objectType != OBJECT_VIEW &&
		stmt->objectType != OBJECT_FOREIGN_TABLE)
		return;
	relid = range_var_relid(stmt->relation);
	if ((g = relation_guard(guards, relid)) != NULL)
		refuse(g, psprintf("move %s \"%s\" to schema \"%s\"", relkind_word(relid),
						   get_rel_name(relid), stmt->newschema));
}

/* Event trigger on ddl_command_start: expand_contract.ddl_guard(). */
Datum
ec_ddl_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *parsetree;
	List	   *guards;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired as an event trigger",
						"expand_contract.ddl_guard")));
	trigdata = (EventTriggerData *) fcinfo->context;
	parsetree = trigdata->parsetree;

	/* Rows left unconverted: refused whoever runs it (their own exceptions apart). */
	ec_check_partition_ddl(parsetree);
	ec_check_repack(parsetree);

	if (ec_own_ddl_depth > 0 || creating_extension)
		PG_RETURN_VOID();
	if (!IsA(parsetree, AlterTableStmt) && !IsA(parsetree, RenameStmt) &&
		!IsA(parsetree, DropStmt) && !IsA(parsetree, AlterObjectSchemaStmt) &&
		!(IsA(parsetree, ViewStmt) && ((ViewStmt *) parsetree)->replace))
		PG_RETURN_VOID();
	guards = active_guards();
	if (guards == NIL)
		PG_RETURN_VOID();

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			check_alter_table(guards, (AlterTableStmt *) parsetree);
			break;
		case T_RenameStmt:
			check_rename(guards, (RenameStmt *) parsetree);
			break;
		case T_DropStmt:
			check_drop(guards, (DropStmt *) parsetree);
			break;
		case T_AlterObjectSchemaStmt:
			check_set_schema(guards, (AlterObjectSchemaStmt *) parsetree);
			break;
		case T_ViewStmt:
			{
				/* CREATE OR REPLACE VIEW of a version view: what a version shows is the migration's. */
				ViewStmt   *stmt = (ViewStmt *) parsetree;
				Oid			relid = range_var_relid(stmt->view);
				Guard	   *g = OidIsValid(relid) ?
					schema_guard(guards, get_rel_namespace(relid)) : NULL;

				if (g && g->version_schema)
					refuse(g, psprintf("replace view \"%s\"", get_rel_name(relid)));
			}
			break;
		default:
			break;
	}
	PG_RETURN_VOID();
}

/*
 * Event trigger on ddl_command_end: expand_contract.ddl_guard_end().  During a revert window, an
 * object of the user's that reads a kept-aside column or table (a view made with SELECT *, which
 * shows the _ec_old_ columns, a trigger, a policy, a function's SQL body) would stop the window's
 * end, whose DROP COLUMN or DROP TABLE it depends on, every time it is tried; and ec_revert is
 * refused once the end has passed.  So the command that makes one is refused, as the start guard
 * refuses DDL, with what it reads.  Only the objects the command made are looked at: a view's
 * rule, or the trigger, policy or function itself.
 */
Datum
ec_ddl_guard_end(PG_FUNCTION_ARGS)
{
	List	   *guards;
	bool		any_window = false;
	ListCell   *lc;
	List	   *found = NIL;
	uint64		n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired as an event trigger",
						"expand_contract.ddl_guard_end")));
	if (ec_own_ddl_depth > 0 || creating_extension)
		PG_RETURN_VOID();
	guards = active_guards();
	foreach(lc, guards)
		any_window = any_window || ((Guard *) lfirst(lc))->window;
	if (!any_window)
		PG_RETURN_VOID();

	SPI_connect();
	n = ec_catalog_spi("WITH made AS ("
					   "  SELECT c.classid, c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
					   "   WHERE c.classid <> 'pg_catalog.pg_class'::pg_catalog.regclass"
					   "  UNION ALL"
					   "  SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid"
					   "    FROM pg_catalog.pg_event_trigger_ddl_commands() c"
					   "    JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.objid"
					   "   WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass)"
					   " SELECT d.refobjid, a.attname::text, c.relname::text,"
					   "        CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND"
					   "                  (SELECT r.rulename FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid) = '_RETURN'"
					   "             THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass,"
					   "                    (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid), 0)"
					   "             ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END"
					   "   FROM made m JOIN pg_catalog.pg_depend d ON d.classid = m.classid AND d.objid = m.objid"
					   "   JOIN pg_catalog.pg_class c ON c.oid = d.refobjid"
					   "   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
					   "  WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'n'"
					   "    AND (a.attname LIKE '\\_ec\\_old\\_%' OR c.relname LIKE '\\_ec\\_dropped\\_%'"
					   "         OR c.relname LIKE '\\_ec\\_old\\_%')"
					   "  ORDER BY 4, 3, 2",
					   0, NULL, NULL, NULL, SPI_OK_SELECT);
	/* Every match: a name that only looks like ours, in a table no window covers, is not one. */
	{
		SPITupleTable *rows = SPI_tuptable;
		MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			Oid		   *relid = palloc(sizeof(Oid));
			char	   *column = SPI_getvalue(rows->vals[i], rows->tupdesc, 2);

			*relid = DatumGetObjectId(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
			found = lappend(found, list_make4(relid, column ? pstrdup(column) : NULL,
											  pstrdup(SPI_getvalue(rows->vals[i], rows->tupdesc, 3)),
											  pstrdup(SPI_getvalue(rows->vals[i], rows->tupdesc, 4))));
		}
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	foreach(lc, found)
	{
		List	   *f = lfirst(lc);
		Guard	   *g = relation_guard(guards, *(Oid *) linitial(f));
		char	   *column = lsecond(f);

		if (g != NULL && g->window)
			refuse(g, column ?
				   psprintf("make %s read column \"%s\" of %s \"%s\", which the window's end drops",
							(char *) lfourth(f), column, relkind_word(*(Oid *) linitial(f)),
							(char *) lthird(f)) :
				   psprintf("make %s read %s \"%s\", which the window's end drops",
							(char *) lfourth(f), relkind_word(*(Oid *) linitial(f)), (char *) lthird(f)));
	}
	PG_RETURN_VOID();
}
