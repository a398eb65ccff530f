/*-------------------------------------------------------------------------
 *
 * send.h
 *	  The transition path shared by spawn, send, restore and rewind
 *	  (send.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_SEND_H
#define MACHINE_SEND_H

#include "machine.h"

#include "utils/jsonb.h"

#include "definition.h"
#include "registry.h"
#include "store.h"

extern int	machine_max_send_depth;
extern void send_define_settings(void);

typedef Jsonb *(*TransitionWork) (void *arg);
extern Jsonb *actor_transition(const char *actor_id, TransitionWork work,
							   void *arg);

typedef struct Transition
{
	const char *actor_id;
	ActorRow   *row;			/* as read and locked */
	CompiledMachine *cm;
	int64		version;		/* the new version */
	Jsonb	   *event;
	const char *event_tag;
	Jsonb	   *old_state;
	Jsonb	   *state;
	int			from;			/* state indexes */
	int			to;
	bool		left;			/* exit and entry apply */
	const char *idempotency_key;	/* journaled with the event, or NULL */
} Transition;

extern void actor_record(const Transition *t);
extern void list_spaced_snapshot(const MachineDef *def, StoreKind kind,
								 const char *actor_id,
								 int64 version);
extern void actor_record_migration(const Transition *t, bool stopped);
extern int64 next_version(const char *actor_id, int64 version);
extern Jsonb *actor_send(const char *actor_id, Jsonb *event, int64 expected);
extern Jsonb *actor_send_keyed(const char *actor_id, Jsonb *event,
							   int64 expected, const char *key);
extern void version_conflict(const char *actor_id, int64 expected,
							 int64 actual) pg_attribute_noreturn();

#endif							/* MACHINE_SEND_H */
