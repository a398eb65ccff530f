/*-------------------------------------------------------------------------
 *
 * machine.h
 *	  Declarations shared by the server-side modules of the machine
 *	  extension.
 *
 * The modules, by concern:
 *	 definition/	the json-c compiler of definitions (no server headers):
 *					the grammar's walk, its arena, its error paths, and
 *					intervals and schedules
 *	 registry.c		machine_define/_definition/_drop and the per-backend cache
 *					of compiled machines
 *	 values.c		states and events as jsonb: validation and construction
 *	 transition.c	the pure transition function shared by send, fold and
 *					simulate
 *	 store.c		every read and write of the extension's tables, in SQL
 *	 store_direct.c	the per-send reads and writes, without the executor
 *	 memory.c		the "memory" adapter's rows for the views
 *	 adapter.c		user adapters: journal and snapshots through a schema's
 *					functions
 *	 send.c			machine_send: the transition path
 *	 actors.c		spawn, state, version, stop, delete, persist
 *	 entity.c		machine_send_entity: spawn on the first message
 *	 fold.c			folds of the journal: an actor's state at a version
 *	 restore.c		restore, replay, rewind, state_at, history
 *	 check.c		machine_check_define: a redefinition's dry run
 *	 dependencies.c	the event triggers that keep machines' functions in place
 *	 migrate.c		a redefinition's "migrate" function run on every actor
 *	 compact.c		machine_compact: journal rows and snapshots a newer
 *					snapshot covers removed, or archived
 *	 simulate.c		the in-memory testing helpers
 *	 diagram.c		machine_diagram: Mermaid and Graphviz drawings
 *	 timers.c		durable timers: armed, moved and cancelled on transitions
 *	 maintenance.c	the maintenance pass: due timers fired, spaced snapshots
 *	 subtransaction.c	one item of a batch in a subtransaction of its own
 *	 subscriptions.c	durable subscriptions to the journal
 *	 worker.c		the launcher and the per-database workers
 *	 served.c		which databases the workers serve (machine.databases),
 *					and waking the launcher when one gets the extension
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_H
#define MACHINE_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "utils/portal.h"
#include "storage/itemptr.h"
#include "storage/lockdefs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "definition.h"

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
 * its adapter.
 */
typedef enum StoreKind
{
	STORE_TABLES,
	STORE_MEMORY
} StoreKind;

#define STORE_NKINDS 2

extern StoreKind store_kind_of(const MachineDef *def);
extern int	store_kinds(void);

/*
 * adapter.c: a user adapter, a schema whose functions keep a machine's
 * journal and snapshots
 */
typedef enum AdapterFunctionId
{
	ADAPTER_APPEND_EVENT,
	ADAPTER_LOAD_EVENTS,
	ADAPTER_SAVE_SNAPSHOT,
	ADAPTER_LOAD_SNAPSHOT,
	ADAPTER_DELETE_ACTOR
} AdapterFunctionId;

#define ADAPTER_NFUNCTIONS 5

typedef struct UserAdapter
{
	char	   *schema;
	FmgrInfo	functions[ADAPTER_NFUNCTIONS];
	TupleDesc	columns[ADAPTER_NFUNCTIONS];	/* of those returning records */
} UserAdapter;

extern bool adapter_is_builtin(const char *adapter);
extern void adapter_check_definition(const MachineDef *def);
extern UserAdapter *adapter_open(const MachineDef *def, const char *machine,
								 MemoryContext context);
extern Oid	adapter_function_oid(UserAdapter *adapter, int which);
extern const char *adapter_function_name(int which);
extern bool adapter_function_exists(const char *schema, int which,
									char **signature);

/* registry.c: a compiled machine, cached per backend */
typedef struct CompiledMachine
{
	char		name[NAMEDATALEN];	/* hash key */
	int32		revision;
	MachineDef *def;			/* malloc'd by the compiler */
	StoreKind	store;			/* where its actors live */
	UserAdapter *adapter;		/* keeps their journal and snapshots, or
								 * NULL: the tables of "store" do */
	FmgrInfo   *functions;		/* parallel to def->functions */
	bool	   *busy;			/* functions[i] is running */
	char	   *machine_type;
	Oid			owner;
	Oid			defined_by;		/* of this revision */
	Acl		   *acl;			/* privileges granted with machine_grant */
	Oid			checked_role;	/* role whose privileges were checked... */
	AclMode		checked_modes;	/* ...and found to hold these */
	MemoryContext context;		/* owns everything above but def */
} CompiledMachine;

/*
 * Privileges on a machine, kept in an aclitem[] with PostgreSQL's own bits.
 * MACHINE_RUN is no privilege of its own: it asks for EXECUTE on every
 * function of the machine, for the callers that run its guards and
 * handlers.
 */
#define MACHINE_READ	ACL_SELECT	/* state, history, replay, simulate */
#define MACHINE_SEND	ACL_UPDATE	/* spawn, send, stop, persist, restore,
									 * rewind; implies read */
#define MACHINE_DELETE	ACL_DELETE	/* erase actors with their journal */
#define MACHINE_DEFINE	ACL_CREATE	/* new revisions; implies read */
#define MACHINE_RUN		ACL_EXECUTE

extern CompiledMachine *machine_lookup(const char *name, bool missing_ok);
extern CompiledMachine *machine_compile_candidate(const char *name,
												  Jsonb *definition);
extern void machine_free_candidate(CompiledMachine *cm);

/* migrate.c */
extern int64 machine_migrate_actors(CompiledMachine *cm, int32 from_revision);
extern Oid	machine_stored_function(MdFunctionKind kind, const char *name,
									char **signature);
extern const char *machine_function_kind_name(MdFunctionKind kind);
extern void machine_authorize(CompiledMachine *cm, AclMode modes);
extern void machine_authorize_by_name(const char *name, AclMode modes);
extern bool machine_may_read(Oid owner, Acl *acl);
extern bool machine_firing_timer;
extern const char *machine_transition_actor;
extern void registry_init(void);

/* values.c */
extern char *event_tag(Jsonb *event);
extern char *state_tag(Jsonb *state, const char *what);
extern void check_actor_id(const char *actor_id);
extern void check_object(Jsonb *value, const char *what);
extern Jsonb *jsonb_with_tag(Jsonb *data, Jsonb *merge, const char *tag);
extern JsonbValue *jsonb_field(Jsonb *object, const char *key);
extern void check_event_payload(const MachineDef *def, Jsonb *event,
								const char *tag);
extern Jsonb *jsonb_from_cstring(const char *json);
extern Jsonb *lifecycle_event(const char *tag);

/* transition.c */
typedef struct Step
{
	bool		handled;		/* false: no transition accepts the event */
	int			from;			/* state indexes */
	int			to;
	const MdTransition *transition;
	Jsonb	   *state;			/* the new state (the old one when unhandled) */
	bool		left;			/* exit and entry apply: another state, or
								 * reenter */
	bool		had_rule;		/* unhandled although the state has a rule:
								 * every guard refused */
} Step;

extern const MdTransition *machine_choose(CompiledMachine *cm, Jsonb *state,
										 int from, Jsonb *event,
										 const char *event_name,
										 bool *had_rule);
extern void machine_step(CompiledMachine *cm, Jsonb *state, int from,
						 Jsonb *event, const char *event_name, Step *step);
extern void machine_run_effects(CompiledMachine *cm, const int *fns, int n,
								const char *actor_id, Jsonb *state,
								Jsonb *event);
extern int	machine_state_index(CompiledMachine *cm, const char *tag,
								const char *actor_id);
extern bool machine_should_snapshot(const MachineDef *def, int64 version);
extern Jsonb *machine_migrate(CompiledMachine *cm, Jsonb *state,
							  int32 from_revision, const char *actor_id);
extern Jsonb *machine_upcast(CompiledMachine *cm, Jsonb *event, int32 revision,
							 const char *actor_id, int64 version);
extern Jsonb *machine_entity_init(CompiledMachine *cm, const char *entity_id);

/* store.c: rows of machine.instances */
typedef enum ActorStatus
{
	ACTOR_RUNNING,
	ACTOR_STOPPED,
	ACTOR_DONE
} ActorStatus;

typedef struct ActorRow
{
	char	   *machine;
	ActorStatus status;
	int64		version;
	Jsonb	   *state;
	char	   *state_tag;
	Datum		initial_state;	/* jsonb as stored; see actor_initial_state() */
	Datum		created_at;
	StoreKind	store;			/* the tables it was read from */
	ItemPointerData tid;		/* of the row locked by the direct path, or
								 * invalid */
} ActorRow;

#define actor_initial_state(row) DatumGetJsonbP((row)->initial_state)

typedef enum RowLock
{
	ROW_NO_LOCK,
	ROW_LOCK_SHARE,				/* waits for sends in flight */
	ROW_LOCK_UPDATE				/* the mailbox: one sender at a time */
} RowLock;

/* The role a statement of the extension runs as, and the caller's */
typedef struct AsOwner
{
	Oid			userid;
	int			sec_context;
} AsOwner;

extern void store_become_owner(AsOwner *saved);
extern void store_unbecome_owner(AsOwner *saved);
extern Oid	store_instances_relid(void);
extern bool store_memory_available(void);
extern void store_forget_relation(Oid relid);
extern bool store_read_actor(const char *actor_id, RowLock lock, ActorRow *row);
extern bool store_insert_actor(StoreKind kind, const char *actor_id,
							   const char *machine,
							   ActorStatus status, Jsonb *state,
							   const char *tag);
extern void store_update_actor(const char *actor_id, ActorRow *row,
							   ActorStatus status, int64 version, Jsonb *state,
							   const char *tag);
extern void store_set_status(StoreKind kind, const char *actor_id,
							 ActorStatus status);
extern bool store_delete_actor(StoreKind kind, const char *actor_id);
extern bool store_has_revisions(void);
extern bool store_has_compactions(void);
extern int64 store_compaction_horizon(StoreKind kind, const char *actor_id);
extern bool store_subscription_limit(const char *machine_type, Datum *txid,
									 int64 *position);
extern Datum store_compact(Datum *ids, int n, Interval *keep, bool has_limit,
						   Datum txid, int64 position, bool want_rows,
						   int64 *events, int64 *snapshots, bool *rows_null);
extern int64 store_find_idempotency_key(StoreKind kind, const char *actor_id,
										const char *key);
extern void store_append_event(StoreKind kind, const char *actor_id,
							   int64 version, Jsonb *event, const char *tag,
							   int32 revision, const char *key);
extern bool store_insert_snapshot(StoreKind kind, const char *actor_id, int64 version,
								  Jsonb *state, const char *tag);
extern void store_append_snapshot(StoreKind kind, const char *actor_id, int64 version,
								  Jsonb *state, const char *tag);
extern Jsonb *store_latest_snapshot(StoreKind kind, const char *actor_id, int64 upto,
								   int64 *version);

typedef struct JournalEntry
{
	int			pos;			/* of the actor, in store_scan_events_of() */
	int64		version;
	Jsonb	   *event;
	char	   *state_tag;
	Datum		recorded_at;
	int32		revision;		/* that applied it; -1: not recorded */
} JournalEntry;

typedef void (*EventCallback) (JournalEntry *entry, void *arg);
extern int64 store_version_at(StoreKind kind, const char *actor_id,
							   TimestampTz at);
extern void adapter_append_event(UserAdapter *adapter, const char *actor_id,
								 int64 version, Jsonb *event, const char *tag);
extern void adapter_save_snapshot(UserAdapter *adapter, const char *actor_id,
								  int64 version, Jsonb *state,
								  const char *tag);
extern void adapter_delete_actor(UserAdapter *adapter, const char *actor_id);
extern Jsonb *adapter_load_snapshot(UserAdapter *adapter, const char *actor_id,
									int64 upto, int64 *version);
extern void adapter_scan_events(UserAdapter *adapter, const char *actor_id,
								int64 after, int64 upto,
								EventCallback callback, void *arg);
extern void store_scan_events(StoreKind kind, const char *actor_id, int64 after, int64 upto,
							  EventCallback callback, void *arg);
extern void store_latest_snapshots(StoreKind kind, Datum *ids, Datum *uptos, int n,
								   Jsonb **states, int64 *versions);
extern void store_scan_events_of(StoreKind kind, Datum *ids, Datum *afters, Datum *uptos, int n,
								 EventCallback callback, void *arg);
extern int64 store_count_actors(const char *machine);

/* Where a fold of an actor's whole persisted history starts */
typedef struct FoldStart
{
	bool		found;			/* false: the actor is gone */
	ActorStatus status;
	int64		version;		/* the actor's */
	char	   *state_tag;		/* the actor's */
	Jsonb	   *state;			/* the actor's */
	Jsonb	   *initial_state;	/* the state it was spawned with */
	int64		first_event;	/* its first journaled version; 0: none */
	Jsonb	   *snapshot;		/* the latest snapshot below first_event (or
								 * at or below version), or NULL */
	int64		snapshot_version;
} FoldStart;

extern Portal store_open_actors_of(StoreKind kind, const char *machine);
extern List *store_fetch_actor_ids(Portal portal, int limit,
								   MemoryContext context);
extern void store_fold_starts(StoreKind kind, Datum *ids, int n,
							  FoldStart *starts);
extern void store_delete_actors_of(const char *machine);
extern List *store_actor_ids_of(const char *machine);
extern List *store_stopped_of_type(const char *machine_type);

/* store.c: rows of machine.machines */
typedef struct StoredMachine
{
	char	   *name;			/* set by store_machines_using() only */
	int32		revision;
	char	   *definition;		/* canonical JSON text */
	ArrayType  *functions;		/* qualified names, parallel to the
								 * compiled definition's functions */
	char	   *machine_type;
	Oid			owner;
	Oid			defined_by;
	Acl		   *acl;
} StoredMachine;

extern bool store_load_machine(const char *name, RowLock lock,
							   StoredMachine *stored);
extern int32 store_save_machine(const char *name, int32 replaces,
								Jsonb *definition, ArrayType *functions,
								const char *machine_type,
								int64 snapshot_spacing);
extern void store_set_machine_acl(const char *name, Acl *acl);
extern Jsonb *store_machine_definition(const char *name);
extern Jsonb *store_revision_definition(const char *name, int32 revision);
extern bool store_delete_machine(const char *name);
extern List *store_machines_using(ArrayType *functions);
extern ArrayType *store_dropped_functions(void);
extern List *store_actors_outside(const char *machine, ArrayType *tags);

/* store_direct.c: the per-send path without the executor */
typedef enum DirectTableId
{
	DIRECT_INSTANCES,
	DIRECT_EVENTS,
	DIRECT_SNAPSHOTS,
	DIRECT_TIMERS
} DirectTableId;

extern bool store_direct_usable(StoreKind kind, DirectTableId table);
extern void store_direct_forget(Oid relid);
extern void store_direct_begin_scope(void);
extern void store_direct_end_scope(bool failed);
extern void machine_lock(const char *name, LOCKMODE mode);
extern void store_direct_scan_events_of(StoreKind kind, Datum *ids,
										Datum *afters, Datum *uptos, int n,
										EventCallback callback, void *arg);
extern void store_direct_latest_snapshots(StoreKind kind, Datum *ids,
										  Datum *uptos, int n, Jsonb **states,
										  int64 *versions);
extern void store_direct_arm_timer(StoreKind kind, const char *actor_id,
								   int64 version, int seq, const char *tag,
								   Jsonb *event, int64 delay_us, Oid role);
extern bool store_direct_lock_actor(StoreKind kind, const char *actor_id,
									ActorRow *row);
extern bool store_direct_actor_exists(StoreKind kind, const char *actor_id);
extern void store_direct_update_actor(const char *actor_id, ActorRow *row,
									  ActorStatus status, int64 version,
									  Jsonb *state, const char *tag);
extern bool store_direct_append_event(StoreKind kind, const char *actor_id,
									  int64 version, Jsonb *event,
									  const char *tag, int32 revision,
									  const char *key);
extern bool store_direct_append_snapshot(StoreKind kind, const char *actor_id, int64 version,
										 Jsonb *state, const char *tag);

/* store.c: events postponed by their actor's state */
typedef struct Postponed
{
	int64		seq;
	Jsonb	   *event;
	char	   *key;			/* the send's idempotency key, or NULL */
} Postponed;

extern bool store_postponed_available(void);
extern void store_postpone(StoreKind kind, const char *actor_id, Jsonb *event,
						   const char *tag, const char *key);
extern List *store_postponed(StoreKind kind, const char *actor_id, int64 after,
							 int limit);
extern void store_take_postponed(StoreKind kind, const char *actor_id,
								 int64 seq);

/* store.c: rows of machine.timers */
typedef struct TimerRef
{
	StoreKind	kind;
	int64		timer_id;
} TimerRef;

typedef struct DueTimer
{
	char	   *actor_id;
	int64		armed_version;
	Jsonb	   *event;
	Oid			role;			/* who armed it: the timer sends as that role */
} DueTimer;
extern bool store_direct_take_timer(StoreKind kind, int64 timer_id,
									DueTimer *timer);

extern void store_arm_timer(StoreKind kind, const char *actor_id, int64 version, int seq,
							const char *tag, Jsonb *event, int64 delay_us,
							Oid role);
extern void store_cancel_timers(StoreKind kind, const char *actor_id);
extern void store_move_timers(StoreKind kind, const char *actor_id,
							  int64 version);
extern List *store_claim_timers(int limit);
extern int64 store_last_timer(void);
extern List *store_claim_timers_at(TimestampTz as_of, int64 last_timer,
								   int limit);
extern bool store_take_timer(TimerRef *ref, DueTimer *timer);
extern int	store_take_spaced_snapshots(int limit);
extern void store_mark_snapshot_due(StoreKind kind, const char *actor_id,
									int64 spacing_us);
extern void store_mark_machine_due(const char *machine);

/* send.c: the transition path shared by spawn, send, restore and rewind */
typedef Jsonb *(*TransitionWork) (void *arg);
extern int	machine_max_send_depth;
extern void send_define_settings(void);
extern Jsonb *actor_transition(const char *actor_id, TransitionWork work,
							   void *arg);
typedef struct Transition
{
	const char *actor_id;
	ActorRow   *row;			/* as read and locked */
	CompiledMachine *cm;
	int64		version;		/* the new version */
	Jsonb	   *event;
	const char *event_tag;
	Jsonb	   *old_state;
	Jsonb	   *state;
	int			from;			/* state indexes */
	int			to;
	bool		left;			/* exit and entry apply */
	const char *idempotency_key;	/* journaled with the event, or NULL */
} Transition;

extern void actor_record(const Transition *t);
extern void list_spaced_snapshot(const MachineDef *def, StoreKind kind,
								 const char *actor_id,
								 int64 version);
extern void actor_record_migration(const Transition *t, bool stopped);
extern int64 next_version(const char *actor_id, int64 version);
extern Jsonb *actor_send(const char *actor_id, Jsonb *event, int64 expected);
extern Jsonb *actor_send_keyed(const char *actor_id, Jsonb *event,
							   int64 expected, const char *key);
extern void version_conflict(const char *actor_id, int64 expected,
							 int64 actual) pg_attribute_noreturn();

/* actors.c */
extern Jsonb *actor_spawn(const char *actor_id, const char *machine,
						  Jsonb *data, bool if_not_exists);

/* subtransaction.c */
extern ErrorData *in_subtransaction(void (*fn) (void *), void *arg);
extern char *error_text(ErrorData *error);

/* timers.c: arming, moving and cancelling timers on transitions */
extern void timers_transition(const char *actor_id, CompiledMachine *cm,
							  int from, int to, bool left, int64 version);
extern void timers_set_firing(const DueTimer *timer);

/* maintenance.c: firing due timers, taking spaced snapshots */
typedef struct MaintenanceCounts
{
	int			fired;
	int			dropped;		/* stale: their actor moved on */
	int			failed;
	int			snapshots;
} MaintenanceCounts;

extern bool maintenance_batch(int max_items, MaintenanceCounts *counts);
extern int	machine_timer_timeout;
extern void maintenance_define_settings(void);

/* worker.c */
extern int	machine_naptime;
extern void worker_define_settings(void);
extern void machine_register_launcher(void);

/* machine.c */
extern bool machine_preloaded;

/* subscriptions.c */
extern void subscriptions_init(void);
extern void subscriptions_wake(const char *machine_type);

/* fold.c */
typedef void (*FoldCallback) (JournalEntry *entry, Jsonb *state, void *arg);
extern Jsonb *machine_fold(const char *actor_id, CompiledMachine *cm,
						   Jsonb *initial_state, int64 upto, bool from_start,
						   FoldCallback callback, void *arg);
extern Jsonb *actor_state_at(const char *actor_id, ActorRow *row,
							 CompiledMachine *cm, int64 version);

#endif							/* MACHINE_H */
