/*
 * init.c
 *	  Module load: settings and cache callbacks.
 *
 * Nothing here needs shared_preload_libraries: the library is loaded by the first call of an ec_*
 * function or of the dual-write trigger in a backend.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "expand_contract.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *ec_version_setting = NULL;
int			ec_lock_timeout_ms = 500;
int			ec_lock_retries = 10;

void
_PG_init(void)
{
	DefineCustomStringVariable("expand_contract.version",
							   "Version that this session's or transaction's writes come from.",
							   "A version schema name (for example public_v2) or a migration name. "
							   "Takes precedence over the search_path; meant for connection poolers "
							   "in transaction mode, with SET LOCAL.",
							   &ec_version_setting,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.lock_timeout",
							"Lock timeout for each attempt to take the locks that migration DDL needs.",
							"A migration never queues other queries behind it for longer than this.",
							&ec_lock_timeout_ms,
							500, 1, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("expand_contract.lock_retries",
							"How many times migration DDL retries after a lock timeout, with backoff.",
							NULL,
							&ec_lock_retries,
							10, 0, 1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("expand_contract");

	ec_trigger_init();
}
