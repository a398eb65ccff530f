/*-------------------------------------------------------------------------
 *
 * fold.c
 *	  Folds of the journal: the state of an actor at a version, computed
 *	  from a snapshot (or its spawn state) and the journal rows after it.
 *
 * A fold starts from the latest snapshot at or below the wanted version (or
 * from the state the actor was spawned with, version 0) and applies every
 * journal row after it through the machine's current definition: guards and
 * handlers run, effects never do.  Each step must reach the state tag the
 * journal recorded, and versions must follow each other without a gap;
 * otherwise the fold stops with an error naming the version.
 *
 * A "$rewind" or "$migrate" journal row carries the state it set, so a fold
 * through it takes that state as it is.
 *
 * Memory: a fold over a long journal alternates between two contexts, so
 * only the current and the previous step's allocations are ever alive.
 *
 * This module is below send.c, which reads earlier states through it, and
 * restore.c, which restores, replays and rewinds with it; it calls only the
 * store, the adapters and the transition function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "machine.h"
#include "adapter.h"
#include "fold.h"
#include "registry.h"
#include "store.h"
#include "store_compact.h"
#include "transition.h"
#include "values.h"

static void
fold_error(Fold *f, int64 version, const char *detail_fmt, const char *a,
		   const char *b)
{
	ereport(ERROR,
			(errcode(ERRCODE_MACHINE_REPLAY_DIVERGED),
			 errmsg("replay of actor \"%s\" diverged at version " INT64_FORMAT,
					f->actor_id, version),
			 errdetail(detail_fmt, a, b),
			 errhint("The definition of machine \"%s\" changed since the event was journaled, or a guard or handler is not deterministic.",
					 f->cm->name)));
}

void
fold_event(JournalEntry *entry, void *arg)
{
	Fold	   *f = arg;
	MemoryContext old;
	char	   *tag;
	Jsonb	   *state;
	int			index;

	CHECK_FOR_INTERRUPTS();
	if (f->version == PG_INT64_MAX || entry->version != f->version + 1)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_REPLAY_DIVERGED),
				 errmsg("journal of actor \"%s\" has no version " INT64_FORMAT,
						f->actor_id, f->version + 1),
				 errdetail("The next journaled version is " INT64_FORMAT ".",
						   entry->version)));

	MemoryContextReset(f->step_context[entry->version & 1]);
	old = MemoryContextSwitchTo(f->step_context[entry->version & 1]);

	entry->event = machine_upcast(f->cm, entry->event, entry->revision,
								  f->actor_id, entry->version);
	tag = state_tag(entry->event, "journaled event");
	if (strcmp(tag, MACHINE_REWIND_TAG) == 0 || strcmp(tag, MACHINE_MIGRATE_TAG) == 0)
	{
		JsonbValue *v = jsonb_field(entry->event, "state");

		if (v == NULL || v->type != jbvBinary)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("journal row " INT64_FORMAT " of actor \"%s\" is a \"%s\" entry without a state",
							entry->version, f->actor_id, tag),
					 errdetail("A \"%s\" entry holds the state it set in its field \"state\".",
							   tag)));
		state = JsonbValueToJsonb(v);
		index = machine_state_index(f->cm, state_tag(state, "state"), f->actor_id);
	}
	else
	{
		Step		step;

		machine_step(f->cm, f->state, f->index, entry->event, tag, &step);
		if (!step.handled)
			fold_error(f, entry->version,
					   "Event \"%s\" is not handled in state \"%s\".",
					   tag, f->cm->def->states[f->index].name);
		state = step.state;
		index = step.to;
		/* a handler's result may share memory with its input: own it */
		if (step.transition->handler >= 0 && step.transition->target < 0)
			state = DatumGetJsonbPCopy(JsonbPGetDatum(state));
	}
	if (strcmp(f->cm->def->states[index].name, entry->state_tag) != 0)
		fold_error(f, entry->version,
				   "The journal recorded state \"%s\"; the fold reached \"%s\".",
				   entry->state_tag, f->cm->def->states[index].name);
	MemoryContextSwitchTo(old);

	f->state = state;
	f->index = index;
	f->version = entry->version;
	if (f->callback)
		f->callback(entry, f->state, f->arg);
}

/* Start a fold from a state at a version; the step contexts are the caller's */
void
fold_start(Fold *f, const char *actor_id, CompiledMachine *cm, Jsonb *state,
		   int64 version, MemoryContext *step_context)
{
	f->actor_id = actor_id;
	f->cm = cm;
	f->state = state;
	f->version = version;
	f->index = machine_state_index(cm, state_tag(state, "state"), actor_id);
	f->callback = NULL;
	f->arg = NULL;
	f->step_context[0] = step_context[0];
	f->step_context[1] = step_context[1];
}

/*
 * End a fold that must have reached "upto": the state, copied into the
 * current memory context (out of the step contexts).
 */
Jsonb *
fold_finish(Fold *f, int64 upto, bool from_snapshot, int64 start_version)
{
	if (f->version < upto)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_REPLAY_DIVERGED),
				 errmsg("journal of actor \"%s\" has no version " INT64_FORMAT,
						f->actor_id, f->version + 1),
				 errdetail("The fold starts from %s at version " INT64_FORMAT " and the journal has nothing after version " INT64_FORMAT ".",
						   from_snapshot ? "a snapshot" : "the spawn state",
						   start_version, f->version),
				 f->cm->def->persistence.journal_events ? 0 :
				 errhint("Machine \"%s\" does not journal events.", f->cm->name)));
	return DatumGetJsonbPCopy(JsonbPGetDatum(f->state));
}

void
fold_step_contexts(MemoryContext *step_context)
{
	step_context[0] = AllocSetContextCreate(CurrentMemoryContext, "fold step",
											ALLOCSET_DEFAULT_SIZES);
	step_context[1] = AllocSetContextCreate(CurrentMemoryContext, "fold step",
											ALLOCSET_DEFAULT_SIZES);
}

/*
 * The state of an actor at version "upto", folded from the latest snapshot
 * at or below it (or, with from_start, from the spawn state) through the
 * journal.  Errors when "upto" cannot be reached.  The callback, if any,
 * sees each journal row folded.  Caller is connected to SPI; the result is
 * in the caller's memory context.
 */
Jsonb *
machine_fold(const char *actor_id, CompiledMachine *cm, Jsonb *initial_state,
			 int64 upto, bool from_start, FoldCallback callback, void *arg)
{
	Fold		f;
	int64		snapshot_version = 0;
	Jsonb	   *snapshot = NULL;
	MemoryContext step_context[2];
	Jsonb	   *result;

	int64		horizon = cm->adapter ? 0 :
		store_compaction_horizon(cm->store, actor_id);

	/* a history of a compacted actor starts at its horizon's snapshot */
	if (from_start && horizon > 0 && upto >= horizon)
		from_start = false;
	if (!from_start)
		snapshot = cm->adapter ?
			adapter_load_snapshot(cm->adapter, actor_id, upto, &snapshot_version) :
			store_latest_snapshot(cm->store, actor_id, upto, &snapshot_version);
	if (horizon > 0 && snapshot_version < horizon && upto > snapshot_version)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_COMPACTED),
				 errmsg("versions of actor \"%s\" up to " INT64_FORMAT " were compacted",
						actor_id, horizon),
				 errdetail("Reaching version " INT64_FORMAT " needs journal rows or snapshots that machine_compact removed.",
						   upto),
				 errhint("Ask for version " INT64_FORMAT " or later, or look in the archive table the compaction was given, if any.",
						 horizon)));
	fold_step_contexts(step_context);
	fold_start(&f, actor_id, cm, snapshot ? snapshot : initial_state,
			   snapshot_version, step_context);
	f.callback = callback;
	f.arg = arg;

	if (f.version < upto)
	{
		if (cm->adapter)
			adapter_scan_events(cm->adapter, actor_id, f.version, upto,
								fold_event, &f);
		else
			store_scan_events(cm->store, actor_id, f.version, upto,
							  fold_event, &f);
	}
	result = fold_finish(&f, upto, snapshot != NULL, snapshot_version);
	MemoryContextDelete(step_context[0]);
	MemoryContextDelete(step_context[1]);
	return result;
}

/* The state at a version: the live state when that is the version asked */
Jsonb *
actor_state_at(const char *actor_id, ActorRow *row, CompiledMachine *cm,
			   int64 version)
{
	if (version == row->version && row->status != ACTOR_STOPPED)
		return row->state;
	return machine_fold(actor_id, cm, actor_initial_state(row), version, false,
						NULL, NULL);
}
