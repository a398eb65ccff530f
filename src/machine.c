/*-------------------------------------------------------------------------
 *
 * machine.c
 *	  Entry point of the machine extension: module magic, settings and the
 *	  registration of the per-backend caches.
 *
 * Nothing here needs shared_preload_libraries: the SQL API works in any
 * backend that loads the library on first call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "machine.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("machine.max_send_depth",
							"Sets how deeply sends to other actors from handlers and effects may nest.",
							NULL,
							&machine_max_send_depth,
							16, 1, 1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("machine");

	registry_init();
}
