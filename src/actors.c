/*-------------------------------------------------------------------------
 *
 * actors.c
 *	  The life of an actor apart from sends: machine_spawn,
 *	  machine_state, machine_version, machine_matches, machine_can,
 *	  machine_stop, machine_delete, machine_persist.
 *
 * Status.  An actor in machine.instances is "running", "done" (it reached a
 * final state; sends are refused) or "stopped" (it keeps its row, which
 * records its machine and the state it was spawned with, and waits for
 * machine_restore).  Stopping a non-persistent actor removes it, since
 * nothing could restore it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"

#include "machine.h"
#include "actors.h"
#include "adapter.h"
#include "definition.h"
#include "registry.h"
#include "send.h"
#include "store.h"
#include "store_direct.h"
#include "store_timers.h"
#include "timers.h"
#include "transition.h"
#include "values.h"

static void
null_argument(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be NULL", name)));
}

static void
actor_not_found(const char *actor_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("actor \"%s\" does not exist", actor_id)));
}

typedef struct SpawnArgs
{
	const char *actor_id;
	const char *machine;
	Jsonb	   *data;
	const char *state_name;		/* NULL: the machine's initial state */
	bool		if_not_exists;
} SpawnArgs;

/* The existing actor an if_not_exists spawn returns, if it is of that machine */
static Jsonb *
existing_actor(const SpawnArgs *a, CompiledMachine *cm)
{
	ActorRow	row;

	if (!store_read_actor(a->actor_id, ROW_NO_LOCK, &row))
		elog(ERROR, "actor \"%s\" vanished after its spawn conflicted", a->actor_id);
	if (strcmp(row.machine, cm->name) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("actor \"%s\" already exists with another machine", a->actor_id),
				 errdetail("It is an actor of machine \"%s\", not of \"%s\".",
						   row.machine, cm->name)));
	return row.state;
}

/* The state a spawn starts in: the initial one, or the one named */
static int
start_state(CompiledMachine *cm, const char *name)
{
	int			index;

	if (name == NULL)
		return cm->def->initial;
	index = md_find_state(cm->def, name);
	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("machine \"%s\" has no state \"%s\"", cm->name, name),
				 errhint("Spawn into one of the states its definition declares, or leave state NULL for the initial one.")));
	return index;
}

static Jsonb *
spawn_work(void *arg)
{
	SpawnArgs  *a = arg;
	CompiledMachine *cm = machine_lookup(a->machine, false);
	int			start;
	const MdState *entered;
	Jsonb	   *state;

	machine_authorize(cm, MACHINE_SEND | MACHINE_RUN);
	start = start_state(cm, a->state_name);
	entered = &cm->def->states[start];
	state = jsonb_with_tag(a->data, NULL, entered->name);
	if (!store_insert_actor(cm->store, a->actor_id, cm->name,
							entered->final ? ACTOR_DONE : ACTOR_RUNNING,
							state, entered->name))
	{
		if (a->if_not_exists)
			return existing_actor(a, cm);
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("actor \"%s\" already exists", a->actor_id),
				 errhint("Choose another id, pass if_not_exists => true, or erase the old actor with machine_delete(%s).",
						 quote_literal_cstr(a->actor_id))));
	}
	timers_transition(a->actor_id, cm, -1, start, true, 0);
	machine_run_effects(cm, entered->entry, entered->nentry, a->actor_id,
						state, lifecycle_event(MACHINE_INIT_TAG));
	return state;
}

static Jsonb *
spawn_args(SpawnArgs *a)
{
	Jsonb	   *state;

	PreventCommandIfReadOnly("machine_spawn()");
	SPI_connect();
	/* lock before the lookup, so that a concurrent redefinition is seen */
	machine_lock(a->machine, RowExclusiveLock);
	state = actor_transition(a->actor_id, spawn_work, a);
	state = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(state), false, -1);
	SPI_finish();
	return state;
}

/*
 * Spawn an actor in its machine's initial state; with if_not_exists, an
 * actor of that id and machine (one spawned concurrently, too: the insert
 * waits for it) is returned as it is.  The arguments are checked.
 */
Jsonb *
actor_spawn(const char *actor_id, const char *machine, Jsonb *data,
			bool if_not_exists)
{
	SpawnArgs	a;

	a.actor_id = actor_id;
	a.machine = machine;
	a.data = data;
	a.state_name = NULL;
	a.if_not_exists = if_not_exists;
	return spawn_args(&a);
}

/* machine_spawn of either version: the arguments after "data" are 1.1's */
static Datum
spawn_actor(FunctionCallInfo fcinfo)
{
	static const char *const names[] = {"actor_id", "machine", "data", "if_not_exists"};
	SpawnArgs	a;
	Jsonb	   *state;

	for (int i = 0; i < Min(PG_NARGS(), 4); i++)
		if (PG_ARGISNULL(i))
			null_argument(names[i]);
	a.actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	a.machine = text_to_cstring(PG_GETARG_TEXT_PP(1));
	a.data = PG_GETARG_JSONB_P(2);
	a.if_not_exists = PG_NARGS() > 3 && PG_GETARG_BOOL(3);
	a.state_name = PG_NARGS() > 4 && !PG_ARGISNULL(4) ?
		text_to_cstring(PG_GETARG_TEXT_PP(4)) : NULL;
	check_actor_id(a.actor_id);
	check_object(a.data, "data");
	state = spawn_args(&a);

	PG_RETURN_JSONB_P(state);
}

/*
 * machine_spawn(actor_id text, machine text, data jsonb DEFAULT '{}',
 *				 if_not_exists boolean DEFAULT false, state text DEFAULT NULL)
 * RETURNS jsonb
 *
 * A new actor at version 0 in the machine's initial state, or in "state":
 * the data with "_tag" set to that state (a "_tag" in the data is
 * replaced); the state's entry effects run and its timers are armed.  With
 * if_not_exists, an actor of that id and machine is returned as it is.
 */
PG_FUNCTION_INFO_V1(machine_spawn_1_1);
Datum
machine_spawn_1_1(PG_FUNCTION_ARGS)
{
	return spawn_actor(fcinfo);
}

/* machine_spawn(actor_id text, machine text, data jsonb) of 1.0 */
PG_FUNCTION_INFO_V1(machine_spawn);
Datum
machine_spawn(PG_FUNCTION_ARGS)
{
	return spawn_actor(fcinfo);
}

/*
 * machine_state(actor_id text) RETURNS jsonb
 *
 * The current state of an actor (running, done, or as it was stopped);
 * NULL when there is no such actor.
 */
PG_FUNCTION_INFO_V1(machine_state);
Datum
machine_state(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ActorRow	row;
	Jsonb	   *state = NULL;

	SPI_connect();
	if (store_read_actor(actor_id, ROW_NO_LOCK, &row))
	{
		machine_authorize_by_name(row.machine, MACHINE_READ);
		state = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(row.state), false, -1);
	}
	SPI_finish();

	if (state == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(state);
}

/*
 * machine_version(actor_id text) RETURNS bigint
 */
PG_FUNCTION_INFO_V1(machine_version);
Datum
machine_version(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ActorRow	row;
	bool		found;

	SPI_connect();
	found = store_read_actor(actor_id, ROW_NO_LOCK, &row);
	if (found)
		machine_authorize_by_name(row.machine, MACHINE_READ);
	SPI_finish();

	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_INT64(row.version);
}

/*
 * machine_matches(actor_id text, tag text) RETURNS boolean
 *
 * Is the actor in that state?  NULL when there is no such actor.
 */
PG_FUNCTION_INFO_V1(machine_matches);
Datum
machine_matches(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *tag = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ActorRow	row;
	bool		found;

	SPI_connect();
	found = store_read_actor(actor_id, ROW_NO_LOCK, &row);
	if (found)
		machine_authorize_by_name(row.machine, MACHINE_READ);
	SPI_finish();

	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(strcmp(row.state_tag, tag) == 0);
}

/*
 * machine_can(actor_id text, event jsonb) RETURNS boolean
 *
 * Would the actor handle this event now?  Its guards run (as they would
 * for a send, so a guard with side effects has them); nothing is locked or
 * written.  False for a stopped or done actor and for an event its state
 * does not accept; NULL when there is no such actor.  An event that is not
 * one, or whose payload does not fit its schema, is an error, as for a
 * send.
 */
PG_FUNCTION_INFO_V1(machine_can);
Datum
machine_can(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *event = PG_GETARG_JSONB_P(1);
	char	   *tag = event_tag(event);
	ActorRow	row;
	CompiledMachine *cm;
	bool		had_rule;
	bool		can = false;

	SPI_connect();
	if (!store_read_actor(actor_id, ROW_NO_LOCK, &row))
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	cm = machine_lookup(row.machine, false);
	machine_authorize(cm, MACHINE_READ | MACHINE_RUN);
	check_event_payload(cm->def, event, tag);
	if (row.status == ACTOR_RUNNING)
		can = machine_choose(cm, row.state,
							 machine_state_index(cm, row.state_tag, actor_id),
							 event, tag, &had_rule) != NULL;
	SPI_finish();

	PG_RETURN_BOOL(can);
}

/*
 * A snapshot of an actor as it is, for stop and persist: one of that
 * version existing already is fine
 */
static void
take_snapshot(CompiledMachine *cm, const char *actor_id, ActorRow *row)
{
	if (cm->adapter)
		adapter_save_snapshot(cm->adapter, actor_id, row->version, row->state,
							  row->state_tag);
	else
		(void) store_insert_snapshot(row->store, actor_id, row->version,
									 row->state, row->state_tag);
}

/*
 * machine_stop(actor_id text) RETURNS boolean
 *
 * Stop a running (or done) actor: its timers are cancelled; a persistent
 * one is snapshotted first, so that stop and restore lose nothing; a
 * non-persistent one is removed.
 * False when there is no such actor or it is stopped already.
 */
PG_FUNCTION_INFO_V1(machine_stop);
Datum
machine_stop(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ActorRow	row;
	bool		stopped = false;

	PreventCommandIfReadOnly("machine_stop()");
	SPI_connect();
	if (store_read_actor(actor_id, ROW_LOCK_UPDATE, &row) &&
		row.status != ACTOR_STOPPED)
	{
		CompiledMachine *cm = machine_lookup(row.machine, false);

		machine_authorize(cm, MACHINE_SEND);
		store_cancel_timers(row.store, actor_id);
		if (cm->def->persistence.enabled)
		{
			take_snapshot(cm, actor_id, &row);
			store_set_status(row.store, actor_id, ACTOR_STOPPED);
		}
		else
			(void) store_delete_actor(row.store, actor_id);
		stopped = true;
	}
	SPI_finish();

	PG_RETURN_BOOL(stopped);
}

/*
 * machine_delete(actor_id text) RETURNS boolean
 *
 * Erase an actor everywhere; false when nothing of it was found.
 */
PG_FUNCTION_INFO_V1(machine_delete);
Datum
machine_delete(PG_FUNCTION_ARGS)
{
	char	   *actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ActorRow	row;
	bool		deleted;

	PreventCommandIfReadOnly("machine_delete()");
	SPI_connect();
	/* wait for a send in flight, then erase */
	deleted = store_read_actor(actor_id, ROW_LOCK_UPDATE, &row);
	if (deleted)
	{
		CompiledMachine *cm = machine_lookup(row.machine, false);

		machine_authorize(cm, MACHINE_DELETE);
		if (cm->adapter)
			adapter_delete_actor(cm->adapter, actor_id);
		deleted = store_delete_actor(row.store, actor_id);
	}
	SPI_finish();

	PG_RETURN_BOOL(deleted);
}

/*
 * machine_persist(actor_id text, expected_version bigint DEFAULT NULL)
 * RETURNS bigint
 *
 * Take a snapshot of the actor's current state now and return its version;
 * a snapshot of that version existing already is fine.
 */
PG_FUNCTION_INFO_V1(machine_persist);
Datum
machine_persist(PG_FUNCTION_ARGS)
{
	char	   *actor_id;
	ActorRow	row;
	CompiledMachine *cm;

	if (PG_ARGISNULL(0))
		null_argument("actor_id");
	actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PreventCommandIfReadOnly("machine_persist()");

	SPI_connect();
	if (!store_read_actor(actor_id, ROW_LOCK_SHARE, &row))
		actor_not_found(actor_id);
	if (!PG_ARGISNULL(1) && PG_GETARG_INT64(1) != row.version)
		version_conflict(actor_id, PG_GETARG_INT64(1), row.version);
	cm = machine_lookup(row.machine, false);
	machine_authorize(cm, MACHINE_SEND);
	if (!cm->def->persistence.enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("machine \"%s\" of actor \"%s\" is not persistent",
						cm->name, actor_id),
				 errhint("Add a \"persistence\" object to the machine's definition.")));
	take_snapshot(cm, actor_id, &row);
	SPI_finish();

	PG_RETURN_INT64(row.version);
}
