/*-------------------------------------------------------------------------
 *
 * timers.c
 *	  Durable timers ("after") on transitions: arming them when a state is
 *	  entered, moving or cancelling them when it is left.
 *
 * A timer is a row of machine.timers armed when its state is entered, at
 * the version of that entry.  Leaving the state cancels the state's timers;
 * a self-transition without reenter keeps them running by moving them to
 * the new version.  Firing them is maintenance.c's, which sends their
 * events through send.c; this module is below send.c and calls only the
 * store.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "definition.h"
#include "registry.h"
#include "store_timers.h"
#include "timers.h"
#include "values.h"

/* The timer whose event is being sent, taken out of the table already */
static const DueTimer *timer_firing = NULL;

/* Say which timer is firing (NULL: none), for the transition it causes */
void
timers_set_firing(const DueTimer *timer)
{
	timer_firing = timer;
}

/*
 * Is the state being left at "version" that of the timer firing, and that
 * timer its only one?  Then it has no timer left to cancel.
 */
static bool
fired_only_timer(const char *actor_id, int ntimers, int64 version)
{
	return ntimers == 1 && timer_firing != NULL &&
		timer_firing->armed_version == version - 1 &&
		strcmp(timer_firing->actor_id, actor_id) == 0;
}

/*
 * The events of a state's timers as jsonb, parsed once per compiled
 * machine rather than on every arming.
 */
static Jsonb **
timer_events(CompiledMachine *cm, int state)
{
	const MdState *s = &cm->def->states[state];
	Jsonb	  **events;

	if (cm->timer_events == NULL)
		cm->timer_events = MemoryContextAllocZero(cm->context,
												  sizeof(Jsonb **) * cm->def->nstates);
	if (cm->timer_events[state] != NULL)
		return cm->timer_events[state];
	events = MemoryContextAlloc(cm->context, sizeof(Jsonb *) * s->ntimers);
	for (int i = 0; i < s->ntimers; i++)
	{
		Jsonb	   *parsed = jsonb_from_cstring(s->timers[i].event);

		events[i] = MemoryContextAlloc(cm->context, VARSIZE(parsed));
		memcpy(events[i], parsed, VARSIZE(parsed));
		pfree(parsed);
	}
	cm->timer_events[state] = events;
	return events;
}

/*
 * Timers on a transition from state "from" (-1: none, a spawn or restore)
 * into state "to" at "version"; "left" says the old state instance ended.
 */
void
timers_transition(const char *actor_id, CompiledMachine *cm, int from, int to,
				  bool left, int64 version)
{
	const MachineDef *def = cm->def;
	const MdState *entered = &def->states[to];
	Jsonb	  **events;

	if (from >= 0 && def->states[from].ntimers > 0)
	{
		if (!left)
			store_move_timers(cm->store, actor_id, version);
		else if (!fired_only_timer(actor_id, def->states[from].ntimers,
								   version))
			store_cancel_timers(cm->store, actor_id);
	}
	if (from >= 0 && !left)
		return;
	if (entered->ntimers == 0)
		return;
	events = timer_events(cm, to);
	for (int i = 0; i < entered->ntimers; i++)
		store_arm_timer(cm->store, actor_id, version, i, entered->name,
						events[i], entered->timers[i].delay_us, GetUserId());
}

