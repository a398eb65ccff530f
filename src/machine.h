/*-------------------------------------------------------------------------
 *
 * machine.h
 *	  What every server-side module of the machine extension shares: its
 *	  SQLSTATEs, limits, reserved names, and where actors live.  Each
 *	  module's API is in the header named like its source file.
 *
 * The modules, by concern (header beside each, when others call it):
 *	 definition/	the json-c compiler of definitions (no server headers):
 *					the grammar's walk, its arena, its error paths, and
 *					intervals and schedules; definition.h
 *	 machine.c		_PG_init: settings, the launcher, the caches
 *	 registry.c		machine_definition/_drop/_grant, privileges, and the
 *					per-backend cache of compiled machines; registry.h
 *	 define.c		machine_define: a new revision checked, stored, and its
 *					actors migrated
 *	 values.c		states and events as jsonb: validation and construction;
 *					values.h
 *	 transition.c	the pure transition function shared by send, fold and
 *					simulate; transition.h
 *	 store.c		the actors' rows, journals and snapshots, in SQL;
 *					store.h (store_spi.h: its SQL helpers, private to store*.c)
 *	 store_machines.c	the rows of machines and their revisions;
 *					store_machines.h
 *	 store_compact.c	compaction's horizons and its removals;
 *					store_compact.h
 *	 store_timers.c	the rows of timers and of spaced snapshots due;
 *					store_timers.h
 *	 store_direct.c	the per-send reads and writes, without the executor;
 *					store_direct.h (tables.h: the column numbers it uses)
 *	 memory.c		the "memory" adapter's rows for the views
 *	 adapter.c		user adapters: journal and snapshots through a schema's
 *					functions; adapter.h
 *	 send.c			machine_send: the transition path; send.h
 *	 send_many.c	machine_send_many
 *	 actors.c		spawn, state, version, stop, delete, persist; actors.h
 *	 entity.c		machine_send_entity: spawn on the first message
 *	 fold.c			folds of the journal: an actor's state at a version; fold.h
 *	 restore.c		restore, replay, rewind, state_at, history
 *	 check.c		machine_check_define: a redefinition's dry run
 *	 dependencies.c	the event triggers that keep machines' functions in place
 *	 migrate.c		a redefinition's "migrate" function run on every actor;
 *					migrate.h
 *	 compact.c		machine_compact: journal rows and snapshots a newer
 *					snapshot covers removed, or archived
 *	 simulate.c		the in-memory testing helpers
 *	 diagram.c		machine_diagram: Mermaid and Graphviz drawings
 *	 timers.c		durable timers: armed, moved and cancelled on transitions;
 *					timers.h
 *	 maintenance.c	the maintenance pass: due timers fired, spaced snapshots;
 *					maintenance.h
 *	 subtransaction.c	one item of a batch in a subtransaction of its own;
 *					subtransaction.h
 *	 subscriptions.c	durable subscriptions to the journal; subscriptions.h
 *	 worker.c		the launcher and the per-database workers; worker.h
 *	 served.c		which databases the workers serve (machine.databases),
 *					and waking the launcher when one gets the extension;
 *					served.h
 *	 slice.c		machine_slice: the slice of an actor id; slice.h
 *	 machine_router.c	the router extension's library (slice.h only)
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_H
#define MACHINE_H

#include "postgres.h"

/*
 * SQLSTATEs of the extension's own conditions, class "MA".  Everything else
 * uses PostgreSQL's standard codes; the README lists them all.
 */
#define ERRCODE_MACHINE_VERSION_CONFLICT	MAKE_SQLSTATE('M','A','0','0','1')
#define ERRCODE_MACHINE_EVENT_UNHANDLED		MAKE_SQLSTATE('M','A','0','0','2')
#define ERRCODE_MACHINE_ACTOR_DONE			MAKE_SQLSTATE('M','A','0','0','3')
#define ERRCODE_MACHINE_REPLAY_DIVERGED		MAKE_SQLSTATE('M','A','0','0','4')
#define ERRCODE_MACHINE_INVALID_RESULT		MAKE_SQLSTATE('M','A','0','0','5')
#define ERRCODE_MACHINE_COMPACTED			MAKE_SQLSTATE('M','A','0','0','6')

/* The key of a state's or an event's name in its jsonb object */
#define MACHINE_TAG_KEY "_tag"

/*
 * Tags starting with this character are the extension's own: users may not
 * send them, and the definition compiler refuses such names.
 */
#define MACHINE_RESERVED_PREFIX '$'

/*
 * The journal entries of machine_rewind and of a redefinition's migration:
 * each carries the state it set in its field "state"
 */
#define MACHINE_REWIND_TAG "$rewind"
#define MACHINE_MIGRATE_TAG "$migrate"

/* The events entry effects receive on a spawn and on a restore */
#define MACHINE_INIT_TAG "$init"
#define MACHINE_RESTORE_TAG "$restore"

/* Longest accepted actor id, in bytes */
#define MACHINE_MAX_ACTOR_ID_LEN 255

/*
 * Where a machine's actors live: the built-in tables, or their UNLOGGED
 * twins of the "memory" adapter (machine.memory_instances and so on).  An
 * actor lives where its machine says: a machine with actors cannot change
 * its adapter.  Every store module, and the registry's compiled machines,
 * speak of it.
 */
typedef enum StoreKind
{
	STORE_TABLES,
	STORE_MEMORY
} StoreKind;

#define STORE_NKINDS 2

#endif							/* MACHINE_H */
