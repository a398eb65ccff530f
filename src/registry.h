/*-------------------------------------------------------------------------
 *
 * registry.h
 *	  Machines' definitions and privileges, and the per-backend cache of
 *	  compiled machines (registry.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_REGISTRY_H
#define MACHINE_REGISTRY_H

#include "machine.h"

#include "fmgr.h"
#include "utils/acl.h"
#include "utils/jsonb.h"

#include "adapter.h"
#include "definition.h"
#include "store.h"
#include "store_machines.h"

/* A compiled machine, cached per backend */
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
	Jsonb	 ***timer_events;	/* per state, its timers' events as jsonb,
								 * parsed on first use (timers.c) */
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

extern void registry_init(void);
extern CompiledMachine *machine_lookup(const char *name, bool missing_ok);
extern CompiledMachine *machine_compile_candidate(const char *name,
												  Jsonb *definition);
extern void machine_free_candidate(CompiledMachine *cm);
extern StoreKind store_kind_of(const MachineDef *def);
extern Oid	machine_stored_function(MdFunctionKind kind, const char *name,
									char **signature);
extern const char *machine_function_kind_name(MdFunctionKind kind);
extern void machine_authorize(CompiledMachine *cm, AclMode modes);
extern void machine_authorize_by_name(const char *name, AclMode modes);
extern bool machine_may_read(Oid owner, Acl *acl);
extern void machine_authorize_stored(const char *name, StoredMachine *stored,
									 AclMode modes);

/* For machine_define (define.c) */
extern void machine_check_name(const char *name);
extern void machine_refuse_in_transition(const char *what);
extern MachineDef *machine_compile_json(const char *json);
extern Oid	machine_resolve_function(const MdFunction *fn);
extern void machine_invalidate_definitions(void);

/*
 * What the callers above tell the registry is under way.  While a timer
 * fires, its send runs as the role that armed it, and authorization also
 * checks that this role may still be trusted with the machine.  While an
 * actor's transition is under way (innermost actor_id, or NULL when none
 * is), machines cannot be defined or dropped.
 */
extern void registry_timer_firing(bool firing);
extern void registry_transition_actor(const char *actor_id);

#endif							/* MACHINE_REGISTRY_H */
