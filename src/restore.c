/*-------------------------------------------------------------------------
 *
 * restore.c
 *	  What folds of the journal serve: machine_restore,
 *	  machine_restore_many, machine_restore_all, machine_replay_to,
 *	  machine_state_at, machine_rewind, machine_history.  The folds
 *	  themselves are fold.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "machine.h"
#include "adapter.h"
#include "definition.h"
#include "fold.h"
#include "registry.h"
#include "send.h"
#include "store.h"
#include "store_compact.h"
#include "store_direct.h"
#include "subtransaction.h"
#include "timers.h"
#include "transition.h"
#include "values.h"

#define REWIND_TAG MACHINE_REWIND_TAG

/* ---- restore ---- */

typedef enum RestoreOutcome
{
	RESTORED,
	SKIPPED,					/* running already */
	NOTHING,					/* nothing persisted under that id */
	FAILED						/* an error, in RestoreItem.error */
} RestoreOutcome;

typedef struct RestoreArgs
{
	const char *actor_id;
	ActorRow   *row;
	CompiledMachine *cm;
	Jsonb	   *state;			/* folded already, or NULL: fold it */
} RestoreArgs;

static Jsonb *
restore_work(void *arg)
{
	RestoreArgs *a = arg;
	CompiledMachine *cm = a->cm;
	Jsonb	   *state = a->state;
	int			index;

	if (state == NULL)
		state = machine_fold(a->actor_id, cm, actor_initial_state(a->row),
							 a->row->version, false, NULL, NULL);
	index = machine_state_index(cm, state_tag(state, "state"), a->actor_id);
	store_update_actor(a->actor_id, a->row,
					   cm->def->states[index].final ? ACTOR_DONE : ACTOR_RUNNING,
					   a->row->version, state, cm->def->states[index].name);
	timers_transition(a->actor_id, cm, -1, index, true, a->row->version);
	list_spaced_snapshot(cm->def, a->row->store, a->actor_id, a->row->version);
	machine_run_effects(cm, cm->def->states[index].entry,
						cm->def->states[index].nentry, a->actor_id, state,
						lifecycle_event(MACHINE_RESTORE_TAG));
	return state;
}

/* Restore one actor; the state goes to *state (caller's context) */
static RestoreOutcome
restore_actor(const char *actor_id, Jsonb **state)
{
	ActorRow	row;
	RestoreArgs a;
	MemoryContext caller = CurrentMemoryContext;
	RestoreOutcome outcome = RESTORED;

	PreventCommandIfReadOnly("machine_restore()");
	SPI_connect();
	if (!store_read_actor(actor_id, ROW_LOCK_UPDATE, &row))
	{
		SPI_finish();
		return NOTHING;
	}
	a.cm = machine_lookup(row.machine, false);
	machine_authorize(a.cm, MACHINE_SEND | MACHINE_RUN);
	if (row.status != ACTOR_STOPPED)
		outcome = SKIPPED;
	else
	{
		Jsonb	   *restored;
		MemoryContext old;

		a.actor_id = actor_id;
		a.row = &row;
		a.state = NULL;
		restored = actor_transition(actor_id, restore_work, &a);
		old = MemoryContextSwitchTo(caller);
		*state = DatumGetJsonbPCopy(JsonbPGetDatum(restored));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return outcome;
}

/*
 * machine_restore(actor_id text) RETURNS jsonb
 *
 * Bring a stopped actor back; NULL when nothing is persisted for that id.
 */
PG_FUNCTION_INFO_V1(machine_restore);
Datum
machine_restore(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *state = NULL;

	switch (restore_actor(actor_id, &state))
	{
		case NOTHING:
			PG_RETURN_NULL();
		case SKIPPED:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("actor \"%s\" is not stopped", actor_id),
					 errhint("Only a stopped actor can be restored; stop it first with machine_stop(%s).",
							 quote_literal_cstr(actor_id))));
		case RESTORED:
		case FAILED:
			break;
	}
	PG_RETURN_JSONB_P(state);
}

/* One actor of a list to restore, and what became of it */
typedef struct RestoreItem
{
	char	   *actor_id;
	RestoreOutcome outcome;
	Jsonb	   *state;			/* when restored */
	char	   *error;			/* when failed */
} RestoreItem;

static void
restore_item(void *arg)
{
	RestoreItem *item = arg;

	item->outcome = restore_actor(item->actor_id, &item->state);
}

/* One actor of a chunk, from its locked row to its restored state */
typedef struct ChunkActor
{
	RestoreItem *item;
	ActorRow	row;
	CompiledMachine *cm;		/* NULL: not to restore */
	bool		batched;		/* folded with the chunk: not a user adapter's */
	Jsonb	   *snapshot;		/* where its fold starts; NULL: spawn state */
	int64		snapshot_version;
	Fold		fold;
	Jsonb	   *state;			/* the fold's result */
} ChunkActor;

/* A chunk of actors restored together, in one subtransaction */
typedef struct RestoreChunk
{
	RestoreItem *items;
	int			n;
	/* the rest is the steps' of restore_chunk() */
	ChunkActor *actors;			/* by position in items */
	Datum	   *ids;			/* the actors' ids as text, by position */
	bool		kinds[STORE_NKINDS];	/* tables some batched actor lives in */
	MemoryContext step_context[2];	/* of the folds */
	int			current;		/* position being folded, or -1 */
} RestoreChunk;

/*
 * Lock the chunk's actors and sort them out: those to restore (stopped,
 * and the caller may send to their machine), and of those the ones folded
 * with the chunk; a user adapter's actors are folded one by one, through
 * it.
 */
static void
chunk_lock_actors(RestoreChunk *c)
{
	ActorRow   *rows = palloc0(sizeof(ActorRow) * c->n);
	bool	   *found = palloc(sizeof(bool) * c->n);

	for (int i = 0; i < c->n; i++)
		c->ids[i] = CStringGetTextDatum(c->items[i].actor_id);
	store_lock_actors(c->ids, c->n, rows, found);
	for (int i = 0; i < c->n; i++)
	{
		ChunkActor *a = &c->actors[i];

		a->item = &c->items[i];
		a->item->outcome = RESTORED;
		a->row = rows[i];
		if (!found[i])
		{
			a->item->outcome = NOTHING;
			continue;
		}
		a->cm = machine_lookup(a->row.machine, false);
		machine_authorize(a->cm, MACHINE_SEND | MACHINE_RUN);
		if (a->row.status != ACTOR_STOPPED)
		{
			a->item->outcome = SKIPPED;
			a->cm = NULL;
			continue;
		}
		a->batched = a->cm->adapter == NULL;
		if (a->batched)
			c->kinds[a->row.store] = true;
	}
}

/*
 * The versions up to which the batched actors of a kind of tables fold,
 * by position; the others get 0, which matches no row.
 */
static Datum *
chunk_uptos(RestoreChunk *c, StoreKind kind)
{
	Datum	   *uptos = palloc(sizeof(Datum) * c->n);

	for (int i = 0; i < c->n; i++)
	{
		ChunkActor *a = &c->actors[i];

		uptos[i] = Int64GetDatum(a->batched && a->row.store == kind ?
								 a->row.version : 0);
	}
	return uptos;
}

/* The latest snapshot of each batched actor: one read per kind of tables */
static void
chunk_read_snapshots(RestoreChunk *c)
{
	Jsonb	  **snapshots = palloc0(sizeof(Jsonb *) * c->n);
	int64	   *versions = palloc0(sizeof(int64) * c->n);

	for (int kind = 0; kind < STORE_NKINDS; kind++)
		if (c->kinds[kind])
			store_latest_snapshots((StoreKind) kind, c->ids,
								   chunk_uptos(c, (StoreKind) kind), c->n,
								   snapshots, versions);
	for (int i = 0; i < c->n; i++)
	{
		c->actors[i].snapshot = snapshots[i];
		c->actors[i].snapshot_version = versions[i];
	}
}

/* Start each batched actor's fold at its snapshot, or its spawn state */
static void
chunk_start_folds(RestoreChunk *c)
{
	fold_step_contexts(c->step_context);
	c->current = -1;
	for (int i = 0; i < c->n; i++)
	{
		ChunkActor *a = &c->actors[i];

		if (!a->batched)
			continue;
		fold_start(&a->fold, a->item->actor_id, a->cm,
				   a->snapshot ? a->snapshot : actor_initial_state(&a->row),
				   a->snapshot_version, c->step_context);
		/* a fold with nothing to read is finished as it starts */
		a->state = a->fold.state;
	}
}

/* End the fold of the actor being folded, if any */
static void
chunk_finish_current(RestoreChunk *c)
{
	if (c->current >= 0)
	{
		ChunkActor *a = &c->actors[c->current];

		a->state = fold_finish(&a->fold, a->row.version, a->snapshot != NULL,
							   a->snapshot_version);
	}
	c->current = -1;
}

/* Route a journal row of the chunk's stream to its actor's fold */
static void
chunk_fold_event(JournalEntry *entry, void *arg)
{
	RestoreChunk *c = arg;

	if (entry->pos != c->current)
	{
		chunk_finish_current(c);
		c->current = entry->pos;
	}
	fold_event(entry, &c->actors[entry->pos].fold);
}

/*
 * Fold the batched actors' journals after their snapshots: one stream per
 * kind of tables, each actor's rows whole and in order.
 */
static void
chunk_fold_journals(RestoreChunk *c)
{
	Datum	   *afters = palloc(sizeof(Datum) * c->n);

	for (int i = 0; i < c->n; i++)
		afters[i] = Int64GetDatum(c->actors[i].snapshot_version);
	for (int kind = 0; kind < STORE_NKINDS; kind++)
		if (c->kinds[kind])
			store_scan_events_of((StoreKind) kind, c->ids, afters,
								 chunk_uptos(c, (StoreKind) kind), c->n,
								 chunk_fold_event, c);
	chunk_finish_current(c);

	/* one that the streams never reached must be complete as it is */
	for (int i = 0; i < c->n; i++)
	{
		ChunkActor *a = &c->actors[i];

		if (a->batched && a->state == a->fold.state &&
			a->fold.version < a->row.version)
			(void) fold_finish(&a->fold, a->row.version, a->snapshot != NULL,
							   a->snapshot_version);
	}
}

/*
 * Store each restored actor: its live row, its timers and spaced snapshot,
 * its entry effects (restore_work); the state goes to its item, in the
 * caller's memory context.
 */
static void
chunk_store_actors(RestoreChunk *c, MemoryContext caller)
{
	for (int i = 0; i < c->n; i++)
	{
		ChunkActor *a = &c->actors[i];
		RestoreArgs args;
		Jsonb	   *restored;
		MemoryContext old;

		if (a->cm == NULL)
			continue;
		args.actor_id = a->item->actor_id;
		args.row = &a->row;
		args.cm = a->cm;
		args.state = a->batched ? a->state : NULL;
		restored = actor_transition(args.actor_id, restore_work, &args);
		old = MemoryContextSwitchTo(caller);
		a->item->state = DatumGetJsonbPCopy(JsonbPGetDatum(restored));
		MemoryContextSwitchTo(old);
	}
}

/*
 * Restore a chunk of actors: lock their rows, read the latest snapshots of
 * the stopped ones and fold their journals after them, a read of each per
 * kind of tables, then store each restored state, arm its timers and run
 * its entry effects.
 */
static void
restore_chunk(void *arg)
{
	RestoreChunk *c = arg;
	MemoryContext caller = CurrentMemoryContext;

	PreventCommandIfReadOnly("machine_restore()");
	SPI_connect();
	c->actors = palloc0(sizeof(ChunkActor) * c->n);
	c->ids = palloc(sizeof(Datum) * c->n);
	memset(c->kinds, 0, sizeof(c->kinds));

	/* the live rows' table stays open from the first lock to the last update */
	store_direct_begin_scope();
	PG_TRY();
	{
		chunk_lock_actors(c);
		chunk_read_snapshots(c);
		chunk_start_folds(c);
		chunk_fold_journals(c);
		chunk_store_actors(c, caller);
	}
	PG_CATCH();
	{
		store_direct_end_scope();
		PG_RE_THROW();
	}
	PG_END_TRY();
	store_direct_end_scope();
	SPI_finish();
}

/* Actors restored together in one subtransaction, when all goes well */
#define RESTORE_CHUNK_SIZE 500

/*
 * Restore a list of actors and emit a row (actor_id, status, state, error)
 * for each.  Chunks of actors are restored together in one subtransaction;
 * a chunk in which anything fails is rolled back and its actors restored
 * again one by one, each in its own subtransaction, so that one failure
 * neither aborts the others nor leaves anything half-written.
 */
static void
restore_each(FunctionCallInfo fcinfo, List *actor_ids)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = list_length(actor_ids);
	RestoreItem *items = palloc0(sizeof(RestoreItem) * Max(n, 1));

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
		items[i].actor_id = list_nth(actor_ids, i);

	for (int start = 0; start < n; start += RESTORE_CHUNK_SIZE)
	{
		RestoreChunk chunk = {items + start, Min(RESTORE_CHUNK_SIZE, n - start)};

		CHECK_FOR_INTERRUPTS();
		if (in_subtransaction(restore_chunk, &chunk) == NULL)
			continue;
		for (int i = 0; i < chunk.n; i++)
		{
			RestoreItem *item = &chunk.items[i];
			ErrorData  *error;

			CHECK_FOR_INTERRUPTS();
			item->state = NULL;
			if ((error = in_subtransaction(restore_item, item)) != NULL)
			{
				item->outcome = FAILED;
				item->error = error_text(error);
				FreeErrorData(error);
			}
		}
	}

	for (int i = 0; i < n; i++)
	{
		Datum		values[4] = {0};
		bool		nulls[4] = {false, false, true, true};
		static const char *const names[] = {
			[RESTORED] = "restored", [SKIPPED] = "skipped",
			[NOTHING] = "failed", [FAILED] = "failed",
		};

		values[0] = CStringGetTextDatum(items[i].actor_id);
		values[1] = CStringGetTextDatum(names[items[i].outcome]);
		if (items[i].outcome == RESTORED)
		{
			values[2] = JsonbPGetDatum(items[i].state);
			nulls[2] = false;
		}
		if (items[i].outcome == NOTHING || items[i].outcome == FAILED)
		{
			values[3] = CStringGetTextDatum(items[i].outcome == NOTHING ?
											"nothing is persisted for this actor" :
											items[i].error);
			nulls[3] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * machine_restore_many(actor_ids text[]) RETURNS TABLE(actor_id text,
 *		status text, state jsonb, error text)
 */
PG_FUNCTION_INFO_V1(machine_restore_many);
Datum
machine_restore_many(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	List	   *ids = NIL;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
		if (!elem_nulls[i])
			ids = lappend(ids, TextDatumGetCString(elems[i]));
	restore_each(fcinfo, ids);
	return (Datum) 0;
}

/*
 * machine_restore_all(machine_type text) RETURNS TABLE(actor_id text,
 *		status text, state jsonb, error text)
 *
 * Restore every stopped actor whose machine has that machineType.
 */
PG_FUNCTION_INFO_V1(machine_restore_all);
Datum
machine_restore_all(PG_FUNCTION_ARGS)
{
	char	   *machine_type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext context = CurrentMemoryContext;
	List	   *ids;
	List	   *copy = NIL;
	ListCell   *lc;

	SPI_connect();
	ids = store_stopped_of_type(machine_type);
	MemoryContextSwitchTo(context);
	foreach(lc, ids)
		copy = lappend(copy, pstrdup(lfirst(lc)));
	SPI_finish();
	restore_each(fcinfo, copy);
	return (Datum) 0;
}

/* ---- replay, rewind, history ---- */

static void
check_version_argument(const char *actor_id, int64 version, ActorRow *row)
{
	if (version < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("version must not be negative")));
	if (version > row->version)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("actor \"%s\" has no version " INT64_FORMAT " yet",
						actor_id, version),
				 errdetail("The actor is at version " INT64_FORMAT ".",
						   row->version)));
}

static void
read_actor_or_error(const char *actor_id, RowLock lock, ActorRow *row)
{
	if (!store_read_actor(actor_id, lock, row))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("actor \"%s\" does not exist", actor_id)));
}

/*
 * machine_replay_to(actor_id text, version bigint) RETURNS jsonb
 *
 * The state the actor had at that version; the live actor is untouched.
 */
PG_FUNCTION_INFO_V1(machine_replay_to);
Datum
machine_replay_to(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		version = PG_GETARG_INT64(1);
	ActorRow	row;
	CompiledMachine *cm;
	Jsonb	   *state;

	SPI_connect();
	read_actor_or_error(actor_id, ROW_NO_LOCK, &row);
	check_version_argument(actor_id, version, &row);
	cm = machine_lookup(row.machine, false);
	machine_authorize(cm, MACHINE_READ | MACHINE_RUN);
	state = actor_state_at(actor_id, &row, cm, version);
	state = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(state), false, -1);
	SPI_finish();

	PG_RETURN_JSONB_P(state);
}

/*
 * machine_state_at(actor_id text, at timestamptz) RETURNS jsonb
 *
 * The state the actor had at that time: after the latest journal row
 * recorded by then (a row's recorded_at is its transaction's start), or
 * the state it was spawned with.  NULL when there is no such actor, or it
 * was spawned later.
 */
typedef struct VersionAt
{
	TimestampTz at;
	int64		version;
} VersionAt;

static void
version_at_event(JournalEntry *entry, void *arg)
{
	VersionAt  *v = arg;

	if (DatumGetTimestampTz(entry->recorded_at) <= v->at)
		v->version = entry->version;
}

/*
 * The latest version journaled at or before a time, through a user
 * adapter, which has no index on the time: its journal is read whole
 */
static int64
adapter_version_at(CompiledMachine *cm, const char *actor_id, int64 upto,
				   TimestampTz at)
{
	VersionAt	v = {at, 0};

	adapter_scan_events(cm->adapter, actor_id, 0, upto, version_at_event, &v);
	return v.version;
}

PG_FUNCTION_INFO_V1(machine_state_at);
Datum
machine_state_at(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	ActorRow	row;
	CompiledMachine *cm;
	const MdPersistence *p;
	Jsonb	   *state = NULL;

	SPI_connect();
	if (store_read_actor(actor_id, ROW_NO_LOCK, &row))
	{
		cm = machine_lookup(row.machine, false);
		machine_authorize(cm, MACHINE_READ | MACHINE_RUN);
		p = &cm->def->persistence;
		if (!p->enabled || !p->journal_events)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("machine \"%s\" does not journal events", cm->name),
					 errdetail("The state of actor \"%s\" at a past time is folded from its journal.",
							   actor_id),
					 errhint("Redefine the machine with a \"persistence\" object whose \"journalEvents\" is true, the default.")));
		if (at >= DatumGetTimestampTz(row.created_at))
		{
			int64		version = cm->adapter ?
				adapter_version_at(cm, actor_id, row.version, at) :
				store_version_at(row.store, actor_id, at);
			int64		horizon = cm->adapter || version >= 0 ? 0 :
				store_compaction_horizon(row.store, actor_id);

			/* no row left by then: the spawn state, unless rows were removed */
			if (horizon > 0)
				ereport(ERROR,
						(errcode(ERRCODE_MACHINE_COMPACTED),
						 errmsg("the state of actor \"%s\" at that time was compacted",
								actor_id),
						 errdetail("machine_compact removed its journal up to version " INT64_FORMAT ", and no row left was recorded by then.",
								   horizon),
						 errhint("Ask for a time at or after the recording of version " INT64_FORMAT ".",
								 horizon + 1)));
			state = actor_state_at(actor_id, &row, cm, Max(version, 0));
			state = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(state), false, -1);
		}
	}
	SPI_finish();

	if (state == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(state);
}

typedef struct RewindArgs
{
	const char *actor_id;
	int64		version;
} RewindArgs;

static Jsonb *
rewind_work(void *arg)
{
	RewindArgs *a = arg;
	ActorRow	row;
	CompiledMachine *cm;
	Jsonb	   *state;
	int			from;
	int			to;
	JsonbParseState *ps = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *event;
	Jsonb	   *event_jsonb;
	Transition	transition;

	read_actor_or_error(a->actor_id, ROW_LOCK_UPDATE, &row);
	if (row.status == ACTOR_STOPPED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("actor \"%s\" is stopped", a->actor_id),
				 errhint("Restore it with machine_restore(%s) first.",
						 quote_literal_cstr(a->actor_id))));
	check_version_argument(a->actor_id, a->version, &row);
	cm = machine_lookup(row.machine, false);
	machine_authorize(cm, MACHINE_SEND | MACHINE_RUN);
	from = machine_state_index(cm, row.state_tag, a->actor_id);
	state = actor_state_at(a->actor_id, &row, cm, a->version);
	to = machine_state_index(cm, state_tag(state, "state"), a->actor_id);

	/* {"_tag": "$rewind", "version": N, "state": {...}} */
	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "_tag";
	k.val.string.len = 4;
	pushJsonbValue(&ps, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = REWIND_TAG;
	v.val.string.len = strlen(REWIND_TAG);
	pushJsonbValue(&ps, WJB_VALUE, &v);
	k.val.string.val = "version";
	k.val.string.len = 7;
	pushJsonbValue(&ps, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric,
														Int64GetDatum(a->version)));
	pushJsonbValue(&ps, WJB_VALUE, &v);
	k.val.string.val = "state";
	k.val.string.len = 5;
	pushJsonbValue(&ps, WJB_KEY, &k);
	v.type = jbvBinary;
	v.val.binary.data = &state->root;
	v.val.binary.len = VARSIZE(state) - VARHDRSZ;
	pushJsonbValue(&ps, WJB_VALUE, &v);
	event = pushJsonbValue(&ps, WJB_END_OBJECT, NULL);
	event_jsonb = JsonbValueToJsonb(event);

	transition.actor_id = a->actor_id;
	transition.row = &row;
	transition.cm = cm;
	transition.version = next_version(a->actor_id, row.version);
	transition.event = event_jsonb;
	transition.event_tag = REWIND_TAG;
	transition.old_state = row.state;
	transition.state = state;
	transition.from = from;
	transition.to = to;
	transition.left = to != from;
	transition.idempotency_key = NULL;
	actor_record(&transition);
	return state;
}

/*
 * machine_rewind(actor_id text, version bigint) RETURNS jsonb
 *
 * Set the actor to the state it had at that version, as a new version whose
 * journal row is a "$rewind" entry: history is never rewritten.
 */
PG_FUNCTION_INFO_V1(machine_rewind);
Datum
machine_rewind(PG_FUNCTION_ARGS)
{
	RewindArgs	a;
	Jsonb	   *state;

	a.actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	a.version = PG_GETARG_INT64(1);
	PreventCommandIfReadOnly("machine_rewind()");

	SPI_connect();
	state = actor_transition(a.actor_id, rewind_work, &a);
	state = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(state), false, -1);
	SPI_finish();

	PG_RETURN_JSONB_P(state);
}

typedef struct HistoryArgs
{
	ReturnSetInfo *rsinfo;
} HistoryArgs;

static void
history_row(JournalEntry *entry, Jsonb *state, void *arg)
{
	HistoryArgs *h = arg;
	Datum		values[4] = {
		Int64GetDatum(entry->version),
		JsonbPGetDatum(entry->event),
		JsonbPGetDatum(state),
		entry->recorded_at,
	};
	bool		nulls[4] = {false, false, false, false};

	tuplestore_putvalues(h->rsinfo->setResult, h->rsinfo->setDesc, values, nulls);
}

/*
 * machine_history(actor_id text) RETURNS TABLE(version bigint, event jsonb,
 *		state jsonb, recorded_at timestamptz)
 *
 * Every journaled event with the state after it, folded from the spawn
 * state.
 */
PG_FUNCTION_INFO_V1(machine_history);
Datum
machine_history(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ActorRow	row;
	CompiledMachine *cm;
	HistoryArgs h;

	InitMaterializedSRF(fcinfo, 0);
	h.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	SPI_connect();
	read_actor_or_error(actor_id, ROW_NO_LOCK, &row);
	cm = machine_lookup(row.machine, false);
	machine_authorize(cm, MACHINE_READ | MACHINE_RUN);
	if (cm->def->persistence.enabled && cm->def->persistence.journal_events)
		(void) machine_fold(actor_id, cm, actor_initial_state(&row), row.version,
							true, history_row, &h);
	SPI_finish();

	return (Datum) 0;
}
