/*-------------------------------------------------------------------------
 *
 * define.c
 *	  machine_define: a new machine, or a new revision of one, checked,
 *	  stored and its actors migrated.
 *
 * A definition is compiled from the canonical text of its jsonb and its
 * function names are resolved to OIDs under the definer's search_path, then
 * stored schema-qualified (see registry.c, which compiles the stored row
 * for every backend).  The machine's lock, taken in ExclusiveLock, keeps
 * the writers of its actors out until the new revision commits, so the
 * check that no live actor sits in a state the revision lacks sees every
 * committed state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "machine.h"
#include "adapter.h"
#include "definition.h"
#include "migrate.h"
#include "registry.h"
#include "served.h"
#include "store.h"
#include "store_direct.h"
#include "store_machines.h"
#include "store_timers.h"

static void refuse_actors_outside(const char *name, ArrayType *tags);

/* The adapter a definition names, as it is checked when defined */
static void
check_adapter(const MachineDef *def)
{
	const char *adapter = def->persistence.adapter;

	if (adapter == NULL || strcmp(adapter, "tables") == 0)
		return;
	if (!adapter_is_builtin(adapter))
		adapter_check_definition(def);
	else if (!store_memory_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("persistence.adapter: adapter \"memory\" needs version 1.1 of extension \"machine\""),
				 errdetail("The tables of the \"memory\" adapter do not exist in this database."),
				 errhint("Update the extension with ALTER EXTENSION machine UPDATE.")));
}

/* The name of the adapter a definition names, "tables" by default */
static const char *
adapter_name(const MachineDef *def)
{
	return def->persistence.adapter ? def->persistence.adapter : "tables";
}

static char *
qualified_function_name(Oid oid)
{
	return quote_qualified_identifier(get_namespace_name(get_func_namespace(oid)),
									  get_func_name(oid));
}

/* What machine_define stores besides the definition itself */
typedef struct Resolved
{
	ArrayType  *functions;		/* qualified names */
	ArrayType  *tags;			/* the states' names */
	const char *machine_type;
	int64		snapshot_spacing;	/* microseconds; 0: not "spaced" */
	bool		needs_worker;
	StoreKind	store;
	const char *adapter;		/* its name, "tables" by default */
	bool		migrates;		/* has a "migrate" function */
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

	check_adapter(def);
	out->store = store_kind_of(def);
	out->adapter = pstrdup(adapter_name(def));
	for (int i = 0; i < def->nfunctions; i++)
	{
		Oid			oid = machine_resolve_function(&def->functions[i]);

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
	out->migrates = def->migrate >= 0;
	if (def->postpones && !store_postponed_available())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("machine \"%s\" postpones events, which version 1.0 of the extension cannot keep", name),
				 errdetail("Postponed events are kept in machine.postponed, which version 1.1 adds."),
				 errhint("Run ALTER EXTENSION machine UPDATE first.")));
}

static void
compile_and_resolve(const char *json, const char *name, Resolved *resolved)
{
	MachineDef *def = machine_compile_json(json);

	PG_TRY();
	{
		resolve_definition(def, name, resolved);
	}
	PG_FINALLY();
	{
		md_free(def);
	}
	PG_END_TRY();
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
	Resolved	resolved;
	StoredMachine stored;
	int32		replaces = 0;
	int32		revision;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "name" : "definition")));
	PreventCommandIfReadOnly("machine_define()");
	machine_refuse_in_transition("define");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	definition = PG_GETARG_JSONB_P(1);
	machine_check_name(name);

	json = JsonbToCString(NULL, &definition->root, VARSIZE(definition));
	compile_and_resolve(json, name, &resolved);

	SPI_connect();
	/* a role that may not redefine it must not even queue for the lock */
	if (store_load_machine(name, ROW_NO_LOCK, &stored))
	{
		machine_authorize_stored(name, &stored, MACHINE_DEFINE);
		replaces = stored.revision;
	}
	machine_lock(name, ExclusiveLock);

	/* the actors stay where they are: the adapter changes only without */
	if (replaces != 0)
	{
		char		errbuf[64];
		MachineDef *old = md_compile(stored.definition,
									 strlen(stored.definition), errbuf,
									 sizeof(errbuf));
		char	   *old_adapter = pstrdup(old ? adapter_name(old) : "tables");

		if (old)
			md_free(old);
		if (strcmp(old_adapter, resolved.adapter) != 0 &&
			store_count_actors(name) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the adapter of machine \"%s\" while it has actors",
							name),
					 errdetail("Its actors are kept by adapter \"%s\", not \"%s\".",
							   old_adapter, resolved.adapter),
					 errhint("Delete its actors first, or drop the machine with cascade and define it again.")));
	}

	/* a migration may move actors out of states the revision drops */
	if (!(resolved.migrates && replaces != 0))
		refuse_actors_outside(name, resolved.tags);

	revision = store_save_machine(name, replaces, definition, resolved.functions,
								  resolved.machine_type, resolved.snapshot_spacing);
	if (revision == 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("machine \"%s\" was defined concurrently", name),
				 errhint("Look at its definition again and retry.")));
	if (resolved.snapshot_spacing > 0)
		store_mark_machine_due(name);
	machine_invalidate_definitions();
	if (resolved.migrates && replaces != 0)
	{
		/* the new revision, compiled from its row, migrates the actors */
		CommandCounterIncrement();
		machine_migrate_actors(machine_lookup(name, false), replaces);
		refuse_actors_outside(name, resolved.tags);
	}
	SPI_finish();

	if (resolved.needs_worker && !served_by_worker())
		ereport(NOTICE,
				(errmsg("machine \"%s\" has timers or a spaced snapshot schedule, but no background worker serves this database",
						name),
				 errhint("Add machine to shared_preload_libraries (and this database to machine.databases, if set), or call machine_run_maintenance() periodically.")));

	PG_RETURN_INT32(revision);
}

/* Refuse a revision without a state that an actor (not stopped) is in */
static void
refuse_actors_outside(const char *name, ArrayType *tags)
{
	List	   *outside = store_actors_outside(name, tags);

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
				 errhint("Keep those states, migrate them with a \"migrate\" function, or move, stop or delete the actors first.")));
	}
}
