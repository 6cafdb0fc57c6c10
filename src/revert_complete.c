/*
 * revert_complete.c
 *	  ec_complete with a revert window: runs the complete steps keeping aside what they would
 *	  destroy (the keeping aside itself: revert_aside.c), and records each step's undo, the cleanup at the window's end and the worker's
 *	  prepare steps in expand_contract.revert_windows.  ec_revert, ec_cleanup, the window's worker
 *	  and the rest of that table's use are in revert.c.
 *
 * With a window, ec_complete runs the migration's complete steps one by one, as it would, except
 * that what they would destroy is kept aside: a dropped column or table is renamed to an _ec_ name
 * instead, and the dual-write triggers and the previous version's schema stay.  So the tables have
 * the new shape under their final names (the new version), the old version still reads and writes
 * the old columns through its views, and the dual-write trigger, told that the base tables are now
 * the new version, keeps the old columns in step with "down" for every write.  Before each step it
 * records the step that undoes it, read off the catalog as it is right then; ec_revert runs those
 * in reverse order, which leaves the schema exactly as before ec_complete, and then the
 * migration's rollback steps, which leave it exactly as before ec_start (what ec_rollback does).
 * The window's end runs the drops that complete deferred (the cleanup steps).
 *
 * An index that drop_index drops stays as it is until the window's end (nothing to undo).  A
 * carried view is renamed aside as it is (_ec_old_<name>, reading the kept-aside column), and the
 * steps that create it again, and set its owner, grants, comments and options, are undone by
 * dropping the new one.  A serial column's sequence, which complete moves to the rebuilt column
 * (OWNED BY), is moved back; an identity's new sequence takes over from the old one for both
 * versions until the revert (carry_sequence_defaults).  Only steps with an exact undo are kept
 * aside; a migration with any other complete step ("sql" operations run at complete, a dropped
 * foreign key whose referenced column stays) is refused a window before anything runs: such a step
 * either drops what a kept-aside column still needs or cannot be undone.  (A user's trigger on a
 * dropped column stops complete's DROP COLUMN with or without a window, and says so.)  Complete's
 * own publication steps run with an undo that puts the entries back, and once the steps are done
 * revert_publications.c keeps the kept-aside columns and tables out of every publication.  A partitioned table is one table: its
 * steps are on the parent and reach every partition.  A kept-aside column's plain indexes, CHECK
 * and unique constraints and foreign keys go aside with it (renamed _ec_old_<name>), so that
 * carried ones can take their names, and so do other tables' foreign keys to it, which complete
 * would drop: they stay in force on the old columns, which "down" keeps filled, exactly as during
 * the migration.  So a write whose "down" value breaks an old unique constraint (or old foreign
 * key) that its new value keeps is refused during the window as it was during the migration; for a
 * type widening such as int to bigint it cannot happen (down is the identity, or fails on
 * overflow).  The carried unique constraint's undo drops it, with the index that it was attached
 * from and the carried foreign keys that index backs: the rollback steps that follow drop those
 * anyway, so the schema still ends exactly as before ec_start.
 *
 * A primary key cannot stay aside: a table has one, and the old one's index goes with its
 * constraint, and the foreign keys to it with the index.  So complete drops them, and the
 * migration's worker, at the window's start, builds a copy of the old key's index concurrently and
 * adds the foreign keys to it again, NOT VALID and then validated (the window's prepare steps, see
 * keep_primary_key_aside): ec_revert, which waits for them, then only attaches and renames, with no
 * build and no scan under its locks.  Until they are done the old key column has no index of its
 * own; the new key, of which down makes the old one, keeps it unique meanwhile, and the new
 * foreign keys check the same referencing columns.
 *
 * A kept-aside column that down fills loses its default for the window (ec_window_hide_kept_aside_
 * default), so that the trigger can refuse a new-version INSERT or COPY without a column list,
 * whose values land at the base table's places, kept-aside columns included.
 *
 * Everything is in the caller's transaction (or one worker transaction for the cleanup), and the
 * window's state is a table: a crash at any point leaves the window open or closed, never half.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "access/htup_details.h"
#include "common/int.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "rewrite/rewriteHandler.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "operations.h"
#include "revert_window.h"
#include "worker.h"


/* expand_contract.revert_window, in seconds: 0 = complete contracts at once. */
int			ec_revert_window_s = 0;


void
ec_window_refuse(WindowRun *run, const char *step, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("migration \"%s\" cannot be completed with a revert window", run->migration),
			 errdetail("Its complete step \"%s\" %s, which a revert could not undo exactly.", step,
					   why),
			 errhint("Complete it without a window, with ec_complete(%s, revert_window => '0'), or "
					 "roll it back with ec_rollback(%s).", quote_literal_cstr(run->schema),
					 quote_literal_cstr(run->schema))));
}

static Node *
parse_step(const char *step)
{
	List	   *raw = raw_parser(step, RAW_PARSE_DEFAULT);

	if (list_length(raw) != 1)
		return NULL;
	return ((RawStmt *) linitial(raw))->stmt;
}

static bool
is_dual_write_trigger(const char *name)
{
	return strcmp(name, EC_TRIGGER_FIRST_NAME) == 0 || strcmp(name, EC_TRIGGER_LAST_NAME) == 0;
}

/*
 * Is the step the carried identity's "SELECT pg_catalog.setval('<new sequence>', last_value,
 * is_called) FROM <old sequence>"?  If so, its two sequences' names.
 */
static bool
identity_setval(SelectStmt *select, char **new_seq, RangeVar **old_seq)
{
	ResTarget  *target;
	FuncCall   *call;
	A_Const    *arg;

	if (list_length(select->targetList) != 1 || list_length(select->fromClause) != 1 ||
		!IsA(linitial(select->fromClause), RangeVar) || select->whereClause != NULL)
		return false;
	target = linitial(select->targetList);
	if (!IsA(target->val, FuncCall))
		return false;
	call = (FuncCall *) target->val;
	if (list_length(call->funcname) != 2 || strcmp(strVal(linitial(call->funcname)), "pg_catalog") != 0 ||
		strcmp(strVal(lsecond(call->funcname)), "setval") != 0 || list_length(call->args) != 3 ||
		!IsA(linitial(call->args), A_Const))
		return false;
	arg = linitial(call->args);
	if (arg->isnull || !IsA(&arg->val, String))
		return false;
	if (new_seq)
		*new_seq = strVal(&arg->val);
	if (old_seq)
		*old_seq = linitial(select->fromClause);
	return true;
}

/*
 * The first pass, before anything runs: is every step one that can be kept aside or undone?
 * Returns NULL if so, else why not.
 */
static const char *
unsupported(Node *stmt)
{
	if (stmt == NULL)
		return "is not a single statement";
	switch (nodeTag(stmt))
	{
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;

				/* Carried views: kept aside under _ec_old_ names, created again after. */
				if (d->removeType == OBJECT_VIEW)
					return NULL;
				if (list_length(d->objects) != 1)
					return "drops several objects";
				/*
				 * Materialized views replaced by their copies, and triggers: the dual-write ones,
				 * carried ones (created again after) and UPDATE OF stand-ins.
				 */
				if (d->removeType == OBJECT_TABLE || d->removeType == OBJECT_SCHEMA ||
					d->removeType == OBJECT_INDEX || d->removeType == OBJECT_MATVIEW ||
					d->removeType == OBJECT_TRIGGER)
					return NULL;
				return "drops an object that is not a column, a table, an index, a trigger, a "
					"materialized view or a version schema";
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *a = (AlterTableStmt *) stmt;
				AlterTableCmd *cmd;

				/* A carried view's owner, options or defaults: run_step checks it is a new one. */
				if (a->objtype == OBJECT_VIEW)
					return NULL;
				/*
				 * A carried partitioned index's leaves attached to it: the rollback's DROP INDEX of
				 * the carried index takes them along, nothing to undo.
				 */
				if (a->objtype == OBJECT_INDEX && list_length(a->cmds) == 1 &&
					((AlterTableCmd *) linitial(a->cmds))->subtype == AT_AttachPartition)
					return NULL;
				if (a->objtype != OBJECT_TABLE || list_length(a->cmds) != 1)
					return "changes something other than a table's column";
				cmd = linitial(a->cmds);
				switch (cmd->subtype)
				{
					case AT_DropColumn:
					case AT_SetNotNull:
					case AT_ColumnDefault:
					case AT_ValidateConstraint:
					case AT_AddIdentity:	/* an identity column's, on the rebuilt column */
					case AT_EnableTrig: /* a carried trigger's: run_step checks it is new */
					case AT_EnableAlwaysTrig:
					case AT_EnableReplicaTrig:
					case AT_DisableTrig:
						return NULL;
					case AT_DropConstraint:
						/*
						 * The stand-in checks of NOT NULL, which the rollback drops again, and
						 * foreign keys (run_step keeps only those to a kept-aside column).
						 */
						return NULL;
					case AT_AddConstraint:
						{
							Constraint *con = (Constraint *) cmd->def;

							if (IsA(con, Constraint) && con->indexname != NULL &&
								(con->contype == CONSTR_UNIQUE || con->contype == CONSTR_PRIMARY))
								return NULL;
							/*
							 * A partitioned table's carried key: its partitions' keys come from
							 * their built indexes, the parent's is made over them.  The old
							 * primary key is kept as a copy of each leaf's index, an old unique
							 * constraint stays in force on every partition under _ec_old_ names
							 * (revert_aside.c).
							 */
							if (IsA(con, Constraint) &&
								(con->contype == CONSTR_PRIMARY || con->contype == CONSTR_UNIQUE) &&
								get_rel_relkind(RangeVarGetRelid(a->relation, NoLock, true)) ==
								RELKIND_PARTITIONED_TABLE)
								return NULL;
							return "adds a constraint other than a carried unique or primary key one";
						}
					default:
						return "changes an index, constraint, identity or other property of a table";
				}
			}
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) stmt;

				if (r->renameType == OBJECT_COLUMN || r->renameType == OBJECT_TABLE ||
					r->renameType == OBJECT_TABCONSTRAINT || r->renameType == OBJECT_INDEX ||
					r->renameType == OBJECT_SEQUENCE || r->renameType == OBJECT_MATVIEW)
					return NULL;
				return "renames an object that is not a table, column, constraint, index, sequence or "
					"materialized view";
			}
		case T_CommentStmt:
			if (((CommentStmt *) stmt)->objtype == OBJECT_COLUMN ||
				((CommentStmt *) stmt)->objtype == OBJECT_VIEW ||
				((CommentStmt *) stmt)->objtype == OBJECT_TRIGGER)
				return NULL;
			return "comments on an object that is not a column, a view or a trigger";
		case T_CreateTrigStmt:
			if (((CreateTrigStmt *) stmt)->replace)
				return "replaces a trigger";
			return NULL;
		case T_AlterSeqStmt:
			{
				List	   *options = ((AlterSeqStmt *) stmt)->options;

				/* A serial column's sequence, moved to the rebuilt column. */
				if (list_length(options) == 1 &&
					strcmp(((DefElem *) linitial(options))->defname, "owned_by") == 0)
					return NULL;
				return "changes a sequence other than by OWNED BY";
			}
		case T_SelectStmt:
			if (identity_setval((SelectStmt *) stmt, NULL, NULL))
				return NULL;
			return "runs a query";
		case T_ViewStmt:
			if (((ViewStmt *) stmt)->replace)
				return "replaces a view";
			return NULL;
		case T_GrantStmt:
			if (((GrantStmt *) stmt)->is_grant && ((GrantStmt *) stmt)->targtype == ACL_TARGET_OBJECT &&
				((GrantStmt *) stmt)->objtype == OBJECT_TABLE)
				return NULL;
			return "grants or revokes privileges other than a carried view's";
		case T_DoStmt:
			/* publications.c's steps on the tables' entries: run as they are, with their undo */
			if (ec_is_publication_step(stmt))
				return NULL;
			return "runs a statement (a \"sql\" operation or a carried object's)";
		default:
			return "runs a statement (a \"sql\" operation or a carried object's)";
	}
}

static Oid
step_relid(RangeVar *rv)
{
	return RangeVarGetRelid(rv, NoLock, false);
}

/* The qualified name of the schema-qualified relation `name` in relid's schema. */
char *
ec_window_sibling(Oid relid, const char *name)
{
	return ec_qualified(get_namespace_name(get_rel_namespace(relid)), name);
}

void
ec_window_undo(WindowRun *run, char *sql)
{
	run->undo = lcons(sql, run->undo);
}

void
ec_window_defer(WindowRun *run, Oid relid, const char *column, const char *trigger, const char *sql)
{
	Deferred   *d = palloc0(sizeof(Deferred));

	d->relid = relid;
	d->column = column;
	d->trigger = trigger;
	d->sql = sql;
	run->deferred = lappend(run->deferred, d);
}

/* A kept-aside foreign key, dropped at the window's end before the columns it references. */
void
ec_window_defer_constraint(WindowRun *run, Oid relid, const char *constraint)
{
	ec_window_defer(run, relid, NULL, NULL, NULL);
	((Deferred *) llast(run->deferred))->constraint = constraint;
}

/*
 * A step that changes a view (its owner, grants, comment, options, defaults) needs no undo when the
 * view is one the steps created again: the undo of its creation drops it.
 */
static void
require_created_view(WindowRun *run, const char *step, Oid relid)
{
	if (!list_member_oid(run->created_views, relid))
		ec_window_refuse(run, step, "changes a view that the migration does not create");
}

/* The root of the partitioned index tree that index belongs to (itself if it is one). */
static Oid
partition_index_root(Oid index)
{
	List	   *ancestors = get_partition_ancestors(index);

	return ancestors != NIL ? llast_oid(ancestors) : index;
}

/*
 * Runs one step, or what keeps its object aside, and records its undo, read off the catalog as it
 * is just before the step.
 */
static void
run_step(WindowRun *run, Node *stmt, const char *step)
{
	switch (nodeTag(stmt))
	{
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;
				List	   *names = linitial(d->objects);

				if (d->removeType == OBJECT_VIEW)
				{
					ListCell   *lc;

					/*
					 * Carried views: renamed aside, as they are (their grants, comments, owner
					 * and options stay on them), still reading the kept-aside column, which
					 * they bind by number; the steps after create them again over the new one.
					 */
					foreach(lc, d->objects)
					{
						Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)),
															 NoLock, d->missing_ok);
						char	   *name;
						char	   *aside;

						if (!OidIsValid(relid))
							continue;
						if (get_rel_relkind(relid) != RELKIND_VIEW)
							ec_window_refuse(run, step, "drops a relation that is not a view");
						name = get_rel_name(relid);
						aside = ec_temp_name("_ec_old_", name);
						ec_exec(psprintf("ALTER VIEW %s RENAME TO %s", ec_rel_qualified(relid),
										 quote_identifier(aside)));
						ec_window_undo(run, psprintf("ALTER VIEW %s RENAME TO %s", ec_window_sibling(relid, aside),
												quote_identifier(name)));
						ec_window_defer(run, relid, NULL, NULL, NULL);
					}
				}
				else if (d->removeType == OBJECT_SCHEMA)
				{
					/* The previous version's schema: its views read the kept-aside columns. */
					ec_window_defer(run, InvalidOid, NULL, NULL, step);
				}
				else if (d->removeType == OBJECT_INDEX)
				{
					/*
					 * drop_index: the index stays as it is, in force and maintained, as during the
					 * migration; the revert has nothing to undo, the window's end drops it.
					 */
					Oid			indexid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock,
														   d->missing_ok);

					if (OidIsValid(indexid))
						ec_window_defer(run, indexid, NULL, NULL, NULL);
				}
				else if (d->removeType == OBJECT_TRIGGER)
				{
					RangeVar   *rv = makeRangeVarFromNameList(list_truncate(list_copy(names),
																		  list_length(names) - 1));
					Oid			relid = RangeVarGetRelid(rv, NoLock, true);
					char	   *trigger = strVal(llast(names));

					if (!OidIsValid(relid))
						return;
					/* The dual-write triggers keep the kept-aside columns in step until the end. */
					if (is_dual_write_trigger(trigger))
					{
						ec_window_defer(run, relid, NULL, trigger, NULL);
						return;
					}
					ec_window_drop_trigger(run, relid, trigger);
					ec_exec(step);
				}
				else if (d->removeType == OBJECT_MATVIEW)
				{
					Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock,
														 d->missing_ok);

					if (OidIsValid(relid))
						ec_window_keep_matview_aside(run, relid);
				}
				else
				{
					Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock,
														 d->missing_ok);
					char	   *name;
					char	   *aside;

					if (!OidIsValid(relid))
						break;
					if (get_rel_relkind(relid) != RELKIND_RELATION)
						ec_window_refuse(run, step, "drops a table that is not a plain table");
					name = get_rel_name(relid);
					aside = ec_temp_name("_ec_dropped_", name);
					ec_exec(psprintf("ALTER TABLE %s RENAME TO %s", ec_rel_qualified(relid),
									 quote_identifier(aside)));
					ec_window_undo(run, psprintf("ALTER TABLE %s RENAME TO %s", ec_window_sibling(relid, aside),
											quote_identifier(name)));
					ec_keep_indexes_aside(run, relid);
					ec_window_defer(run, relid, NULL, NULL, NULL);
				}
				return;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *a = (AlterTableStmt *) stmt;
				AlterTableCmd *cmd = linitial(a->cmds);
				Oid			relid = step_relid(a->relation);
				char	   *tsql = ec_rel_qualified(relid);

				if (a->objtype == OBJECT_INDEX)
				{
					/*
					 * ATTACH PARTITION of a carried index's leaf (unsupported() let no other
					 * through), which no DETACH undoes: the undo drops the carried index's whole
					 * tree from its root, which the rollback steps that follow drop anyway (IF
					 * EXISTS, as the renames' undo of its indexes).
					 */
					Oid			root = partition_index_root(relid);

					ec_window_undo(run, psprintf("DROP INDEX IF EXISTS %s", ec_rel_qualified(root)));
					break;
				}
				if (a->objtype == OBJECT_VIEW)
				{
					/* A version view's default: the identity's nextval, which the column takes over. */
					if (!list_member_oid(run->created_views, relid) && cmd->subtype == AT_ColumnDefault)
					{
						AttrNumber	attnum = get_attnum(relid, cmd->name);
						char	   *def = attnum ? ec_window_column_default(relid, attnum) : NULL;

						ec_window_undo(run, psprintf("ALTER VIEW %s ALTER COLUMN %s %s", tsql,
												quote_identifier(cmd->name),
												def ? psprintf("SET DEFAULT %s", def) : "DROP DEFAULT"));
						break;
					}
					require_created_view(run, step, relid);
					break;
				}
				switch (cmd->subtype)
				{
					case AT_DropColumn:
						{
							AttrNumber	attnum = get_attnum(relid, cmd->name);
							Oid			primary;
							char	   *aside;

							if (attnum == InvalidAttrNumber)
								return;
							primary = ec_keep_dependents_aside(run, relid, attnum, cmd->name);
							ec_keep_identity_sequence_aside(run, relid, attnum);
							aside = ec_temp_name("_ec_old_", cmd->name);
							ec_exec(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
											 quote_identifier(cmd->name), quote_identifier(aside)));
							ec_window_undo(run, psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
													quote_identifier(aside),
													quote_identifier(cmd->name)));
							CommandCounterIncrement();
							/* Its definitions now name the kept-aside column. */
							if (OidIsValid(primary))
								ec_keep_primary_key_aside(run, relid, primary);
							ec_window_hide_kept_aside_default(run, relid, aside);
							ec_window_defer(run, relid, aside, NULL, NULL);
							return;
						}
					case AT_AddIdentity:
						/* Dropping the identity drops its sequence, which the step creates. */
						ec_window_undo(run, psprintf("ALTER TABLE %s ALTER COLUMN %s DROP IDENTITY", tsql,
												quote_identifier(cmd->name)));
						break;
					case AT_SetNotNull:
						{
							AttrNumber	attnum = get_attnum(relid, cmd->name);

							if (attnum != InvalidAttrNumber && !ec_window_attnotnull(relid, attnum))
								ec_window_undo(run, psprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL",
														tsql, quote_identifier(cmd->name)));
							break;
						}
					case AT_ColumnDefault:
						{
							AttrNumber	attnum = get_attnum(relid, cmd->name);
							char	   *def = attnum ? ec_window_column_default(relid, attnum) : NULL;

							ec_window_undo(run, psprintf("ALTER TABLE %s ALTER COLUMN %s %s", tsql,
													quote_identifier(cmd->name),
													def ? psprintf("SET DEFAULT %s", def) :
													"DROP DEFAULT"));
							break;
						}
					case AT_DropConstraint:
						{
							Oid			conoid = get_relation_constraint_oid(relid, cmd->name,
																			 cmd->missing_ok);

							if (OidIsValid(conoid) && ec_window_is_foreign_key(conoid))
							{
								ec_keep_foreign_key_aside(run, step, relid, conoid, cmd->name);
								return;
							}

							/*
							 * Put back NOT VALID, without a scan: it is one of ours, which the
							 * rollback steps drop right after (with its column, or by name).
							 */
							if (OidIsValid(conoid) && (!ec_window_is_check(conoid) ||
													   strncmp(cmd->name, "_ec_", 4) != 0))
								ec_window_refuse(run, step, "drops a constraint that is not one of its own checks");
							if (OidIsValid(conoid))
								ec_window_undo(run, psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID",
														tsql, quote_identifier(cmd->name),
														TextDatumGetCString(DirectFunctionCall1(pg_get_constraintdef,
																								ObjectIdGetDatum(conoid)))));
							break;
						}
					case AT_AddConstraint:
						{
							/*
							 * A carried unique index attached as its constraint (unique or
							 * primary key): dropping the constraint drops the index, and the
							 * carried foreign keys that the index backs first, all of which the
							 * rollback steps drop anyway.
							 */
							Constraint *con = (Constraint *) cmd->def;
							Oid			index = con->indexname ?
								get_relname_relid(con->indexname, get_rel_namespace(relid)) :
								InvalidOid;
							ListCell   *lc;

							/*
							 * IF EXISTS: a partition's goes with its partitioned table's, whose
							 * undo runs first.
							 */
							ec_window_undo(run, psprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", tsql,
													quote_identifier(con->conname)));
							if (!OidIsValid(index))
								break;
							foreach(lc, ec_window_foreign_keys_on_index(index))
								ec_window_undo(run, psprintf("ALTER TABLE %s DROP CONSTRAINT %s",
														ec_rel_qualified(ec_window_constraint_relid(lfirst_oid(lc))),
														quote_identifier(get_constraint_name(lfirst_oid(lc)))));
							break;
						}
					case AT_EnableTrig:
					case AT_EnableAlwaysTrig:
					case AT_EnableReplicaTrig:
					case AT_DisableTrig:
						ec_window_require_created_trigger(run, step, relid, cmd->name);
						break;
					default:
						/* VALIDATE CONSTRAINT: the worker validated it already; nothing to undo. */
						break;
				}
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) stmt;
				Oid			relid = step_relid(r->relation);
				char	   *tsql = ec_rel_qualified(relid);

				switch (r->renameType)
				{
					case OBJECT_COLUMN:
						ec_window_undo(run, psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tsql,
												quote_identifier(r->newname),
												quote_identifier(r->subname)));
						break;
					case OBJECT_TABCONSTRAINT:
						ec_window_undo(run, psprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tsql,
												quote_identifier(r->newname),
												quote_identifier(r->subname)));
						break;
					case OBJECT_INDEX:
						ec_window_undo(run, psprintf("ALTER INDEX IF EXISTS %s RENAME TO %s",
												ec_window_sibling(relid, r->newname),
												quote_identifier(get_rel_name(relid))));
						break;
					case OBJECT_SEQUENCE:
						ec_window_undo(run, psprintf("ALTER SEQUENCE %s RENAME TO %s",
												ec_window_sibling(relid, r->newname),
												quote_identifier(get_rel_name(relid))));
						break;
					case OBJECT_MATVIEW:
						ec_window_undo(run, psprintf("ALTER MATERIALIZED VIEW %s RENAME TO %s",
												ec_window_sibling(relid, r->newname),
												quote_identifier(get_rel_name(relid))));
						break;
					default:
						ec_window_undo(run, psprintf("ALTER TABLE %s RENAME TO %s",
												ec_window_sibling(relid, r->newname),
												quote_identifier(get_rel_name(relid))));
						break;
				}
				break;
			}
		case T_SelectStmt:
			{
				char	   *new_seq;
				RangeVar   *old_rv;

				(void) identity_setval((SelectStmt *) stmt, &new_seq, &old_rv);
				ec_window_carry_sequence_defaults(run, RangeVarGetRelid(old_rv, NoLock, false),
										RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(new_seq)),
														 NoLock, false));
				break;
			}
		case T_AlterSeqStmt:
			{
				/*
				 * The sequence's owning column before the step.  Its undo runs after the later
				 * steps' undo, when that column has its name back: the name it has now.
				 */
				Oid			seqid = RangeVarGetRelid(((AlterSeqStmt *) stmt)->sequence, NoLock, false);
				Oid			tableid;
				int32		colid;

				if (sequenceIsOwned(seqid, DEPENDENCY_AUTO, &tableid, &colid))
					ec_window_undo(run, psprintf("ALTER SEQUENCE %s OWNED BY %s.%s", ec_rel_qualified(seqid),
											ec_rel_qualified(tableid),
											quote_identifier(get_attname(tableid, colid, false))));
				else
					ec_window_undo(run, psprintf("ALTER SEQUENCE %s OWNED BY NONE", ec_rel_qualified(seqid)));
				break;
			}
		case T_ViewStmt:
			{
				ViewStmt   *v = (ViewStmt *) stmt;
				Oid			relid;

				ec_exec(step);
				relid = RangeVarGetRelid(v->view, NoLock, false);
				run->created_views = lappend_oid(run->created_views, relid);
				ec_window_undo(run, psprintf("DROP VIEW %s", ec_rel_qualified(relid)));
				return;
			}
		case T_GrantStmt:
			{
				ListCell   *lc;

				foreach(lc, ((GrantStmt *) stmt)->objects)
					require_created_view(run, step, RangeVarGetRelid(lfirst(lc), NoLock, false));
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *c = (CreateTrigStmt *) stmt;

				ec_exec(step);
				ec_window_created_trigger(run, step_relid(c->relation), c->trigname);
				return;
			}
		case T_DoStmt:
			/* A publication step (unsupported() let no other through). */
			ec_window_publication_step(run, step);
			return;
		case T_CommentStmt:
			if (((CommentStmt *) stmt)->objtype == OBJECT_TRIGGER)
			{
				List	   *names = castNode(List, ((CommentStmt *) stmt)->object);

				ec_window_require_created_trigger(run, step,
												  step_relid(makeRangeVarFromNameList(list_truncate(list_copy(names),
																									list_length(names) - 1))),
												  strVal(llast(names)));
				break;
			}
			if (((CommentStmt *) stmt)->objtype == OBJECT_VIEW)
			{
				List	   *names = castNode(List, ((CommentStmt *) stmt)->object);

				require_created_view(run, step,
									 RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false));
				break;
			}
			{
				CommentStmt *c = (CommentStmt *) stmt;
				List	   *names = castNode(List, c->object);
				const char *column = strVal(llast(names));
				Oid			relid = step_relid(makeRangeVarFromNameList(list_truncate(list_copy(names),
																					  list_length(names) - 1)));
				AttrNumber	attnum = get_attnum(relid, column);
				char	   *old = attnum ? ec_window_column_comment(relid, attnum) : NULL;

				ec_window_undo(run, psprintf("COMMENT ON COLUMN %s.%s IS %s", ec_rel_qualified(relid),
										quote_identifier(column),
										old ? quote_literal_cstr(old) : "NULL"));
				break;
			}
		default:
			break;
	}
	ec_exec(step);
}

static void
window_error_context(void *arg)
{
	WindowRun  *run = arg;

	if (run->step)
		errcontext("complete step \"%s\" of migration \"%s\", kept for a revert window", run->step,
				   run->migration);
}

static void
run_window_steps(void *arg)
{
	WindowRun  *run = arg;
	List	   *parsed = NIL;
	ErrorContextCallback callback;
	ListCell   *lc,
			   *lc2;

	/* Refuse before anything runs. */
	foreach(lc, run->steps)
	{
		Node	   *stmt = parse_step(lfirst(lc));
		const char *why = unsupported(stmt);

		/* An onComplete "sql" has no "down": whatever it looks like, it cannot be undone. */
		if (!why && list_member_str(run->on_complete, lfirst(lc)))
			why = "runs a statement (a \"sql\" operation or a carried object's)";

		if (why)
			ec_window_refuse(run, lfirst(lc), why);
		parsed = lappend(parsed, stmt);
	}
	run->parsed = parsed;

	callback.callback = window_error_context;
	callback.arg = run;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	forboth(lc, run->steps, lc2, parsed)
	{
		run->step = lfirst(lc);
		run_step(run, lfirst(lc2), run->step);
		if (IsA(lfirst(lc2), RenameStmt) && ((RenameStmt *) lfirst(lc2))->renameType == OBJECT_TABLE)
			ec_window_rename_prepared(run, lfirst(lc2));
		CommandCounterIncrement();
	}
	run->step = NULL;
	ec_window_prepare_foreign_keys(run);
	/* No kept-aside column or table is published meanwhile (unless told to leave publications be). */
	if (ec_publications_mode == EC_PUBLICATIONS_MANAGE)
		ec_window_publications(run);
	error_context_stack = callback.previous;
}

/* What the window's end drops, under the names the objects have once complete is done. */
static List *
cleanup_steps(List *deferred)
{
	List	   *steps = NIL;
	ListCell   *lc;

	StringInfoData views;
	StringInfoData matviews;

	/*
	 * Triggers and the kept-aside views first (they read the old columns; the views, dropped in
	 * one statement, may read each other, and the materialized views they read), then columns and
	 * tables, the schema last.
	 */
	initStringInfo(&views);
	initStringInfo(&matviews);
	foreach(lc, deferred)
	{
		Deferred   *d = lfirst(lc);

		if (d->trigger)
			steps = lappend(steps, psprintf("DROP TRIGGER IF EXISTS %s ON %s",
											quote_identifier(d->trigger),
											ec_rel_qualified(d->relid)));
		else if (!d->sql && !d->column && !d->constraint && get_rel_relkind(d->relid) == RELKIND_VIEW)
			appendStringInfo(&views, "%s%s", views.len ? ", " : "", ec_rel_qualified(d->relid));
		else if (!d->sql && !d->column && !d->constraint && get_rel_relkind(d->relid) == RELKIND_MATVIEW)
			appendStringInfo(&matviews, "%s%s", matviews.len ? ", " : "", ec_rel_qualified(d->relid));
	}
	if (views.len)
		steps = lappend(steps, psprintf("DROP VIEW IF EXISTS %s", views.data));
	if (matviews.len)
		steps = lappend(steps, psprintf("DROP MATERIALIZED VIEW IF EXISTS %s", matviews.data));
	foreach(lc, deferred)
	{
		Deferred   *d = lfirst(lc);

		if (!d->sql && !d->column && !d->constraint && !d->trigger &&
			(get_rel_relkind(d->relid) == RELKIND_VIEW ||
			 get_rel_relkind(d->relid) == RELKIND_MATVIEW))
			continue;
		if (d->sql)
			steps = lappend(steps, pstrdup(d->sql));
		else if (get_rel_relkind(d->relid) == RELKIND_INDEX)
			steps = lappend(steps, psprintf("DROP INDEX IF EXISTS %s", ec_rel_qualified(d->relid)));
		else if (d->column)
			steps = lappend(steps, psprintf("ALTER TABLE %s DROP COLUMN %s",
											ec_rel_qualified(d->relid),
											quote_identifier(d->column)));
		else if (d->constraint)
			steps = lappend(steps, psprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s",
											ec_rel_qualified(d->relid),
											quote_identifier(d->constraint)));
		else if (!d->trigger)
			steps = lappend(steps, psprintf("DROP TABLE %s", ec_rel_qualified(d->relid)));
	}
	return steps;
}


/* The window asked for: the call's argument (argno) if given and not NULL, else the setting. */
int64
ec_revert_window_arg(FunctionCallInfo fcinfo, int argno)
{
	int64		usecs;

	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
	{
		Interval   *i = PG_GETARG_INTERVAL_P(argno);

		int64		days = (int64) i->month * DAYS_PER_MONTH + i->day;

		/* At most about a century: ends_at must stay a timestamp. */
		if (days > 36600 || days < -36600 ||
			pg_add_s64_overflow(i->time, days * USECS_PER_DAY, &usecs) ||
			usecs > (int64) 36600 * USECS_PER_DAY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("revert window is too long"),
					 errdetail("A revert window lasts at most 36600 days.")));
		if (usecs < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("revert window must not be negative")));
	}
	else
		usecs = (int64) ec_revert_window_s * USECS_PER_SEC;
	if (usecs > 0)
		ec_require_catalog("0.2.0", "ec_complete with a revert window");
	return usecs;
}

typedef struct DualWriteRow
{
	Oid			relid;
	int			n;
	Datum	   *old_attnums;
	Datum	   *new_attnums;
	Datum	   *ups;
	Datum	   *downs;
} DualWriteRow;

static Datum *
array_items(HeapTuple tuple, TupleDesc desc, int column, Oid type, int *n)
{
	bool		isnull;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *items;
	ArrayType  *array = DatumGetArrayTypePCopy(SPI_getbinval(tuple, desc, column, &isnull));

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(array, type, typlen, typbyval, typalign, &items, NULL, n);
	return items;
}

static Datum
names_of(Oid relid, Datum *attnums, int n)
{
	Datum	   *names = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		AttrNumber	attnum = DatumGetInt16(attnums[i]);

		names[i] = DirectFunctionCall1(namein,
									   CStringGetDatum(attnum ? get_attname(relid, attnum, false) : ""));
	}
	return PointerGetDatum(construct_array(names, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

static Datum
sources_of(Oid relid, Datum *exprs, int n)
{
	Datum	   *sources = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		char	   *tree = TextDatumGetCString(exprs[i]);

		sources[i] = CStringGetTextDatum(tree[0] ? ec_deparse(stringToNode(tree), relid) : "");
	}
	return PointerGetDatum(construct_array(sources, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * The dual_writes rows' columns by name and expressions as text, which a restored database
 * re-analyses (restore.c), under the names complete just gave the columns: a dump taken during the
 * window restores a trigger that still keeps the old columns in step.
 */
static void
refresh_dual_writes(int64 id)
{
	List	   *rows = NIL;
	ListCell   *lc;
	uint64		n = ec_dual_write_trees(id);

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		DualWriteRow *row = palloc0(sizeof(DualWriteRow));
		bool		isnull;
		int			n2,
					n3,
					n4;

		row->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		row->old_attnums = array_items(tuple, desc, 2, INT2OID, &row->n);
		row->new_attnums = array_items(tuple, desc, 3, INT2OID, &n2);
		row->ups = array_items(tuple, desc, 4, TEXTOID, &n3);
		row->downs = array_items(tuple, desc, 5, TEXTOID, &n4);
		if (n2 != row->n || n3 != row->n || n4 != row->n)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("expand_contract.dual_writes arrays for relation %u differ in length",
									 row->relid)));
		rows = lappend(rows, row);
	}
	foreach(lc, rows)
	{
		DualWriteRow *row = lfirst(lc);
		Datum		old_columns = names_of(row->relid, row->old_attnums, row->n);
		Datum		new_columns = names_of(row->relid, row->new_attnums, row->n);
		Datum		up_sources = sources_of(row->relid, row->ups, row->n);
		Datum		down_sources = sources_of(row->relid, row->downs, row->n);

		ec_set_dual_write_sources(row->relid, old_columns, new_columns, up_sources, down_sources);
	}
}

/* The "up" of the migration's onComplete "sql" operations: complete runs each as a step. */
static List *
on_complete_steps(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	List	   *ups = NIL;
	uint64		n;

	n = ec_catalog_spi("SELECT o.value->'sql'->>'up' FROM " EC_STATE_SCHEMA ".migrations m,"
					   " pg_catalog.jsonb_array_elements(m.migration->'operations') o"
					   " WHERE m.id = $1 AND pg_catalog.jsonb_typeof(o.value->'sql') = 'object'"
					   "   AND (o.value->'sql'->'onComplete') = 'true'::pg_catalog.jsonb",
					   1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		char	   *up = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (up)
			ups = lappend(ups, up);
	}
	return ups;
}

/*
 * The window's end, rehearsed now and rolled back.  A kept-aside column that something the
 * migration did not make still reads (a generated column, a policy, a view made since ec_start)
 * stops a plain complete's DROP COLUMN; renamed aside, it would stop the window's end the same
 * way, every time, and leave a window that can neither end nor, once its end has passed, be
 * reverted.  So complete raises now the error the end would raise.  The steps change only the
 * catalogs, on what complete holds locked.
 */
typedef struct CleanupRun
{
	EcMigrationRow *m;
	const char *schema;
	List	   *steps;
} CleanupRun;

static void
exec_cleanup_steps(void *arg)
{
	CleanupRun *c = arg;

	ec_exec_contract_steps(c->m->started_by, c->schema, c->steps, false);
}

static void
rehearse_cleanup(EcMigrationRow *m, const char *schema, List *cleanup)
{
	CleanupRun	c = {m, schema, cleanup};
	ErrorData  *edata = ec_in_subtransaction(exec_cleanup_steps, &c, false);

	if (edata == NULL)
		return;
	edata->context = psprintf("%s%sthe end of the revert window of migration \"%s\", rehearsed "
							  "by ec_complete", edata->context ? edata->context : "",
							  edata->context ? "\n" : "", m->name);
	ReThrowError(edata);
}

/*
 * ec_complete's steps with a revert window of `usecs`: runs them keeping the old structure aside,
 * records the window, and keeps the migration's dual_writes rows.  The caller holds complete's
 * locks and marks the migration complete afterwards as usual (ec_finish_migration is not called).
 */
void
ec_complete_with_window(EcMigrationRow *m, const char *schema, List *steps, int64 usecs)
{
	WindowRun	run;
	List	   *cleanup;
	ListCell   *lc;

	memset(&run, 0, sizeof(run));
	run.migration = m->name;
	run.schema = schema;
	run.steps = steps;
	run.relids = m->relids;
	run.on_complete = on_complete_steps(m->id);
	ec_run_as(OidIsValid(m->started_by) ? m->started_by : GetUserId(), quote_identifier(schema),
			  run_window_steps, &run);

	refresh_dual_writes(m->id);
	cleanup = cleanup_steps(run.deferred);
	rehearse_cleanup(m, schema, cleanup);
	ec_open_revert_window(m->id, GetCurrentTransactionStartTimestamp() + usecs, run.undo, cleanup,
						  run.prepare);
	ec_mark_migration_done(m->id);
	/* Sessions' cached trigger plans learn that the tables are the new version now. */
	foreach(lc, m->relids)
		CacheInvalidateRelcacheByRelid(lfirst_oid(lc));
	/*
	 * Its worker waits for the window's end.  The worker lock that ec_complete took to stop the
	 * backfill worker goes now, not after the commit: the worker launched at commit would find it
	 * still held and leave.  One started meanwhile sees the migration active, with nothing to do.
	 */
	{
		LOCKTAG		tag;

		ec_worker_lock_tag(&tag, MyDatabaseId, m->id);
		(void) LockRelease(&tag, ExclusiveLock, false);
	}
	ec_launch_after_commit(m->id);
}
