/*
 * ops/sql.c
 *	  sql: raw SQL, "up" at start (or at complete with "onComplete"), "down" at rollback.
 *
 * Every text is parsed with PostgreSQL's raw parser when the document is read, before ec_start
 * takes a lock or runs anything, and statements that cannot work inside the caller's transaction
 * are refused there: transaction control, COPY to or from the client, what PostgreSQL refuses in
 * a transaction block (VACUUM, the CONCURRENTLY forms, ...), and role changes.  Executed, they
 * would fail only when reached: an "up" after the operations before it, a "down" or an
 * "onComplete" not until ec_rollback or ec_complete, which could then never succeed.  A syntax
 * error is caught the same way.  Function bodies (DO, CALL of a procedure) are not looked into:
 * PostgreSQL refuses a COMMIT there when it runs.
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scansup.h"
#include "utils/builtins.h"

#include "operations.h"

typedef struct SqlOp
{
	EcOperation base;
	char	   *up;
	char	   *down;
	bool		on_complete;
} SqlOp;

/* Where a text being checked comes from, for the error context. */
typedef struct SqlTextContext
{
	const char *field;
	const char *text;
	int			position;		/* of the operation in the migration */
	int			location;		/* 1-based, of the statement being checked; 0: none */
} SqlTextContext;

/*
 * Errors point into the operation's text, not into the ec_start call that carried it: a parser
 * position becomes an internal one, shown under the text itself; a refused statement is pointed at.
 */
static void
sql_text_error_callback(void *arg)
{
	SqlTextContext *sc = arg;
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery(sc->text);
	}
	else if (sc->location > 0 && getinternalerrposition() <= 0)
	{
		internalerrposition(sc->location);
		internalerrquery(sc->text);
	}
	errcontext("\"%s\" of operation %d (sql)", sc->field, sc->position);
}

/* Refuses a statement that PostgreSQL will not run inside a transaction block. */
static void
refuse_outside_block(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
			 errmsg("%s is not allowed in a \"sql\" operation", what),
			 errdetail("%s cannot run inside a transaction block, and the SQL of a migration runs "
					   "inside the transaction of the ec_start, ec_complete or ec_rollback call.",
					   what),
			 errhint("%s", hint ? hint :
					 "Run it outside the migration, before ec_start or after ec_complete.")));
}

static bool
reindex_concurrently(ReindexStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->params)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "concurrently") == 0)
			return defGetBoolean(opt);
	}
	return false;
}

static void
check_statement(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_TransactionStmt:
			{
				TransactionStmt *ts = (TransactionStmt *) stmt;
				const char *what = "transaction control";
				int			code = ERRCODE_INVALID_TRANSACTION_TERMINATION;

				switch (ts->kind)
				{
					case TRANS_STMT_BEGIN:
						what = "BEGIN";
						code = ERRCODE_ACTIVE_SQL_TRANSACTION;
						break;
					case TRANS_STMT_START:
						what = "START TRANSACTION";
						code = ERRCODE_ACTIVE_SQL_TRANSACTION;
						break;
					case TRANS_STMT_COMMIT:
						what = "COMMIT";
						break;
					case TRANS_STMT_ROLLBACK:
						what = "ROLLBACK";
						break;
					case TRANS_STMT_SAVEPOINT:
						what = "SAVEPOINT";
						code = ERRCODE_FEATURE_NOT_SUPPORTED;
						break;
					case TRANS_STMT_RELEASE:
						what = "RELEASE SAVEPOINT";
						code = ERRCODE_FEATURE_NOT_SUPPORTED;
						break;
					case TRANS_STMT_ROLLBACK_TO:
						what = "ROLLBACK TO SAVEPOINT";
						code = ERRCODE_FEATURE_NOT_SUPPORTED;
						break;
					case TRANS_STMT_PREPARE:
						what = "PREPARE TRANSACTION";
						break;
					case TRANS_STMT_COMMIT_PREPARED:
						what = "COMMIT PREPARED";
						break;
					case TRANS_STMT_ROLLBACK_PREPARED:
						what = "ROLLBACK PREPARED";
						break;
				}
				ereport(ERROR,
						(errcode(code),
						 errmsg("%s is not allowed in a \"sql\" operation", what),
						 errdetail("The SQL of a migration runs inside the transaction of the "
								   "ec_start, ec_complete or ec_rollback call, which commits or "
								   "rolls back as a whole."),
						 errhint("Remove the transaction control statement.")));
			}
			break;
		case T_VariableSetStmt:
			{
				VariableSetStmt *vs = (VariableSetStmt *) stmt;

				/* SET TRANSACTION: too late once ec_start has run queries, and it is ours. */
				if (vs->kind == VAR_SET_MULTI && strcmp(vs->name, "TRANSACTION") == 0)
					ereport(ERROR,
							(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
							 errmsg("SET TRANSACTION is not allowed in a \"sql\" operation"),
							 errdetail("The SQL of a migration runs inside the transaction of the "
									   "ec_start, ec_complete or ec_rollback call.")));
				if (vs->name && (strcmp(vs->name, "role") == 0 ||
								 strcmp(vs->name, "session_authorization") == 0))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("a \"sql\" operation cannot change the current role"),
							 errdetail("ec_complete and ec_rollback run a migration's SQL as the "
									   "role that started it, where SET ROLE and SET SESSION "
									   "AUTHORIZATION are not allowed."),
							 errhint("Start the migration as the role that should run it.")));
			}
			break;
		case T_CopyStmt:
			{
				CopyStmt   *cs = (CopyStmt *) stmt;

				if (cs->filename == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("COPY %s is not allowed in a \"sql\" operation",
									cs->is_from ? "FROM STDIN" : "TO STDOUT"),
							 errdetail("The SQL of a migration runs in the server, with no client "
									   "to exchange the data with."),
							 errhint("Use INSERT ... VALUES or INSERT ... SELECT instead.")));
			}
			break;
		case T_VacuumStmt:
			if (((VacuumStmt *) stmt)->is_vacuumcmd)
				refuse_outside_block("VACUUM", NULL);
			break;
		case T_IndexStmt:
			if (((IndexStmt *) stmt)->concurrent)
				refuse_outside_block("CREATE INDEX CONCURRENTLY",
									 "Use a \"create_index\" operation instead: expand_contract "
									 "builds its index concurrently.");
			break;
		case T_DropStmt:
			if (((DropStmt *) stmt)->concurrent)
				refuse_outside_block("DROP INDEX CONCURRENTLY",
									 "Use a \"drop_index\" operation instead.");
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *rs = (ReindexStmt *) stmt;

				if (reindex_concurrently(rs))
					refuse_outside_block("REINDEX CONCURRENTLY", NULL);
				if (rs->kind == REINDEX_OBJECT_SCHEMA || rs->kind == REINDEX_OBJECT_SYSTEM ||
					rs->kind == REINDEX_OBJECT_DATABASE)
					refuse_outside_block(rs->kind == REINDEX_OBJECT_SCHEMA ? "REINDEX SCHEMA" :
										 rs->kind == REINDEX_OBJECT_SYSTEM ? "REINDEX SYSTEM" :
										 "REINDEX DATABASE", NULL);
			}
			break;
		case T_RefreshMatViewStmt:
			/* Allowed in a transaction block, but it would not be concurrent in ours. */
			if (((RefreshMatViewStmt *) stmt)->concurrent)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("REFRESH MATERIALIZED VIEW CONCURRENTLY is not allowed in a \"sql\" "
								"operation"),
						 errdetail("It would run inside the transaction of the migration call, "
								   "holding the migration's locks until that commits."),
						 errhint("Refresh the materialized view after the migration call has "
								 "committed.")));
			break;
		case T_AlterTableStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterTableStmt *) stmt)->cmds)
				{
					AlterTableCmd *cmd = lfirst(lc);

					if (cmd->subtype == AT_DetachPartition &&
						((PartitionCmd *) cmd->def)->concurrent)
						refuse_outside_block("ALTER TABLE ... DETACH PARTITION CONCURRENTLY", NULL);
				}
			}
			break;
		case T_CreateSchemaStmt:
			{
				ListCell   *lc;

				foreach(lc, ((CreateSchemaStmt *) stmt)->schemaElts)
					check_statement(lfirst(lc));
			}
			break;
		case T_ClusterStmt:
			if (((ClusterStmt *) stmt)->relation == NULL)
				refuse_outside_block("CLUSTER without a table", NULL);
			break;
		case T_DiscardStmt:
			if (((DiscardStmt *) stmt)->target == DISCARD_ALL)
				refuse_outside_block("DISCARD ALL", NULL);
			break;
		case T_CreatedbStmt:
			refuse_outside_block("CREATE DATABASE", NULL);
			break;
		case T_DropdbStmt:
			refuse_outside_block("DROP DATABASE", NULL);
			break;
		case T_CreateTableSpaceStmt:
			refuse_outside_block("CREATE TABLESPACE", NULL);
			break;
		case T_DropTableSpaceStmt:
			refuse_outside_block("DROP TABLESPACE", NULL);
			break;
		case T_AlterSystemStmt:
			refuse_outside_block("ALTER SYSTEM", NULL);
			break;
		default:
			break;
	}
}

/* Parses one text of the operation and refuses what cannot run in the migration's transaction. */
static void
check_sql_text(EcOperation *op, const char *field, const char *text)
{
	SqlTextContext sc = {field, text, op->position, 0};
	ErrorContextCallback callback;
	List	   *stmts;
	ListCell   *lc;

	callback.callback = sql_text_error_callback;
	callback.arg = &sc;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	stmts = raw_parser(text, RAW_PARSE_DEFAULT);
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);
		int			start = raw->stmt_location;

		/* A statement after a semicolon starts there; point at its first word instead. */
		while (text[start] != '\0' && scanner_isspace(text[start]))
			start++;
		sc.location = pg_mbstrlen_with_len(text, start) + 1;
		check_statement(raw->stmt);
	}
	error_context_stack = callback.previous;
}

static void
sql_read(EcOperation *base, EcDocObject *o)
{
	SqlOp	   *op = (SqlOp *) base;

	op->up = ec_doc_sql(o, "up", true);
	op->down = ec_doc_sql(o, "down", false);
	op->on_complete = ec_doc_bool(o, "onComplete", false, NULL);
	if (op->on_complete && op->down != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"sql\" operation cannot have both \"down\" and \"onComplete\"")));
	check_sql_text(base, "up", op->up);
	if (op->down)
		check_sql_text(base, "down", op->down);
}

static void
sql_start(EcStartContext *cxt, EcOperation *base)
{
	SqlOp	   *op = (SqlOp *) base;
	int			nestlevel;

	if (op->on_complete)
	{
		cxt->complete_tail = lappend(cxt->complete_tail, pstrdup(op->up));
		return;
	}
	nestlevel = ec_guc_push("search_path", quote_identifier(cxt->model->schema));
	ec_op_run(cxt, op->up, op->down);
	if (ec_planning)
		ec_plan_note_last("the \"sql\" operation's own statement: ec_plan's rehearsal ran it (then "
						  "rolled it back) with the locks it takes and for as long as it takes; "
						  "what is not transactional (sequences, session advisory locks) stays");
	ec_guc_pop(nestlevel);
	ec_model_refresh(cxt->model);
}

const EcOpRoutine ec_op_sql = {
	.name = "sql",
	.size = sizeof(SqlOp),
	.read = sql_read,
	.touches = NULL,
	.start = sql_start,
};
