/*-------------------------------------------------------------------------
 *
 * slice.c
 *	  machine_slice_of(): the slice an actor id belongs to.
 *
 * The hash itself lives in slice.h, without server headers, so that the
 * unit tests check the very code the server runs.  Here it gets the id as
 * UTF-8 (converted when the database has another encoding, so that the
 * same id has the same slice in every database) and a checked number of
 * slices.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "slice.h"

PG_FUNCTION_INFO_V1(machine_slice_of);

/*
 * machine_slice_of(actor_id text, slices integer DEFAULT 1024) RETURNS integer
 *
 * The slice of actor_id among slices, a power of two from 1 to 65536.
 */
Datum
machine_slice_of(PG_FUNCTION_ARGS)
{
	text	   *id = PG_GETARG_TEXT_PP(0);
	int32		slices = PG_GETARG_INT32(1);
	const char *bytes = VARDATA_ANY(id);
	int			len = VARSIZE_ANY_EXHDR(id);

	if (!machine_slices_valid(slices))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid number of slices: %d", slices),
				 errdetail("The number of slices must be a power of two from 1 to %d.",
						   MACHINE_SLICES_MAX),
				 errhint("Use 1024, the default, unless the cluster was configured with another number.")));

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

	PG_RETURN_INT32((int32) machine_slice((const unsigned char *) bytes,
										  (size_t) len, (uint32_t) slices));
}
