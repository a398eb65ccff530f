/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *	  The maintenance pass that fires due timers and takes spaced
 *	  snapshots: machine_run_maintenance, machine_fire_timers, and the
 *	  background worker's unit of work.
 *
 * When due, a timer is claimed (deleted, FOR UPDATE SKIP LOCKED, so two
 * passes never take the same one) and sent to its actor with
 * expected_version = its armed version, in the same transaction: a timer
 * that lost a race to another event meets a version conflict and is
 * dropped silently, so it can never apply twice or to another state
 * instance.  Rows left behind by an older revision of a machine are dropped
 * the same way.
 *
 * Each timer fires as if in a subtransaction of its own, as the role that
 * armed it: one failing handler is logged with its actor and skipped (the
 * others of its batch share one subtransaction unless one fails: see
 * fire_timers), and a superuser running the pass never runs user code with
 * its own rights.
 * The code runs as a security-restricted operation (no temporary objects,
 * no LISTEN, no SET ROLE) and every setting it changes is undone after it,
 * as PostgreSQL does for index expressions run by VACUUM: the timer's
 * role can leave nothing behind in the session of the role that fired it.
 * The code is the machine's when the timer fires, so it runs only while
 * the roles that chose it may act as the armer (machine_authorize); only
 * the extension writes armed_by, as the role that sent.  In the worker,
 * machine.timer_timeout bounds each timer, so that one slow handler cannot
 * hold back every other timer of the database.
 *
 * This module is above send.c: it sends; timers.c, which arms timers on
 * transitions, is below it.
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
#include "utils/datum.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "machine.h"
#include "maintenance.h"
#include "registry.h"
#include "send.h"
#include "store_direct.h"
#include "store_timers.h"
#include "subtransaction.h"
#include "timers.h"

/* Timers that machine_fire_timers() claims at a time */
#define FIRE_TIMERS_BATCH 1000

/* machine.timer_timeout: the longest a timer's transition may take in the worker */
int			machine_timer_timeout = 10 * 1000;

void
maintenance_define_settings(void)
{
	DefineCustomIntVariable("machine.timer_timeout",
							"Sets the longest time a timer's transition may take in the background worker.",
							"A timer that takes longer is cancelled, logged and dropped; 0 means no limit.",
							&machine_timer_timeout,
							10 * 1000, 0, PG_INT32_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
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
	registry_timer_firing(true);
	timers_set_firing(timer);
	(void) actor_send(timer->actor_id, timer->event, timer->armed_version);
	timers_set_firing(NULL);
	registry_timer_firing(false);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Bound a timer's work in the worker, as statement_timeout bounds a
 * statement: no statement starts there, so nothing else would.  A backend
 * running machine_run_maintenance() has its own statement_timeout.
 */
static void
timer_timeout_start(void)
{
	if (IsBackgroundWorker && machine_timer_timeout > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, machine_timer_timeout);
}

static void
timer_timeout_stop(void)
{
	if (IsBackgroundWorker && machine_timer_timeout > 0)
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		/* one that expired after the work was done cancels nothing else */
		if (get_timeout_indicator(STATEMENT_TIMEOUT, true))
			QueryCancelPending = false;
	}
}

/* What warns that a timer was dropped for want of its armer's role */
static void
warn_role_gone(const DueTimer *timer)
{
	ereport(WARNING,
			(errmsg("timer of actor \"%s\" dropped: the role that armed it no longer exists",
					timer->actor_id)));
}

/* The outcome of a timer whose send raised "error"; logged if it failed */
static TimerOutcome
timer_error_outcome(const DueTimer *timer, ErrorData *error)
{
	if (stale_timer_error(error->sqlerrcode))
		return TIMER_DROPPED;
	ereport(WARNING,
			(errmsg("timer of actor \"%s\" failed: %s",
					timer->actor_id, error->message),
			 error->detail ? errdetail_internal("%s", error->detail) : 0,
			 errhint("The timer was dropped.")));
	return TIMER_FAILED;
}

/* Undo what an interrupted send_as_armer() left set */
static void
timer_send_cleanup(void)
{
	timers_set_firing(NULL);
	registry_timer_firing(false);
	timer_timeout_stop();
}

/* Fire one claimed timer, in a subtransaction of its own */
static TimerOutcome
fire_timer(TimerRef *ref)
{
	DueTimer	timer;
	ErrorData  *error;
	TimerOutcome outcome;

	if (!store_take_timer(ref, &timer))
		return TIMER_DROPPED;
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(timer.role)))
	{
		warn_role_gone(&timer);
		return TIMER_FAILED;
	}

	timer_timeout_start();
	error = in_subtransaction(send_as_armer, &timer);
	timer_send_cleanup();
	if (error == NULL)
		return TIMER_FIRED;
	outcome = timer_error_outcome(&timer, error);
	FreeErrorData(error);
	return outcome;
}

/*
 * A run of claimed timers fired in one subtransaction.  What a timer
 * leads to is known only once the run is kept, so the run records it and
 * the caller reports it then.
 */
typedef enum RunOutcome
{
	RUN_FIRED,
	RUN_TAKEN_ALREADY,			/* an earlier timer cancelled it */
	RUN_ROLE_GONE				/* its armer's role was dropped */
} RunOutcome;

typedef struct TimerRun
{
	TimerRef  **refs;			/* the claimed timers of the batch */
	int			start;			/* the run: refs[start .. end - 1] */
	int			end;
	int			current;		/* the timer being fired */
	RunOutcome *outcomes;
	DueTimer   *timers;
} TimerRun;

static void
fire_run(void *arg)
{
	TimerRun   *run = arg;

	for (run->current = run->start; run->current < run->end; run->current++)
	{
		DueTimer   *timer = &run->timers[run->current];

		if (!store_take_timer(run->refs[run->current], timer))
			run->outcomes[run->current] = RUN_TAKEN_ALREADY;
		else if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(timer->role)))
			run->outcomes[run->current] = RUN_ROLE_GONE;
		else
		{
			timer_timeout_start();
			send_as_armer(timer);
			timer_timeout_stop();
			run->outcomes[run->current] = RUN_FIRED;
		}
	}
}

static void
count_outcome(MaintenanceCounts *counts, TimerOutcome outcome)
{
	switch (outcome)
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

/* Count (and log) the outcomes of a run that was kept */
static void
report_run(TimerRun *run, MaintenanceCounts *counts)
{
	for (int i = run->start; i < run->end; i++)
		switch (run->outcomes[i])
		{
			case RUN_FIRED:
				counts->fired++;
				break;
			case RUN_TAKEN_ALREADY:
				counts->dropped++;
				break;
			case RUN_ROLE_GONE:
				warn_role_gone(&run->timers[i]);
				counts->failed++;
				break;
		}
}

/*
 * Fire timers refs[start .. end - 1] in one subtransaction; NULL when they
 * all went through, else the error, which undid the whole run, and in
 * *failed the timer that raised it.
 */
static ErrorData *
try_run(TimerRun *run, int start, int end, int *failed)
{
	ErrorData  *error;

	run->start = start;
	run->end = end;
	error = in_subtransaction(fire_run, run);
	if (error != NULL)
	{
		timer_send_cleanup();
		*failed = run->current;
	}
	return error;
}
typedef struct SpacedArgs
{
	int			limit;
	int			taken;
} SpacedArgs;

static void
spaced_snapshots_work(void *arg)
{
	SpacedArgs *a = arg;

	a->taken = store_take_spaced_snapshots(a->limit);
}

/* Spaced snapshots, in a subtransaction: a failure is logged, not raised */
static int
take_spaced_snapshots(int limit)
{
	SpacedArgs	a = {limit, 0};
	ErrorData  *error = in_subtransaction(spaced_snapshots_work, &a);

	if (error == NULL)
		return a.taken;
	ereport(WARNING,
			(errmsg("could not take spaced snapshots: %s", error->message),
			 error->detail ? errdetail_internal("%s", error->detail) : 0));
	FreeErrorData(error);
	return 0;
}

/* The loop of fire_timers(), over the n timers of "run" */
static void
fire_from(TimerRun *run, int n, MaintenanceCounts *counts)
{
	int			start = 0;

	while (start < n)
	{
		ErrorData  *error;
		ErrorData  *again;
		int			failed;
		int			ignored;
		DueTimer	timer;

		CHECK_FOR_INTERRUPTS();
		error = try_run(run, start, n, &failed);
		if (error == NULL)
		{
			report_run(run, counts);
			break;
		}

		again = NULL;
		if (failed > start)
		{
			again = try_run(run, start, failed, &ignored);
			if (again == NULL)
				report_run(run, counts);
			else
				for (int i = start; i < failed; i++)
				{
					CHECK_FOR_INTERRUPTS();
					count_outcome(counts, fire_timer(run->refs[i]));
				}
		}

		if (again != NULL)
		{
			/* the timers before it did not do the same twice: send again */
			FreeErrorData(again);
			count_outcome(counts, fire_timer(run->refs[failed]));
		}
		else if (!store_take_timer(run->refs[failed], &timer))
			counts->dropped++;
		else
			count_outcome(counts, timer_error_outcome(&timer, error));
		FreeErrorData(error);
		start = failed + 1;
	}
}

/*
 * Fire claimed timers (TimerRefs) in order, counting outcomes.
 *
 * Each timer must fire or fail on its own, which one subtransaction per
 * timer gives, but a subtransaction (and its transaction id, which every
 * row it writes carries) costs about as much as a tenth of the send.  So
 * the timers are fired optimistically, as many as remain in one
 * subtransaction.  When one raises an error, the run is undone: the timers
 * before it are fired again in one subtransaction (what they do does not
 * depend on the ones after them), the failing one is taken and its error
 * reported as if it had failed alone, and the rest start a new run.  A
 * timer before a failing one thus runs its transition twice, the first
 * time rolled back; if it fails the second time, the timers of that prefix
 * go one subtransaction each.
 */
static void
fire_timers(List *due, MaintenanceCounts *counts)
{
	int			n = list_length(due);
	TimerRun	run;

	if (n == 0)
		return;
	run.refs = palloc(sizeof(TimerRef *) * n);
	run.outcomes = palloc(sizeof(RunOutcome) * n);
	run.timers = palloc(sizeof(DueTimer) * n);
	for (int i = 0; i < n; i++)
		run.refs[i] = list_nth(due, i);

	/* the sends, takes and arms of the batch share their open tables */
	store_direct_begin_scope();
	PG_TRY();
	{
		fire_from(&run, n, counts);
	}
	PG_CATCH();
	{
		store_direct_end_scope();
		PG_RE_THROW();
	}
	PG_END_TRY();
	store_direct_end_scope();
	pfree(run.refs);
	pfree(run.outcomes);
	pfree(run.timers);
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
	int			snapshots;

	fire_timers(due, counts);
	snapshots = take_spaced_snapshots(max_items);
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

/*
 * machine_fire_timers(as_of timestamptz) RETURNS integer
 *
 * A test clock: in the caller's transaction, fire the timers that would be
 * due at as_of, as machine_run_maintenance() fires due ones (the timers of
 * roles whose privileges the caller has, each as its armer; a failing one
 * is logged and dropped), earliest first.  Timers armed by the timers it
 * fires wait for the next call.  Returns how many fired.
 */
PG_FUNCTION_INFO_V1(machine_fire_timers);
Datum
machine_fire_timers(PG_FUNCTION_ARGS)
{
	TimestampTz as_of;
	MaintenanceCounts counts = {0};
	int64		last_timer;
	int			claimed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of must not be NULL")));
	as_of = PG_GETARG_TIMESTAMPTZ(0);
	PreventCommandIfReadOnly("machine_fire_timers()");

	SPI_connect();
	last_timer = store_last_timer();
	do
	{
		List	   *due = store_claim_timers_at(as_of, last_timer,
												FIRE_TIMERS_BATCH);

		claimed = list_length(due);
		fire_timers(due, &counts);
		list_free_deep(due);
	} while (claimed >= FIRE_TIMERS_BATCH);
	SPI_finish();

	PG_RETURN_INT32(counts.fired);
}
