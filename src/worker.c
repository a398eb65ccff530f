/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers: a launcher, and one worker per
 *	  database that has the extension.
 *
 * The launcher is registered at preload and connects to no database: it
 * reads pg_database every machine.naptime and starts a worker for each
 * database that allows connections (restricted to machine.databases when
 * set) and has none running.  A worker that stopped (its database lacks
 * the extension, or it failed) is started again after a back-off of
 * RESTART_INTERVAL, or at once when a backend reports that the database
 * got the extension (served.c), so that it is served within one
 * machine.naptime.
 *
 * Each worker runs a maintenance pass every machine.naptime: due timers and
 * spaced snapshots in bounded batches, one transaction per batch (see
 * timers.c).  It exits when its database no longer has the extension or is
 * no longer in machine.databases.
 *
 * DROP DATABASE waits a few seconds for other sessions to leave and then
 * fails, and it does not signal background workers.  So a worker wakes at
 * least every second and checks, with a conditional lock, whether someone
 * holds its database's object lock exclusively (as DROP DATABASE does while
 * it waits); if so, it exits at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "maintenance.h"
#include "served.h"
#include "worker.h"

/* How long a stopped worker waits before the launcher starts it again */
#define RESTART_INTERVAL_MS 10000

/* A worker checks for DROP DATABASE at least this often */
#define DROP_CHECK_INTERVAL_MS 1000

/* Timers and snapshots per transaction */
#define WORKER_BATCH_SIZE 500

/* machine.naptime */
int			machine_naptime = 1000;

/* In a worker: the name of its database */
static char worker_database[NAMEDATALEN];

PGDLLEXPORT void machine_launcher_main(Datum main_arg);
PGDLLEXPORT void machine_worker_main(Datum main_arg);

typedef struct ServedDatabase
{
	Oid			dboid;
	char		name[NAMEDATALEN];
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz woken_at;		/* when it last got the extension */
	bool		seen;			/* still in pg_database and allowed */
} ServedDatabase;

void
worker_define_settings(void)
{
	DefineCustomIntVariable("machine.naptime",
							"Sets how often the background workers look for due timers and snapshots.",
							NULL,
							&machine_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* Register the launcher; called from _PG_init during preload */
void
machine_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "machine", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "machine_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "machine launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "machine launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Mark every database that can be served in the launcher's table */
static void
scan_databases(List **served)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	ListCell   *lc;
	MemoryContext context = CurrentMemoryContext;

	foreach(lc, *served)
		((ServedDatabase *) lfirst(lc))->seen = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		ServedDatabase *entry = NULL;
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate ||
			!machine_database_allowed(NameStr(db->datname)))
			continue;
		foreach(lc, *served)
			if (((ServedDatabase *) lfirst(lc))->dboid == db->oid)
				entry = lfirst(lc);
		if (entry == NULL)
		{
			old = MemoryContextSwitchTo(context);
			entry = palloc0(sizeof(ServedDatabase));
			entry->dboid = db->oid;
			strlcpy(entry->name, NameStr(db->datname), NAMEDATALEN);
			*served = lappend(*served, entry);
			MemoryContextSwitchTo(old);
		}
		entry->seen = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

static void
start_worker(ServedDatabase *db)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "machine", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "machine_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "machine worker for database %s",
			 db->name);
	strlcpy(worker.bgw_type, "machine worker", BGW_MAXLEN);
	memcpy(worker.bgw_extra, &db->dboid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	db->started_at = GetCurrentTimestamp();
	if (!RegisterDynamicBackgroundWorker(&worker, &db->handle))
	{
		db->handle = NULL;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the machine worker for database \"%s\"",
						db->name),
				 errhint("Raise max_worker_processes.")));
	}
}

/* Note the databases that got the extension since the last round */
static void
note_wakes(List *served)
{
	Oid			dboids[32];
	bool		all;
	int			n = served_take_wakes(dboids, lengthof(dboids), &all);
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	foreach(lc, served)
	{
		ServedDatabase *db = lfirst(lc);

		for (int i = 0; i < n && !all; i++)
			if (dboids[i] == db->dboid)
				db->woken_at = now;
		if (all)
			db->woken_at = now;
	}
}

/*
 * Start, restart or stop workers to match the databases seen.  A worker
 * that stopped is started again after the back-off, or at once if its
 * database got the extension after it started: it may have looked before
 * the extension was committed.
 */
static void
reconcile_workers(List **served)
{
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, *served)
	{
		ServedDatabase *db = lfirst(lc);
		pid_t		pid;
		bool		running = db->handle != NULL &&
			GetBackgroundWorkerPid(db->handle, &pid) != BGWH_STOPPED;

		if (!db->seen)
		{
			if (running)
				TerminateBackgroundWorker(db->handle);
			*served = foreach_delete_current(*served, lc);
			pfree(db);
			continue;
		}
		if (!running &&
			(db->handle == NULL || db->woken_at > db->started_at ||
			 TimestampDifferenceExceeds(db->started_at, now, RESTART_INTERVAL_MS)))
			start_worker(db);
	}
}

void
machine_launcher_main(Datum main_arg)
{
	List	   *served = NIL;
	MemoryContext context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	context = AllocSetContextCreate(TopMemoryContext, "machine launcher",
									ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(context);
	served_launcher_attach();
	ereport(LOG, (errmsg("machine launcher started")));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		scan_databases(&served);
		note_wakes(served);
		reconcile_workers(&served);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 machine_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Is a DROP DATABASE of our database waiting for us?  It holds the
 * database's object lock in AccessExclusiveLock while it waits.
 */
static bool
database_drop_pending(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	if (LockAcquire(&tag, RowExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, true);
	return false;
}

/* Should this worker go on serving its database? */
static bool
still_served(void)
{
	bool		served;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	strlcpy(worker_database, get_database_name(MyDatabaseId), NAMEDATALEN);
	served = OidIsValid(get_extension_oid("machine", true)) &&
		machine_database_allowed(worker_database);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return served;
}

/* One maintenance pass: batches, each in a transaction, until none is full */
static void
maintenance_pass(void)
{
	MaintenanceCounts total = {0};
	bool		more = true;

	while (more)
	{
		MaintenanceCounts counts = {0};

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "firing due timers, taking spaced snapshots");

		more = maintenance_batch(WORKER_BATCH_SIZE, &counts);

		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
		pgstat_report_stat(false);

		total.fired += counts.fired;
		total.dropped += counts.dropped;
		total.failed += counts.failed;
		total.snapshots += counts.snapshots;
	}
	if (total.fired + total.dropped + total.failed + total.snapshots > 0)
		elog(DEBUG1, "machine worker: %d timers fired, %d dropped, %d failed, %d snapshots taken",
			 total.fired, total.dropped, total.failed, total.snapshots);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
machine_worker_main(Datum main_arg)
{
	Oid			dboid;
	TimestampTz last_pass = 0;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	if (!still_served())
		proc_exit(0);
	ereport(LOG,
			(errmsg("machine worker started for database \"%s\"",
					worker_database)));

	for (;;)
	{
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (database_drop_pending())
			proc_exit(0);

		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_pass, now, machine_naptime))
		{
			if (!still_served())
			{
				ereport(LOG,
						(errmsg("machine worker for database \"%s\" stops: the database is no longer served",
								worker_database)));
				proc_exit(0);
			}
			maintenance_pass();
			last_pass = now;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(machine_naptime, DROP_CHECK_INTERVAL_MS),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
