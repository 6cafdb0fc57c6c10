/*
 * revert_carried.c
 *	  Carried user triggers and materialized views during a revert window (see revert_complete.c,
 *	  which runs complete's steps).  Complete drops them and creates them again over the rebuilt
 *	  columns (carry_views.c); with a window, a dropped trigger is created again by the revert from
 *	  its definition, and the old materialized view is renamed aside with its indexes instead of
 *	  dropped, until the window's end.
 *
 *	  A trigger with an UPDATE OF list fires for updates whose statement sets a listed column.
 *	  During the migration the old version's updates set the old column (the trigger's) and a
 *	  stand-in fires for the new version's (carry_views.c).  After complete the trigger, created
 *	  again, lists the new column, and the old version's updates, through the previous version's
 *	  views, set the kept-aside one: so for the window a copy of the trigger, "_ec_old_<name>", fires
 *	  for updates that set the kept-aside columns of its list.  As with the stand-in, an update that
 *	  also sets a listed column that is not rebuilt fires both.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "expand_contract.h"
#include "operations.h"
#include "revert_window.h"

/* What a trigger's recreation needs, read just before a step drops it. */
typedef struct TriggerDef
{
	char	   *def;
	char		enabled;
	char	   *comment;
	char	   *attnums;		/* tgattr as text: attribute numbers separated by spaces */
} TriggerDef;

static bool
read_trigger(Oid relid, const char *name, TriggerDef *t)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(name)};

	if (ec_spi("SELECT pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled,"
			   "       pg_catalog.obj_description(t.oid, 'pg_trigger'), t.tgattr::pg_catalog.text"
			   "  FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = $2",
			   2, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	t->def = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	t->enabled = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)[0];
	t->comment = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	t->attnums = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	return true;
}

/* Does a step of the run drop column `column` of relid, or create trigger `trigger` on it? */
static bool
later_step(WindowRun *run, Oid relid, const char *column, const char *trigger)
{
	ListCell   *lc;

	foreach(lc, run->parsed)
	{
		Node	   *stmt = lfirst(lc);

		if (column && IsA(stmt, AlterTableStmt))
		{
			AlterTableStmt *a = (AlterTableStmt *) stmt;
			AlterTableCmd *cmd = linitial(a->cmds);

			if (cmd->subtype == AT_DropColumn && strcmp(cmd->name, column) == 0 &&
				RangeVarGetRelid(a->relation, NoLock, true) == relid)
				return true;
		}
		else if (trigger && IsA(stmt, CreateTrigStmt))
		{
			CreateTrigStmt *c = (CreateTrigStmt *) stmt;

			if (strcmp(c->trigname, trigger) == 0 &&
				RangeVarGetRelid(c->relation, NoLock, true) == relid)
				return true;
		}
	}
	return false;
}

/*
 * The copy of trigger t for the window: UPDATE only, of the columns of its list that the steps
 * keep aside, its WHEN as it is.  Made while those columns have their names: it binds to them.
 */
static void
copy_for_kept_aside_columns(WindowRun *run, Oid relid, const char *name, TriggerDef *t)
{
	List	   *raw = raw_parser(t->def, RAW_PARSE_DEFAULT);
	CreateTrigStmt *stmt;
	List	   *columns = NIL;
	char	   *copy = pstrdup(t->attnums);
	char	   *tok;
	char	   *save;
	char	   *aside;
	char	   *enable;
	ObjectAddress address;

	if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, CreateTrigStmt))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("unexpected definition of trigger \"%s\"", name)));
	stmt = (CreateTrigStmt *) linitial_node(RawStmt, raw)->stmt;
	if (stmt->isconstraint || !(stmt->events & TRIGGER_TYPE_UPDATE) ||
		!later_step(run, relid, NULL, name))
		return;
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
	{
		char	   *column = get_attname(relid, (AttrNumber) atoi(tok), true);

		if (column && later_step(run, relid, column, NULL))
			columns = lappend(columns, makeString(column));
	}
	if (columns == NIL)
		return;
	aside = ec_temp_name("_ec_old_", name);
	stmt->trigname = aside;
	stmt->events = TRIGGER_TYPE_UPDATE;
	stmt->columns = columns;
	address = CreateTrigger(stmt, t->def, relid, InvalidOid, InvalidOid, InvalidOid, InvalidOid,
							InvalidOid, NULL, false, false);
	CommandCounterIncrement();
	enable = ec_trigger_enabled_statement(relid, aside, t->enabled);
	if (enable)
		ec_exec(enable);
	run->aside_triggers = lappend_oid(run->aside_triggers, address.objectId);
	ec_window_undo(run, psprintf("DROP TRIGGER %s ON %s", quote_identifier(aside),
								 ec_rel_qualified(relid)));
	ec_window_defer(run, relid, NULL, aside, NULL);
}

/*
 * A step drops user trigger `name` of relid (a carried one, before complete creates it again, or
 * an UPDATE OF stand-in): the revert creates it again, as it is now, once the columns it names
 * have their names back.  The step runs after.
 */
void
ec_window_drop_trigger(WindowRun *run, Oid relid, const char *name)
{
	TriggerDef	t;
	char	   *enable;

	if (!read_trigger(relid, name, &t))
		return;					/* DROP TRIGGER IF EXISTS of one that is not there */
	/* Undo runs last-pushed first: its comment and state after it is created. */
	if (t.comment)
		ec_window_undo(run, psprintf("COMMENT ON TRIGGER %s ON %s IS %s", quote_identifier(name),
									 ec_rel_qualified(relid), quote_literal_cstr(t.comment)));
	enable = ec_trigger_enabled_statement(relid, name, t.enabled);
	if (enable)
		ec_window_undo(run, enable);
	ec_window_undo(run, t.def);
	if (t.attnums && t.attnums[0])
		copy_for_kept_aside_columns(run, relid, name, &t);
}

/* A step created trigger `name` on relid (a carried one, over the rebuilt columns). */
void
ec_window_created_trigger(WindowRun *run, Oid relid, const char *name)
{
	run->created_triggers = lappend(run->created_triggers,
									psprintf("%u/%s", relid, name));
	ec_window_undo(run, psprintf("DROP TRIGGER %s ON %s", quote_identifier(name),
								 ec_rel_qualified(relid)));
}

/*
 * A step that changes a trigger (its enabled state, its comment) needs no undo when the trigger
 * is one the steps created: the undo of its creation drops it.
 */
void
ec_window_require_created_trigger(WindowRun *run, const char *step, Oid relid, const char *name)
{
	char	   *key = psprintf("%u/%s", relid, name);
	ListCell   *lc;

	foreach(lc, run->created_triggers)
	{
		if (strcmp(lfirst(lc), key) == 0)
			return;
	}
	ec_window_refuse(run, step, "changes a trigger that the migration does not create");
}

/*
 * A step drops a materialized view that complete replaces by its copy over the rebuilt columns: it
 * is renamed aside instead, "_ec_old_<name>", with its indexes (the copy's take their names), and
 * keeps its rows as they were at complete; the window's end drops it.
 */
void
ec_window_keep_matview_aside(WindowRun *run, Oid relid)
{
	char	   *name = get_rel_name(relid);
	char	   *aside = ec_temp_name("_ec_old_", name);

	ec_exec(psprintf("ALTER MATERIALIZED VIEW %s RENAME TO %s", ec_rel_qualified(relid),
					 quote_identifier(aside)));
	ec_window_undo(run, psprintf("ALTER MATERIALIZED VIEW %s RENAME TO %s",
								 ec_window_sibling(relid, aside), quote_identifier(name)));
	ec_keep_indexes_aside(run, relid);
	ec_window_defer(run, relid, NULL, NULL, NULL);
}
