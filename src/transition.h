/*-------------------------------------------------------------------------
 *
 * transition.h
 *	  The pure transition function shared by send, fold and simulate, and
 *	  the calls of a machine's functions (transition.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_TRANSITION_H
#define MACHINE_TRANSITION_H

#include "machine.h"

#include "utils/jsonb.h"

#include "definition.h"
#include "registry.h"

typedef struct Step
{
	bool		handled;		/* false: no transition accepts the event */
	int			from;			/* state indexes */
	int			to;
	const MdTransition *transition;
	Jsonb	   *state;			/* the new state (the old one when unhandled) */
	bool		left;			/* exit and entry apply: another state, or
								 * reenter */
	bool		had_rule;		/* unhandled although the state has a rule:
								 * every guard refused */
} Step;

extern const MdTransition *machine_choose(CompiledMachine *cm, Jsonb *state,
										 int from, Jsonb *event,
										 const char *event_name,
										 bool *had_rule);
extern void machine_step(CompiledMachine *cm, Jsonb *state, int from,
						 Jsonb *event, const char *event_name, Step *step);
extern void machine_run_effects(CompiledMachine *cm, const int *fns, int n,
								const char *actor_id, Jsonb *state,
								Jsonb *event);
extern int	machine_state_index(CompiledMachine *cm, const char *tag,
								const char *actor_id);
extern bool machine_should_snapshot(const MachineDef *def, int64 version);
extern Jsonb *machine_migrate(CompiledMachine *cm, Jsonb *state,
							  int32 from_revision, const char *actor_id);
extern Jsonb *machine_upcast(CompiledMachine *cm, Jsonb *event, int32 revision,
							 const char *actor_id, int64 version);
extern Jsonb *machine_entity_init(CompiledMachine *cm, const char *entity_id);

#endif							/* MACHINE_TRANSITION_H */
