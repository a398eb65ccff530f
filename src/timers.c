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
 * The code runs as a security-restricted operation (no temporary objects,
 * no LISTEN, no SET ROLE) and every setting it changes is undone after it,
 * as PostgreSQL does for index expressions run by VACUUM: the timer's
 * role can leave nothing behind in the session of the role that fired it.
 * Because armed_by decides who the code runs as, the trigger
 * machine.timers_guard() lets only superusers write another role there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/elog.h"
#include "utils/guc.h"
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

/*
 * Send a timer's event as the role that armed it, as a security-restricted
 * operation whose setting changes are undone after it (as VACUUM runs index
 * expressions): the timer's code leaves nothing behind in this session.
 */
static void
send_as_armer(void *arg)
{
	DueTimer   *timer = arg;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(timer->role,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) actor_send(timer->actor_id, timer->event, timer->armed_version);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* Fire one claimed timer, in a subtransaction of its own */
static TimerOutcome
fire_timer(int64 timer_id)
{
	DueTimer	timer;
	ErrorData  *error;
	TimerOutcome outcome = TIMER_FIRED;

	if (!store_take_timer(timer_id, &timer))
		return TIMER_DROPPED;
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(timer.role)))
	{
		ereport(WARNING,
				(errmsg("timer of actor \"%s\" dropped: the role that armed it no longer exists",
						timer.actor_id)));
		return TIMER_FAILED;
	}

	error = in_subtransaction(send_as_armer, &timer);
	if (error == NULL)
		return TIMER_FIRED;
	if (stale_timer_error(error->sqlerrcode))
		outcome = TIMER_DROPPED;
	else
	{
		ereport(WARNING,
				(errmsg("timer of actor \"%s\" failed: %s",
						timer.actor_id, error->message),
				 error->detail ? errdetail_internal("%s", error->detail) : 0,
				 errhint("The timer was dropped.")));
		outcome = TIMER_FAILED;
	}
	FreeErrorData(error);
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

static const char *
role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

/*
 * machine.timers_guard() RETURNS trigger
 *
 * BEFORE INSERT OR UPDATE ON machine.timers, FOR EACH ROW.  A timer fires
 * as the role in its armed_by column, so that column is an identity, not
 * data: a role that is not a superuser may arm timers only as itself, and
 * of a timer another role armed it may change only armed_version (a send
 * that keeps the state moves the state's timers along).
 */
PG_FUNCTION_INFO_V1(machine_timers_guard);
Datum
machine_timers_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	HeapTuple	newtuple;
	int			armed_by_att;
	int			armed_version_att;
	Oid			me = GetUserId();
	Oid			armed_by;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		elog(ERROR, "machine.timers_guard() must be a BEFORE INSERT OR UPDATE row trigger");

	tupdesc = trigdata->tg_relation->rd_att;
	newtuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	if (superuser())
		return PointerGetDatum(newtuple);

	armed_by_att = SPI_fnumber(tupdesc, "armed_by");
	armed_version_att = SPI_fnumber(tupdesc, "armed_version");
	if (armed_by_att <= 0 || armed_version_att <= 0)
		elog(ERROR, "machine.timers lacks column armed_by or armed_version");

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		HeapTuple	oldtuple = trigdata->tg_trigtuple;
		Oid			old_by = DatumGetObjectId(heap_getattr(oldtuple, armed_by_att,
														   tupdesc, &isnull));

		if (old_by != me)
		{
			for (int i = 1; i <= tupdesc->natts; i++)
			{
				Form_pg_attribute att = TupleDescAttr(tupdesc, i - 1);
				bool		old_null;
				bool		new_null;
				Datum		old_value;
				Datum		new_value;

				if (att->attisdropped || i == armed_version_att)
					continue;
				old_value = heap_getattr(oldtuple, i, tupdesc, &old_null);
				new_value = heap_getattr(newtuple, i, tupdesc, &new_null);
				if (old_null != new_null ||
					(!old_null && !datum_image_eq(old_value, new_value,
												  att->attbyval, att->attlen)))
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("permission denied to change column \"%s\" of a timer armed by role \"%s\"",
									NameStr(att->attname), role_name(old_by)),
							 errdetail("A timer fires as the role that armed it; another role may only move it to a new armed_version.")));
			}
			return PointerGetDatum(newtuple);
		}
	}

	armed_by = DatumGetObjectId(heap_getattr(newtuple, armed_by_att, tupdesc,
											 &isnull));
	if (!isnull && armed_by != me)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to arm a timer as role \"%s\"",
						role_name(armed_by)),
				 errdetail("A timer fires as the role that armed it; only a superuser may arm one for another role.")));
	return PointerGetDatum(newtuple);
}
