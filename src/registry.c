/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Machine definitions: machine_define, machine_definition, machine_drop,
 *	  and the per-backend cache of compiled machines.
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
 * Locking.  machine_define and machine_drop take SHARE lock on
 * machine.instances: they wait for every transaction that is writing actors
 * and keep new writers out until they commit.  So the "no live actor sits in
 * a state the new revision lacks" check sees every committed state, and no
 * send can apply an old revision afterwards: a send locks machine.instances
 * before it looks its machine up, and that lock delivers the invalidation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
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

/* The role that may read machine.machines, checked in this transaction */
static Oid	reader_role = InvalidOid;
static LocalTransactionId reader_lxid = InvalidLocalTransactionId;

static const char *const function_kind_names[] = {
	[MD_FN_GUARD] = "guard",
	[MD_FN_HANDLER] = "handler",
	[MD_FN_EFFECT] = "effect",
};

/* What a function of each kind must be, for hints */
static const char *const function_kind_signatures[] = {
	[MD_FN_GUARD] = "A guard is a function (state jsonb, event jsonb) RETURNS boolean.",
	[MD_FN_HANDLER] = "A handler is a function (state jsonb, event jsonb) RETURNS jsonb.",
	[MD_FN_EFFECT] = "An effect is a function (actor_id text, state jsonb, event jsonb) RETURNS void.",
};

static void
free_compiled(CompiledMachine *cm)
{
	md_free(cm->def);
	MemoryContextDelete(cm->context);
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
		reader_role = InvalidOid;
	}
}

static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	retire_all();
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
	RegisterXactCallback(xact_callback, NULL);
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

static void
check_machine_name(const char *name)
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
	}
	elog(ERROR, "unexpected function kind %d", (int) kind);
	return 0;
}

/*
 * Resolve a function name of a definition to the OID of a function with the
 * signature its use requires.  Errors name the JSON path of the use.
 */
static Oid
resolve_function(const MdFunction *fn)
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

static char *
qualified_function_name(Oid oid)
{
	return quote_qualified_identifier(get_namespace_name(get_func_namespace(oid)),
									  get_func_name(oid));
}

/* Find a function by its stored qualified name, without search_path */
static Oid
stored_function(const char *machine, const MdFunction *fn, const char *name)
{
	char	   *raw = pstrdup(name);
	List	   *parts;
	List	   *qualified = NIL;
	ListCell   *lc;
	Oid			argtypes[3];
	Oid			rettype;
	int			nargs = kind_signature(fn->kind, argtypes, &rettype);
	Oid			oid = InvalidOid;

	if (SplitIdentifierString(raw, '.', &parts))
	{
		foreach(lc, parts)
			qualified = lappend(qualified, makeString(lfirst(lc)));
		oid = LookupFuncName(qualified, nargs, argtypes, true);
	}
	if (!OidIsValid(oid) || get_func_rettype(oid) != rettype)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s used by machine \"%s\" no longer exists",
						name, machine),
				 errdetail("It is the %s at %s.",
						   function_kind_names[fn->kind], fn->path),
				 errhint("Create the function again, or redefine the machine.")));
	return oid;
}

static MachineDef *
compile_or_error(const char *json)
{
	char		errbuf[512];
	MachineDef *def = md_compile(json, strlen(json), errbuf, sizeof(errbuf));

	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("%s", errbuf)));
	return def;
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
	CacheEntry *entry;
	bool		found;
	StoredMachine stored;
	CompiledMachine *cm;
	MemoryContext context;
	MemoryContext old;
	Datum	   *names;
	int			nnames;

	if (strlen(name) >= NAMEDATALEN)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("machine \"%s\" does not exist", name)));
	}

	if (machine_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(CacheEntry);
		machine_cache = hash_create("machine definitions", 64, &ctl,
									HASH_ELEM | HASH_STRINGS);
	}
	if (!OidIsValid(machines_relid))
		machines_relid = lookup_machines_relid();

	/*
	 * A cached machine is shared by every role of this backend: check the
	 * right to read machine.machines as its read would, cached or not (once
	 * per role and transaction).
	 */
	if (reader_role != GetUserId() || reader_lxid != MyProc->lxid)
	{
		if (pg_class_aclcheck(machines_relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "machines");
		reader_role = GetUserId();
		reader_lxid = MyProc->lxid;
	}

	entry = hash_search(machine_cache, name, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->cm;

	if (!store_load_machine(name, &stored))
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("machine \"%s\" does not exist", name)));
	}

	context = AllocSetContextCreate(CacheMemoryContext, "compiled machine",
									ALLOCSET_SMALL_SIZES);
	cm = MemoryContextAllocZero(context, sizeof(CompiledMachine));
	cm->context = context;
	strlcpy(cm->name, name, NAMEDATALEN);
	cm->revision = stored.revision;
	cm->machine_type = MemoryContextStrdup(context, stored.machine_type);
	cm->checked_role = InvalidOid;
	PG_TRY();
	{
		cm->def = compile_or_error(stored.definition);
		deconstruct_array(stored.functions, TEXTOID, -1, false, TYPALIGN_INT,
						  &names, NULL, &nnames);
		if (nnames != cm->def->nfunctions)
			elog(ERROR, "machine \"%s\" has %d stored functions, expected %d",
				 name, nnames, cm->def->nfunctions);
		cm->functions = MemoryContextAllocZero(context,
											   sizeof(FmgrInfo) * Max(nnames, 1));
		cm->busy = MemoryContextAllocZero(context, sizeof(bool) * Max(nnames, 1));
		for (int i = 0; i < nnames; i++)
		{
			Oid			oid = stored_function(name, &cm->def->functions[i],
											  TextDatumGetCString(names[i]));

			fmgr_info_cxt(oid, &cm->functions[i], context);
		}
	}
	PG_CATCH();
	{
		if (cm->def)
			md_free(cm->def);
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (hash_get_num_entries(machine_cache) >= MACHINE_CACHE_SIZE)
		retire_all();
	old = MemoryContextSwitchTo(TopMemoryContext);
	entry = hash_search(machine_cache, name, HASH_ENTER, &found);
	entry->cm = cm;
	MemoryContextSwitchTo(old);
	return cm;
}

/*
 * Check that the current role may execute every function of a machine.
 * Functions run as the role that sends, like any function call in SQL; the
 * result is remembered for the last role checked.
 */
void
machine_check_execute(CompiledMachine *cm)
{
	Oid			role = GetUserId();

	if (cm->checked_role == role)
		return;
	for (int i = 0; i < cm->def->nfunctions; i++)
	{
		Oid			oid = cm->functions[i].fn_oid;

		if (pg_proc_aclcheck(oid, role, ACL_EXECUTE) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION,
						   format_procedure(oid));
	}
	cm->checked_role = role;
}

/* What machine_define stores besides the definition itself */
typedef struct Resolved
{
	ArrayType  *functions;		/* qualified names */
	ArrayType  *tags;			/* the states' names */
	const char *machine_type;
	int64		snapshot_spacing;	/* microseconds; 0: not "spaced" */
	bool		needs_worker;
} Resolved;

/*
 * Resolve the functions of a compiled definition under the current
 * search_path, checking that the definer may execute them.
 */
static void
resolve_definition(const MachineDef *def, const char *name, Resolved *out)
{
	Datum	   *names = palloc(sizeof(Datum) * Max(def->nfunctions, 1));
	Datum	   *states = palloc(sizeof(Datum) * def->nstates);

	for (int i = 0; i < def->nfunctions; i++)
	{
		Oid			oid = resolve_function(&def->functions[i]);

		if (pg_proc_aclcheck(oid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION,
						   format_procedure(oid));
		names[i] = CStringGetTextDatum(qualified_function_name(oid));
	}
	out->functions = construct_array(names, def->nfunctions, TEXTOID, -1,
									 false, TYPALIGN_INT);
	for (int i = 0; i < def->nstates; i++)
		states[i] = CStringGetTextDatum(def->states[i].name);
	out->tags = construct_array(states, def->nstates, TEXTOID, -1, false,
								TYPALIGN_INT);
	out->machine_type = def->persistence.machine_type ?
		pstrdup(def->persistence.machine_type) : name;
	out->snapshot_spacing = def->persistence.enabled &&
		def->persistence.schedule == MD_SNAPSHOT_SPACED ?
		def->persistence.spaced_us : 0;
	out->needs_worker = def->needs_worker;
}

/* Does the launcher (preloaded) start a worker for this database? */
static bool
worker_serves_this_database(void)
{
	return machine_preloaded &&
		machine_database_allowed(get_database_name(MyDatabaseId));
}

/*
 * machine_define(name text, definition jsonb) RETURNS integer
 *
 * Create a machine, or replace it with a new revision, which is returned.
 */
PG_FUNCTION_INFO_V1(machine_define);
Datum
machine_define(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *definition;
	char	   *json;
	MachineDef *def;
	Resolved	resolved;
	List	   *outside;
	int32		revision;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "name" : "definition")));
	PreventCommandIfReadOnly("machine_define()");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	definition = PG_GETARG_JSONB_P(1);
	check_machine_name(name);

	json = JsonbToCString(NULL, &definition->root, VARSIZE(definition));
	def = compile_or_error(json);
	PG_TRY();
	{
		resolve_definition(def, name, &resolved);
	}
	PG_FINALLY();
	{
		md_free(def);
	}
	PG_END_TRY();

	SPI_connect();
	LockRelationOid(store_instances_relid(), ShareLock);

	outside = store_actors_outside(name, resolved.tags);
	if (outside != NIL)
	{
		StringInfoData detail;
		int			shown = Min(list_length(outside) / 2, 5);

		initStringInfo(&detail);
		for (int i = 0; i < shown; i++)
			appendStringInfo(&detail, "%sActor \"%s\" is in state \"%s\".",
							 i > 0 ? " " : "",
							 (char *) list_nth(outside, 2 * i),
							 (char *) list_nth(outside, 2 * i + 1));
		if (list_length(outside) / 2 > shown)
			appendStringInfoString(&detail, " And more.");
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot redefine machine \"%s\": live actors are in states the new definition lacks",
						name),
				 errdetail_internal("%s", detail.data),
				 errhint("Keep those states, or move, stop or delete the actors first.")));
	}

	revision = store_save_machine(name, definition, resolved.functions,
								  resolved.machine_type, resolved.snapshot_spacing);
	CacheInvalidateRelcacheByRelid(lookup_machines_relid());
	SPI_finish();

	if (resolved.needs_worker && !worker_serves_this_database())
		ereport(NOTICE,
				(errmsg("machine \"%s\" has timers or a spaced snapshot schedule, but no background worker serves this database",
						name),
				 errhint("Add machine to shared_preload_libraries (and this database to machine.databases, if set), or call machine_run_maintenance() periodically.")));

	PG_RETURN_INT32(revision);
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
	bool		dropped;

	PreventCommandIfReadOnly("machine_drop()");
	SPI_connect();
	LockRelationOid(store_instances_relid(), ShareLock);
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
		store_delete_actors_of(name);
	dropped = store_delete_machine(name);
	if (dropped)
		CacheInvalidateRelcacheByRelid(lookup_machines_relid());
	SPI_finish();

	PG_RETURN_BOOL(dropped);
}
