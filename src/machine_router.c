/*-------------------------------------------------------------------------
 *
 * machine_router.c
 *	  The C part of the machine_router extension: the slice hash (so that a
 *	  router computes the same slices as its shards without the machine
 *	  extension installed), the locks that hold calls back while their
 *	  slice moves, and the wrappers that give shards' errors back as raised.
 *
 * The routing itself is PL/Proxy's (sql/machine_router--1.1.sql): the
 * cluster "machine" has one partition per slice, and every routed function
 * says RUN ON machine_router.hash(actor_id).  PL/Proxy masks the hash with
 * (partitions - 1), which is exactly machine_slice_of(actor_id, slices),
 * so routing needs no lookup of the number of slices.
 *
 * Moving a slice.  Every routed call takes a lock on its actor's sub-slice
 * (the hash's low 10 bits: a slice of up to 1024 slices is a set of them,
 * one of more slices a part of one) in share mode, until the router's
 * transaction ends; machine_router_move takes the slice's sub-slices in
 * exclusive mode.  So a move waits for the calls in flight, and calls that
 * come during a move wait for it.  Such a call has read PL/Proxy's map of partitions before
 * it waited, and the map may now be stale: it fails with a retryable
 * serialization failure instead of going to the shard that kept the slice.
 * The locks are advisory locks of a key space of their own (field 4 is
 * neither 1 nor 2, which pg_advisory_lock uses).
 *
 * Errors.  PL/Proxy re-raises a shard's error with the shard's SQLSTATE,
 * but prefixes its message with the proxy function and the shard's
 * database and its detail and hint with "Remote detail: " and "Remote
 * hint: ".  The router's functions are C functions that call their
 * PL/Proxy twin in schema machine_router (scalar ones through the function
 * manager, set-returning ones through SPI) and give the error back as the
 * shard raised it, naming the shard in its context; a shard that cannot be
 * reached becomes a connection failure (08006) that names it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "executor/tstoreReceiver.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "slice.h"

PG_MODULE_MAGIC;

#define ROUTER_LOCK_SPACE 0x4D52	/* "MR": advisory locks of routed calls */
#define ROUTER_SUBSLICES 1024

static void
router_locktag(LOCKTAG *tag, uint32 subslice)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, subslice, 0, ROUTER_LOCK_SPACE);
}

/* The 32-bit slice hash of an id's UTF-8 bytes */
static uint32_t
router_hash_text(text *id)
{
	const char *bytes = VARDATA_ANY(id);
	int			len = VARSIZE_ANY_EXHDR(id);

	if (GetDatabaseEncoding() != PG_UTF8)
	{
		const char *utf8 = pg_server_to_any(bytes, len, PG_UTF8);

		/* a converted copy is terminated; an unconverted one is the input */
		if (utf8 != bytes)
		{
			bytes = utf8;
			len = strlen(utf8);
		}
	}
	return machine_slice_hash((const unsigned char *) bytes, (size_t) len);
}

/*
 * machine_router.hash(actor_id text) RETURNS integer
 *
 * The slice hash before it is cut down to a number of slices, for PL/Proxy's
 * RUN ON: the bits are those of the unsigned hash.  NULL hashes to 0, so
 * that the call reaches a shard, which refuses the NULL with its own error.
 */
PG_FUNCTION_INFO_V1(machine_router_hash);
Datum
machine_router_hash(PG_FUNCTION_ARGS)
{
	uint32_t	hash;
	LOCKTAG		tag;

	hash = PG_ARGISNULL(0) ? 0 : router_hash_text(PG_GETARG_TEXT_PP(0));
	router_locktag(&tag, hash % ROUTER_SUBSLICES);
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		/* a move of the slice is under way: wait for it, then retry */
		(void) LockAcquire(&tag, ShareLock, false, false);
		/* a retry in this transaction must see the new routing */
		AcceptInvalidationMessages();
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the slice of actor \"%s\" was moved to another shard during the call",
						PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errdetail("The call waited for machine_router_move and was not sent to any shard."),
				 errhint("Retry the call: it goes to the slice's new shard.")));
	}
	PG_RETURN_INT32((int32) hash);
}

/*
 * machine_router.hold_slice(slice integer, slices integer) RETURNS void
 *
 * Wait for the routed calls in flight on the slice and hold new ones back
 * until the transaction ends.  Refused in a transaction block: the shards
 * commit each step of a move at once, so the router's part (the new
 * routing) must commit right after, not at a COMMIT that may never come.
 */
PG_FUNCTION_INFO_V1(machine_router_hold_slice);
Datum
machine_router_hold_slice(PG_FUNCTION_ARGS)
{
	int32		slice = PG_GETARG_INT32(0);
	int32		slices = PG_GETARG_INT32(1);
	LOCKTAG		tag;

	if (!machine_slices_valid(slices) || slice < 0 || slice >= slices)
		elog(ERROR, "slice %d of %d is out of range", slice, slices);
	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("machine_router_move cannot run inside a transaction block"),
				 errdetail("The shards commit each step of a move at once; the router must commit the new routing right after."),
				 errhint("Call it on its own, outside BEGIN and COMMIT.")));
	/* with more slices than sub-slices, a slice is part of one */
	for (uint32 k = (uint32) slice % ROUTER_SUBSLICES; k < ROUTER_SUBSLICES;
		 k += (uint32) slices)
	{
		router_locktag(&tag, k);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	PG_RETURN_VOID();
}

/*
 * machine_slice_of(actor_id text, slices integer DEFAULT 1024) RETURNS integer
 *
 * The same function as the machine extension's, on the router.
 */
PG_FUNCTION_INFO_V1(machine_router_slice_of);
Datum
machine_router_slice_of(PG_FUNCTION_ARGS)
{
	int32		slices = PG_GETARG_INT32(1);

	if (!machine_slices_valid(slices))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid number of slices: %d", slices),
				 errdetail("The number of slices must be a power of two from 1 to %d.",
						   MACHINE_SLICES_MAX),
				 errhint("Use 1024, the default, unless the cluster was configured with another number.")));
	PG_RETURN_INT32((int32) (router_hash_text(PG_GETARG_TEXT_PP(0)) &
							 ((uint32_t) slices - 1)));
}

/*
 * Give a shard's error back as the shard raised it.  PL/Proxy's forms:
 * "FN(N): [DB] REMOTE ERROR: MSG" for an error the shard raised, and
 * "PL/Proxy function FN(N): [DB] WHAT: LIBPQ MESSAGE" for its own.
 */
static void
router_rewrite_error(ErrorData *edata)
{
	const char *msg = edata->message;
	const char *open;
	const char *close;
	const char *remote;
	char	   *shard;

	if (msg == NULL || (open = strstr(msg, "): [")) == NULL ||
		(close = strstr(open + 4, "] ")) == NULL)
		return;
	shard = pnstrdup(open + 4, close - (open + 4));
	remote = close + 2;
	if (strncmp(remote, "REMOTE ", 7) == 0 && (remote = strstr(remote, ": ")) != NULL)
	{
		edata->message = pstrdup(remote + 2);
		if (edata->detail && strncmp(edata->detail, "Remote detail: ", 15) == 0)
			edata->detail = pstrdup(edata->detail + 15);
		if (edata->hint && strncmp(edata->hint, "Remote hint: ", 13) == 0)
			edata->hint = pstrdup(edata->hint + 13);
		if (edata->context && strncmp(edata->context, "Remote context: ", 16) == 0)
			edata->context = psprintf("%s\non shard \"%s\"",
									  edata->context + 16, shard);
		else
			edata->context = psprintf("on shard \"%s\"", shard);
		/* a position in the shard's statement means nothing here */
		edata->cursorpos = 0;
	}
	else if (strncmp(msg, "PL/Proxy function ", 18) == 0 &&
			 strncmp(remote, "PQ", 2) == 0 && (remote = strstr(remote, ": ")) != NULL)
	{
		edata->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
		edata->message = psprintf("could not reach shard \"%s\"", shard);
		edata->detail = pstrdup(remote + 2);
		edata->hint = pstrdup("The calls for the actors of other shards go on; retry once the shard is back.");
	}
}

/*
 * The router's scalar functions: call the PL/Proxy function of the same
 * name and arguments in schema machine_router, and give its errors back as
 * the shard raised them.
 */
PG_FUNCTION_INFO_V1(machine_router_forward);
Datum
machine_router_forward(PG_FUNCTION_ARGS)
{
	FmgrInfo   *target = fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(inner, FUNC_MAX_ARGS);
	MemoryContext context = CurrentMemoryContext;
	Datum		result = (Datum) 0;

	if (target == NULL)
	{
		HeapTuple	tuple = SearchSysCache1(PROCOID,
											ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
		Form_pg_proc proc;
		List	   *name;
		Oid			oid;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
		proc = (Form_pg_proc) GETSTRUCT(tuple);
		name = list_make2(makeString("machine_router"),
						  makeString(pstrdup(NameStr(proc->proname))));
		oid = LookupFuncName(name, proc->pronargs, proc->proargtypes.values, false);
		ReleaseSysCache(tuple);
		target = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
		fmgr_info_cxt(oid, target, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = target;
	}

	InitFunctionCallInfoData(*inner, target, PG_NARGS(), PG_GET_COLLATION(),
							 NULL, NULL);
	for (int i = 0; i < PG_NARGS(); i++)
		inner->args[i] = fcinfo->args[i];
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		router_rewrite_error(edata);
		ReThrowError(edata);
	}
	PG_END_TRY();
	fcinfo->isnull = inner->isnull;
	return result;
}

/*
 * The router's set-returning functions: run SELECT * FROM the PL/Proxy
 * function of the same name and arguments in schema machine_router, and
 * return its rows (materialized), with its errors given back as the shard
 * raised them.
 */
PG_FUNCTION_INFO_V1(machine_router_forward_rows);
Datum
machine_router_forward_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext context = CurrentMemoryContext;
	HeapTuple	tuple;
	Form_pg_proc proc;
	StringInfoData sql;
	Oid			argtypes[FUNC_MAX_ARGS];
	Datum		values[FUNC_MAX_ARGS];
	char		nulls[FUNC_MAX_ARGS];
	int			nargs = PG_NARGS();

	InitMaterializedSRF(fcinfo, 0);

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM machine_router.%s(",
					 quote_identifier(NameStr(proc->proname)));
	for (int i = 0; i < nargs; i++)
	{
		argtypes[i] = proc->proargtypes.values[i];
		values[i] = fcinfo->args[i].value;
		nulls[i] = fcinfo->args[i].isnull ? 'n' : ' ';
		appendStringInfo(&sql, "%s$%d", i > 0 ? ", " : "", i + 1);
	}
	appendStringInfoChar(&sql, ')');
	ReleaseSysCache(tuple);

	PG_TRY();
	{
		SPIExecuteOptions options;
		SPIPlanPtr	plan;
		DestReceiver *dest = CreateDestReceiver(DestTuplestore);
		ParamListInfo params = makeParamList(nargs);

		/* rows go straight into the result, without a copy in SPI */
		SetTuplestoreDestReceiverParams(dest, rsinfo->setResult,
										rsinfo->econtext->ecxt_per_query_memory,
										false, rsinfo->setDesc,
										"unexpected columns from a shard");
		for (int i = 0; i < nargs; i++)
		{
			params->params[i].value = values[i];
			params->params[i].isnull = nulls[i] == 'n';
			params->params[i].pflags = PARAM_FLAG_CONST;
			params->params[i].ptype = argtypes[i];
		}
		memset(&options, 0, sizeof(options));
		options.params = params;
		options.dest = dest;
		SPI_connect();
		plan = SPI_prepare(sql.data, nargs, argtypes);
		if (plan == NULL ||
			SPI_execute_plan_extended(plan, &options) != SPI_OK_SELECT)
			elog(ERROR, "could not run %s", sql.data);
		SPI_finish();
		dest->rDestroy(dest);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		router_rewrite_error(edata);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return (Datum) 0;
}
