/*-------------------------------------------------------------------------
 *
 * store_timers.h
 *	  The storage of the maintenance work (store_timers.c): durable timers
 *	  and the actors due for a spaced snapshot.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_TIMERS_H
#define MACHINE_STORE_TIMERS_H

#include "machine.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"

/*
 * A claimed timer: which tables keep it, its id there, and where the claim
 * found (and locked) its row
 */
typedef struct TimerRef
{
	StoreKind	kind;
	int64		timer_id;
	ItemPointerData tid;
} TimerRef;

/* A timer taken to be fired */
typedef struct DueTimer
{
	char	   *actor_id;
	int64		armed_version;
	Jsonb	   *event;
	Oid			role;			/* who armed it: the timer sends as that role */
} DueTimer;

extern void store_arm_timer(StoreKind kind, const char *actor_id, int64 version, int seq,
							const char *tag, Jsonb *event, int64 delay_us,
							Oid role);
extern void store_cancel_timers(StoreKind kind, const char *actor_id);
extern void store_move_timers(StoreKind kind, const char *actor_id,
							  int64 version);
extern List *store_claim_timers(int limit);
extern int64 store_last_timer(void);
extern List *store_claim_timers_at(TimestampTz as_of, int64 last_timer,
								   int limit);
extern bool store_take_timer(TimerRef *ref, DueTimer *timer);
extern int	store_take_spaced_snapshots(int limit);
extern void store_mark_snapshot_due(StoreKind kind, const char *actor_id,
									int64 spacing_us);
extern void store_mark_machine_due(const char *machine);

#endif							/* MACHINE_STORE_TIMERS_H */
