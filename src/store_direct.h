/*-------------------------------------------------------------------------
 *
 * store_direct.h
 *	  The per-send reads and writes without the executor (store_direct.c),
 *	  usable while the tables are as installed; store.c and store_timers.c
 *	  fall back to SQL otherwise.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_DIRECT_H
#define MACHINE_STORE_DIRECT_H

#include "machine.h"

#include "storage/lockdefs.h"
#include "utils/jsonb.h"

#include "store.h"
#include "store_timers.h"

typedef enum DirectTableId
{
	DIRECT_INSTANCES,
	DIRECT_EVENTS,
	DIRECT_SNAPSHOTS,
	DIRECT_TIMERS
} DirectTableId;

extern bool store_direct_usable(StoreKind kind, DirectTableId table);
extern void store_direct_forget(Oid relid);
extern void store_direct_init(void);
extern void store_direct_begin_scope(void);
extern void store_direct_find_actors(StoreKind kind, Datum *ids, int n);
extern void store_direct_end_scope(void);
extern void machine_lock(const char *name, LOCKMODE mode);
extern void store_direct_scan_events_of(StoreKind kind, Datum *ids,
										Datum *afters, Datum *uptos, int n,
										EventCallback callback, void *arg);
extern void store_direct_latest_snapshots(StoreKind kind, Datum *ids,
										  Datum *uptos, int n, Jsonb **states,
										  int64 *versions);
extern void store_direct_arm_timer(StoreKind kind, const char *actor_id,
								   int64 version, int seq, const char *tag,
								   Jsonb *event, int64 delay_us, Oid role);
extern int	store_direct_claim_timers(StoreKind kind, TimestampTz due_by,
									  int64 last_timer, Oid member, int limit,
									  List **claimed);
extern bool store_direct_cancel_timers(StoreKind kind, const char *actor_id);
extern bool store_direct_snapshot_listed(StoreKind kind, const char *actor_id);
extern bool store_direct_move_timers(StoreKind kind, const char *actor_id,
									 int64 version);
extern bool store_direct_take_timer(StoreKind kind, int64 timer_id,
									ItemPointer tid, DueTimer *timer);
extern bool store_direct_lock_actor(StoreKind kind, const char *actor_id,
									ActorRow *row);
extern void store_direct_lock_actors(StoreKind kind, Datum *ids, int n,
									 ActorRow *rows, bool *found);
extern bool store_direct_actor_exists(StoreKind kind, const char *actor_id);
extern void store_direct_update_actor(const char *actor_id, ActorRow *row,
									  ActorStatus status, int64 version,
									  Jsonb *state, const char *tag,
									  bool journaled);
extern bool store_direct_append_event(StoreKind kind, const char *actor_id,
									  int64 version, Jsonb *event,
									  const char *tag, int32 revision,
									  const char *key,
									  FullTransactionId txid);
extern bool store_direct_append_snapshot(StoreKind kind, const char *actor_id, int64 version,
										 Jsonb *state, const char *tag);

#endif							/* MACHINE_STORE_DIRECT_H */
