/*
 * compat.h
 *	  Every PostgreSQL-version difference expand_contract depends on, in one place.
 *
 * The build and test target is PostgreSQL 15; 14 to 17 are meant to stay reachable.
 */
#ifndef EC_COMPAT_H
#define EC_COMPAT_H

#include "postgres.h"
#include "storage/proc.h"

#if PG_VERSION_NUM < 140000
#error "expand_contract requires PostgreSQL 14 or later (tuple-ID range scans, RAW_PARSE_PLPGSQL_EXPR)"
#endif

/* Local transaction id of this backend: moved into MyProc->vxid in 17. */
#if PG_VERSION_NUM >= 170000
#define EC_CURRENT_LXID (MyProc->vxid.lxid)
#else
#define EC_CURRENT_LXID (MyProc->lxid)
#endif

/* typeStringToTypeName grew a soft-error argument in 16. */
#if PG_VERSION_NUM >= 160000
#define ec_type_string_to_type_name(str) typeStringToTypeName((str), NULL)
#else
#define ec_type_string_to_type_name(str) typeStringToTypeName(str)
#endif

/* Ownership checks were folded into object_ownercheck in 16. */
#if PG_VERSION_NUM >= 160000
#define ec_class_ownercheck(relid, roleid) object_ownercheck(RelationRelationId, (relid), (roleid))
#else
#define ec_class_ownercheck(relid, roleid) pg_class_ownercheck((relid), (roleid))
#endif

/* Views can check privileges as the invoker since 15; before that the option does not exist. */
#if PG_VERSION_NUM >= 150000
#define EC_VIEW_OPTIONS " WITH (security_invoker = true)"
#else
#define EC_VIEW_OPTIONS ""
#endif

/* Reserving a GUC prefix got its own name in 15. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* list_member_str arrived in 16. */
#if PG_VERSION_NUM < 160000
#include "nodes/pg_list.h"
static inline bool
list_member_str(const List *list, const char *datum)
{
	const ListCell *cell;

	foreach(cell, list)
		if (strcmp((const char *) lfirst(cell), datum) == 0)
			return true;
	return false;
}
#endif

#endif							/* EC_COMPAT_H */
