/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Machine definitions: machine_definition, machine_drop, machine_grant,
 *	  and the per-backend cache of compiled machines.  machine_define, which
 *	  also migrates actors through the send path, is in define.c, above.
 *
 * A definition is compiled from the canonical text of its jsonb (so the
 * compiler sees the same text in every backend) and its function names are
 * resolved to OIDs once, when it is defined, under the definer's
 * search_path.  The resolved names are stored schema-qualified, so another
 * backend resolves exactly the same functions whatever its search_path.
 *
 * Cache and invalidation.  Compiled machines are cached by name.  Defining
 * or dropping a machine sends a relcache invalidation for machine.machines;
 * every backend receives it when it next locks a table, and our callback
 * then retires every cached entry (redefinitions are rare; simplicity wins).
 * A change to any function (pg_proc) does the same.  A retired entry may
 * still be in use by a transition under way, so it is freed only at the end
 * of the transaction.
 *
 * Privileges.  A machine belongs to the role that created it (which needs
 * EXECUTE on machine_define); its owner grants the others with
 * machine_grant, into an aclitem[] that PostgreSQL's aclmask() reads, so
 * role membership counts as it does for tables.  The checks run before
 * anything is locked or read, and their result is cached per machine for
 * one role until a role, a membership, a function or the machine changes.
 * A timer runs code as the role that armed it: only while every role that
 * chose that code (the revision's definer, the functions' owners) may act
 * as that role anyway.
 *
 * Locking.  Each machine has a heavyweight lock of its own, on an object
 * named by machine.machines and the hash of the machine's name (see
 * machine_lock()).  Every writer of an actor (spawn, send, stop, restore,
 * rewind, persist, delete) takes it in RowExclusiveLock, which writers
 * share, before it locks the actor's row; machine_define and machine_drop
 * take it in ExclusiveLock: they wait for the writers of that machine's
 * actors in flight and keep new ones out until they commit, while the
 * actors of every other machine go on.  So the "no live actor sits in a
 * state the new revision lacks" check sees every committed state, and no
 * send can apply an old revision afterwards: acquiring the lock delivers
 * the invalidation before the writer looks its machine up.  Two names
 * whose hashes collide merely share a lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "machine.h"
#include "adapter.h"
#include "definition.h"
#include "registry.h"
#include "store.h"
#include "store_direct.h"
#include "store_machines.h"

/* At most this many machines are kept compiled; past it the cache restarts */
#define MACHINE_CACHE_SIZE 256

typedef struct CacheEntry
{
	char		name[NAMEDATALEN];
	CompiledMachine *cm;
} CacheEntry;

static HTAB *machine_cache = NULL;
static List *retired = NIL;		/* in TopMemoryContext */
static Oid	machines_relid = InvalidOid;

/* Set while a timer's send runs: see machine_authorize() */
static bool firing_timer = false;

/* The innermost actor whose transition is under way, or NULL */
static const char *transition_actor = NULL;

static const struct
{
	const char *name;
	AclMode		mode;
}			privilege_names[] = {
	{"read", MACHINE_READ},
	{"send", MACHINE_SEND},
	{"delete", MACHINE_DELETE},
	{"define", MACHINE_DEFINE},
};

static const char *const function_kind_names[] = {
	[MD_FN_GUARD] = "guard",
	[MD_FN_HANDLER] = "handler",
	[MD_FN_EFFECT] = "effect",
	[MD_FN_ENTITY_INIT] = "data initializer",
	[MD_FN_MIGRATE] = "migration",
	[MD_FN_UPCAST] = "upcaster",
};

/* What a function of each kind must be, for hints */
static const char *const function_kind_signatures[] = {
	[MD_FN_GUARD] = "A guard is a function (state jsonb, event jsonb) RETURNS boolean.",
	[MD_FN_HANDLER] = "A handler is a function (state jsonb, event jsonb) RETURNS jsonb.",
	[MD_FN_EFFECT] = "An effect is a function (actor_id text, state jsonb, event jsonb) RETURNS void.",
	[MD_FN_ENTITY_INIT] = "An entity's init is a function (entity_id text) RETURNS jsonb.",
	[MD_FN_MIGRATE] = "A migration is a function (state jsonb, from_revision integer) RETURNS jsonb.",
	[MD_FN_UPCAST] = "An upcaster is a function (event jsonb, revision integer) RETURNS jsonb.",
};

static void
free_compiled(CompiledMachine *cm)
{
	md_free(cm->def);
	MemoryContextDelete(cm->context);
}

/* A stored acl (NULL: nothing granted) as aclmask() and aclupdate() take it */
static Acl *
usable_acl(Acl *acl)
{
	return acl == NULL || ARR_NDIM(acl) == 0 ? make_empty_acl() : acl;
}

/* Move every cached machine to the retired list */
static void
retire_all(void)
{
	HASH_SEQ_STATUS status;
	CacheEntry *entry;
	MemoryContext old;

	if (machine_cache == NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	hash_seq_init(&status, machine_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		retired = lappend(retired, entry->cm);
		hash_search(machine_cache, entry->name, HASH_REMOVE, NULL);
	}
	MemoryContextSwitchTo(old);
}

static void
relcache_callback(Datum arg, Oid relid)
{
	store_forget_relation(relid);
	if (relid == InvalidOid || relid == machines_relid)
	{
		retire_all();
		machines_relid = InvalidOid;
	}
}

static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	retire_all();
}

/* A role or a membership changed: check privileges again */
static void
roles_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS status;
	CacheEntry *entry;

	if (machine_cache == NULL)
		return;
	hash_seq_init(&status, machine_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
		entry->cm->checked_role = InvalidOid;
}

static void
xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	foreach(lc, retired)
		free_compiled(lfirst(lc));
	list_free(retired);
	retired = NIL;
}

void
registry_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, roles_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, roles_callback, (Datum) 0);
	RegisterXactCallback(xact_callback, NULL);
}

/* A timer's send starts (true) or ends (false) */
void
registry_timer_firing(bool firing)
{
	firing_timer = firing;
}

/* The innermost actor whose transition is under way, or NULL when none is */
void
registry_transition_actor(const char *actor_id)
{
	transition_actor = actor_id;
}

/*
 * Refuse to define or drop a machine from inside a transition: the actors
 * under way would go on with the machine that is being replaced.
 */
void
machine_refuse_in_transition(const char *what)
{
	if (transition_actor != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot %s a machine while a transition is in progress", what),
				 errdetail("A guard, handler or effect of actor \"%s\" called it.",
						   transition_actor)));
}

static Oid
lookup_machines_relid(void)
{
	Oid			nsp = get_namespace_oid("machine", false);
	Oid			relid = get_relname_relid("machines", nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "table machine.machines does not exist");
	return relid;
}

/*
 * Machines were defined, dropped or granted: every backend retires its
 * compiled machines when it next locks a table (see the file header).
 */
void
machine_invalidate_definitions(void)
{
	CacheInvalidateRelcacheByRelid(lookup_machines_relid());
}

void
machine_check_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > MD_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid machine name \"%s\"", name),
				 errdetail("A machine name has 1 to %d bytes.",
						   MD_MAX_NAME_LEN)));
}

/* The argument types and result type a function of this kind must have */
static int
kind_signature(MdFunctionKind kind, Oid *argtypes, Oid *rettype)
{
	switch (kind)
	{
		case MD_FN_GUARD:
		case MD_FN_HANDLER:
			argtypes[0] = JSONBOID;
			argtypes[1] = JSONBOID;
			*rettype = kind == MD_FN_GUARD ? BOOLOID : JSONBOID;
			return 2;
		case MD_FN_EFFECT:
			argtypes[0] = TEXTOID;
			argtypes[1] = JSONBOID;
			argtypes[2] = JSONBOID;
			*rettype = VOIDOID;
			return 3;
		case MD_FN_ENTITY_INIT:
			argtypes[0] = TEXTOID;
			*rettype = JSONBOID;
			return 1;
		case MD_FN_MIGRATE:
		case MD_FN_UPCAST:
			argtypes[0] = JSONBOID;
			argtypes[1] = INT4OID;
			*rettype = JSONBOID;
			return 2;
	}
	elog(ERROR, "unexpected function kind %d", (int) kind);
	return 0;
}

/*
 * Resolve a function name of a definition to the OID of a function with the
 * signature its use requires.  Errors name the JSON path of the use.
 */
Oid
machine_resolve_function(const MdFunction *fn)
{
	char	   *raw = pstrdup(fn->name);
	List	   *parts;
	List	   *qualified = NIL;
	ListCell   *lc;
	Oid			argtypes[3];
	Oid			rettype;
	int			nargs = kind_signature(fn->kind, argtypes, &rettype);
	Oid			oid;

	if (!SplitIdentifierString(raw, '.', &parts) || list_length(parts) > 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("%s: \"%s\" is not a valid function name",
						fn->path, fn->name),
				 errhint("Write a function name, optionally schema-qualified.")));
	foreach(lc, parts)
		qualified = lappend(qualified, makeString(lfirst(lc)));

	oid = LookupFuncName(qualified, nargs, argtypes, true);
	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s: function %s does not exist",
						fn->path,
						func_signature_string(qualified, nargs, NIL, argtypes)),
				 errhint("%s", function_kind_signatures[fn->kind])));
	if (get_func_rettype(oid) != rettype || get_func_retset(oid) ||
		get_func_prokind(oid) != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: function %s does not have the signature of a %s",
						fn->path, format_procedure(oid),
						function_kind_names[fn->kind]),
				 errhint("%s", function_kind_signatures[fn->kind])));
	return oid;
}

/*
 * A function by its stored qualified name, without search_path, with the
 * signature its use requires; InvalidOid when there is none.  Its
 * signature as text goes to *signature, when that is not NULL.
 */
Oid
machine_stored_function(MdFunctionKind kind, const char *name,
						char **signature)
{
	char	   *raw = pstrdup(name);
	List	   *parts;
	List	   *qualified = NIL;
	ListCell   *lc;
	Oid			argtypes[3];
	Oid			rettype;
	int			nargs = kind_signature(kind, argtypes, &rettype);
	Oid			oid = InvalidOid;

	if (SplitIdentifierString(raw, '.', &parts))
	{
		foreach(lc, parts)
			qualified = lappend(qualified, makeString(lfirst(lc)));
		oid = LookupFuncName(qualified, nargs, argtypes, true);
		if (signature)
			*signature = pstrdup(func_signature_string(qualified, nargs, NIL,
													   argtypes));
	}
	else if (signature)
		*signature = pstrdup(name);
	if (OidIsValid(oid) && get_func_rettype(oid) != rettype)
		oid = InvalidOid;
	return oid;
}

/* What a function of that kind is called in messages */
const char *
machine_function_kind_name(MdFunctionKind kind)
{
	return function_kind_names[kind];
}

/* Find a function by its stored qualified name, without search_path */
static Oid
stored_function(const char *machine, const MdFunction *fn, const char *name)
{
	Oid			oid = machine_stored_function(fn->kind, name, NULL);

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s used by machine \"%s\" no longer exists",
						name, machine),
				 errdetail("It is the %s at %s.",
						   function_kind_names[fn->kind], fn->path),
				 errhint("Create the function again, or redefine the machine.")));
	return oid;
}

/* Where the actors of a compiled machine live */
StoreKind
store_kind_of(const MachineDef *def)
{
	const char *adapter = def->persistence.adapter;

	if (adapter != NULL && strcmp(adapter, "memory") == 0)
		return STORE_MEMORY;
	return STORE_TABLES;
}

MachineDef *
machine_compile_json(const char *json)
{
	char		errbuf[512];
	MachineDef *def = md_compile(json, strlen(json), errbuf, sizeof(errbuf));

	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("%s", errbuf)));
	return def;
}

static void
no_such_machine(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("machine \"%s\" does not exist", name)));
}

/* The cached compiled machine of that name, or NULL */
static CompiledMachine *
cache_find(const char *name)
{
	CacheEntry *entry;

	if (machine_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(CacheEntry);
		machine_cache = hash_create("machine definitions", 64, &ctl,
									HASH_ELEM | HASH_STRINGS);
	}
	entry = hash_search(machine_cache, name, HASH_FIND, NULL);
	return entry ? entry->cm : NULL;
}

/* Keep a compiled machine, making room first if the cache is full */
static void
cache_add(const char *name, CompiledMachine *cm)
{
	CacheEntry *entry;
	bool		found;
	MemoryContext old;

	if (hash_get_num_entries(machine_cache) >= MACHINE_CACHE_SIZE)
		retire_all();
	old = MemoryContextSwitchTo(TopMemoryContext);
	entry = hash_search(machine_cache, name, HASH_ENTER, &found);
	entry->cm = cm;
	MemoryContextSwitchTo(old);
}

/* A compiled machine's row fields, in a context of its own */
static CompiledMachine *
compiled_from_row(const char *name, StoredMachine *stored)
{
	MemoryContext context;
	MemoryContext old;
	CompiledMachine *cm;

	context = AllocSetContextCreate(CacheMemoryContext, "compiled machine",
									ALLOCSET_SMALL_SIZES);
	cm = MemoryContextAllocZero(context, sizeof(CompiledMachine));
	cm->context = context;
	strlcpy(cm->name, name, NAMEDATALEN);
	cm->revision = stored->revision;
	cm->machine_type = MemoryContextStrdup(context, stored->machine_type);
	cm->owner = stored->owner;
	cm->defined_by = stored->defined_by;
	old = MemoryContextSwitchTo(context);
	cm->acl = usable_acl(stored->acl);
	cm->acl = DatumGetAclPCopy(PointerGetDatum(cm->acl));
	MemoryContextSwitchTo(old);
	cm->checked_role = InvalidOid;
	return cm;
}

/*
 * Compile the stored definition and resolve its functions by the qualified
 * names stored with it, as the extension (the compiled machine serves
 * every role), and open its adapter.  Errors leave cm to the caller.
 */
static void
compile_and_open(CompiledMachine *cm, StoredMachine *stored)
{
	Datum	   *names;
	int			nnames;
	AsOwner		saved;

	cm->def = machine_compile_json(stored->definition);
	cm->store = store_kind_of(cm->def);
	deconstruct_array(stored->functions, TEXTOID, -1, false, TYPALIGN_INT,
					  &names, NULL, &nnames);
	if (nnames != cm->def->nfunctions)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("machine \"%s\" has %d stored functions, but its definition names %d",
						cm->name, nnames, cm->def->nfunctions),
				 errdetail("Its row in machine.machines was changed by hand."),
				 errhint("Define the machine again.")));
	cm->functions = MemoryContextAllocZero(cm->context,
										   sizeof(FmgrInfo) * Max(nnames, 1));
	cm->busy = MemoryContextAllocZero(cm->context, sizeof(bool) * Max(nnames, 1));
	store_become_owner(&saved);
	for (int i = 0; i < nnames; i++)
	{
		Oid			oid = stored_function(cm->name, &cm->def->functions[i],
										  TextDatumGetCString(names[i]));

		fmgr_info_cxt(oid, &cm->functions[i], cm->context);
	}
	cm->adapter = adapter_open(cm->def, cm->name, cm->context);
	store_unbecome_owner(&saved);
}

/* A machine compiled from its row; nothing is left behind on an error */
static CompiledMachine *
compile_machine(const char *name, StoredMachine *stored)
{
	CompiledMachine *cm = compiled_from_row(name, stored);

	PG_TRY();
	{
		compile_and_open(cm, stored);
	}
	PG_CATCH();
	{
		if (cm->def)
			md_free(cm->def);
		MemoryContextDelete(cm->context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return cm;
}

/*
 * The compiled machine of that name, compiled on first use; NULL when there
 * is no such machine and missing_ok.  Must be called after the caller has
 * locked machine.instances, so that pending invalidations are delivered.
 * Caller is connected to SPI.
 */
CompiledMachine *
machine_lookup(const char *name, bool missing_ok)
{
	StoredMachine stored;
	CompiledMachine *cm;

	if (strlen(name) >= NAMEDATALEN)
	{
		if (missing_ok)
			return NULL;
		no_such_machine(name);
	}
	if (!OidIsValid(machines_relid))
		machines_relid = lookup_machines_relid();
	cm = cache_find(name);
	if (cm != NULL)
		return cm;

	if (!store_load_machine(name, ROW_NO_LOCK, &stored))
	{
		if (missing_ok)
			return NULL;
		no_such_machine(name);
	}
	cm = compile_machine(name, &stored);
	cache_add(name, cm);
	return cm;
}

static const char *
privilege_name(AclMode mode)
{
	for (int i = 0; i < lengthof(privilege_names); i++)
		if (privilege_names[i].mode == mode)
			return privilege_names[i].name;
	elog(ERROR, "unexpected machine privilege %u", (unsigned) mode);
	return NULL;				/* keep compiler quiet */
}

static AclMode
parse_privilege(const char *name)
{
	for (int i = 0; i < lengthof(privilege_names); i++)
		if (pg_strcasecmp(privilege_names[i].name, name) == 0)
			return privilege_names[i].mode;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unrecognized machine privilege \"%s\"", name),
			 errhint("The privileges are \"read\", \"send\", \"delete\" and \"define\".")));
	return 0;					/* keep compiler quiet */
}

/*
 * Does a role hold every privilege of "modes" (MACHINE_RUN aside) on a
 * machine of that owner and acl?  The owner's members hold them all;
 * "send" and "define" include "read".
 */
static bool
privileges_held(Oid role, Oid owner, Acl *acl, AclMode modes, AclMode *missing)
{
	modes &= ~MACHINE_RUN;
	if (modes == 0 || has_privs_of_role(role, owner))
		return true;
	acl = usable_acl(acl);
	for (int i = 0; i < lengthof(privilege_names); i++)
	{
		AclMode		mode = privilege_names[i].mode;
		AclMode		accepted = mode == MACHINE_READ ?
			MACHINE_READ | MACHINE_SEND | MACHINE_DEFINE : mode;

		if ((modes & mode) && aclmask(acl, role, owner, accepted, ACLMASK_ANY) == 0)
		{
			*missing = mode;
			return false;
		}
	}
	return true;
}

/* May the current role read the actors of a machine of that owner and acl? */
bool
machine_may_read(Oid owner, Acl *acl)
{
	AclMode		missing = 0;

	return privileges_held(GetUserId(), owner, acl, MACHINE_READ, &missing);
}

static void
permission_denied(const char *machine, AclMode missing)
{
	char	   *role = GetUserNameFromId(GetUserId(), false);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for machine \"%s\"", machine),
			 errdetail("Role \"%s\" does not hold the \"%s\" privilege on it.",
					   role, privilege_name(missing)),
			 errhint("Its owner may grant it with machine_grant(%s, %s, %s).",
					 quote_literal_cstr(machine), quote_literal_cstr(role),
					 quote_literal_cstr(privilege_name(missing)))));
}

static const char *
role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

/*
 * A timer sends as the role that armed it, with code chosen when it fires:
 * refuse unless each role that chose it could act as that role anyway.
 */
static void
check_timer_trust(CompiledMachine *cm, Oid role)
{
	if (!has_privs_of_role(cm->defined_by, role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("timer may not run machine \"%s\" as role \"%s\"",
						cm->name, role_name(role)),
				 errdetail("Role \"%s\" defined the machine's current revision and may not act as role \"%s\", which armed the timer.",
						   role_name(cm->defined_by), role_name(role))));
	for (int i = 0; i < cm->def->nfunctions + (cm->adapter ? ADAPTER_NFUNCTIONS : 0); i++)
	{
		Oid			fn = i < cm->def->nfunctions ? cm->functions[i].fn_oid :
			adapter_function_oid(cm->adapter, i - cm->def->nfunctions);
		HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
		Oid			owner;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for function %u", fn);
		owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
		ReleaseSysCache(tuple);
		if (!has_privs_of_role(owner, role))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("timer may not run function %s as role \"%s\"",
							format_procedure(fn), role_name(role)),
					 errdetail("Its owner, role \"%s\", may not act as role \"%s\", which armed the timer.",
							   role_name(owner), role_name(role))));
	}
}

/*
 * Check that the current role holds "modes" on a compiled machine (with
 * MACHINE_RUN: EXECUTE on each of its functions, which run as the caller,
 * like any function called in SQL).  The answer is cached for the role
 * until a role, a membership, a function or the machine changes.
 */
void
machine_authorize(CompiledMachine *cm, AclMode modes)
{
	Oid			role = GetUserId();
	AclMode		missing = 0;

	if (firing_timer)
		check_timer_trust(cm, role);
	if (cm->checked_role == role && (cm->checked_modes & modes) == modes)
		return;
	if (cm->checked_role != role)
	{
		cm->checked_role = InvalidOid;
		cm->checked_modes = 0;
	}
	if (!privileges_held(role, cm->owner, cm->acl, modes, &missing))
		permission_denied(cm->name, missing);
	if (modes & MACHINE_RUN)
		for (int i = 0; i < cm->def->nfunctions; i++)
		{
			Oid			oid = cm->functions[i].fn_oid;

			if (pg_proc_aclcheck(oid, role, ACL_EXECUTE) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION,
							   format_procedure(oid));
		}
	cm->checked_role = role;
	cm->checked_modes |= modes;
}

/*
 * The same for a machine by name, without compiling it: for the callers
 * that run none of its code.  An unknown machine passes (its actors cannot
 * exist).  Caller is connected to SPI.
 */
void
machine_authorize_by_name(const char *name, AclMode modes)
{
	CacheEntry *entry = NULL;
	StoredMachine stored;

	if (machine_cache != NULL && strlen(name) < NAMEDATALEN)
		entry = hash_search(machine_cache, name, HASH_FIND, NULL);
	if (entry != NULL)
	{
		machine_authorize(entry->cm, modes & ~MACHINE_RUN);
		return;
	}
	if (store_load_machine(name, ROW_NO_LOCK, &stored))
		machine_authorize_stored(name, &stored, modes);
}

/* Check that the current role holds "modes" on a machine as stored */
void
machine_authorize_stored(const char *name, StoredMachine *stored,
						 AclMode modes)
{
	AclMode		missing = 0;

	if (!privileges_held(GetUserId(), stored->owner, stored->acl, modes,
						 &missing))
		permission_denied(name, missing);
}

/* May the current role drop a machine and grant its privileges? */
static void
check_owner(const char *name, StoredMachine *stored)
{
	if (!has_privs_of_role(GetUserId(), stored->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of machine \"%s\"", name),
				 errdetail("Machine \"%s\" belongs to role \"%s\".",
						   name, role_name(stored->owner))));
}

/*
 * A definition compiled and resolved as machine_define would, under the
 * current search_path, without storing anything: for a dry run.  Its
 * functions must be executable by the current role.  Free it with
 * machine_free_candidate(); until then it lives under the current memory
 * context (its compiled definition in malloc'd memory).
 */
CompiledMachine *
machine_compile_candidate(const char *name, Jsonb *definition)
{
	char	   *json = JsonbToCString(NULL, &definition->root, VARSIZE(definition));
	MemoryContext context;
	CompiledMachine *cm;

	machine_check_name(name);
	context = AllocSetContextCreate(CurrentMemoryContext, "candidate machine",
									ALLOCSET_SMALL_SIZES);
	cm = MemoryContextAllocZero(context, sizeof(CompiledMachine));
	cm->context = context;
	strlcpy(cm->name, name, NAMEDATALEN);
	cm->owner = GetUserId();
	cm->defined_by = GetUserId();
	cm->checked_role = InvalidOid;
	PG_TRY();
	{
		const MachineDef *def;

		cm->def = machine_compile_json(json);
		def = cm->def;
		cm->functions = MemoryContextAllocZero(context,
											   sizeof(FmgrInfo) * Max(def->nfunctions, 1));
		cm->busy = MemoryContextAllocZero(context,
										  sizeof(bool) * Max(def->nfunctions, 1));
		for (int i = 0; i < def->nfunctions; i++)
		{
			Oid			oid = machine_resolve_function(&def->functions[i]);

			if (pg_proc_aclcheck(oid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION,
							   format_procedure(oid));
			fmgr_info_cxt(oid, &cm->functions[i], context);
		}
		cm->machine_type = MemoryContextStrdup(context,
											   def->persistence.machine_type ?
											   def->persistence.machine_type : name);
	}
	PG_CATCH();
	{
		if (cm->def)
			md_free(cm->def);
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return cm;
}

void
machine_free_candidate(CompiledMachine *cm)
{
	free_compiled(cm);
}

/*
 * machine_definition(name text) RETURNS jsonb
 */
PG_FUNCTION_INFO_V1(machine_definition);
Datum
machine_definition(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *definition;

	SPI_connect();
	machine_authorize_by_name(name, MACHINE_READ);
	definition = store_machine_definition(name);
	if (definition != NULL)
		definition = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(definition),
												 false, -1);
	SPI_finish();

	if (definition == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(definition);
}

/*
 * machine_definition(name text, revision integer) RETURNS jsonb
 *
 * The definition of a machine at one of its revisions; NULL for an unknown
 * machine or a revision it never had (or one defined before the extension
 * kept revisions).
 */
PG_FUNCTION_INFO_V1(machine_definition_revision);
Datum
machine_definition_revision(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		revision = PG_GETARG_INT32(1);
	Jsonb	   *definition;

	if (revision < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid revision %d", revision),
				 errdetail("Revisions are numbered from 1."),
				 errhint("machine.definitions shows the latest revision of each machine.")));
	SPI_connect();
	machine_authorize_by_name(name, MACHINE_READ);
	definition = store_revision_definition(name, revision);
	if (definition != NULL)
		definition = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(definition),
												 false, -1);
	SPI_finish();

	if (definition == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(definition);
}

/*
 * machine_drop(name text, cascade boolean DEFAULT false) RETURNS boolean
 *
 * Refused while actors of the machine exist, unless cascade, which deletes
 * them with their journal and snapshots.  False for an unknown machine.
 */
PG_FUNCTION_INFO_V1(machine_drop);
Datum
machine_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		cascade = PG_GETARG_BOOL(1);
	StoredMachine stored;
	bool		dropped;

	PreventCommandIfReadOnly("machine_drop()");
	machine_refuse_in_transition("drop");
	SPI_connect();
	if (!store_load_machine(name, ROW_NO_LOCK, &stored))
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	check_owner(name, &stored);
	machine_lock(name, ExclusiveLock);
	if (!cascade)
	{
		int64		count = store_count_actors(name);

		if (count > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop machine \"%s\" because actors use it",
							name),
					 errdetail_plural("%lld actor uses it.",
									  "%lld actors use it.",
									  count, (long long) count),
					 errhint("Use machine_drop(%s, cascade => true) to delete them too.",
							 quote_literal_cstr(name))));
	}
	else
	{
		char		errbuf[64];
		MachineDef *def = md_compile(stored.definition,
									 strlen(stored.definition), errbuf,
									 sizeof(errbuf));
		bool		user_adapter = def && !adapter_is_builtin(def->persistence.adapter);

		if (def)
			md_free(def);
		/* a user adapter erases what it keeps of each actor */
		if (user_adapter)
		{
			CompiledMachine *cm = machine_lookup(name, false);
			ListCell   *lc;

			foreach(lc, store_actor_ids_of(name))
				adapter_delete_actor(cm->adapter, lfirst(lc));
		}
		store_delete_actors_of(name);
	}
	dropped = store_delete_machine(name);
	if (dropped)
		machine_invalidate_definitions();
	SPI_finish();

	PG_RETURN_BOOL(dropped);
}

/* machine_grant and machine_revoke */
static void
change_privilege(FunctionCallInfo fcinfo, int modechg)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			grantee = PG_GETARG_OID(1);
	AclMode		mode = parse_privilege(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	StoredMachine stored;
	AclItem		item;

	PreventCommandIfReadOnly(modechg == ACL_MODECHG_ADD ?
							 "machine_grant()" : "machine_revoke()");
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(grantee)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", grantee)));
	SPI_connect();
	if (!store_load_machine(name, ROW_LOCK_UPDATE, &stored))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("machine \"%s\" does not exist", name)));
	check_owner(name, &stored);
	item.ai_grantee = grantee;
	item.ai_grantor = stored.owner;
	ACLITEM_SET_PRIVS_GOPTIONS(item, mode, ACL_NO_RIGHTS);
	store_set_machine_acl(name, aclupdate(usable_acl(stored.acl), &item,
										  modechg, stored.owner, DROP_RESTRICT));
	machine_invalidate_definitions();
	SPI_finish();
}

/*
 * machine_grant(machine text, role regrole, privilege text) RETURNS void
 *
 * Give a role (and its members) a privilege on a machine: "read", "send",
 * "delete" or "define".  Only the machine's owner grants.
 */
PG_FUNCTION_INFO_V1(machine_grant);
Datum
machine_grant(PG_FUNCTION_ARGS)
{
	change_privilege(fcinfo, ACL_MODECHG_ADD);
	PG_RETURN_VOID();
}

/*
 * machine_revoke(machine text, role regrole, privilege text) RETURNS void
 */
PG_FUNCTION_INFO_V1(machine_revoke);
Datum
machine_revoke(PG_FUNCTION_ARGS)
{
	change_privilege(fcinfo, ACL_MODECHG_DEL);
	PG_RETURN_VOID();
}

/*
 * machine_has_privilege(machine text, privilege text) RETURNS boolean
 *
 * Does the current role hold the privilege ("read", "send", "delete" or
 * "define") on the machine, by ownership, grant or membership?
 */
PG_FUNCTION_INFO_V1(machine_has_privilege);
Datum
machine_has_privilege(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	AclMode		mode = parse_privilege(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	StoredMachine stored;
	AclMode		missing = 0;
	bool		held;

	SPI_connect();
	if (!store_load_machine(name, ROW_NO_LOCK, &stored))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("machine \"%s\" does not exist", name)));
	held = privileges_held(GetUserId(), stored.owner, stored.acl, mode, &missing);
	SPI_finish();
	PG_RETURN_BOOL(held);
}

/*
 * machine.machines_changed() RETURNS trigger
 *
 * AFTER statement trigger of machine.machines: whatever changed a machine,
 * every session compiles it again before its next use.
 */
PG_FUNCTION_INFO_V1(machine_machines_changed);
Datum
machine_machines_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "machine.machines_changed() must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}
