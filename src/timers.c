/*-------------------------------------------------------------------------
 *
 * timers.c
 *	  Durable timers ("after", SPEC §2, §7) and the maintenance pass that
 *	  fires them and takes spaced snapshots: machine_run_maintenance, and
 *	  the background worker's unit of work.
 *
 * A timer is a row of machine.timers armed when its state is entered, at
 * the version of that entry.  Leaving the state cancels the state's timers;
 * a self-transition without reenter keeps them running by moving them to
 * the new version.  When due, a timer is claimed (deleted, FOR UPDATE SKIP
 * LOCKED, so two passes never take the same one) and sent to its actor
 * with expected_version = its armed version, in the same transaction: a
 * timer that lost a race to another event meets a version conflict and is
 * dropped silently, so it can never apply twice or to another state
 * instance.  Rows left behind by an older revision of a machine are dropped
 * the same way.
 *
 * Each timer fires in a subtransaction of its own, as the role that armed
 * it: one failing handler is logged with its actor and skipped, and a
 * superuser running the pass never runs user code with its own rights.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "machine.h"

/*
 * Timers on a transition from state "from" (-1: none, a spawn or restore)
 * into state "to" at "version"; "left" says the old state instance ended.
 */
void
timers_transition(const char *actor_id, CompiledMachine *cm, int from, int to,
				  bool left, int64 version)
{
	const MachineDef *def = cm->def;
	const MdState *entered = &def->states[to];

	if (from >= 0 && def->states[from].ntimers > 0)
	{
		if (left)
			store_cancel_timers(actor_id);
		else
			store_move_timers(actor_id, version);
	}
	if (from >= 0 && !left)
		return;
	for (int i = 0; i < entered->ntimers; i++)
	{
		const MdTimer *timer = &entered->timers[i];

		store_arm_timer(actor_id, version, i, entered->name,
						jsonb_from_cstring(timer->event), timer->delay_us,
						GetUserId());
	}
}

typedef enum TimerOutcome
{
	TIMER_FIRED,
	TIMER_DROPPED,				/* stale, or its actor is gone, stopped or done */
	TIMER_FAILED				/* its send raised an error: logged */
} TimerOutcome;

/* Errors that mean the timer no longer applies, rather than a failure */
static bool
stale_timer_error(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_MACHINE_VERSION_CONFLICT ||
		sqlerrcode == ERRCODE_MACHINE_ACTOR_DONE ||
		sqlerrcode == ERRCODE_UNDEFINED_OBJECT ||
		sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
}

/* Fire one claimed timer in a subtransaction, as the role that armed it */
static TimerOutcome
fire_timer(int64 timer_id)
{
	DueTimer	timer_data;
	DueTimer   *timer = &timer_data;
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			save_userid;
	int			save_sec_context;
	volatile TimerOutcome outcome = TIMER_FIRED;

	if (!store_take_timer(timer_id, timer))
		return TIMER_DROPPED;
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(timer->role)))
	{
		ereport(WARNING,
				(errmsg("timer of actor \"%s\" dropped: the role that armed it no longer exists",
						timer->actor_id)));
		return TIMER_FAILED;
	}

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		SetUserIdAndSecContext(timer->role,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		(void) actor_send(timer->actor_id, timer->event, timer->armed_version);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
		SetUserIdAndSecContext(save_userid, save_sec_context);

		if (stale_timer_error(edata->sqlerrcode))
			outcome = TIMER_DROPPED;
		else
		{
			ereport(WARNING,
					(errmsg("timer of actor \"%s\" failed: %s",
							timer->actor_id, edata->message),
					 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
					 errhint("The timer was dropped.")));
			outcome = TIMER_FAILED;
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return outcome;
}

/*
 * One batch of maintenance in the current transaction: fire up to
 * max_items due timers and take up to max_items spaced snapshots.  Caller
 * is connected to SPI.  Returns true when a limit was reached, so that more
 * may be due.
 */
bool
maintenance_batch(int max_items, MaintenanceCounts *counts)
{
	List	   *due = store_claim_timers(max_items);
	ListCell   *lc;
	int			snapshots;

	foreach(lc, due)
	{
		CHECK_FOR_INTERRUPTS();
		switch (fire_timer(*(int64 *) lfirst(lc)))
		{
			case TIMER_FIRED:
				counts->fired++;
				break;
			case TIMER_DROPPED:
				counts->dropped++;
				break;
			case TIMER_FAILED:
				counts->failed++;
				break;
		}
	}
	snapshots = store_take_spaced_snapshots(max_items);
	counts->snapshots += snapshots;
	return list_length(due) >= max_items || snapshots >= max_items;
}

/*
 * machine_run_maintenance(max_items integer DEFAULT 1000) RETURNS
 *		TABLE(timers_fired integer, timers_dropped integer,
 *			  timers_failed integer, snapshots_taken integer)
 *
 * One pass of the background worker, in the caller's transaction: for a
 * server without the preload, for tests, or for a pg_cron job.
 */
PG_FUNCTION_INFO_V1(machine_run_maintenance);
Datum
machine_run_maintenance(PG_FUNCTION_ARGS)
{
	int32		max_items = PG_GETARG_INT32(0);
	MaintenanceCounts counts = {0};
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (max_items < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_items must be at least 1")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PreventCommandIfReadOnly("machine_run_maintenance()");

	SPI_connect();
	(void) maintenance_batch(max_items, &counts);
	SPI_finish();

	values[0] = Int32GetDatum(counts.fired);
	values[1] = Int32GetDatum(counts.dropped);
	values[2] = Int32GetDatum(counts.failed);
	values[3] = Int32GetDatum(counts.snapshots);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
