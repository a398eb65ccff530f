/*-------------------------------------------------------------------------
 *
 * subtransaction.c
 *	  Run a piece of work in a subtransaction and catch its error, so that
 *	  one failing item of a batch neither aborts the others nor leaves
 *	  anything half-written: restore_many's actors, the maintenance pass's
 *	  timers.
 *
 * Aborting the subtransaction also undoes what the work changed in the
 * session: the user id and security context, settings, SPI connections.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "subtransaction.h"

/*
 * Run fn(arg) in a subtransaction.  NULL when it succeeded; otherwise the
 * error it raised, copied into the caller's memory context.
 */
ErrorData *
in_subtransaction(void (*fn) (void *), void *arg)
{
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(context);
	CurrentResourceOwner = owner;
	return error;
}

/* An error's message with its detail, for a row that reports a failure */
char *
error_text(ErrorData *error)
{
	return error->detail ? psprintf("%s: %s", error->message, error->detail) :
		pstrdup(error->message);
}
