/*
 * state_dual_writes.c
 *	  Owns expand_contract.dual_writes, the tables' dual-write plans: every query of that table is a
 *	  named function here.  All access through SPI with bound parameters.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/nodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "expand_contract.h"

static Datum
name_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

static Datum
column_name(Oid relid, AttrNumber attnum)
{
	return DirectFunctionCall1(namein, CStringGetDatum(attnum ? get_attname(relid, attnum, false) : ""));
}

/*
 * The table's dual-write plan: per column pair the physical columns and the "up"/"down" expressions,
 * each both as a node tree (what the trigger runs) and as SQL text over the columns' names (what a
 * restored database re-analyses, see restore.c).
 */
void
ec_save_dual_write(int64 id, EcTable *table, const char *new_schema, const char *new_migration,
				   const char *old_schema, const char *old_migration)
{
	Oid			types[14] = {INT8OID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		INT2ARRAYOID, INT2ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	NAMEARRAYOID, NAMEARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[14];
	char		nulls[14] = {' ', ' ', ' ', ' ', old_schema ? ' ' : 'n', old_migration ? ' ' : 'n',
	' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			n = list_length(table->columns);
	Datum	   *old_attnums = palloc(sizeof(Datum) * (n + 1));
	Datum	   *new_attnums = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ups = palloc(sizeof(Datum) * (n + 1));
	Datum	   *downs = palloc(sizeof(Datum) * (n + 1));
	Datum	   *old_names = palloc(sizeof(Datum) * (n + 1));
	Datum	   *new_names = palloc(sizeof(Datum) * (n + 1));
	Datum	   *up_sources = palloc(sizeof(Datum) * (n + 1));
	Datum	   *down_sources = palloc(sizeof(Datum) * (n + 1));
	int			npairs = 0;
	ListCell   *lc;

	foreach(lc, table->columns)
	{
		EcColumn   *col = lfirst(lc);

		if (!col->moves_data)
			continue;
		old_attnums[npairs] = Int16GetDatum(col->old_attnum);
		new_attnums[npairs] = Int16GetDatum(col->new_attnum);
		ups[npairs] = CStringGetTextDatum(col->up ? nodeToString(col->up) : "");
		downs[npairs] = CStringGetTextDatum(col->down ? nodeToString(col->down) : "");
		old_names[npairs] = column_name(table->relid, col->old_attnum);
		new_names[npairs] = column_name(table->relid, col->new_attnum);
		up_sources[npairs] = CStringGetTextDatum(col->up ? ec_deparse(col->up, table->relid) : "");
		down_sources[npairs] = CStringGetTextDatum(col->down ? ec_deparse(col->down, table->relid) : "");
		npairs++;
	}
	values[0] = Int64GetDatum(id);
	values[1] = ObjectIdGetDatum(table->relid);
	values[2] = CStringGetTextDatum(new_schema);
	values[3] = CStringGetTextDatum(new_migration);
	values[4] = old_schema ? CStringGetTextDatum(old_schema) : (Datum) 0;
	values[5] = old_migration ? CStringGetTextDatum(old_migration) : (Datum) 0;
	values[6] = PointerGetDatum(construct_array(old_attnums, npairs, INT2OID, 2, true, TYPALIGN_SHORT));
	values[7] = PointerGetDatum(construct_array(new_attnums, npairs, INT2OID, 2, true, TYPALIGN_SHORT));
	values[8] = PointerGetDatum(construct_array(ups, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	values[9] = PointerGetDatum(construct_array(downs, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	values[10] = name_array(old_names, npairs);
	values[11] = name_array(new_names, npairs);
	values[12] = PointerGetDatum(construct_array(up_sources, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	values[13] = PointerGetDatum(construct_array(down_sources, npairs, TEXTOID, -1, false, TYPALIGN_INT));
	(void) ec_state_spi("INSERT INTO " EC_STATE_SCHEMA ".dual_writes (migration_id, relid, new_version_schema,"
						" new_migration, old_version_schema, old_migration, old_attnums, new_attnums, up_exprs,"
						" down_exprs, old_columns, new_columns, up_sources, down_sources)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
						14, types, values, nulls, SPI_OK_INSERT);
}

/*
 * What the backfill of relid sets: its new columns (name[]) and their "up" as SQL text (text[]),
 * n of each, and the migration's in-progress xids as text ("{...}"); false without a plan.
 */
bool
ec_backfill_sources(Oid relid, Datum **new_columns, Datum **ups, int *n, char **in_progress)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;

	(void) ec_state_spi("SELECT d.new_columns, d.up_sources, m.in_progress_xids::text"
						"  FROM " EC_STATE_SCHEMA ".dual_writes d"
						"  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = d.migration_id"
						" WHERE d.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
						1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													   1, &isnull)),
					  NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, new_columns, NULL, n);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													   2, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, ups, NULL, n);
	*in_progress = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return true;
}

/* The migration moving relid's data (its dual-write plan is there, not complete), or NULL. */
char *
ec_migration_moving_data(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	if (ec_state_spi("SELECT m.name FROM " EC_STATE_SCHEMA ".dual_writes d"
					 "  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = d.migration_id"
					 " WHERE d.relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND NOT m.done",
					 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* The first of relids (an oid[] datum) that has a dual-write plan, by name, or NULL. */
char *
ec_first_with_dual_writes(Datum relids)
{
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1] = {relids};

	if (ec_state_spi("SELECT d.relid::pg_catalog.text FROM " EC_STATE_SCHEMA ".dual_writes d"
					 " WHERE d.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
					 1, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* ---- the dual-write trigger's plan (trigger_plan.c) ---- */

/*
 * relid's plan and its migration's horizon, in SPI_tuptable: new_version_schema, new_migration,
 * old_version_schema, old_migration (text), old_attnums, new_attnums (int2[]), up_exprs, down_exprs
 * (text[]), trigger_xid, in_progress_xids (xid[]), origin, old_columns, new_columns (name[]),
 * up_sources, down_sources (text[]), whether its backfill is unfinished, whether the migration is
 * complete (its revert window), migration_id.  Returns how many (0 or 1).  Read-only, not as the
 * tables' owner: the trigger runs as the writer, with search_path pg_catalog.
 */
uint64
ec_trigger_plan_row(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	int			rc;

	/*
	 * Read the plan as the catalogs are read, with a fresh snapshot, not the writer's: the table's
	 * trigger and helper columns (which the relcache shows as of now) and its dual_writes row commit
	 * together, but a writer's snapshot may predate them, a REPEATABLE READ transaction's or the
	 * logical replication apply worker's (it takes its snapshot before it locks the table).  Seen
	 * through that snapshot the table would have no pairs, and that plan would stay cached.
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	rc = SPI_execute_with_args("SELECT d.new_version_schema::text, d.new_migration,"
							   "       d.old_version_schema::text, d.old_migration,"
							   "       d.old_attnums, d.new_attnums, d.up_exprs, d.down_exprs,"
							   "       m.trigger_xid, m.in_progress_xids, m.origin,"
							   "       d.old_columns, d.new_columns, d.up_sources, d.down_sources,"
							   "       EXISTS (SELECT FROM " EC_STATE_SCHEMA ".tasks t"
							   "                WHERE t.migration_id = d.migration_id AND t.relid = d.relid"
							   "                  AND t.kind = 'backfill' AND t.state <> 'done'),"
							   "       m.done,"
							   "       d.migration_id"
							   "  FROM " EC_STATE_SCHEMA ".dual_writes d"
							   "  JOIN " EC_STATE_SCHEMA ".migrations m ON m.id = d.migration_id"
							   " WHERE d.relid = $1::regclass",
							   1, types, values, NULL, true, 1);
	PopActiveSnapshot();
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("could not read expand_contract.dual_writes: %s", SPI_result_code_string(rc))));
	return SPI_processed;
}

/* ---- restored migrations (restore.c) ---- */

/*
 * The migration's plans as names and SQL text, in SPI_tuptable: relid (oid), old_columns,
 * new_columns (name[]), up_sources, down_sources (text[]).  Returns how many.
 */
uint64
ec_stored_dual_writes(int64 id)
{
	return ec_state_spi_id("SELECT relid::pg_catalog.oid, old_columns, new_columns, up_sources, down_sources"
						   "  FROM " EC_STATE_SCHEMA ".dual_writes WHERE migration_id = $1",
						   id, SPI_OK_SELECT);
}

/*
 * The node trees and attribute numbers of the migration's plan for relid, rewritten: old_attnums,
 * new_attnums (int2[]), up and down expressions (text[] of nodeToString).
 */
void
ec_set_dual_write_trees(int64 id, Oid relid, Datum old_attnums, Datum new_attnums, Datum ups,
						Datum downs)
{
	Oid			types[6] = {INT8OID, OIDOID, INT2ARRAYOID, INT2ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[6] = {Int64GetDatum(id), ObjectIdGetDatum(relid), old_attnums, new_attnums, ups,
	downs};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".dual_writes SET old_attnums = $3, new_attnums = $4,"
						" up_exprs = $5, down_exprs = $6"
						" WHERE migration_id = $1 AND relid OPERATOR(pg_catalog.=) $2::pg_catalog.regclass",
						6, types, values, NULL, SPI_OK_UPDATE);
}

/* ---- complete with a revert window (revert.c) ---- */

/*
 * The migration's plans as node trees, in SPI_tuptable: relid (oid), old_attnums, new_attnums
 * (int2[]), up_exprs, down_exprs (text[]).  Returns how many.
 */
uint64
ec_dual_write_trees(int64 id)
{
	return ec_state_spi_id("SELECT relid::pg_catalog.oid, old_attnums, new_attnums, up_exprs, down_exprs"
						   "  FROM " EC_STATE_SCHEMA ".dual_writes WHERE migration_id = $1",
						   id, SPI_OK_SELECT);
}

/*
 * relid's plan by names and SQL text, rewritten: old_columns, new_columns (name[]), up_sources,
 * down_sources (text[]).
 */
void
ec_set_dual_write_sources(Oid relid, Datum old_columns, Datum new_columns, Datum up_sources,
						  Datum down_sources)
{
	Oid			types[5] = {OIDOID, NAMEARRAYOID, NAMEARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[5] = {ObjectIdGetDatum(relid), old_columns, new_columns, up_sources,
	down_sources};

	(void) ec_state_spi("UPDATE " EC_STATE_SCHEMA ".dual_writes"
						"   SET old_columns = $2, new_columns = $3, up_sources = $4, down_sources = $5"
						" WHERE relid = $1", 5, types, values, NULL, SPI_OK_UPDATE);
}

/* Does a new-version write get relid's column attnum from a "down" (a kept-aside column's)? */
bool
ec_dual_write_has_down(Oid relid, AttrNumber attnum)
{
	Oid			types[2] = {OIDOID, INT2OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int16GetDatum(attnum)};

	return ec_state_spi("SELECT FROM " EC_STATE_SCHEMA ".dual_writes d,"
						"  ROWS FROM (pg_catalog.unnest(d.old_attnums), pg_catalog.unnest(d.down_exprs)) AS p(attnum, down)"
						" WHERE d.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
						"   AND p.attnum OPERATOR(pg_catalog.=) $2 AND p.down OPERATOR(pg_catalog.<>) ''",
						2, types, values, NULL, SPI_OK_SELECT) > 0;
}

/* The migration's dual-write plans deleted: its trigger no longer converts anything. */
void
ec_delete_dual_writes(int64 id)
{
	(void) ec_state_spi_id("DELETE FROM " EC_STATE_SCHEMA ".dual_writes WHERE migration_id = $1",
						   id, SPI_OK_DELETE);
}
