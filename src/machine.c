/*-------------------------------------------------------------------------
 *
 * machine.c
 *	  Entry point of the machine extension: module magic, and _PG_init,
 *	  which has each module define its settings (beside the variables they
 *	  set), registers the launcher and sets up the per-backend caches.
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

#include "maintenance.h"
#include "registry.h"
#include "send.h"
#include "served.h"
#include "store_direct.h"
#include "subscriptions.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	send_define_settings();
	worker_define_settings();
	maintenance_define_settings();
	served_init();
	MarkGUCPrefixReserved("machine");

	if (process_shared_preload_libraries_in_progress)
		machine_register_launcher();
	registry_init();
	subscriptions_init();
	store_direct_init();
}
