/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Every read and write of the extension's tables in SQL (store.c), and
 *	  the rows they return.  store_direct.c reads and writes the same rows
 *	  without the executor on the per-send path.
 *
 * An actor's status is text in machine.instances.status; both modules
 * convert it here, so that neither calls the other for it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_H
#define MACHINE_STORE_H

#include "machine.h"

#include "access/transam.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/itemptr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/portal.h"

/* Rows of machine.instances */
typedef enum ActorStatus
{
	ACTOR_RUNNING,
	ACTOR_STOPPED,
	ACTOR_DONE
} ActorStatus;

typedef struct ActorRow
{
	char	   *machine;
	ActorStatus status;
	int64		version;
	Jsonb	   *state;
	char	   *state_tag;
	Datum		initial_state;	/* jsonb as stored; see actor_initial_state() */
	Datum		created_at;
	StoreKind	store;			/* the tables it was read from */
	ItemPointerData tid;		/* of the row locked by the direct path, or
								 * invalid */
	FullTransactionId journal_txid; /* of the latest journal row, as the
									 * direct path recorded it; invalid if
									 * not known */
} ActorRow;

#define actor_initial_state(row) DatumGetJsonbP((row)->initial_state)

typedef enum RowLock
{
	ROW_NO_LOCK,
	ROW_LOCK_SHARE,				/* waits for sends in flight */
	ROW_LOCK_UPDATE				/* the mailbox: one sender at a time */
} RowLock;

/* The role a statement of the extension runs as, and the caller's */
typedef struct AsOwner
{
	Oid			userid;
	int			sec_context;
} AsOwner;

extern int	store_kinds(void);
extern void store_become_owner(AsOwner *saved);
extern void store_unbecome_owner(AsOwner *saved);
extern Oid	store_instances_relid(void);
extern bool store_memory_available(void);
extern void store_forget_relation(Oid relid);
extern bool store_read_actor(const char *actor_id, RowLock lock, ActorRow *row);
extern void store_lock_actors(Datum *ids, int n, ActorRow *rows, bool *found);
extern bool store_insert_actor(StoreKind kind, const char *actor_id,
							   const char *machine,
							   ActorStatus status, Jsonb *state,
							   const char *tag);
extern void store_update_actor(const char *actor_id, ActorRow *row,
							   ActorStatus status, int64 version, Jsonb *state,
							   const char *tag);
extern void store_update_journaled_actor(const char *actor_id, ActorRow *row,
										 ActorStatus status, int64 version,
										 Jsonb *state, const char *tag);
extern void store_set_status(StoreKind kind, const char *actor_id,
							 ActorStatus status);
extern bool store_delete_actor(StoreKind kind, const char *actor_id);
extern bool store_has_revisions(void);
extern bool store_has_compactions(void);
extern int64 store_find_idempotency_key(StoreKind kind, const char *actor_id,
										const char *key);
extern void store_append_event(StoreKind kind, const char *actor_id,
							   int64 version, Jsonb *event, const char *tag,
							   int32 revision, const char *key,
							   FullTransactionId txid);
extern bool store_insert_snapshot(StoreKind kind, const char *actor_id, int64 version,
								  Jsonb *state, const char *tag);
extern void store_append_snapshot(StoreKind kind, const char *actor_id, int64 version,
								  Jsonb *state, const char *tag);
extern Jsonb *store_latest_snapshot(StoreKind kind, const char *actor_id, int64 upto,
								   int64 *version);

/* Rows of machine.events */
typedef struct JournalEntry
{
	int			pos;			/* of the actor, in store_scan_events_of() */
	int64		version;
	Jsonb	   *event;
	char	   *state_tag;
	Datum		recorded_at;
	int32		revision;		/* that applied it; -1: not recorded */
} JournalEntry;

typedef void (*EventCallback) (JournalEntry *entry, void *arg);
extern int64 store_version_at(StoreKind kind, const char *actor_id,
							   TimestampTz at);
extern void store_scan_events(StoreKind kind, const char *actor_id, int64 after, int64 upto,
							  EventCallback callback, void *arg);
extern void store_latest_snapshots(StoreKind kind, Datum *ids, Datum *uptos, int n,
								   Jsonb **states, int64 *versions);
extern void store_scan_events_of(StoreKind kind, Datum *ids, Datum *afters, Datum *uptos, int n,
								 EventCallback callback, void *arg);
extern int64 store_count_actors(const char *machine);

/* Where a fold of an actor's whole persisted history starts */
typedef struct FoldStart
{
	bool		found;			/* false: the actor is gone */
	ActorStatus status;
	int64		version;		/* the actor's */
	char	   *state_tag;		/* the actor's */
	Jsonb	   *state;			/* the actor's */
	Jsonb	   *initial_state;	/* the state it was spawned with */
	int64		first_event;	/* its first journaled version; 0: none */
	Jsonb	   *snapshot;		/* the latest snapshot below first_event (or
								 * at or below version), or NULL */
	int64		snapshot_version;
} FoldStart;

extern Portal store_open_actors_of(StoreKind kind, const char *machine);
extern List *store_fetch_actor_ids(Portal portal, int limit,
								   MemoryContext context);
extern void store_fold_starts(StoreKind kind, Datum *ids, int n,
							  FoldStart *starts);
extern void store_delete_actors_of(const char *machine);
extern List *store_actor_ids_of(const char *machine);
extern List *store_stopped_of_type(const char *machine_type);

extern List *store_actors_outside(const char *machine, ArrayType *tags);

/* Events postponed by their actor's state */
typedef struct Postponed
{
	int64		seq;
	Jsonb	   *event;
	char	   *key;			/* the send's idempotency key, or NULL */
} Postponed;

extern bool store_postponed_available(void);
extern void store_postpone(StoreKind kind, const char *actor_id, Jsonb *event,
						   const char *tag, const char *key);
extern List *store_postponed(StoreKind kind, const char *actor_id, int64 after,
							 int limit);
extern void store_take_postponed(StoreKind kind, const char *actor_id,
								 int64 seq);

/* machine.instances.status of an ActorStatus */
static inline const char *
actor_status_name(ActorStatus status)
{
	switch (status)
	{
		case ACTOR_RUNNING:
			return "running";
		case ACTOR_STOPPED:
			return "stopped";
		case ACTOR_DONE:
			return "done";
	}
	elog(ERROR, "unexpected actor status %d", (int) status);
	return NULL;				/* keep compiler quiet */
}

/* The ActorStatus of machine.instances.status */
static inline ActorStatus
actor_status_parse(const char *name)
{
	if (strcmp(name, "running") == 0)
		return ACTOR_RUNNING;
	if (strcmp(name, "stopped") == 0)
		return ACTOR_STOPPED;
	if (strcmp(name, "done") == 0)
		return ACTOR_DONE;
	elog(ERROR, "unexpected actor status \"%s\"", name);
	return ACTOR_RUNNING;		/* keep compiler quiet */
}

#endif							/* MACHINE_STORE_H */
