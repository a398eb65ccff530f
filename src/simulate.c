/*-------------------------------------------------------------------------
 *
 * simulate.c
 *	  The testing helpers: machine_simulate and the assertions.
 *
 * Pure and in memory: events go through machine_step() exactly as a send
 * would take them, so guards and handlers run, but nothing is stored and no
 * effect, timer or notification happens.  A simulation stops at a final
 * state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "machine.h"
#include "definition.h"
#include "registry.h"
#include "transition.h"
#include "values.h"

#define SIMULATED_ACTOR "(simulation)"

typedef void (*SimulationStep) (int step, Jsonb *event, Jsonb *state,
								const char *tag, void *arg);

static void
null_argument(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be NULL", name)));
}

/* Call back in the caller's memory context, outside SPI's */
static void
report(SimulationStep callback, void *arg, MemoryContext caller, int step,
	   Jsonb *event, Jsonb *state, const char *tag)
{
	MemoryContext old = MemoryContextSwitchTo(caller);

	callback(step, event, state, tag, arg);
	MemoryContextSwitchTo(old);
}

/*
 * Remove from the list and return the oldest postponed event that the
 * state takes (a transition is chosen, guards included); NULL if none.
 */
static Jsonb *
take_deliverable(CompiledMachine *cm, Jsonb *state, int index,
				 List **postponed)
{
	ListCell   *lc;

	foreach(lc, *postponed)
	{
		Jsonb	   *event = lfirst(lc);
		char	   *tag = event_tag(event);
		bool		had_rule;

		if (md_state_postpones(cm->def, index, tag) ||
			machine_choose(cm, state, index, event, tag, &had_rule) == NULL)
			continue;
		*postponed = foreach_delete_current(*postponed, lc);
		return event;
	}
	return NULL;
}

/*
 * Run the events through the machine from its initial state (with data),
 * or from the state given as from_state, calling back for each state the
 * actor goes through: step 0 is the state it starts in (event NULL), each
 * further step the state after an event applied.  An event that the
 * machine ignores ("unhandled": "ignore") makes no step; one that the
 * state postpones makes none until a later state takes it, after the step
 * that entered that state, as a send would.  data_arg and from_arg are the
 * argument numbers of data and from_state (-1: the function has none).
 * Returns the final state.
 */
static Jsonb *
simulate(FunctionCallInfo fcinfo, int data_arg, int from_arg,
		 SimulationStep callback, void *arg)
{
	char	   *machine;
	ArrayType  *events;
	Jsonb	   *data;
	Jsonb	   *from = NULL;
	CompiledMachine *cm;
	const MachineDef *def;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	Jsonb	   *state;
	int			index;
	int			steps = 0;
	List	   *postponed = NIL;	/* Jsonb *, oldest first */
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(0))
		null_argument("machine");
	if (PG_ARGISNULL(1))
		null_argument("events");
	machine = text_to_cstring(PG_GETARG_TEXT_PP(0));
	events = PG_GETARG_ARRAYTYPE_P(1);
	if (PG_ARGISNULL(data_arg))
		null_argument("data");
	data = PG_GETARG_JSONB_P(data_arg);
	check_object(data, "data");
	if (from_arg >= 0 && !PG_ARGISNULL(from_arg))
	{
		from = PG_GETARG_JSONB_P(from_arg);
		check_object(from, "from_state");
		if (JB_ROOT_COUNT(data) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("data and from_state cannot both be given"),
					 errdetail("from_state is the whole state to start from, its data included."),
					 errhint("Put the data in from_state.")));
	}
	deconstruct_array(events, JSONBOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &n);

	SPI_connect();
	cm = machine_lookup(machine, false);
	def = cm->def;
	machine_authorize(cm, MACHINE_READ | MACHINE_RUN);
	if (from != NULL)
	{
		char	   *tag = state_tag(from, "from_state");

		index = md_find_state(def, tag);
		if (index < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("machine \"%s\" has no state \"%s\"", cm->name, tag),
					 errdetail("The \"_tag\" of from_state names the state to start from."),
					 errhint("Use one of the states of the machine's definition, machine_definition(%s).",
							 quote_literal_cstr(cm->name))));
		state = from;
	}
	else
	{
		index = def->initial;
		state = jsonb_with_tag(data, NULL, def->states[index].name);
	}
	report(callback, arg, caller, 0, NULL, state, def->states[index].name);

	for (int i = 0; i < n && !def->states[index].final; i++)
	{
		Jsonb	   *event;
		char	   *tag;
		Step		step;
		Jsonb	   *redelivered;

		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("event %d of the simulation is NULL", i + 1)));
		event = DatumGetJsonbP(elems[i]);
		tag = event_tag(event);
		check_event_payload(def, event, tag);
		/* a postponed event waits for a state that takes it */
		if (md_state_postpones(def, index, tag))
		{
			postponed = lappend(postponed, event);
			continue;
		}
		machine_step(cm, state, index, event, tag, &step);
		if (!step.handled && !def->unhandled_ignore)
			ereport(ERROR,
					(errcode(ERRCODE_MACHINE_EVENT_UNHANDLED),
					 errmsg("state \"%s\" does not handle event \"%s\"",
							def->states[index].name, tag),
					 errdetail("At event %d of the simulation of machine \"%s\".",
							   i + 1, cm->name)));
		/* an ignored event changes nothing, so it makes no step */
		if (!step.handled)
			continue;
		state = step.state;
		index = step.to;
		report(callback, arg, caller, ++steps, event, state,
			   def->states[index].name);

		/* then the postponed events the new state takes, oldest first */
		while (!def->states[index].final &&
			   (redelivered = take_deliverable(cm, state, index, &postponed)) != NULL)
		{
			machine_step(cm, state, index, redelivered,
						 event_tag(redelivered), &step);
			if (!step.handled)
				break;			/* a guard changed its mind */
			state = step.state;
			index = step.to;
			report(callback, arg, caller, ++steps, redelivered, state,
				   def->states[index].name);
		}
	}

	MemoryContextSwitchTo(caller);
	state = DatumGetJsonbPCopy(JsonbPGetDatum(state));
	SPI_finish();
	return state;
}

static void
simulation_row(int step, Jsonb *event, Jsonb *state, const char *tag,
			   void *arg)
{
	ReturnSetInfo *rsinfo = arg;
	Datum		values[3] = {Int32GetDatum(step), JsonbPGetDatum(event),
	JsonbPGetDatum(state)};
	bool		nulls[3] = {false, event == NULL, false};

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * machine_simulate(machine text, events jsonb[], data jsonb DEFAULT '{}')
 * RETURNS TABLE(step integer, event jsonb, state jsonb)
 *
 * The entry point of version 1.0 of the extension.
 */
PG_FUNCTION_INFO_V1(machine_simulate);
Datum
machine_simulate(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	(void) simulate(fcinfo, 2, -1, simulation_row, fcinfo->resultinfo);
	return (Datum) 0;
}

/*
 * machine_simulate(machine text, events jsonb[], data jsonb DEFAULT '{}',
 *		from_state jsonb DEFAULT NULL)
 * RETURNS TABLE(step integer, event jsonb, state jsonb)
 *
 * From 1.1: from_state starts the simulation in a state of the caller's
 * choosing, data included, instead of the initial state.
 */
PG_FUNCTION_INFO_V1(machine_simulate_1_1);
Datum
machine_simulate_1_1(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	(void) simulate(fcinfo, 2, 3, simulation_row, fcinfo->resultinfo);
	return (Datum) 0;
}

typedef struct Path
{
	List	   *tags;			/* char *, one per step */
	const char *watched;		/* for never_reaches: first step reaching it */
	int			reached_at;
} Path;

static void
path_step(int step, Jsonb *event, Jsonb *state, const char *tag, void *arg)
{
	Path	   *path = arg;

	path->tags = lappend(path->tags, pstrdup(tag));
	if (path->watched && path->reached_at < 0 && strcmp(tag, path->watched) == 0)
		path->reached_at = step;
}

static char *
path_text(List *tags)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, tags)
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? " -> " : "",
						 (char *) lfirst(lc));
	return buf.data;
}

static void
assertion_failed(const char *machine, const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_ASSERT_FAILURE),
			 errmsg("machine \"%s\": %s", machine, message),
			 errdetail_internal("%s", detail)));
}

/*
 * machine_assert_path(machine text, events jsonb[], tags text[],
 *		data jsonb DEFAULT '{}') RETURNS void
 *
 * The tags are those of every step, the initial state first.
 */
PG_FUNCTION_INFO_V1(machine_assert_path);
Datum
machine_assert_path(PG_FUNCTION_ARGS)
{
	Path		path = {NIL, NULL, -1};
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	List	   *expected = NIL;
	bool		same;

	if (PG_ARGISNULL(2))
		null_argument("tags");
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false,
					  TYPALIGN_INT, &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
		expected = lappend(expected, elem_nulls[i] ? "NULL" :
						   TextDatumGetCString(elems[i]));

	(void) simulate(fcinfo, PG_NARGS() - 1, -1, path_step, &path);

	same = list_length(path.tags) == list_length(expected);
	for (int i = 0; same && i < n; i++)
		same = strcmp(list_nth(path.tags, i), list_nth(expected, i)) == 0;
	if (!same)
		assertion_failed(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 "the events did not follow the expected path",
						 psprintf("Expected %s, got %s.", path_text(expected),
								  path_text(path.tags)));
	PG_RETURN_VOID();
}

/*
 * machine_assert_reaches(machine text, events jsonb[], tag text,
 *		data jsonb DEFAULT '{}') RETURNS jsonb
 *
 * The events must end in that state; returns it.
 */
PG_FUNCTION_INFO_V1(machine_assert_reaches);
Datum
machine_assert_reaches(PG_FUNCTION_ARGS)
{
	Path		path = {NIL, NULL, -1};
	char	   *tag;
	Jsonb	   *state;

	if (PG_ARGISNULL(2))
		null_argument("tag");
	tag = text_to_cstring(PG_GETARG_TEXT_PP(2));
	state = simulate(fcinfo, PG_NARGS() - 1, -1, path_step, &path);
	if (strcmp(llast(path.tags), tag) != 0)
		assertion_failed(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 psprintf("the events did not reach state \"%s\"", tag),
						 psprintf("They ended in state \"%s\" along %s.",
								  (char *) llast(path.tags), path_text(path.tags)));
	PG_RETURN_JSONB_P(state);
}

/*
 * machine_assert_never_reaches(machine text, events jsonb[], tag text,
 *		data jsonb DEFAULT '{}') RETURNS void
 *
 * No step, the initial state included, may be in that state.
 */
PG_FUNCTION_INFO_V1(machine_assert_never_reaches);
Datum
machine_assert_never_reaches(PG_FUNCTION_ARGS)
{
	Path		path = {NIL, NULL, -1};

	if (PG_ARGISNULL(2))
		null_argument("tag");
	path.watched = text_to_cstring(PG_GETARG_TEXT_PP(2));
	(void) simulate(fcinfo, PG_NARGS() - 1, -1, path_step, &path);
	if (path.reached_at >= 0)
		assertion_failed(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 psprintf("the events reached state \"%s\"", path.watched),
						 psprintf("It was reached at step %d along %s.",
								  path.reached_at, path_text(path.tags)));
	PG_RETURN_VOID();
}
