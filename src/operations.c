/*
 * operations.c
 *	  The operation table, and what ec_start does with it before and while it runs the operations:
 *	  finding a document's operations, checking that the caller owns what they change, collecting the
 *	  locks they need (taken up front, with retries), and running each one's start.
 *
 * Adding an operation: a file in src/ops/ defining its EcOpRoutine, and its row here.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "operations.h"

static const EcOpRoutine *const ec_operations[] = {
	&ec_op_create_table,
	&ec_op_add_column,
	&ec_op_drop_column,
	&ec_op_rename_column,
	&ec_op_alter_column,
	&ec_op_rename_table,
	&ec_op_drop_table,
	&ec_op_sql,
	&ec_op_rename_constraint,
	&ec_op_set_replica_identity,
	&ec_op_create_constraint,
	&ec_op_drop_constraint,
	&ec_op_drop_multicolumn_constraint,
	&ec_op_create_index,
	&ec_op_drop_index,
};

/* The routine of the operation called name in pgroll's documents, or NULL. */
const EcOpRoutine *
ec_find_operation(const char *name)
{
	for (int i = 0; i < lengthof(ec_operations); i++)
	{
		if (strcmp(ec_operations[i]->name, name) == 0)
			return ec_operations[i];
	}
	return NULL;
}

void
ec_apply_operation(EcStartContext *cxt, EcOperation *op)
{
	op->routine->start(cxt, op);
	ec_op_finish_composition(cxt);
}

/* What the operations of a migration touch: by table name, the strongest lock and who must own it. */
typedef struct EcTouch
{
	char	   *table;
	LOCKMODE	mode;
	bool		must_own;
} EcTouch;

struct EcTouches
{
	List	   *touches;		/* EcTouch * */
};

void
ec_touch(EcTouches *touches, const char *table, LOCKMODE mode, bool must_own)
{
	EcTouch    *touch = palloc(sizeof(EcTouch));

	touch->table = pstrdup(table);
	touch->mode = mode;
	touch->must_own = must_own;
	touches->touches = lappend(touches->touches, touch);
}

static List *
collect_touches(List *operations)
{
	EcTouches	touches = {NIL};
	ListCell   *lc;

	foreach(lc, operations)
	{
		EcOperation *op = lfirst(lc);

		if (op->routine->touches)
			op->routine->touches(op, &touches);
	}
	return touches.touches;
}

/*
 * Only the owner of a table (or a member of its owning role, or a superuser) may change it; the
 * check comes before any lock, so that a role that may not migrate a table cannot even queue for
 * it.  Everything else a migration does is checked by PostgreSQL itself as its DDL runs as the
 * caller (CREATE on the schema and the database, REFERENCES on referenced tables, "sql").
 */
void
ec_check_operation_owners(Oid nspid, List *operations)
{
	ListCell   *lc;

	foreach(lc, collect_touches(operations))
	{
		EcTouch    *touch = lfirst(lc);
		Oid			relid;

		if (!touch->must_own)
			continue;
		relid = get_relname_relid(touch->table, nspid);
		if (OidIsValid(relid) && !ec_class_ownercheck(relid, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
						   touch->table);
		/* DDL on a partitioned table recurses, and PostgreSQL checks each partition's owner. */
		if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		{
			ListCell   *lc2;

			foreach(lc2, find_all_inheritors(relid, NoLock, NULL))
			{
				if (!ec_class_ownercheck(lfirst_oid(lc2), GetUserId()))
					aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(lfirst_oid(lc2)));
			}
		}
	}
}

/*
 * Locks to take, with retries, before any DDL: the strongest each operation needs on the tables it
 * touches (referenced tables of new foreign keys included), and ACCESS SHARE on every other table
 * of the schema (the views read them).  Lock order is by name, as ec_schema_relations lists them.
 */
List *
ec_relations_to_lock(Oid nspid, List *operations, List **modes)
{
	List	   *relids = ec_schema_relations(nspid, false);
	List	   *touches = collect_touches(operations);
	int			n = list_length(relids);
	LOCKMODE   *strongest = palloc(sizeof(LOCKMODE) * (n + 1));
	ListCell   *lc;
	List	   *result = NIL;

	for (int i = 0; i < n; i++)
		strongest[i] = AccessShareLock;
	foreach(lc, touches)
	{
		EcTouch    *touch = lfirst(lc);
		Oid			relid = get_relname_relid(touch->table, nspid);
		int			index = 0;
		ListCell   *lc2;

		if (!OidIsValid(relid))
			continue;
		foreach(lc2, relids)
		{
			if (lfirst_oid(lc2) == relid && strongest[index] < touch->mode)
				strongest[index] = touch->mode;
			index++;
		}
	}
	for (int i = 0; i < n; i++)
	{
		result = lappend_oid(result, list_nth_oid(relids, i));
		*modes = lappend_int(*modes, strongest[i]);
	}
	return ec_lock_partitions_too(result, modes);
}

static void
add_named(RangeVar *rv, List **relids, List **modes)
{
	Oid			relid = rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;

	/* A name that does not resolve yet is created by an earlier step: no one else uses it. */
	if (!OidIsValid(relid) || list_member_oid(*relids, relid))
		return;
	*relids = lappend_oid(*relids, relid);
	*modes = lappend_int(*modes, AccessExclusiveLock);
}

/*
 * The views and sequences that the statements of a contract phase (complete, revert, a window's
 * cleanup) alter, rename or drop, appended to relids for an up-front ACCESS EXCLUSIVE lock with the
 * tables (whose own locks cover their indexes and constraints): views above all (an identity's version view default, a carried view renamed aside or dropped,
 * the previous version's views pointed at a new sequence), which applications use, and which a
 * step would otherwise wait for in the middle, holding the tables' locks while the applications'
 * sessions hold the view's and wait for the tables'.
 */
void
ec_relations_named_by(List *steps, List **relids, List **modes)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		List	   *raw = raw_parser(lfirst(lc), RAW_PARSE_DEFAULT);
		Node	   *stmt;
		ListCell   *lc2;

		if (list_length(raw) != 1)
			continue;
		stmt = ((RawStmt *) linitial(raw))->stmt;
		switch (nodeTag(stmt))
		{
			case T_AlterTableStmt:
				if (((AlterTableStmt *) stmt)->objtype == OBJECT_VIEW ||
					((AlterTableStmt *) stmt)->objtype == OBJECT_SEQUENCE)
					add_named(((AlterTableStmt *) stmt)->relation, relids, modes);
				break;
			case T_RenameStmt:
				if (((RenameStmt *) stmt)->renameType == OBJECT_VIEW ||
					((RenameStmt *) stmt)->renameType == OBJECT_MATVIEW ||
					((RenameStmt *) stmt)->renameType == OBJECT_SEQUENCE)
					add_named(((RenameStmt *) stmt)->relation, relids, modes);
				break;
			case T_AlterSeqStmt:
				add_named(((AlterSeqStmt *) stmt)->sequence, relids, modes);
				break;
			case T_DropStmt:
				{
					DropStmt   *d = (DropStmt *) stmt;

					if (d->removeType != OBJECT_VIEW && d->removeType != OBJECT_MATVIEW &&
						d->removeType != OBJECT_SEQUENCE)
						break;
					foreach(lc2, d->objects)
						add_named(makeRangeVarFromNameList(lfirst(lc2)), relids, modes);
					break;
				}
			default:
				break;
		}
	}
}

/*
 * DDL on a partitioned table takes the same lock on every partition (ADD COLUMN, DROP TRIGGER,
 * ...): each partition of a table in relids gets the strongest mode of its ancestors there, and
 * partitions not listed yet (those in other schemas) are appended after it, so that they too are
 * locked up front with retries rather than in the middle of the DDL.
 */
List *
ec_lock_partitions_too(List *relids, List **modes)
{
	int			n = list_length(relids);

	for (int i = 0; i < n; i++)
	{
		Oid			relid = list_nth_oid(relids, i);
		LOCKMODE	mode = (LOCKMODE) list_nth_int(*modes, i);
		ListCell   *lc;

		if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
			continue;
		foreach(lc, find_all_inheritors(relid, NoLock, NULL))
		{
			Oid			part = lfirst_oid(lc);
			int			index = list_member_oid(relids, part) ? 0 : -1;

			if (part == relid)
				continue;
			if (index == 0)
			{
				ListCell   *lc2;
				ListCell   *lc3;

				forboth(lc2, relids, lc3, *modes)
				{
					if (lfirst_oid(lc2) == part && lfirst_int(lc3) < mode)
						lfirst_int(lc3) = mode;
				}
			}
			else
			{
				relids = lappend_oid(relids, part);
				*modes = lappend_int(*modes, mode);
			}
		}
	}
	return relids;
}
