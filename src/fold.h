/*-------------------------------------------------------------------------
 *
 * fold.h
 *	  Folds of the journal (fold.c): an actor's state at a version, and
 *	  step by step for callers that fold many actors at once.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_FOLD_H
#define MACHINE_FOLD_H

#include "machine.h"

#include "utils/jsonb.h"

#include "registry.h"
#include "store.h"

typedef void (*FoldCallback) (JournalEntry *entry, Jsonb *state, void *arg);
extern Jsonb *machine_fold(const char *actor_id, CompiledMachine *cm,
						   Jsonb *initial_state, int64 upto, bool from_start,
						   FoldCallback callback, void *arg);
extern Jsonb *actor_state_at(const char *actor_id, ActorRow *row,
							 CompiledMachine *cm, int64 version);

/* A fold under way */
typedef struct Fold
{
	const char *actor_id;
	CompiledMachine *cm;
	Jsonb	   *state;
	int			index;			/* of state's tag */
	int64		version;
	FoldCallback callback;
	void	   *arg;
	MemoryContext step_context[2];
} Fold;

extern void fold_step_contexts(MemoryContext *step_context);
extern void fold_start(Fold *f, const char *actor_id, CompiledMachine *cm,
					   Jsonb *state, int64 version, MemoryContext *step_context);
extern void fold_event(JournalEntry *entry, void *arg);
extern Jsonb *fold_finish(Fold *f, int64 upto, bool from_snapshot,
						  int64 start_version);

#endif							/* MACHINE_FOLD_H */
