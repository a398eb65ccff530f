/*-------------------------------------------------------------------------
 *
 * machine_router.c
 *	  The C part of the machine_router extension: the slice hash, so that a
 *	  router computes the same slices as its shards without the machine
 *	  extension installed.
 *
 * The routing itself is PL/Proxy's (sql/machine_router--1.1.sql): the
 * cluster "machine" has one partition per slice, and every routed function
 * says RUN ON machine_router.hash(actor_id).  PL/Proxy masks the hash with
 * (partitions - 1), which is exactly machine_slice_of(actor_id, slices),
 * so routing needs no lookup of the number of slices.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "slice.h"

PG_MODULE_MAGIC;

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
	if (PG_ARGISNULL(0))
		PG_RETURN_INT32(0);
	PG_RETURN_INT32((int32) router_hash_text(PG_GETARG_TEXT_PP(0)));
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
