/*-------------------------------------------------------------------------
 *
 * migrate.c
 *	  A redefinition's "migrate" function, run on every actor of the machine
 *	  in the defining transaction.
 *
 * A definition may name "migrate": fn(state jsonb, from_revision integer)
 * RETURNS jsonb, the whole new state.  When such a definition replaces a
 * revision, machine_define (holding the machine's lock exclusively, so no
 * write to its actors is in flight) calls it on each actor, stopped ones
 * included, and every actor whose state changes moves to a new version
 * whose journal row is a "$migrate" entry carrying the new state: folds
 * take that state as it is, as they take a "$rewind" entry's, and a
 * snapshot of it is taken, so a later restore or replay reaches the
 * migrated state whatever the function does by then, without folding the
 * events before it.  No effect runs.  A running actor whose state tag changes gets
 * the timers of its new state; one whose tag stays keeps its timers.
 *
 * Any error (a function that fails, returns no state, or names a state the
 * revision lacks) rolls the whole redefinition back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "machine.h"
#include "definition.h"
#include "migrate.h"
#include "registry.h"
#include "send.h"
#include "store.h"
#include "transition.h"
#include "values.h"

/* Actor ids read from the cursor at a time */
#define MIGRATE_BATCH 500

/* {"_tag": "$migrate", "from_revision": N, "state": {...}} */
static Jsonb *
migrate_entry(int32 from_revision, Jsonb *state)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"_tag\": \"%s\", \"from_revision\": %d, \"state\": ",
					 MACHINE_MIGRATE_TAG, from_revision);
	(void) JsonbToCString(&buf, &state->root, VARSIZE(state));
	appendStringInfoChar(&buf, '}');
	return jsonb_from_cstring(buf.data);
}

/* Migrate one actor; false when its state stays as it is */
static bool
migrate_actor(CompiledMachine *cm, const char *actor_id, int32 from_revision)
{
	ActorRow	row;
	Jsonb	   *state;
	Transition	t;

	if (!store_read_actor(actor_id, ROW_LOCK_UPDATE, &row))
		return false;			/* deleted by this transaction */
	state = machine_migrate(cm, row.state, from_revision, actor_id);
	if (DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(state),
										 JsonbPGetDatum(row.state))))
		return false;

	t.actor_id = actor_id;
	t.row = &row;
	t.cm = cm;
	t.version = next_version(actor_id, row.version);
	t.event = migrate_entry(from_revision, state);
	t.event_tag = MACHINE_MIGRATE_TAG;
	t.old_state = row.state;
	t.state = state;
	t.from = md_find_state(cm->def, row.state_tag);	/* -1: a dropped state */
	t.to = md_find_state(cm->def, state_tag(state, "state"));
	t.left = t.from != t.to;
	t.idempotency_key = NULL;
	actor_record_migration(&t, row.status == ACTOR_STOPPED);
	return true;
}

/*
 * Run the "migrate" function of a machine's revision, just stored and
 * looked up by the caller, on each of its actors; returns how many changed.
 * The caller holds the machine's lock exclusively and is connected to SPI.
 */
int64
machine_migrate_actors(CompiledMachine *cm, int32 from_revision)
{
	MemoryContext batch_context;
	int64		migrated = 0;

	if (cm->def->migrate < 0)
		return 0;
	batch_context = AllocSetContextCreate(CurrentMemoryContext, "migrate batch",
										  ALLOCSET_DEFAULT_SIZES);
	for (int kind = 0; kind < store_kinds(); kind++)
	{
		Portal		portal = store_open_actors_of((StoreKind) kind, cm->name);
		List	   *ids;

		while ((ids = store_fetch_actor_ids(portal, MIGRATE_BATCH,
											batch_context)) != NIL)
		{
			ListCell   *lc;

			/* a connection of its own per batch: its memory goes with it */
			SPI_connect();
			foreach(lc, ids)
			{
				CHECK_FOR_INTERRUPTS();
				if (migrate_actor(cm, lfirst(lc), from_revision))
					migrated++;
			}
			SPI_finish();
			MemoryContextReset(batch_context);
		}
		SPI_cursor_close(portal);
	}
	MemoryContextDelete(batch_context);
	return migrated;
}
