/*-------------------------------------------------------------------------
 *
 * check.c
 *	  machine_check_define: what a redefinition would break, found before
 *	  it is made.
 *
 * The candidate definition is compiled and resolved as machine_define
 * would, but stored nowhere.  Every actor of the machine is then checked:
 * a live actor must sit in a state the candidate has (after the
 * candidate's "migrate" function, if it has one, which must succeed for
 * every actor and return a state of the candidate), and the whole
 * persisted history of each actor (from its spawn state, or from the latest
 * snapshot below its first journal row) must fold through the candidate to
 * the state tags the journal recorded.  Each problem becomes a row (actor,
 * the first version that fails, why).
 *
 * Nothing is written and nothing blocks a send: actors are read without
 * locks, and each chunk of actors is checked in a subtransaction that is
 * always rolled back, so even a guard or handler that writes leaves nothing
 * behind.  A chunk in which a guard or handler raises an error is checked
 * again one actor at a time, each in a subtransaction of its own, so that
 * the error is reported for its actor.  Memory stays bounded: actor ids come
 * from a cursor, journals are streamed, and each chunk's memory is freed
 * after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "machine.h"
#include "adapter.h"
#include "definition.h"
#include "registry.h"
#include "store.h"
#include "store_machines.h"
#include "subtransaction.h"
#include "transition.h"
#include "values.h"

/* Actors checked together in one subtransaction */
#define CHECK_CHUNK_SIZE 500

typedef struct Problem
{
	char	   *actor_id;
	int64		version;
	char	   *problem;
} Problem;

/* The fold of one actor under the candidate */
typedef struct CheckFold
{
	const char *actor_id;
	Jsonb	   *state;
	int			index;			/* of state's tag in the candidate */
	int64		version;		/* folded so far */
	int64		upto;			/* the actor's version */
	bool		done;			/* a problem was found, or nothing to fold */
	char		folding[NAMEDATALEN];	/* tag of the event being folded */
	bool		migrating;		/* the candidate's migration is running */
} CheckFold;

typedef struct CheckChunk
{
	CompiledMachine *cm;
	StoreKind	kind;			/* the tables the actors live in */
	List	   *ids;			/* char *, in the chunk's context */
	CheckFold  *folds;
	int			current;		/* actor being folded, or -1 */
	MemoryContext result_context;	/* where problems go */
	List	   *problems;		/* Problem *, in result_context */
	MemoryContext step_context[2];
} CheckChunk;

static void
add_problem(CheckChunk *c, const char *actor_id, int64 version,
			const char *fmt,...) pg_attribute_printf(4, 5);

static void
add_problem(CheckChunk *c, const char *actor_id, int64 version,
			const char *fmt,...)
{
	MemoryContext old = MemoryContextSwitchTo(c->result_context);
	Problem    *p = palloc(sizeof(Problem));
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	p->actor_id = pstrdup(actor_id);
	p->version = version;
	p->problem = buf.data;
	c->problems = lappend(c->problems, p);
	MemoryContextSwitchTo(old);
}

/* The end of one actor's journal stream: did it reach the actor's version? */
static void
finish_fold(CheckChunk *c, CheckFold *f)
{
	if (!f->done && f->version < f->upto)
		add_problem(c, f->actor_id, f->version + 1,
					"the journal has no version " INT64_FORMAT " to fold",
					f->version + 1);
	f->done = true;
}

/* One journal row of the current actor, folded through the candidate */
static void
check_event(JournalEntry *entry, void *arg)
{
	CheckChunk *c = arg;
	CheckFold  *f = &c->folds[entry->pos];
	CompiledMachine *cm = c->cm;
	MemoryContext old;
	char	   *tag;
	Jsonb	   *state;
	int			index;

	CHECK_FOR_INTERRUPTS();
	if (entry->pos != c->current)
	{
		if (c->current >= 0)
			finish_fold(c, &c->folds[c->current]);
		c->current = entry->pos;
	}
	if (f->done)
		return;
	if (entry->version != f->version + 1)
	{
		add_problem(c, f->actor_id, f->version + 1,
					"the journal has no version " INT64_FORMAT " to fold",
					f->version + 1);
		f->done = true;
		return;
	}

	MemoryContextReset(c->step_context[entry->version & 1]);
	old = MemoryContextSwitchTo(c->step_context[entry->version & 1]);
	tag = state_tag(entry->event, "journaled event");
	strlcpy(f->folding, tag, sizeof(f->folding));
	entry->event = machine_upcast(cm, entry->event, entry->revision,
								  f->actor_id, entry->version);
	tag = state_tag(entry->event, "journaled event");
	if (strcmp(tag, MACHINE_REWIND_TAG) == 0 ||
		strcmp(tag, MACHINE_MIGRATE_TAG) == 0)
	{
		JsonbValue *v = jsonb_field(entry->event, "state");

		if (v == NULL || v->type != jbvBinary)
		{
			MemoryContextSwitchTo(old);
			add_problem(c, f->actor_id, entry->version,
						"journal row is a \"%s\" entry without a state", tag);
			f->done = true;
			return;
		}
		state = JsonbValueToJsonb(v);
		index = md_find_state(cm->def, state_tag(state, "state"));
		if (index < 0)
		{
			MemoryContextSwitchTo(old);
			add_problem(c, f->actor_id, entry->version,
						"the \"%s\" entry sets state \"%s\", which the definition lacks",
						tag, entry->state_tag);
			f->done = true;
			return;
		}
	}
	else
	{
		Step		step;

		machine_step(cm, f->state, f->index, entry->event, tag, &step);
		if (!step.handled)
		{
			MemoryContextSwitchTo(old);
			add_problem(c, f->actor_id, entry->version,
						"event \"%s\" is not handled in state \"%s\"%s",
						tag, cm->def->states[f->index].name,
						step.had_rule ? ": no guard passes" : "");
			f->done = true;
			return;
		}
		state = step.state;
		index = step.to;
		/* a handler's result may share memory with its input: own it */
		if (step.transition->handler >= 0 && step.transition->target < 0)
			state = DatumGetJsonbPCopy(JsonbPGetDatum(state));
	}
	MemoryContextSwitchTo(old);
	if (strcmp(cm->def->states[index].name, entry->state_tag) != 0)
	{
		add_problem(c, f->actor_id, entry->version,
					"event \"%s\" leads to state \"%s\"; the journal recorded \"%s\"",
					tag, cm->def->states[index].name, entry->state_tag);
		f->done = true;
		return;
	}
	f->state = state;
	f->index = index;
	f->version = entry->version;
}

/* A journal row read through a user adapter, for the actor at "pos" */
typedef struct AdapterCheck
{
	CheckChunk *c;
	int			pos;
} AdapterCheck;

static void
check_adapter_event(JournalEntry *entry, void *arg)
{
	AdapterCheck *a = arg;

	entry->pos = a->pos;
	check_event(entry, a->c);
}

/* The name of the adapter of a definition, "tables" by default */
static const char *
adapter_of(const MachineDef *def)
{
	return def->persistence.adapter ? def->persistence.adapter : "tables";
}

/*
 * Check a chunk of actors: their live states, and the fold of their
 * persisted histories.  Runs in a subtransaction that the caller rolls
 * back.  The histories of the actors of a user adapter are read through
 * it, actor by actor, from the spawn state.
 */
static void
check_chunk(void *arg)
{
	CheckChunk *c = arg;
	CompiledMachine *cm = c->cm;
	int			n = list_length(c->ids);
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *afters = palloc(sizeof(Datum) * n);
	Datum	   *uptos = palloc(sizeof(Datum) * n);
	FoldStart  *starts = palloc(sizeof(FoldStart) * n);
	bool	   *through_adapter = palloc0(sizeof(bool) * n);
	CompiledMachine *current;
	const char *from_adapter;
	const char *to_adapter;

	/* in the caller's context: read after a failed chunk is rolled back */
	c->folds = palloc0(sizeof(CheckFold) * n);
	for (int i = 0; i < n; i++)
		c->folds[i].done = true;
	SPI_connect();
	c->current = -1;
	c->step_context[0] = AllocSetContextCreate(CurrentMemoryContext, "check step",
											   ALLOCSET_DEFAULT_SIZES);
	c->step_context[1] = AllocSetContextCreate(CurrentMemoryContext, "check step",
											   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < n; i++)
		ids[i] = CStringGetTextDatum(list_nth(c->ids, i));
	store_fold_starts(c->kind, ids, n, starts);
	current = machine_lookup(cm->name, false);
	from_adapter = adapter_of(current->def);
	to_adapter = adapter_of(cm->def);

	for (int i = 0; i < n; i++)
	{
		FoldStart  *s = &starts[i];
		CheckFold  *f = &c->folds[i];
		Jsonb	   *from;
		char	   *from_tag;

		f->actor_id = list_nth(c->ids, i);
		f->done = true;
		afters[i] = Int64GetDatum(0);
		uptos[i] = Int64GetDatum(0);	/* nothing to read */
		if (!s->found)
			continue;			/* deleted meanwhile */
		if (cm->def->migrate >= 0)
		{
			/* the state the candidate's migration would give it */
			Jsonb	   *migrated;

			f->upto = s->version;
			f->migrating = true;
			migrated = machine_migrate(cm, s->state, cm->revision - 1,
									   f->actor_id);
			f->migrating = false;
			s->state_tag = state_tag(migrated, "state");
		}
		if (s->status != ACTOR_STOPPED &&
			md_find_state(cm->def, s->state_tag) < 0)
			add_problem(c, f->actor_id, s->version,
						"the actor is in state \"%s\", which the definition lacks",
						s->state_tag);
		if (strcmp(from_adapter, to_adapter) != 0)
		{
			add_problem(c, f->actor_id, s->version,
						"its journal is kept by adapter \"%s\", not \"%s\": the adapter of a machine with actors does not change",
						from_adapter, to_adapter);
			continue;
		}
		if (current->adapter && s->version > 0)
		{
			/* folded below, through the adapter */
			f->state = s->initial_state;
			f->version = 0;
			f->upto = s->version;
			f->index = md_find_state(cm->def, state_tag(s->initial_state, "state"));
			if (f->index < 0)
				add_problem(c, f->actor_id, 0,
							"the fold starts in state \"%s\" (the spawn state), which the definition lacks",
							state_tag(s->initial_state, "state"));
			else
				through_adapter[i] = true;
			continue;
		}

		/* nothing persisted past the spawn: an actor of a transient machine */
		if (s->version > 0 && s->first_event == 0 && s->snapshot == NULL)
			continue;
		from = s->snapshot ? s->snapshot : s->initial_state;
		from_tag = state_tag(from, "state");
		f->state = from;
		f->version = s->snapshot ? s->snapshot_version : 0;
		f->upto = s->version;
		f->index = md_find_state(cm->def, from_tag);
		if (f->index < 0)
		{
			add_problem(c, f->actor_id, f->version,
						"the fold starts in state \"%s\" (%s), which the definition lacks",
						from_tag, s->snapshot ? "a snapshot" : "the spawn state");
			continue;
		}
		f->done = false;
		afters[i] = Int64GetDatum(f->version);
		uptos[i] = Int64GetDatum(f->upto);
	}

	store_scan_events_of(c->kind, ids, afters, uptos, n, check_event, c);
	for (int i = 0; i < n; i++)
	{
		AdapterCheck a = {c, i};

		if (!through_adapter[i])
			continue;
		c->current = i;
		c->folds[i].done = false;
		adapter_scan_events(current->adapter, c->folds[i].actor_id, 0,
							c->folds[i].upto, check_adapter_event, &a);
		finish_fold(c, &c->folds[i]);
	}
	for (int i = 0; i < n; i++)
		finish_fold(c, &c->folds[i]);
	SPI_finish();
}

/*
 * Run check_chunk in a subtransaction and roll it back whatever happens:
 * nothing the folds did survives.  NULL when it finished; otherwise the
 * error it raised.
 */
static ErrorData *
check_undone(CheckChunk *c)
{
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		check_chunk(c);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(context);
	CurrentResourceOwner = owner;
	return error;
}

static void
emit_problems(ReturnSetInfo *rsinfo, List *problems)
{
	ListCell   *lc;

	foreach(lc, problems)
	{
		Problem    *p = lfirst(lc);
		Datum		values[3] = {
			CStringGetTextDatum(p->actor_id),
			Int64GetDatum(p->version),
			CStringGetTextDatum(p->problem),
		};
		bool		nulls[3] = {false, false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* Check one chunk of actors; one by one when a guard or handler fails */
static void
check_ids(ReturnSetInfo *rsinfo, CompiledMachine *cm, StoreKind kind,
		  List *ids, MemoryContext chunk_context)
{
	CheckChunk	c;
	ErrorData  *error;
	ListCell   *lc;

	c.cm = cm;
	c.kind = kind;
	c.ids = ids;
	c.result_context = chunk_context;
	c.problems = NIL;
	if ((error = check_undone(&c)) == NULL)
	{
		emit_problems(rsinfo, c.problems);
		return;
	}
	FreeErrorData(error);
	foreach(lc, ids)
	{
		CheckChunk	one;

		CHECK_FOR_INTERRUPTS();
		one.cm = cm;
		one.kind = kind;
		one.ids = list_make1(lfirst(lc));
		one.result_context = chunk_context;
		one.problems = NIL;
		one.folds = NULL;
		if ((error = check_undone(&one)) != NULL)
		{
			CheckFold  *f = one.folds;

			/* the migration, or the version being folded, when it failed */
			if (f != NULL && f->migrating)
				add_problem(&one, lfirst(lc), f->upto, "the migration failed: %s",
							error_text(error));
			else if (f != NULL && !f->done && f->folding[0] != '\0')
				add_problem(&one, lfirst(lc), f->version + 1,
							"folding event \"%s\" failed: %s", f->folding,
							error_text(error));
			else
				add_problem(&one, lfirst(lc), f && !f->done ? f->version : 0,
							"the check failed: %s", error_text(error));
			FreeErrorData(error);
		}
		emit_problems(rsinfo, one.problems);
	}
}

/*
 * machine_check_define(name text, definition jsonb) RETURNS TABLE(actor_id
 *		text, version bigint, problem text)
 *
 * What redefining the machine with this definition would break: live
 * actors in states it lacks, and actors whose persisted history would not
 * fold through it to the state tags the journal recorded.  Writes nothing;
 * takes no lock that a send waits for.
 */
PG_FUNCTION_INFO_V1(machine_check_define);
Datum
machine_check_define(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	Jsonb	   *definition;
	StoredMachine stored;
	CompiledMachine *cm;
	MemoryContext chunk_context;
	bool		exists;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "name" : "definition")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	definition = PG_GETARG_JSONB_P(1);
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	exists = store_load_machine(name, ROW_NO_LOCK, &stored);
	if (exists)
		machine_authorize_by_name(name, MACHINE_DEFINE);
	SPI_finish();

	/* outside SPI, so that it outlives the connections of the chunks */
	cm = machine_compile_candidate(name, definition);
	if (!exists)
	{
		machine_free_candidate(cm);
		return (Datum) 0;
	}
	cm->revision = stored.revision + 1;

	chunk_context = AllocSetContextCreate(CurrentMemoryContext, "check chunk",
										  ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		SPI_connect();
		/* a machine's actors all live in the tables of one kind */
		for (int kind = 0; kind < store_kinds(); kind++)
		{
			Portal		portal = store_open_actors_of((StoreKind) kind, name);
			List	   *ids;

			while ((ids = store_fetch_actor_ids(portal, CHECK_CHUNK_SIZE,
												chunk_context)) != NIL)
			{
				MemoryContext old = MemoryContextSwitchTo(chunk_context);

				CHECK_FOR_INTERRUPTS();
				check_ids(rsinfo, cm, (StoreKind) kind, ids, chunk_context);
				MemoryContextSwitchTo(old);
				MemoryContextReset(chunk_context);
			}
			SPI_cursor_close(portal);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		machine_free_candidate(cm);
	}
	PG_END_TRY();
	MemoryContextDelete(chunk_context);
	return (Datum) 0;
}
