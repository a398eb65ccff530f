/*-------------------------------------------------------------------------
 *
 * send.c
 *	  machine_send: the transition path, and the write step that
 *	  every transition shares.
 *
 * Serialization.  A send locks the actor's row in machine.instances FOR NO
 * KEY UPDATE before it reads the state: that row lock is the actor's
 * mailbox.  Concurrent senders to one actor queue on it and, in READ
 * COMMITTED, each then reads the latest committed state; senders to other
 * actors never meet.
 *
 * Conflicts.  The journal and snapshots have primary keys (actor_id,
 * version); their rows are inserted with ON CONFLICT DO NOTHING and a
 * missing row count raises ERRCODE_MACHINE_VERSION_CONFLICT, as does a stale
 * expected_version.
 *
 * Sends from inside.  A transition in progress keeps a Mailbox on a stack.
 * A handler or effect that sends to an actor whose transition is on the
 * stack does not recurse: the event is queued and the inner call returns
 * NULL; the transition applies the queue in FIFO order when it is done, in
 * the same transaction.  Sends to other actors nest, up to
 * machine.max_send_depth.
 *
 * Postponed events.  An event that the actor's state lists in "postpone"
 * is stored (machine.postponed) instead of applied, and the send returns
 * the state unchanged.  After each transition, once the queue above is
 * empty, the oldest postponed event that the new state takes is applied
 * as one more send; its transition looks for the next, so they come back
 * in the order they were sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"

#include "machine.h"
#include "adapter.h"
#include "definition.h"
#include "fold.h"
#include "registry.h"
#include "send.h"
#include "store.h"
#include "store_direct.h"
#include "store_timers.h"
#include "subscriptions.h"
#include "timers.h"
#include "transition.h"
#include "values.h"

typedef struct QueuedEvent
{
	Jsonb	   *event;
	char	   *tag;
	int64		expected;		/* -1: none */
	char	   *key;			/* idempotency key, or NULL */
} QueuedEvent;

typedef struct Mailbox
{
	const char *actor_id;
	List	   *queue;			/* QueuedEvent *, oldest first */
	bool		redeliver;		/* a transition may have made postponed
								 * events deliverable */
	MemoryContext context;		/* where queued events are kept */
	struct Mailbox *outer;
} Mailbox;

/* The longest NOTIFY payload the server accepts (NOTIFY_PAYLOAD_LIMIT) */
#define NOTIFY_PAYLOAD_LIMIT (BLCKSZ - NAMEDATALEN - 128)

static Mailbox *active_mailboxes = NULL;
static int	send_depth = 0;

/* Postponed events read at a time while looking for a deliverable one */
#define REDELIVERY_BATCH 100

/* Mark the open mailbox of an actor: it has made a transition */
static void
note_redelivery(const char *actor_id)
{
	for (Mailbox *box = active_mailboxes; box != NULL; box = box->outer)
	{
		if (strcmp(box->actor_id, actor_id) == 0)
		{
			box->redeliver = true;
			return;
		}
	}
}

/* machine.max_send_depth */
int			machine_max_send_depth = 16;

void
send_define_settings(void)
{
	DefineCustomIntVariable("machine.max_send_depth",
							"Sets how deeply sends to other actors from handlers and effects may nest.",
							NULL,
							&machine_max_send_depth,
							16, 1, 1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}

void
version_conflict(const char *actor_id, int64 expected, int64 actual)
{
	ereport(ERROR,
			(errcode(ERRCODE_MACHINE_VERSION_CONFLICT),
			 errmsg("version conflict on actor \"%s\"", actor_id),
			 errdetail("Expected version " INT64_FORMAT ", but the actor is at version " INT64_FORMAT ".",
					   expected, actual),
			 errhint("Read the actor's state again and retry.")));
}

/*
 * Announce a committed transition on the machine's channel.  NOTIFY is
 * transactional: nothing is sent for a transition that rolls back.  An event
 * too large for a notification payload is reduced to its tag.
 */
static void
announce(const Transition *t)
{
	const MachineDef *def = t->cm->def;
	StringInfoData buf;
	char	   *event = JsonbToCString(NULL, &t->event->root, VARSIZE(t->event));

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"actor_id\": ");
	escape_json(&buf, t->actor_id);
	appendStringInfoString(&buf, ", \"machine\": ");
	escape_json(&buf, t->cm->name);
	appendStringInfo(&buf, ", \"version\": " INT64_FORMAT ", \"from\": ",
					 t->version);
	escape_json(&buf, def->states[t->from].name);
	appendStringInfoString(&buf, ", \"to\": ");
	escape_json(&buf, def->states[t->to].name);
	appendStringInfoString(&buf, ", \"event\": ");
	if (buf.len + strlen(event) + 2 < NOTIFY_PAYLOAD_LIMIT)
		appendStringInfoString(&buf, event);
	else
	{
		appendStringInfoString(&buf, "{\"_tag\": ");
		escape_json(&buf, t->event_tag);
		appendStringInfoString(&buf, "}, \"event_truncated\": true");
	}
	appendStringInfoChar(&buf, '}');
	Async_Notify(def->notify, buf.data);
}

/*
 * An actor of a machine with a spaced schedule that moved past version 0 is
 * listed for the worker's next spaced snapshot.  (A user adapter's machine
 * has no spaced schedule: its definition is refused.)
 */
void
list_spaced_snapshot(const MachineDef *def, StoreKind kind,
					 const char *actor_id, int64 version)
{
	if (def->persistence.enabled &&
		def->persistence.schedule == MD_SNAPSHOT_SPACED && version > 0)
		store_mark_snapshot_due(kind, actor_id, def->persistence.spaced_us);
}

/*
 * The journal row of a new version and, when the schedule says so (or
 * "snapshot" does), its snapshot
 */
static void
record_persisted(const Transition *t, bool snapshot)
{
	const MachineDef *def = t->cm->def;
	const MdState *to = &def->states[t->to];

	if (def->persistence.enabled && def->persistence.journal_events)
	{
		if (t->cm->adapter)
			adapter_append_event(t->cm->adapter, t->actor_id, t->version,
								 t->event, to->name);
		else
			store_append_event(t->row->store, t->actor_id, t->version,
							   t->event, to->name, t->cm->revision,
							   t->idempotency_key, t->row->journal_txid);
		if (t->row->store == STORE_TABLES && t->cm->adapter == NULL)
			subscriptions_wake(t->cm->machine_type);
	}
	if (machine_should_snapshot(def, t->version) ||
		(snapshot && def->persistence.enabled))
	{
		if (t->cm->adapter)
			adapter_save_snapshot(t->cm->adapter, t->actor_id, t->version,
								  t->state, to->name);
		else
			store_append_snapshot(t->row->store, t->actor_id, t->version,
								  t->state, to->name);
	}
	else
		list_spaced_snapshot(def, t->row->store, t->actor_id, t->version);
}

/* Does a transition write its journal row to the extension's tables? */
static bool
journaled_in_tables(const Transition *t)
{
	const MachineDef *def = t->cm->def;

	return def->persistence.enabled && def->persistence.journal_events &&
		t->cm->adapter == NULL;
}

/* The live row of a new version */
static void
update_live_row(const Transition *t, ActorStatus status)
{
	const MdState *to = &t->cm->def->states[t->to];

	if (journaled_in_tables(t))
		store_update_journaled_actor(t->actor_id, t->row, status, t->version,
									 t->state, to->name);
	else
		store_update_actor(t->actor_id, t->row, status, t->version, t->state,
						   to->name);
}

/*
 * Store a new version of an actor and carry out what it entails: its live
 * row, its journal row and (when the schedule says so) its snapshot; its
 * timers; the notification; then the exit and entry effects, which see the
 * new state stored.
 */
void
actor_record(const Transition *t)
{
	const MachineDef *def = t->cm->def;
	const MdState *from = &def->states[t->from];
	const MdState *to = &def->states[t->to];

	update_live_row(t, to->final ? ACTOR_DONE : ACTOR_RUNNING);
	record_persisted(t, false);
	timers_transition(t->actor_id, t->cm, t->from, t->to, t->left, t->version);
	if (def->notify)
		announce(t);
	if (t->left)
	{
		machine_run_effects(t->cm, from->exit, from->nexit, t->actor_id,
							t->old_state, t->event);
		machine_run_effects(t->cm, to->entry, to->nentry, t->actor_id,
							t->state, t->event);
	}
}

/*
 * Store the new version a redefinition's migration gave an actor: its row,
 * its "$migrate" journal row, a snapshot of the migrated state (whatever
 * the schedule, so that restores and replays from then on start there, not
 * from events the new revision may no longer fold), its timers (the new
 * state's, if the state changed).  No effect runs and nothing is
 * announced.  A stopped actor stays stopped, without timers.
 */
void
actor_record_migration(const Transition *t, bool stopped)
{
	const MdState *to = &t->cm->def->states[t->to];

	update_live_row(t, stopped ? ACTOR_STOPPED :
					to->final ? ACTOR_DONE : ACTOR_RUNNING);
	record_persisted(t, true);
	if (!stopped)
		timers_transition(t->actor_id, t->cm, t->from, t->to, t->from != t->to,
						  t->version);
}

/* The version after this one: history never wraps around */
int64
next_version(const char *actor_id, int64 version)
{
	if (version < 0 || version == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("actor \"%s\" cannot move past version " INT64_FORMAT,
						actor_id, version),
				 errdetail("Versions run from 0 to " INT64_FORMAT ".", PG_INT64_MAX)));
	return version + 1;
}

static void
check_sendable(const char *actor_id, ActorRow *row)
{
	if (row->status == ACTOR_STOPPED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("actor \"%s\" is stopped", actor_id),
				 errhint("Restore it with machine_restore(%s).",
						 quote_literal_cstr(actor_id))));
	if (row->status == ACTOR_DONE)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_ACTOR_DONE),
				 errmsg("actor \"%s\" is done", actor_id),
				 errdetail("It reached final state \"%s\" at version " INT64_FORMAT ".",
						   row->state_tag, row->version)));
}

/*
 * The state a send with this idempotency key led to, when the actor's
 * journal has the key; NULL when it does not (the send applies).  The key
 * lives with the journal row, so the machine must keep one.
 */
static Jsonb *
earlier_result(const char *actor_id, ActorRow *row, CompiledMachine *cm,
			   const char *key)
{
	const MachineDef *def = cm->def;
	int64		version;

	if (cm->adapter != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("machine \"%s\" keeps its journal through an adapter, without idempotency keys",
						cm->name),
				 errdetail("An idempotency key is kept with the journal row in machine.events."),
				 errhint("Send to actor \"%s\" without a key.", actor_id)));
	if (!def->persistence.enabled || !def->persistence.journal_events)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("machine \"%s\" keeps no journal for idempotency keys", cm->name),
				 errdetail("An idempotency key is kept with the journal row of the event it came with."),
				 errhint("Send to actor \"%s\" without a key, or give machine \"%s\" a \"persistence\" with \"journalEvents\": true.",
						 actor_id, cm->name)));
	version = store_find_idempotency_key(row->store, actor_id, key);
	if (version < 0)
		return NULL;
	return actor_state_at(actor_id, row, cm, version);
}

/* Apply one event to one actor: lock, step, store, effects */
static Jsonb *
apply_event(const char *actor_id, Jsonb *event, const char *tag,
			int64 expected, const char *key)
{
	ActorRow	row;
	CompiledMachine *cm;
	const MachineDef *def;
	int			index;
	Step		step;
	Transition	transition;

	if (!store_read_actor(actor_id, ROW_LOCK_UPDATE, &row))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("actor \"%s\" does not exist", actor_id)));
	cm = machine_lookup(row.machine, false);
	def = cm->def;
	machine_authorize(cm, MACHINE_SEND | MACHINE_RUN);
	if (key != NULL)
	{
		/* a repeated send: whatever happened since, nothing applies */
		Jsonb	   *earlier = earlier_result(actor_id, &row, cm, key);

		if (earlier != NULL)
			return earlier;
	}
	check_sendable(actor_id, &row);
	if (expected >= 0 && expected != row.version)
		version_conflict(actor_id, expected, row.version);
	check_event_payload(def, event, tag);
	index = machine_state_index(cm, row.state_tag, actor_id);
	if (def->postpones && md_state_postpones(def, index, tag))
	{
		store_postpone(row.store, actor_id, event, row.state_tag, key);
		return row.state;
	}
	machine_step(cm, row.state, index, event, tag, &step);
	if (!step.handled)
	{
		if (def->unhandled_ignore)
			return row.state;
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_EVENT_UNHANDLED),
				 errmsg("actor \"%s\" in state \"%s\" does not handle event \"%s\"",
						actor_id, row.state_tag, tag),
				 step.had_rule ?
				 errdetail("No guard of the transitions for \"%s\" passed.", tag) :
				 errdetail("Machine \"%s\" has no transition for \"%s\" from state \"%s\".",
						   cm->name, tag, row.state_tag)));
	}

	transition.actor_id = actor_id;
	transition.row = &row;
	transition.cm = cm;
	transition.version = next_version(actor_id, row.version);
	transition.event = event;
	transition.event_tag = tag;
	transition.old_state = row.state;
	transition.state = step.state;
	transition.from = step.from;
	transition.to = step.to;
	transition.left = step.left;
	transition.idempotency_key = key;
	actor_record(&transition);
	if (def->postpones)
		note_redelivery(actor_id);
	return step.state;
}

/*
 * Deliver the oldest postponed event of an actor that its state now takes
 * (a transition chosen, guards included), if there is one: it is applied
 * as a send, and its own transition looks for the next.  Events the state
 * still postpones, or does not take, wait.  Returns whether one was
 * delivered, with the state after it.
 */
static bool
redeliver_postponed(const char *actor_id, Jsonb **state)
{
	ActorRow	row;
	CompiledMachine *cm;
	int			index;
	int64		after = 0;
	List	   *batch;

	if (!store_read_actor(actor_id, ROW_NO_LOCK, &row) ||
		row.status != ACTOR_RUNNING)
		return false;
	cm = machine_lookup(row.machine, false);
	if (!cm->def->postpones)
		return false;
	index = machine_state_index(cm, row.state_tag, actor_id);
	while ((batch = store_postponed(row.store, actor_id, after,
									REDELIVERY_BATCH)) != NIL)
	{
		ListCell   *lc;

		foreach(lc, batch)
		{
			Postponed  *p = lfirst(lc);
			char	   *tag = event_tag(p->event);
			bool		had_rule;

			after = p->seq;
			if (md_state_postpones(cm->def, index, tag) ||
				machine_choose(cm, row.state, index, p->event, tag,
							   &had_rule) == NULL)
				continue;
			store_take_postponed(row.store, actor_id, p->seq);
			*state = apply_event(actor_id, p->event, tag, -1, p->key);
			return true;
		}
		list_free_deep(batch);
	}
	return false;
}

/*
 * Run a transition of an actor with its mailbox open, then apply the events
 * it sent itself meanwhile.  Returns the state after the last of them.
 * Caller is connected to SPI.
 */
Jsonb *
actor_transition(const char *actor_id, TransitionWork work, void *arg)
{
	Mailbox		box;
	Jsonb	   *state;

	if (send_depth >= machine_max_send_depth)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("sends nested too deeply at actor \"%s\"", actor_id),
				 errdetail("Handlers and effects sent events through %d actors.",
						   send_depth),
				 errhint("Look for a chain of effects that send to each other, or raise machine.max_send_depth.")));

	box.actor_id = actor_id;
	box.queue = NIL;
	box.redeliver = false;
	box.context = CurrentMemoryContext;
	box.outer = active_mailboxes;
	active_mailboxes = &box;
	registry_transition_actor(actor_id);
	send_depth++;
	PG_TRY();
	{
		state = work(arg);
		for (;;)
		{
			while (box.queue != NIL)
			{
				QueuedEvent *q = linitial(box.queue);

				box.queue = list_delete_first(box.queue);
				state = apply_event(actor_id, q->event, q->tag, q->expected, q->key);
			}
			if (!box.redeliver)
				break;
			box.redeliver = false;
			if (!redeliver_postponed(actor_id, &state))
				break;
		}
	}
	PG_FINALLY();
	{
		active_mailboxes = box.outer;
		registry_transition_actor(box.outer ? box.outer->actor_id : NULL);
		send_depth--;
	}
	PG_END_TRY();
	return state;
}

/* Queue an event for an actor whose transition is under way; false if none */
static bool
queue_for_self(const char *actor_id, Jsonb *event, const char *tag,
			   int64 expected, const char *key)
{
	for (Mailbox *box = active_mailboxes; box != NULL; box = box->outer)
	{
		if (strcmp(box->actor_id, actor_id) == 0)
		{
			MemoryContext old = MemoryContextSwitchTo(box->context);
			QueuedEvent *q = palloc(sizeof(QueuedEvent));

			q->event = DatumGetJsonbPCopy(JsonbPGetDatum(event));
			q->tag = pstrdup(tag);
			q->expected = expected;
			q->key = key ? pstrdup(key) : NULL;
			box->queue = lappend(box->queue, q);
			MemoryContextSwitchTo(old);
			return true;
		}
	}
	return false;
}

typedef struct SendArgs
{
	const char *actor_id;
	Jsonb	   *event;
	const char *tag;
	int64		expected;
	const char *key;
} SendArgs;

static Jsonb *
send_work(void *arg)
{
	SendArgs   *a = arg;

	return apply_event(a->actor_id, a->event, a->tag, a->expected, a->key);
}

/*
 * Send an event to an actor (expected: -1 for none) and return the new
 * state in the caller's memory context; NULL when the event was queued for
 * a transition of that actor under way.
 */
Jsonb *
actor_send(const char *actor_id, Jsonb *event, int64 expected)
{
	return actor_send_keyed(actor_id, event, expected, NULL);
}

/*
 * The same with an idempotency key (or NULL): when the actor's journal
 * holds the key, nothing applies and the state that send led to returns.
 */
Jsonb *
actor_send_keyed(const char *actor_id, Jsonb *event, int64 expected,
				 const char *key)
{
	SendArgs	a;
	Jsonb	   *state;

	PreventCommandIfReadOnly("machine_send()");
	a.actor_id = actor_id;
	a.event = event;
	a.tag = event_tag(event);
	a.expected = expected;
	a.key = key;
	if (queue_for_self(a.actor_id, a.event, a.tag, a.expected, a.key))
		return NULL;

	SPI_connect();
	store_direct_begin_scope();
	PG_TRY();
	{
		state = actor_transition(a.actor_id, send_work, &a);
	}
	PG_CATCH();
	{
		store_direct_end_scope();
		PG_RE_THROW();
	}
	PG_END_TRY();
	store_direct_end_scope();
	state = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(state), false, -1);
	SPI_finish();
	return state;
}

/* Longest accepted idempotency key, in bytes */
#define MAX_IDEMPOTENCY_KEY_LEN 255

/*
 * machine_send(actor_id text, event jsonb, expected_version bigint
 *				DEFAULT NULL [, idempotency_key text DEFAULT NULL])
 * RETURNS jsonb
 *
 * Apply one event to an actor inside the caller's transaction and return
 * the new state; NULL when called by the actor's own handler or effect
 * (the event is then queued).  With an idempotency key that the actor's
 * journal already holds, apply nothing and return the state that send led
 * to.  The entry point of 1.1, machine_send_1_1, takes the key; 1.0's,
 * machine_send, does not.
 */
static Datum
send_entry(FunctionCallInfo fcinfo, bool with_key)
{
	char	   *actor_id;
	int64		expected;
	char	   *key = NULL;
	Jsonb	   *state;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "actor_id" : "event")));
	actor_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	expected = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT64(2);
	if (!PG_ARGISNULL(2) && expected < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected_version must not be negative")));
	if (with_key && !PG_ARGISNULL(3))
	{
		key = text_to_cstring(PG_GETARG_TEXT_PP(3));
		if (key[0] == '\0' || strlen(key) > MAX_IDEMPOTENCY_KEY_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid idempotency key for actor \"%s\"", actor_id),
					 errdetail("An idempotency key has from 1 to %d bytes; this one has %zu.",
							   MAX_IDEMPOTENCY_KEY_LEN, strlen(key)),
					 errhint("Use a short unique id, such as a UUID, or NULL for none.")));
	}

	state = actor_send_keyed(actor_id, PG_GETARG_JSONB_P(1), expected, key);
	if (state == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(state);
}

PG_FUNCTION_INFO_V1(machine_send);
Datum
machine_send(PG_FUNCTION_ARGS)
{
	return send_entry(fcinfo, false);
}

PG_FUNCTION_INFO_V1(machine_send_1_1);
Datum
machine_send_1_1(PG_FUNCTION_ARGS)
{
	return send_entry(fcinfo, PG_NARGS() > 3);
}
