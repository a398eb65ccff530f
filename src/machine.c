/*-------------------------------------------------------------------------
 *
 * machine.c
 *	  Entry point of the machine extension: module magic, settings, the
 *	  background worker's registration and the per-backend caches.
 *
 * The SQL API needs no preload: a backend loads the library on first call.
 * With shared_preload_libraries = 'machine' the launcher is registered too,
 * and it starts the workers that fire timers and take spaced snapshots.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "machine.h"
#include "served.h"

PG_MODULE_MAGIC;

/* Was the library preloaded, so that a launcher runs? */
bool		machine_preloaded = false;

int			machine_timer_timeout = 10 * 1000;

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
	DefineCustomIntVariable("machine.naptime",
							"Sets how often the background workers look for due timers and snapshots.",
							NULL,
							&machine_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("machine.timer_timeout",
							"Sets the longest time a timer's transition may take in the background worker.",
							"A timer that takes longer is cancelled, logged and dropped; 0 means no limit.",
							&machine_timer_timeout,
							10 * 1000, 0, PG_INT32_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	served_init();
	MarkGUCPrefixReserved("machine");

	if (process_shared_preload_libraries_in_progress)
	{
		machine_preloaded = true;
		machine_register_launcher();
	}
	registry_init();
	subscriptions_init();
}
