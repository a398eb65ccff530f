/*-------------------------------------------------------------------------
 *
 * transition.c
 *	  The transition function: which transition an event takes from a state,
 *	  and the state it leads to.
 *
 * machine_step() writes nothing and runs no effects, so machine_send, the
 * folds of restore and replay, and machine_simulate all share it; only the
 * guards and handlers it calls can have effects of their own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "machine.h"
#include "definition.h"
#include "registry.h"
#include "transition.h"
#include "values.h"

/* Invoke a function with its busy flag set for the duration of the call */
static Datum
invoke_marked(FunctionCallInfo fcinfo, bool *busy)
{
	Datum		result;

	*busy = true;
	PG_TRY();
	{
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		*busy = false;
	}
	PG_END_TRY();
	return result;
}

/*
 * Call a function of a machine; a NULL result is reported through isnull.
 *
 * The cached FmgrInfo keeps the function's own cache in fn_extra, which SQL
 * functions use for their execution state: it must not be entered again
 * while it runs.  A call nested inside the same function (an effect whose
 * send comes back to the same machine) gets a fresh copy instead.
 */
static Datum
call_function_nulls(CompiledMachine *cm, int fn, int nargs, Datum *args,
					const bool *argnulls, bool *isnull);

static Datum
call_function(CompiledMachine *cm, int fn, int nargs, Datum *args,
			  bool *isnull)
{
	return call_function_nulls(cm, fn, nargs, args, NULL, isnull);
}

/* The same with arguments that may be NULL (argnulls NULL: none is) */
static Datum
call_function_nulls(CompiledMachine *cm, int fn, int nargs, Datum *args,
					const bool *argnulls, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 3);
	FmgrInfo	nested;
	FmgrInfo   *flinfo = &cm->functions[fn];
	bool	   *busy = &cm->busy[fn];
	Datum		result;

	if (*busy)
	{
		fmgr_info_copy(&nested, flinfo, CurrentMemoryContext);
		flinfo = &nested;
		busy = NULL;
	}
	InitFunctionCallInfoData(*fcinfo, flinfo, nargs, InvalidOid, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = argnulls ? argnulls[i] : false;
	}
	result = busy ? invoke_marked(fcinfo, busy) : FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

/* A guard passes when it returns true; false and NULL refuse */
static bool
guard_passes(CompiledMachine *cm, int fn, Jsonb *state, Jsonb *event)
{
	Datum		args[2] = {JsonbPGetDatum(state), JsonbPGetDatum(event)};
	bool		isnull;
	Datum		result = call_function(cm, fn, 2, args, &isnull);

	return !isnull && DatumGetBool(result);
}

static void
invalid_result(CompiledMachine *cm, int fn, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_MACHINE_INVALID_RESULT),
			 errmsg("handler %s of machine \"%s\" returned %s",
					get_func_name(cm->functions[fn].fn_oid), cm->name, problem),
			 errhint("A handler returns the new state's data as a JSON object.")));
}

/*
 * The initial data of an entity: its "init" function's result for the id,
 * or {} without one.
 */
Jsonb *
machine_entity_init(CompiledMachine *cm, const char *entity_id)
{
	int			fn = cm->def->entity_init;
	Datum		args[1];
	bool		isnull;
	Datum		d;
	Jsonb	   *result;

	if (fn < 0)
		return jsonb_from_cstring("{}");
	args[0] = CStringGetTextDatum(entity_id);
	d = call_function(cm, fn, 1, args, &isnull);
	if (!isnull)
	{
		result = DatumGetJsonbP(d);
		if (!JB_ROOT_IS_SCALAR(result) && JB_ROOT_IS_OBJECT(result))
			return result;
	}
	ereport(ERROR,
			(errcode(ERRCODE_MACHINE_INVALID_RESULT),
			 errmsg("entity init function %s of machine \"%s\" returned %s",
					get_func_name(cm->functions[fn].fn_oid), cm->name,
					isnull ? "NULL" : "something that is not a JSON object"),
			 errdetail("It was called for entity \"%s\".", entity_id),
			 errhint("An entity's init returns the initial data of the entity as a JSON object.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * The state a redefinition's "migrate" function makes of an actor's state:
 * a JSON object whose "_tag" names a state of the new revision.
 */
Jsonb *
machine_migrate(CompiledMachine *cm, Jsonb *state, int32 from_revision,
				const char *actor_id)
{
	int			fn = cm->def->migrate;
	Datum		args[2] = {JsonbPGetDatum(state), Int32GetDatum(from_revision)};
	bool		isnull;
	Datum		d = call_function(cm, fn, 2, args, &isnull);
	Jsonb	   *result;
	JsonbValue *tag;
	const char *problem = "NULL";

	if (!isnull)
	{
		result = DatumGetJsonbP(d);
		tag = JB_ROOT_IS_SCALAR(result) || !JB_ROOT_IS_OBJECT(result) ? NULL :
			jsonb_field(result, MACHINE_TAG_KEY);
		problem = "a state without a \"_tag\"";
		if (tag != NULL && tag->type == jbvString)
		{
			char	   *name = pnstrdup(tag->val.string.val, tag->val.string.len);

			if (md_find_state(cm->def, name) >= 0)
				return result;
			problem = psprintf("undeclared state \"%s\"", name);
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_MACHINE_INVALID_RESULT),
			 errmsg("migration %s of machine \"%s\" returned %s",
					get_func_name(cm->functions[fn].fn_oid), cm->name, problem),
			 errdetail("It was migrating actor \"%s\" from revision %d.",
					   actor_id, from_revision),
			 errhint("A migration returns the whole new state, a JSON object whose \"_tag\" names a state of the new revision.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * A journaled event in the shape today's revision expects: the machine's
 * "upcast" function applied to an event that an older revision journaled
 * (or one whose revision was not recorded, passed as NULL; a STRICT
 * upcaster leaves those as they are).  Events of the current revision, and
 * the extension's own entries (tags starting with "$"), are returned as
 * they are.
 */
Jsonb *
machine_upcast(CompiledMachine *cm, Jsonb *event, int32 revision,
			   const char *actor_id, int64 version)
{
	int			fn = cm->def->upcast;
	Datum		args[2];
	bool		argnulls[2] = {false, revision < 0};
	bool		isnull;
	Datum		d;
	Jsonb	   *result;
	JsonbValue *tag;

	if (fn < 0 || revision >= cm->revision)
		return event;
	tag = jsonb_field(event, MACHINE_TAG_KEY);
	if (tag != NULL && tag->type == jbvString && tag->val.string.len > 0 &&
		tag->val.string.val[0] == MACHINE_RESERVED_PREFIX)
		return event;
	if (revision < 0 && cm->functions[fn].fn_strict)
		return event;
	args[0] = JsonbPGetDatum(event);
	args[1] = Int32GetDatum(revision);
	d = call_function_nulls(cm, fn, 2, args, argnulls, &isnull);
	if (!isnull)
	{
		result = DatumGetJsonbP(d);
		tag = JB_ROOT_IS_SCALAR(result) || !JB_ROOT_IS_OBJECT(result) ? NULL :
			jsonb_field(result, MACHINE_TAG_KEY);
		if (tag != NULL && tag->type == jbvString)
			return result;
	}
	ereport(ERROR,
			(errcode(ERRCODE_MACHINE_INVALID_RESULT),
			 errmsg("upcaster %s of machine \"%s\" returned %s",
					get_func_name(cm->functions[fn].fn_oid), cm->name,
					isnull ? "NULL" : "no event"),
			 errdetail("It was upcasting journal row " INT64_FORMAT " of actor \"%s\".",
					   version, actor_id),
			 errhint("An upcaster returns the event as a JSON object whose \"_tag\" is a string.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * Run a handler: its result is the new state's data.  With a target the
 * target names the state; without one the result's "_tag" must.
 */
static Jsonb *
run_handler(CompiledMachine *cm, const MdTransition *t, Jsonb *state,
			Jsonb *event, int *to)
{
	Datum		args[2] = {JsonbPGetDatum(state), JsonbPGetDatum(event)};
	bool		isnull;
	Datum		d = call_function(cm, t->handler, 2, args, &isnull);
	Jsonb	   *result;
	JsonbValue *tag;
	char	   *name;

	if (isnull)
		invalid_result(cm, t->handler, "NULL");
	result = DatumGetJsonbP(d);
	if (JB_ROOT_IS_SCALAR(result) || !JB_ROOT_IS_OBJECT(result))
		invalid_result(cm, t->handler, "something that is not a JSON object");

	if (t->target >= 0)
	{
		*to = t->target;
		return jsonb_with_tag(result, NULL, cm->def->states[t->target].name);
	}

	tag = jsonb_field(result, MACHINE_TAG_KEY);
	if (tag == NULL || tag->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_INVALID_RESULT),
				 errmsg("handler %s of machine \"%s\" returned no state tag",
						get_func_name(cm->functions[t->handler].fn_oid), cm->name),
				 errdetail("The transition has no target, so the result's \"_tag\" must name the new state.")));
	name = pnstrdup(tag->val.string.val, tag->val.string.len);
	*to = md_find_state(cm->def, name);
	if (*to < 0)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_INVALID_RESULT),
				 errmsg("handler %s of machine \"%s\" returned undeclared state \"%s\"",
						get_func_name(cm->functions[t->handler].fn_oid), cm->name,
						name)));
	return result;
}

/*
 * The transition an event takes from a state (at state index "from"): the
 * first candidate whose guard passes; NULL when none does.  *had_rule says
 * whether the state (or "any") has a rule for the event at all.  Guards
 * run; nothing else does.
 */
const MdTransition *
machine_choose(CompiledMachine *cm, Jsonb *state, int from, Jsonb *event,
			   const char *event_name, bool *had_rule)
{
	const MdRule *rule = md_state_rule(cm->def, from, event_name);

	*had_rule = rule != NULL;
	if (rule == NULL)
		return NULL;
	for (int i = 0; i < rule->ntransitions; i++)
	{
		const MdTransition *candidate = &rule->transitions[i];

		if (candidate->guard < 0 ||
			guard_passes(cm, candidate->guard, state, event))
			return candidate;
	}
	return NULL;
}

/*
 * Apply an event to a state (at state index "from"): the first candidate
 * transition whose guard passes is taken.  The caller has validated the
 * event.  When no transition accepts the event, step->handled is false and
 * step->state is the old state.
 */
void
machine_step(CompiledMachine *cm, Jsonb *state, int from, Jsonb *event,
			 const char *event_name, Step *step)
{
	const MachineDef *def = cm->def;
	const MdTransition *t;

	step->handled = false;
	step->from = from;
	step->to = from;
	step->transition = NULL;
	step->state = state;
	step->left = false;
	t = machine_choose(cm, state, from, event, event_name, &step->had_rule);
	if (t == NULL)
		return;

	if (t->handler >= 0)
		step->state = run_handler(cm, t, state, event, &step->to);
	else
	{
		step->to = t->target;
		step->state = jsonb_with_tag(state, t->merge ? event : NULL,
									 def->states[t->target].name);
	}
	step->handled = true;
	step->transition = t;
	step->left = step->to != from || t->reenter;
}

/*
 * The index of a state tag in a machine; an error when the machine (at its
 * current revision) lacks it.
 */
int
machine_state_index(CompiledMachine *cm, const char *tag, const char *actor_id)
{
	int			index = md_find_state(cm->def, tag);

	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_REPLAY_DIVERGED),
				 errmsg("actor \"%s\" is in state \"%s\", which machine \"%s\" does not define",
						actor_id, tag, cm->name),
				 errhint("The machine was redefined without that state.")));
	return index;
}

/* Does the schedule take a snapshot of this version in the sending transaction? */
bool
machine_should_snapshot(const MachineDef *def, int64 version)
{
	const MdPersistence *p = &def->persistence;

	if (!p->enabled)
		return false;
	switch (p->schedule)
	{
		case MD_SNAPSHOT_FOREVER:
			return true;
		case MD_SNAPSHOT_RECURS:
			return version <= p->n;
		case MD_SNAPSHOT_EVERY:
			return version % p->n == 0;
		case MD_SNAPSHOT_NEVER:
		case MD_SNAPSHOT_SPACED:
			return false;
	}
	return false;
}

/* Run effects (actor_id, state, event) in declared order */
void
machine_run_effects(CompiledMachine *cm, const int *fns, int n,
					const char *actor_id, Jsonb *state, Jsonb *event)
{
	Datum		args[3];

	if (n == 0)
		return;
	args[0] = CStringGetTextDatum(actor_id);
	args[1] = JsonbPGetDatum(state);
	args[2] = JsonbPGetDatum(event);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		(void) call_function(cm, fns[i], 3, args, &isnull);
	}
}
