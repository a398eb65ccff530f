/*-------------------------------------------------------------------------
 *
 * entity.c
 *	  machine_send_entity: an actor addressed by its id alone, spawned by
 *	  its first message.
 *
 * A machine whose definition has "entity" gives each id its own actor the
 * first time a message is sent to it, with the data its "init" function
 * returns for the id ({} without one).  The spawn and the send happen in
 * the caller's transaction, so they commit or roll back together.
 *
 * Concurrent first messages: the spawn inserts the actor's row with
 * if_not_exists semantics, so a second sender's insert waits for the
 * first sender's transaction; if that commits, the second sender takes the
 * actor as it is and its send queues behind the first on the actor's row
 * lock (send.c).  If the first rolls back, the second one spawns.  Either
 * way the entity is spawned once.  An init function may run in both
 * sessions; only one result is kept, so init must not have effects.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "actors.h"
#include "registry.h"
#include "send.h"
#include "store.h"
#include "store_direct.h"
#include "transition.h"
#include "values.h"

/*
 * machine_send_entity(machine text, entity_id text, event jsonb,
 *					   expected_version bigint DEFAULT NULL) RETURNS jsonb
 *
 * Send an event to the entity of that machine with that id, spawning it
 * first when it does not exist; returns the new state.
 */
PG_FUNCTION_INFO_V1(machine_send_entity);
Datum
machine_send_entity(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"machine", "entity_id", "event"};
	char	   *machine;
	char	   *entity_id;
	Jsonb	   *event;
	int64		expected;
	CompiledMachine *cm;
	ActorRow	row;
	Jsonb	   *state;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names[i])));
	machine = text_to_cstring(PG_GETARG_TEXT_PP(0));
	entity_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	event = PG_GETARG_JSONB_P(2);
	expected = PG_ARGISNULL(3) ? -1 : PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(3) && expected < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected_version must not be negative")));
	check_actor_id(entity_id);
	PreventCommandIfReadOnly("machine_send_entity()");

	SPI_connect();
	/* a role that may not send must not even queue for the lock */
	cm = machine_lookup(machine, false);
	machine_authorize(cm, MACHINE_SEND | MACHINE_RUN);
	/* the lock delivers a concurrent redefinition: look up again */
	machine_lock(cm->name, RowExclusiveLock);
	cm = machine_lookup(machine, false);
	machine_authorize(cm, MACHINE_SEND | MACHINE_RUN);
	if (!cm->def->entity)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("machine \"%s\" is not an entity", cm->name),
				 errdetail("Its definition has no \"entity\" object."),
				 errhint("Add \"entity\": {} (or {\"init\": \"a function\"}) to the definition, or spawn its actors with machine_spawn and send with machine_send.")));

	if (store_read_actor(entity_id, ROW_NO_LOCK, &row))
	{
		if (strcmp(row.machine, cm->name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("actor \"%s\" already exists with another machine",
							entity_id),
					 errdetail("It is an actor of machine \"%s\", not of \"%s\".",
							   row.machine, cm->name),
					 errhint("Entities of different machines need different ids.")));
	}
	else
		actor_spawn(entity_id, cm->name,
					machine_entity_init(cm, entity_id), true);
	SPI_finish();

	state = actor_send(entity_id, event, expected);
	if (state == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(state);
}
