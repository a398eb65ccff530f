/*-------------------------------------------------------------------------
 *
 * served.c
 *	  Which databases the background workers serve, and waking the launcher
 *	  when a database gets the extension.
 *
 * machine.databases is checked when it is set (ALTER SYSTEM, a reload of
 * the configuration file): a value that is not a list of names is refused
 * with the reason, and the previous value stays in force.  The list is
 * parsed once, by the check hook, into the setting's "extra" block, so the
 * launcher and the workers only compare names.
 *
 * The launcher reads pg_database every machine.naptime, but a worker that
 * found no extension in its database is started again only after a
 * back-off.  So that a database that gets the extension is served within
 * one machine.naptime, a backend that commits a CREATE EXTENSION machine
 * puts its database in a small queue in shared memory and sets the
 * launcher's latch; the launcher starts that database's worker at once.
 * This needs the preload, which is also what runs a launcher at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "served.h"

/* Databases queued for the launcher; more at once wake it for all */
#define WAKE_SLOTS 16

/* machine.databases: comma-separated names; empty: every database */
char	   *machine_databases = NULL;

/* The parsed list: the setting's extra block, owned by the GUC machinery */
typedef struct ServedList
{
	int			n;
	char		names[FLEXIBLE_ARRAY_MEMBER][NAMEDATALEN];
} ServedList;

static ServedList *served_list = NULL;

/* Was the library preloaded, so that a launcher starts workers? */
static bool preloaded = false;

typedef struct LauncherWake
{
	slock_t		mutex;
	PGPROC	   *launcher;		/* NULL while no launcher runs */
	bool		all;			/* the queue overflowed */
	int			npending;
	Oid			pending[WAKE_SLOTS];
} LauncherWake;

static LauncherWake *wake = NULL;

/* This transaction created an extension: check for ours before commit */
static bool created_extension = false;

/* ... and it was ours: wake the launcher once committed */
static bool wake_at_commit = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	ServedList *list;
	int			i = 0;

	raw = pstrdup(*newval);
	if (!SplitIdentifierString(raw, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		GUC_check_errhint("Separate database names with commas; put a name that contains a comma, a space, a double quote or upper-case letters in double quotes, with its double quotes doubled.");
		pfree(raw);
		list_free(names);
		return false;
	}

	/* the GUC machinery frees extra blocks with free() */
	list = malloc(offsetof(ServedList, names) +
				  Max(list_length(names), 1) * NAMEDATALEN);
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errdetail("Out of memory.");
		pfree(raw);
		list_free(names);
		return false;
	}
	foreach(lc, names)
		strlcpy(list->names[i++], lfirst(lc), NAMEDATALEN);
	list->n = i;
	pfree(raw);
	list_free(names);
	*extra = list;
	return true;
}

static void
assign_databases(const char *newval, void *extra)
{
	served_list = (ServedList *) extra;
}

/* Is this database name in machine.databases (or is the list empty)? */
bool
machine_database_allowed(const char *name)
{
	if (served_list == NULL || served_list->n == 0)
		return true;
	for (int i = 0; i < served_list->n; i++)
		if (strcmp(served_list->names[i], name) == 0)
			return true;
	return false;
}

/* Does the launcher (preloaded) start a worker for this database? */
bool
served_by_worker(void)
{
	return preloaded &&
		machine_database_allowed(get_database_name(MyDatabaseId));
}

static void
served_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LauncherWake)));
}

static void
served_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	wake = ShmemInitStruct("machine launcher wake", sizeof(LauncherWake), &found);
	if (!found)
	{
		memset(wake, 0, sizeof(LauncherWake));
		SpinLockInit(&wake->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
served_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_POST_CREATE && classId == ExtensionRelationId)
		created_extension = true;
}

/* Queue this database for the launcher and set its latch */
static void
wake_launcher(Oid dboid)
{
	PGPROC	   *launcher;

	if (wake == NULL)
		return;
	SpinLockAcquire(&wake->mutex);
	if (wake->npending < WAKE_SLOTS)
		wake->pending[wake->npending++] = dboid;
	else
		wake->all = true;
	launcher = wake->launcher;
	SpinLockRelease(&wake->mutex);
	if (launcher != NULL)
		SetLatch(&launcher->procLatch);
}

static void
served_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* the new extension is visible to its own transaction here */
			wake_at_commit = created_extension &&
				OidIsValid(get_extension_oid("machine", true));
			created_extension = false;
			break;
		case XACT_EVENT_COMMIT:
			if (wake_at_commit)
				wake_launcher(MyDatabaseId);
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			created_extension = false;
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* Define machine.databases; with the preload, also what wakes the launcher */
void
served_init(void)
{
	DefineCustomStringVariable("machine.databases",
							   "Restricts the background workers to these databases (comma-separated; empty: every database with the extension).",
							   NULL,
							   &machine_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, assign_databases, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = served_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = served_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = served_object_access;
	RegisterXactCallback(served_xact_callback, NULL);
}

static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&wake->mutex);
	if (wake->launcher == MyProc)
		wake->launcher = NULL;
	SpinLockRelease(&wake->mutex);
}

/* In the launcher: be the process that wake_launcher() wakes */
void
served_launcher_attach(void)
{
	if (wake == NULL)
		return;
	SpinLockAcquire(&wake->mutex);
	wake->launcher = MyProc;
	SpinLockRelease(&wake->mutex);
	on_shmem_exit(launcher_detach, (Datum) 0);
}

/*
 * In the launcher: the databases that got the extension since the last
 * call, at most max; *all when there were more (serve every one now).
 */
int
served_take_wakes(Oid *dboids, int max, bool *all)
{
	int			n;

	*all = false;
	if (wake == NULL)
		return 0;
	SpinLockAcquire(&wake->mutex);
	n = Min(wake->npending, max);
	memcpy(dboids, wake->pending, n * sizeof(Oid));
	*all = wake->all || wake->npending > max;
	wake->npending = 0;
	wake->all = false;
	SpinLockRelease(&wake->mutex);
	return n;
}
