/*
 * operations.h
 *	  The operation table: what a migration operation is to the rest of expand_contract.
 *
 * Each pgroll operation is one EcOpRoutine, defined in its own file under src/ops/ and listed once in
 * ec_operations[] (operations.c), much as an index access method is one IndexAmRoutine.  A routine
 * reads its fields from the document into its own struct (which begins with EcOperation), names the
 * tables it touches with the lock each needs, and does its part of ec_start: the DDL that expands the
 * schema, the edits to the model of the two versions (from which the version views and the complete
 * steps are read off), the rollback steps that undo its DDL, and the tasks it leaves to the worker.
 * Adding an operation is one file, one row in the table, its tests and its README row.
 *
 * Also here: the document reader the routines use (document.c) and the helpers they share
 * (ops/common.c).
 */
#ifndef EC_OPERATIONS_H
#define EC_OPERATIONS_H

#include "expand_contract.h"
#include "catalog/pg_constraint.h"
#include "nodes/bitmapset.h"

/* ---- reading the document (document.c) ---- */

/* The fields of one JSON object, with a flag per field saying whether a reader asked for it. */
typedef struct EcDocObject
{
	const char *what;			/* "add_column" operation, column definition, ... */
	int			n;
	char	  **keys;
	JsonbValue *vals;
	bool	   *used;
} EcDocObject;

extern void ec_doc_load(EcDocObject *o, JsonbValue *v, const char *what);
extern JsonbValue *ec_doc_get(EcDocObject *o, const char *key);
extern void ec_doc_finish(EcDocObject *o);
extern void ec_doc_missing(EcDocObject *o, const char *key) pg_attribute_noreturn();
extern char *ec_doc_string(EcDocObject *o, const char *key, bool required, bool null_ok,
						   bool *present);
extern char *ec_doc_identifier(EcDocObject *o, const char *key, bool required);
extern char *ec_doc_sql(EcDocObject *o, const char *key, bool required);
extern bool ec_doc_bool(EcDocObject *o, const char *key, bool default_value, bool *present);
extern List *ec_doc_array(EcDocObject *o, const char *key, bool required, const char *type);
extern EcCheckDef *ec_doc_check(JsonbValue *v);
extern List *ec_doc_identifier_array(EcDocObject *o, const char *key, bool required);
extern EcForeignKeyDef *ec_doc_column_fk(JsonbValue *v);
extern EcForeignKeyDef *ec_doc_table_fk(JsonbValue *v);
extern EcColumnDef *ec_doc_column(JsonbValue *v);
extern EcConstraintDef *ec_doc_constraint(JsonbValue *v);

/* ---- the tables an operation touches (operations.c) ---- */

typedef struct EcTouches EcTouches;

/*
 * The operation touches table (a name of the new version as the operations before it left it) and
 * needs mode on it before ec_start runs any DDL; must_own: only its owner may do that.
 */
extern void ec_touch(EcTouches *touches, const char *table, LOCKMODE mode, bool must_own);

/* ---- the operation table (operations.c) ---- */

typedef struct EcOpRoutine
{
	const char *name;			/* as in pgroll's documents */
	Size		size;			/* of the operation's struct, which begins with EcOperation */
	/* Reads the operation's fields from its JSON object; ec_doc_finish follows. */
	void		(*read) (EcOperation *op, EcDocObject *doc);
	/* Names the tables it touches, with the lock each needs (NULL: none). */
	void		(*touches) (EcOperation *op, EcTouches *touches);
	/* Its part of ec_start. */
	void		(*start) (EcStartContext *cxt, EcOperation *op);
} EcOpRoutine;

extern const EcOpRoutine ec_op_create_table;
extern const EcOpRoutine ec_op_add_column;
extern const EcOpRoutine ec_op_drop_column;
extern const EcOpRoutine ec_op_rename_column;
extern const EcOpRoutine ec_op_alter_column;
extern const EcOpRoutine ec_op_rename_table;
extern const EcOpRoutine ec_op_drop_table;
extern const EcOpRoutine ec_op_sql;
extern const EcOpRoutine ec_op_create_constraint;
extern const EcOpRoutine ec_op_drop_constraint;
extern const EcOpRoutine ec_op_drop_multicolumn_constraint;
extern const EcOpRoutine ec_op_rename_constraint;
extern const EcOpRoutine ec_op_set_replica_identity;
extern const EcOpRoutine ec_op_create_index;
extern const EcOpRoutine ec_op_drop_index;

extern const EcOpRoutine *ec_find_operation(const char *name);

/* ---- what operations share (ops/common.c) ---- */

extern void ec_op_run(EcStartContext *cxt, const char *sql, const char *undo);
extern void ec_op_require_owner(EcTable *table);
extern char *ec_op_table_sql(EcTable *table);
extern char *ec_op_attname(EcTable *table, AttrNumber attnum);
extern char *ec_op_analyze(EcTable *table, bool new_version, const char *source, const char *what,
						   Oid typid, int32 typmod, bool is_check, Node **result);
extern AttrNumber ec_op_add_new_column(EcStartContext *cxt, EcTable *table, const char *tmpname,
									   const char *type_sql, const char *extra);
extern void ec_op_add_not_valid_check(EcStartContext *cxt, EcTable *table, const char *name,
									  const char *expr_sql);
extern void ec_op_add_check(EcStartContext *cxt, EcTable *table, EcCheckDef *check);
extern void ec_op_refuse_on_partitioned(EcTable *table, bool foreign_key, const char *name);
extern void ec_op_add_foreign_key(EcStartContext *cxt, EcTable *table, List *columns,
								  EcForeignKeyDef *fk);
extern void ec_op_queue_unique(EcStartContext *cxt, EcTable *table, AttrNumber attnum,
							   const char *constraint);
extern void ec_op_comment_on_column(EcTable *table, AttrNumber attnum, const char *comment);
extern char *ec_op_default_sql(const char *source, const char *column, Oid typid, int32 typmod,
							   bool *is_volatile);
extern void ec_op_refuse_subquery(const char *source, const char *what, const char *kind);
extern char *ec_op_qualified_collation(Oid collid);
extern char *ec_op_qualified_opclass(Oid opclassid, char **name, Oid *intype);
extern List *ec_op_parse_parameters(const char *source, const char *what);
extern char *ec_op_parameters_sql(List *params);
extern char *ec_op_blocking_dependent(EcStartContext *cxt, EcTable *table, AttrNumber attnum,
									  bool dropping);

/* How ec_op_rebuild_column builds a column's new version; zeroed: exactly as the old one. */
/*
 * Worker tasks from this sequence number on run after every task that plan.c queues once all
 * operations have run (backfills, validations); seq is an int4, and a migration queues a handful.
 */
#define EC_SEQ_AFTER_BACKFILL	1000000

typedef struct EcColumnRebuild
{
	const char *type;			/* document text; NULL: the old column's type */
	bool		has_nullable;
	bool		nullable;		/* with has_nullable */
	bool		not_null;		/* NOT NULL in the new version whatever the old one is */
	bool		has_default;
	const char *default_expr;	/* with has_default; NULL: no default */
	bool		has_comment;
	const char *comment;		/* with has_comment; NULL: no comment */
	Oid			dropped_constraint; /* goes with the old column, so it does not block it */
} EcColumnRebuild;

/* One entry of a multi-column "up" or "down" object: a column and its SQL expression. */
typedef struct EcColumnExpr
{
	char	   *column;
	char	   *expr;			/* NULL: "" in the document, the column itself */
} EcColumnExpr;

extern bool ec_op_column_rebuilt(EcColumn *col);
extern void ec_op_finish_composition(EcStartContext *cxt);
extern void ec_op_rebuild_column(EcStartContext *cxt, EcTable *table, EcColumn *col,
								 const char *column, const EcColumnRebuild *how);
extern void ec_op_rebuild_expressions(EcTable *table, EcColumn *col, const char *up,
									  const char *down);
extern void ec_op_new_column_not_null(EcStartContext *cxt, EcTable *table, EcColumn *col);
extern void ec_op_queue_unique_index(EcStartContext *cxt, EcTable *table, List *attnums,
									 const char *constraint, const char *options_sql,
									 bool primary_key);
extern List *ec_op_read_column_map(EcDocObject *o, const char *key);
extern EcColumnExpr *ec_op_column_expr(List *map, const char *column);

/* ---- shared by drop_constraint and drop_multicolumn_constraint (ops/drop_multicolumn_constraint.c) ---- */

extern void ec_op_drop_constraint_columns(EcStartContext *cxt, const char *table, const char *name,
										  List *up, List *down, bool single_column);

/* ---- what hangs on a rebuilt column, carried to its replacement (carry*.c) ---- */

/*
 * For each attribute number of a table, the column that replaces it at complete: new_attnum[i - 1]
 * for attribute i, itself where it is not rebuilt.  One map per table, covering every column the
 * migration rebuilds, so a multi-column index or constraint is carried once.
 */
typedef struct EcRebuildMap
{
	int			natts;
	AttrNumber *new_attnum;
	Bitmapset  *rebuilt;		/* attribute numbers that are rebuilt */
} EcRebuildMap;

extern EcRebuildMap *ec_rebuild_map(EcTable *table);
extern void ec_carry_dependents(EcStartContext *cxt, EcTable *table, bool before_backfill);
extern AttrNumber *ec_carry_constraint_attnums(HeapTuple tuple, AttrNumber attribute, int *n);
extern const char *ec_carry_fk_action(char action);
extern char *ec_carry_fk_writing_action(Form_pg_constraint con);
extern const char *ec_carry_fk_match(char match);
extern void ec_carry_indexes(EcStartContext *cxt, EcTable *table, EcRebuildMap *map,
							 bool before_backfill);
extern void ec_carry_constraints(EcStartContext *cxt, EcTable *table, EcRebuildMap *map);
extern void ec_carry_views(EcStartContext *cxt, EcTable *table, EcRebuildMap *map);
extern char *ec_trigger_enabled_statement(Oid relid, const char *name, char enabled);
extern List *ec_carry_foreign_keys_claimed(EcStartContext *cxt, EcTable *table);
extern void ec_carry_foreign_keys(EcStartContext *cxt, EcTable *table, EcRebuildMap *map);
extern List *ec_carry_foreign_keys_tables(EcStartContext *cxt, EcTable *table);

#endif							/* EC_OPERATIONS_H */
