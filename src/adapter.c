/*-------------------------------------------------------------------------
 *
 * adapter.c
 *	  User adapters: a machine whose "persistence.adapter" names a schema
 *	  keeps its journal and snapshots through that schema's functions.
 *
 * The extension keeps everything else: the actor's row in
 * machine.instances (its live state, the mailbox's row lock, its version),
 * its timers, effects and the checks of versions.  The adapter only stores
 * and loads, through five functions of documented signatures:
 *
 *	 append_event(actor_id text, version bigint, event jsonb,
 *				  state_tag text) RETURNS void
 *	 load_events(actor_id text, after_version bigint, upto_version bigint)
 *		RETURNS TABLE (version bigint, event jsonb, state_tag text,
 *					   recorded_at timestamptz)
 *	 save_snapshot(actor_id text, version bigint, state jsonb,
 *				   state_tag text) RETURNS void
 *	 load_snapshot(actor_id text, max_version bigint, OUT version bigint,
 *				   OUT state jsonb) RETURNS record
 *	 delete_actor(actor_id text) RETURNS void
 *
 * They are resolved to OIDs when the machine is defined (a missing one, or
 * one of another signature, refuses the definition) and again, by their
 * qualified names, when a session compiles the machine; they are called
 * through the function manager, as the calling role, which needs EXECUTE
 * on them.  An append_event or save_snapshot that raises
 * serialization_failure (40001) or unique_violation (23505) -- the version
 * is taken -- surfaces as the extension's version conflict (MA001); any
 * other error fails the call as it is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"

#include "machine.h"
#include "adapter.h"
#include "definition.h"
#include "store.h"

typedef struct AdapterFunction
{
	const char *name;
	int			nargs;
	Oid			argtypes[4];
	Oid			rettype;		/* RECORDOID: the columns below */
	bool		retset;
	int			ncolumns;
	Oid			columns[4];
	const char *signature;		/* for hints and the README */
} AdapterFunction;

static const AdapterFunction adapter_functions[ADAPTER_NFUNCTIONS] = {
	[ADAPTER_APPEND_EVENT] = {
		"append_event", 4, {TEXTOID, INT8OID, JSONBOID, TEXTOID}, VOIDOID, false, 0, {0},
		"append_event(actor_id text, version bigint, event jsonb, state_tag text) RETURNS void"
	},
	[ADAPTER_LOAD_EVENTS] = {
		"load_events", 3, {TEXTOID, INT8OID, INT8OID}, RECORDOID, true,
		4, {INT8OID, JSONBOID, TEXTOID, TIMESTAMPTZOID},
		"load_events(actor_id text, after_version bigint, upto_version bigint) RETURNS TABLE (version bigint, event jsonb, state_tag text, recorded_at timestamptz)"
	},
	[ADAPTER_SAVE_SNAPSHOT] = {
		"save_snapshot", 4, {TEXTOID, INT8OID, JSONBOID, TEXTOID}, VOIDOID, false, 0, {0},
		"save_snapshot(actor_id text, version bigint, state jsonb, state_tag text) RETURNS void"
	},
	[ADAPTER_LOAD_SNAPSHOT] = {
		"load_snapshot", 2, {TEXTOID, INT8OID}, RECORDOID, false,
		2, {INT8OID, JSONBOID},
		"load_snapshot(actor_id text, max_version bigint, OUT version bigint, OUT state jsonb) RETURNS record"
	},
	[ADAPTER_DELETE_ACTOR] = {
		"delete_actor", 1, {TEXTOID}, VOIDOID, false, 0, {0},
		"delete_actor(actor_id text) RETURNS void"
	},
};


/* Is this adapter name one of the built-in ones? */
bool
adapter_is_builtin(const char *adapter)
{
	return adapter == NULL || strcmp(adapter, "tables") == 0 ||
		strcmp(adapter, "memory") == 0;
}

/*
 * Find one function of an adapter's schema and check its signature; its
 * OID, or an error that names the function and the signature it needs.
 * "machine" is NULL while the machine is being defined, its name when a
 * session compiles it later.
 */
static Oid
adapter_function(const char *schema, int which, const char *machine)
{
	const AdapterFunction *af = &adapter_functions[which];
	List	   *name = list_make2(makeString(pstrdup(schema)),
								  makeString(pstrdup(af->name)));
	Oid			argtypes[4];
	Oid			oid;
	Oid			rettype;
	TupleDesc	desc = NULL;
	bool		fits;

	for (int i = 0; i < af->nargs; i++)
		argtypes[i] = af->argtypes[i];
	oid = LookupFuncName(name, af->nargs, argtypes, true);
	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 machine ?
				 errmsg("function %s of the adapter of machine \"%s\" no longer exists",
						func_signature_string(name, af->nargs, NIL, argtypes), machine) :
				 errmsg("persistence.adapter: function %s does not exist",
						func_signature_string(name, af->nargs, NIL, argtypes)),
				 errdetail("An adapter schema has the functions append_event, load_events, save_snapshot, load_snapshot and delete_actor."),
				 errhint("Create %s.%s", quote_identifier(schema), af->signature)));

	fits = get_func_prokind(oid) == PROKIND_FUNCTION &&
		get_func_retset(oid) == af->retset;
	if (fits && af->rettype == VOIDOID)
		fits = get_func_rettype(oid) == VOIDOID;
	else if (fits)
	{
		fits = get_func_result_type(oid, &rettype, &desc) == TYPEFUNC_COMPOSITE &&
			desc->natts == af->ncolumns;
		for (int i = 0; fits && i < af->ncolumns; i++)
			fits = !TupleDescAttr(desc, i)->attisdropped &&
				TupleDescAttr(desc, i)->atttypid == af->columns[i];
	}
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 machine ?
				 errmsg("function %s of the adapter of machine \"%s\" does not have the signature of an adapter's %s",
						format_procedure(oid), machine, af->name) :
				 errmsg("persistence.adapter: function %s does not have the signature of an adapter's %s",
						format_procedure(oid), af->name),
				 errhint("Its signature must be %s.%s", quote_identifier(schema),
						 af->signature)));
	return oid;
}

/*
 * Check at define time that a schema adapter exists with its five
 * functions, and that the definer may execute them.
 */
void
adapter_check_definition(const MachineDef *def)
{
	const char *schema = def->persistence.adapter;

	if (!OidIsValid(get_namespace_oid(schema, true)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("persistence.adapter: schema \"%s\" does not exist", schema),
				 errhint("Name \"tables\", \"memory\", or a schema with the functions of an adapter.")));
	if (def->persistence.schedule == MD_SNAPSHOT_SPACED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("persistence.snapshotSchedule: \"spaced\" snapshots are not taken for an adapter schema"),
				 errdetail("The background worker takes spaced snapshots from the built-in tables only."),
				 errhint("Use \"every N\", \"recurs N\", \"forever\" or \"never\" with adapter \"%s\".",
						 schema)));
	for (int i = 0; i < ADAPTER_NFUNCTIONS; i++)
	{
		Oid			oid = adapter_function(schema, i, NULL);

		if (pg_proc_aclcheck(oid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION,
						   format_procedure(oid));
	}
}

/*
 * The adapter of a machine a session compiles, or NULL for a built-in
 * one; allocated in "context".
 */
UserAdapter *
adapter_open(const MachineDef *def, const char *machine, MemoryContext context)
{
	const char *schema = def->persistence.adapter;
	UserAdapter *adapter;

	if (adapter_is_builtin(schema))
		return NULL;
	adapter = MemoryContextAllocZero(context, sizeof(UserAdapter));
	adapter->schema = MemoryContextStrdup(context, schema);
	for (int i = 0; i < ADAPTER_NFUNCTIONS; i++)
	{
		Oid			oid = adapter_function(schema, i, machine);

		fmgr_info_cxt(oid, &adapter->functions[i], context);
		if (adapter_functions[i].rettype == RECORDOID)
		{
			TupleDesc	desc;
			Oid			rettype;
			MemoryContext old;

			(void) get_func_result_type(oid, &rettype, &desc);
			old = MemoryContextSwitchTo(context);
			adapter->columns[i] = CreateTupleDescCopy(desc);
			MemoryContextSwitchTo(old);
		}
	}
	return adapter;
}

/* The name of one function of an adapter, unqualified */
const char *
adapter_function_name(int which)
{
	return adapter_functions[which].name;
}

/*
 * Does a function of an adapter's schema exist with the arguments it
 * needs?  *signature gets its name and argument types, for messages.
 */
bool
adapter_function_exists(const char *schema, int which, char **signature)
{
	const AdapterFunction *af = &adapter_functions[which];
	List	   *name = list_make2(makeString(pstrdup(schema)),
								  makeString(pstrdup(af->name)));
	Oid			argtypes[4];

	for (int i = 0; i < af->nargs; i++)
		argtypes[i] = af->argtypes[i];
	*signature = pstrdup(func_signature_string(name, af->nargs, NIL, argtypes));
	return OidIsValid(LookupFuncName(name, af->nargs, argtypes, true));
}

/* The OID of one function of an adapter */
Oid
adapter_function_oid(UserAdapter *adapter, int which)
{
	return adapter->functions[which].fn_oid;
}

/* The caller runs the adapter's functions: EXECUTE is checked as for SQL */
static void
check_execute(UserAdapter *adapter, int which)
{
	Oid			oid = adapter->functions[which].fn_oid;

	if (pg_proc_aclcheck(oid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, format_procedure(oid));
}

/* Call a function of the adapter that returns a scalar or a record */
static Datum
call(UserAdapter *adapter, int which, Datum *args, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 4);
	int			nargs = adapter_functions[which].nargs;
	Datum		result;

	check_execute(adapter, which);
	InitFunctionCallInfoData(*fcinfo, &adapter->functions[which], nargs,
							 InvalidOid, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = false;
	}
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

/*
 * Call a writing function of the adapter; a version it reports taken is a
 * version conflict.  Re-raising a different error from the handler is
 * safe: the transaction is aborting either way.
 */
static void
call_writer(UserAdapter *adapter, int which, Datum *args,
			const char *actor_id, int64 version)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		isnull;

	PG_TRY();
	{
		(void) call(adapter, which, args, &isnull);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(caller);
		error = CopyErrorData();
		if (error->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE &&
			error->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_VERSION_CONFLICT),
				 errmsg("version conflict on actor \"%s\"", actor_id),
				 errdetail("Adapter \"%s\" refused version " INT64_FORMAT ": %s",
						   adapter->schema, version, error->message)));
	}
	PG_END_TRY();
}

/* Append a journal row through the adapter */
void
adapter_append_event(UserAdapter *adapter, const char *actor_id,
					 int64 version, Jsonb *event, const char *tag)
{
	Datum		args[4] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(version),
		JsonbPGetDatum(event),
		CStringGetTextDatum(tag),
	};

	call_writer(adapter, ADAPTER_APPEND_EVENT, args, actor_id, version);
}

/* Save a snapshot through the adapter */
void
adapter_save_snapshot(UserAdapter *adapter, const char *actor_id,
					  int64 version, Jsonb *state, const char *tag)
{
	Datum		args[4] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(version),
		JsonbPGetDatum(state),
		CStringGetTextDatum(tag),
	};

	call_writer(adapter, ADAPTER_SAVE_SNAPSHOT, args, actor_id, version);
}

/* Erase an actor's journal and snapshots through the adapter */
void
adapter_delete_actor(UserAdapter *adapter, const char *actor_id)
{
	Datum		args[1] = {CStringGetTextDatum(actor_id)};
	bool		isnull;

	(void) call(adapter, ADAPTER_DELETE_ACTOR, args, &isnull);
}

/* A row of a record an adapter returned, read with the declared columns */
static void
deform(Datum record, TupleDesc desc, Datum *values, bool *nulls)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(record);
	HeapTupleData tuple;

	if (HeapTupleHeaderGetNatts(td) != desc->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("adapter function returned a row of %d columns, not %d",
						HeapTupleHeaderGetNatts(td), desc->natts)));
	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	heap_deform_tuple(&tuple, desc, values, nulls);
}

static void
bad_row(UserAdapter *adapter, const char *what, const char *actor_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("adapter \"%s\" returned %s for actor \"%s\"",
					adapter->schema, what, actor_id)));
}

/*
 * The latest snapshot at or below a version, through the adapter; NULL
 * when there is none (a NULL record, or a NULL version).
 */
Jsonb *
adapter_load_snapshot(UserAdapter *adapter, const char *actor_id, int64 upto,
					  int64 *version)
{
	Datum		args[2] = {CStringGetTextDatum(actor_id), Int64GetDatum(upto)};
	Datum		values[2];
	bool		nulls[2];
	bool		isnull;
	Datum		record = call(adapter, ADAPTER_LOAD_SNAPSHOT, args, &isnull);

	if (isnull)
		return NULL;
	deform(record, adapter->columns[ADAPTER_LOAD_SNAPSHOT], values, nulls);
	if (nulls[0])
		return NULL;
	if (nulls[1])
		bad_row(adapter, "a snapshot without a state", actor_id);
	*version = DatumGetInt64(values[0]);
	if (*version < 0 || *version > upto)
		bad_row(adapter, psprintf("a snapshot of version " INT64_FORMAT " when asked for one at or below " INT64_FORMAT,
								  *version, upto), actor_id);
	return DatumGetJsonbPCopy(values[1]);
}

/*
 * One journal row an adapter returned, checked, to the callback (which
 * runs in the caller's memory context); what is made of the row here goes
 * to "rowcxt", which the caller resets per row.
 */
static void
journal_row(UserAdapter *adapter, const char *actor_id, Datum *values,
			bool *nulls, int64 after, int64 upto, int64 *last,
			MemoryContext rowcxt, EventCallback callback, void *arg)
{
	JournalEntry entry;
	MemoryContext old;

	if (nulls[0] || nulls[1] || nulls[2] || nulls[3])
		bad_row(adapter, "a journal row with a NULL column", actor_id);
	entry.pos = 0;
	entry.version = DatumGetInt64(values[0]);
	if (entry.version <= *last || entry.version > upto)
		bad_row(adapter, psprintf("journal version " INT64_FORMAT " out of order (after " INT64_FORMAT ", up to " INT64_FORMAT ")",
								  entry.version, Max(*last, after), upto),
				actor_id);
	*last = entry.version;
	old = MemoryContextSwitchTo(rowcxt);
	entry.event = DatumGetJsonbP(values[1]);
	entry.state_tag = TextDatumGetCString(values[2]);
	MemoryContextSwitchTo(old);
	entry.recorded_at = values[3];
	entry.revision = -1;		/* adapters keep no revision */
	callback(&entry, arg);
}

/*
 * Call back for each journal row with after < version <= upto, in
 * version order, through the adapter's set-returning load_events: a
 * materialized result is read from its tuplestore (bounded memory), rows
 * returned one per call are handled as they come.  As the executor does,
 * each call runs in a memory context reset for the next row, so that a
 * long journal does not pile up.
 */
void
adapter_scan_events(UserAdapter *adapter, const char *actor_id, int64 after,
					int64 upto, EventCallback callback, void *arg)
{
	LOCAL_FCINFO(fcinfo, 3);
	ReturnSetInfo rsinfo;
	ExprContext *econtext = CreateStandaloneExprContext();
	TupleDesc	desc = adapter->columns[ADAPTER_LOAD_EVENTS];
	Datum		values[4];
	bool		nulls[4];
	int64		last = after;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext callcxt = AllocSetContextCreate(CurrentMemoryContext,
												  "adapter journal call",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "adapter journal row",
												 ALLOCSET_DEFAULT_SIZES);

	check_execute(adapter, ADAPTER_LOAD_EVENTS);
	memset(&rsinfo, 0, sizeof(rsinfo));
	rsinfo.type = T_ReturnSetInfo;
	rsinfo.econtext = econtext;
	rsinfo.expectedDesc = desc;
	rsinfo.allowedModes = (int) (SFRM_ValuePerCall | SFRM_Materialize);
	rsinfo.returnMode = SFRM_ValuePerCall;
	InitFunctionCallInfoData(*fcinfo, &adapter->functions[ADAPTER_LOAD_EVENTS],
							 3, InvalidOid, NULL, (fmNodePtr) &rsinfo);
	fcinfo->args[0].value = CStringGetTextDatum(actor_id);
	fcinfo->args[1].value = Int64GetDatum(after);
	fcinfo->args[2].value = Int64GetDatum(upto);
	for (int i = 0; i < 3; i++)
		fcinfo->args[i].isnull = false;

	for (;;)
	{
		Datum		result;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(callcxt);
		MemoryContextReset(rowcxt);
		rsinfo.isDone = ExprSingleResult;
		fcinfo->isnull = false;
		MemoryContextSwitchTo(callcxt);
		result = FunctionCallInvoke(fcinfo);
		MemoryContextSwitchTo(caller);
		if (rsinfo.returnMode == SFRM_Materialize)
		{
			if (rsinfo.setResult != NULL)
			{
				TupleTableSlot *slot;

				if (rsinfo.setDesc == NULL || rsinfo.setDesc->natts != desc->natts)
					bad_row(adapter, "rows of the wrong shape", actor_id);
				slot = MakeSingleTupleTableSlot(rsinfo.setDesc, &TTSOpsMinimalTuple);
				while (tuplestore_gettupleslot(rsinfo.setResult, true, false, slot))
				{
					CHECK_FOR_INTERRUPTS();
					MemoryContextReset(rowcxt);
					slot_getallattrs(slot);
					journal_row(adapter, actor_id, slot->tts_values, slot->tts_isnull,
								after, upto, &last, rowcxt, callback, arg);
				}
				ExecDropSingleTupleTableSlot(slot);
				tuplestore_end(rsinfo.setResult);
			}
			break;
		}
		if (rsinfo.isDone == ExprEndResult)
			break;
		if (!fcinfo->isnull)
		{
			MemoryContextSwitchTo(rowcxt);
			deform(result, desc, values, nulls);
			MemoryContextSwitchTo(caller);
			journal_row(adapter, actor_id, values, nulls, after, upto, &last,
						rowcxt, callback, arg);
		}
		if (rsinfo.isDone != ExprMultipleResult)
			break;
	}
	FreeExprContext(econtext, true);
	MemoryContextDelete(rowcxt);
	MemoryContextDelete(callcxt);
}
