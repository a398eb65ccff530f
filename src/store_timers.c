/*-------------------------------------------------------------------------
 *
 * store_timers.c
 *	  The storage of the maintenance work: durable timers (machine.timers)
 *	  and the actors due for a spaced snapshot (machine.snapshots_due), with
 *	  their "memory" twins.
 *
 * Arming, moving and cancelling timers happen on the send path; claiming
 * and taking them, and taking spaced snapshots, in the maintenance pass.
 * The SQL runs as store.c runs it (store_spi.h); arming and taking go
 * through the table access method while the tables are as installed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "machine.h"
#include "definition.h"
#include "store.h"
#include "store_direct.h"
#include "store_spi.h"
#include "store_timers.h"

static SavedQuery arm_timer_query = {
	"INSERT INTO machine.timers "
	"(actor_id, armed_version, seq, state_tag, event, due_at, armed_by) "
	"VALUES ($1, $2, $3, $4, $5, "
	"pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) $6, $7)",
	7, {TEXTOID, INT8OID, INT4OID, TEXTOID, JSONBOID, INTERVALOID, REGROLEOID}
};

static SavedQuery cancel_timers_query = {
	"DELETE FROM machine.timers WHERE actor_id OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static SavedQuery move_timers_query = {
	"UPDATE machine.timers SET armed_version = $2 "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1",
	2, {TEXTOID, INT8OID}
};

/*
 * Due timers, soonest first, skipping rows another pass holds.  Only those
 * armed by a role whose privileges the caller has: a timer runs code as the
 * role that armed it, in the caller's session (its search_path, its
 * temporary objects), so a pass must never run code as a role the caller
 * could not act as anyway.  Superusers (and the worker) take every timer.
 * The time is a parameter, not clock_timestamp(), which is volatile: the
 * index on due_at serves only a comparison with a value fixed for the scan.
 */
static SavedQuery due_timers_query = {
	"SELECT timer_id, ctid FROM machine.timers "
	"WHERE due_at OPERATOR(pg_catalog.<=) $3 "
	"AND pg_catalog.pg_has_role($2, armed_by::pg_catalog.oid, 'USAGE') "
	"ORDER BY due_at, timer_id LIMIT $1 FOR UPDATE SKIP LOCKED",
	3, {INT4OID, OIDOID, TIMESTAMPTZOID}
};

/*
 * The same for a test clock: timers that are due at $3 and were armed
 * before the clock was moved (timer_id up to $4).
 */
static SavedQuery due_timers_at_query = {
	"SELECT timer_id, ctid FROM machine.timers "
	"WHERE due_at OPERATOR(pg_catalog.<=) $3 "
	"AND timer_id OPERATOR(pg_catalog.<=) $4 "
	"AND pg_catalog.pg_has_role($2, armed_by::pg_catalog.oid, 'USAGE') "
	"ORDER BY due_at, timer_id LIMIT $1 FOR UPDATE SKIP LOCKED",
	4, {INT4OID, OIDOID, TIMESTAMPTZOID, INT8OID}
};

/* Every kind of timers table draws its ids from this sequence */
static SavedQuery last_timer_query = {
	"SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
	"FROM machine.timers_timer_id_seq",
	0, {InvalidOid}
};

/*
 * Take a claimed timer out of the table just before it fires: its armed
 * version as it is now (an earlier timer of the batch may have moved it),
 * or nothing when an earlier one cancelled it.
 */
static SavedQuery take_timer_query = {
	"DELETE FROM machine.timers WHERE timer_id OPERATOR(pg_catalog.=) $1 "
	"RETURNING actor_id, armed_version, event, armed_by::pg_catalog.oid",
	1, {INT8OID}
};

/*
 * Spaced snapshots.  A send to an actor of a machine with a spacing lists
 * the actor in machine.snapshots_due, due when its latest snapshot is as
 * old as the spacing, so that a pass reads only the actors due and not
 * every actor.  The row stays while the actor moves on: its next snapshot
 * is the one it is due for.
 */
static SavedQuery mark_snapshot_due_query = {
	"INSERT INTO machine.snapshots_due (actor_id, due_at) "
	"SELECT $1, GREATEST(pg_catalog.now(), "
	"       (SELECT s.taken_at FROM machine.snapshots s "
	"         WHERE s.actor_id OPERATOR(pg_catalog.=) $1 "
	"         ORDER BY s.version DESC LIMIT 1) OPERATOR(pg_catalog.+) $2) "
	"ON CONFLICT (actor_id) DO NOTHING",
	2, {TEXTOID, INTERVALOID}
};

/*
 * A machine that gets a spacing lists every actor of it that moved past
 * its latest snapshot, due now.
 */
static SavedQuery mark_machine_due_query = {
	"INSERT INTO machine.snapshots_due (actor_id, due_at) "
	"SELECT i.actor_id, pg_catalog.now() FROM machine.instances i "
	"WHERE i.machine OPERATOR(pg_catalog.=) $1 "
	"AND i.status OPERATOR(pg_catalog.<>) 'stopped' "
	"AND i.version OPERATOR(pg_catalog.>) 0 "
	"AND NOT EXISTS (SELECT FROM machine.snapshots s "
	"    WHERE s.actor_id OPERATOR(pg_catalog.=) i.actor_id "
	"    AND s.version OPERATOR(pg_catalog.>=) i.version) "
	"ON CONFLICT (actor_id) DO NOTHING",
	1, {TEXTOID}
};

/*
 * Take the snapshots that are due: each listed actor that is running, still
 * of a machine with a spacing, and past its latest snapshot.  Actors in the
 * middle of a send are skipped and stay listed: the send commits a newer
 * version, which the next pass takes.  The others leave the list, and so
 * do actors that no longer exist.  (= ANY over the locked actors, not a
 * correlated EXISTS: inside an OR only the former is hashed, the latter
 * rescans them for every listed row.)
 */
static SavedQuery spaced_snapshots_query = {
	"WITH due AS (SELECT d.actor_id FROM machine.snapshots_due d "
	"             WHERE d.due_at OPERATOR(pg_catalog.<=) $2 "
	"             ORDER BY d.due_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED), "
	"actor AS (SELECT i.actor_id, i.machine, i.status, i.version, i.state, i.state_tag "
	"          FROM machine.instances i JOIN due "
	"            ON due.actor_id OPERATOR(pg_catalog.=) i.actor_id "
	"          FOR SHARE OF i SKIP LOCKED), "
	"done AS (DELETE FROM machine.snapshots_due d USING due "
	"         WHERE d.actor_id OPERATOR(pg_catalog.=) due.actor_id "
	"         AND (d.actor_id OPERATOR(pg_catalog.=) ANY (SELECT a.actor_id FROM actor a) "
	"              OR NOT EXISTS (SELECT FROM machine.instances i "
	"                  WHERE i.actor_id OPERATOR(pg_catalog.=) d.actor_id))) "
	"INSERT INTO machine.snapshots (actor_id, version, state, state_tag) "
	"SELECT a.actor_id, a.version, a.state, a.state_tag FROM actor a "
	"JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) a.machine "
	"WHERE m.snapshot_spacing IS NOT NULL "
	"AND a.status OPERATOR(pg_catalog.<>) 'stopped' "
	"AND a.version OPERATOR(pg_catalog.>) 0 "
	"AND NOT EXISTS (SELECT FROM machine.snapshots s "
	"    WHERE s.actor_id OPERATOR(pg_catalog.=) a.actor_id "
	"    AND s.version OPERATOR(pg_catalog.>=) a.version) "
	"ON CONFLICT DO NOTHING",
	2, {INT4OID, TIMESTAMPTZOID}
};

/*
 * Is any listed actor due?  The query that takes the snapshots joins five
 * tables and is planned afresh for each pass (a generic plan would scan
 * whole tables once rows are due), which costs more than a pass with
 * nothing due should: this probe of the index on due_at comes first.
 */
static SavedQuery any_snapshot_due_query = {
	"SELECT FROM machine.snapshots_due "
	"WHERE due_at OPERATOR(pg_catalog.<=) $1 LIMIT 1",
	1, {TIMESTAMPTZOID}
};

/*
 * The same for a schema of 1.0, which has no list: running actors of
 * machines with a spacing whose version moved past their latest snapshot,
 * and whose latest snapshot (if any) is older than the spacing.  A spacing
 * longer than any a definition accepts (a row edited by hand) is read as
 * that longest one, so it cannot take the date out of range.
 */
static SavedQuery spaced_snapshots_1_0_query = {
	"WITH due AS (SELECT i.actor_id, i.version, i.state, i.state_tag "
	"             FROM machine.instances i "
	"             JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine "
	"             WHERE m.snapshot_spacing IS NOT NULL "
	"             AND i.status OPERATOR(pg_catalog.<>) 'stopped' "
	"             AND i.version OPERATOR(pg_catalog.>) 0 "
	"             AND NOT EXISTS (SELECT FROM machine.snapshots s "
	"                 WHERE s.actor_id OPERATOR(pg_catalog.=) i.actor_id "
	"                 AND (s.version OPERATOR(pg_catalog.>=) i.version "
	"                      OR s.taken_at OPERATOR(pg_catalog.>) "
	"                         (pg_catalog.now() OPERATOR(pg_catalog.-) "
	"                          LEAST(m.snapshot_spacing, '" MD_MAX_INTERVAL_TEXT "'::pg_catalog.interval)))) "
	"             LIMIT $1 FOR SHARE OF i SKIP LOCKED) "
	"INSERT INTO machine.snapshots (actor_id, version, state, state_tag) "
	"SELECT actor_id, version, state, state_tag FROM due "
	"ON CONFLICT DO NOTHING",
	1, {INT4OID}
};

/* Arm a timer of the actor's state entered at "version" */
void
store_arm_timer(StoreKind kind, const char *actor_id, int64 version, int seq,
				const char *tag, Jsonb *event, int64 delay_us, Oid role)
{
	Datum		values[7] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(version),
		Int32GetDatum(seq),
		CStringGetTextDatum(tag),
		JsonbPGetDatum(event),
		IntervalPGetDatum(store_interval(delay_us)),
		ObjectIdGetDatum(role),
	};

	if (store_direct_usable(kind, DIRECT_TIMERS))
		store_direct_arm_timer(kind, actor_id, version, seq, tag, event,
							   delay_us, role);
	else
		store_run_in(kind, &arm_timer_query, values, 0);
}

void
store_cancel_timers(StoreKind kind, const char *actor_id)
{
	Datum		values[1];

	if (store_direct_usable(kind, DIRECT_TIMERS) &&
		store_direct_cancel_timers(kind, actor_id))
		return;
	values[0] = CStringGetTextDatum(actor_id);
	store_run_in(kind, &cancel_timers_query, values, 0);
}

/* The actor's timers keep running into a new version of the same state */
void
store_move_timers(StoreKind kind, const char *actor_id, int64 version)
{
	Datum		values[2];

	if (store_direct_usable(kind, DIRECT_TIMERS) &&
		store_direct_move_timers(kind, actor_id, version))
		return;
	values[0] = CStringGetTextDatum(actor_id);
	values[1] = Int64GetDatum(version);
	store_run_in(kind, &move_timers_query, values, 0);
}

/* A TimerRef for row "row" of a claim's result */
static void
claimed_timer(TimerRef *ref, StoreKind kind, int row)
{
	bool		isnull;
	Datum		tid = store_column(row, 2, &isnull);

	ref->kind = kind;
	ref->timer_id = store_int8_column(row, 1);
	ItemPointerCopy((ItemPointer) DatumGetPointer(tid), &ref->tid);
}

/*
 * Lock up to "limit" due timers for this transaction, soonest first in
 * each kind of tables; a list of TimerRefs for store_take_timer().
 */
List *
store_claim_timers(int limit)
{
	TimestampTz now = GetCurrentTimestamp();
	List	   *result = NIL;

	for (int kind = 0; kind < store_kinds() && list_length(result) < limit; kind++)
	{
		Datum		values[3] = {
			Int32GetDatum(limit - list_length(result)),
			ObjectIdGetDatum(GetUserId()),
			TimestampTzGetDatum(now)
		};

		if (store_direct_usable((StoreKind) kind, DIRECT_TIMERS) &&
			store_direct_claim_timers((StoreKind) kind, now, -1, GetUserId(),
									  limit - list_length(result), &result) >= 0)
			continue;
		store_run_in((StoreKind) kind, &due_timers_query, values, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			TimerRef   *ref = palloc(sizeof(TimerRef));

			claimed_timer(ref, (StoreKind) kind, i);
			result = lappend(result, ref);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	return result;
}

/* The greatest timer_id armed so far; 0 when there is no timer */
int64
store_last_timer(void)
{
	bool		isnull;
	Datum		d;

	store_run(&last_timer_query, NULL, 1);
	d = store_column(0, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Claim, as store_claim_timers() does, up to "limit" timers of the roles
 * the current user has that are due at "as_of", among those armed up to
 * last_timer.
 */
List *
store_claim_timers_at(TimestampTz as_of, int64 last_timer, int limit)
{
	List	   *result = NIL;

	for (int kind = 0; kind < store_kinds() && list_length(result) < limit; kind++)
	{
		Datum		values[4] = {
			Int32GetDatum(limit - list_length(result)),
			ObjectIdGetDatum(GetUserId()),
			TimestampTzGetDatum(as_of),
			Int64GetDatum(last_timer)
		};

		if (store_direct_usable((StoreKind) kind, DIRECT_TIMERS) &&
			store_direct_claim_timers((StoreKind) kind, as_of, last_timer,
									  GetUserId(), limit - list_length(result),
									  &result) >= 0)
			continue;
		store_run_in((StoreKind) kind, &due_timers_at_query, values, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			TimerRef   *ref = palloc(sizeof(TimerRef));

			claimed_timer(ref, (StoreKind) kind, i);
			result = lappend(result, ref);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	return result;
}

/* Delete a claimed timer and return it; false when it is gone already */
bool
store_take_timer(TimerRef *ref, DueTimer *timer)
{
	Datum		values[1] = {Int64GetDatum(ref->timer_id)};
	bool		isnull;

	if (store_direct_usable(ref->kind, DIRECT_TIMERS))
		return store_direct_take_timer(ref->kind, ref->timer_id, &ref->tid,
									   timer);
	store_run_in(ref->kind, &take_timer_query, values, 1);
	if (SPI_processed == 0)
		return false;
	timer->actor_id = store_text_column(0, 1);
	timer->armed_version = store_int8_column(0, 2);
	timer->event = store_jsonb_column(0, 3);
	timer->role = DatumGetObjectId(store_column(0, 4, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/*
 * List an actor the caller locked as due for a spaced snapshot, unless it
 * is listed.  It stays listed from its first send past a snapshot to the
 * pass that takes the next one, so most sends find it listed: a probe of
 * the list's key answers them without running the INSERT.
 */
void
store_mark_snapshot_due(StoreKind kind, const char *actor_id, int64 spacing_us)
{
	Datum		values[2];

	if (!store_snapshots_listed() ||
		store_direct_snapshot_listed(kind, actor_id))
		return;
	values[0] = CStringGetTextDatum(actor_id);
	values[1] = IntervalPGetDatum(store_interval(spacing_us));
	store_run_in(kind, &mark_snapshot_due_query, values, 0);
}

/* List every actor of a machine that moved past its latest snapshot */
void
store_mark_machine_due(const char *machine)
{
	Datum		values[1] = {CStringGetTextDatum(machine)};

	if (!store_snapshots_listed())
		return;
	for (int kind = 0; kind < store_kinds(); kind++)
		store_run_in((StoreKind) kind, &mark_machine_due_query, values, 0);
}

/* Take up to "limit" spaced snapshots; returns how many */
int
store_take_spaced_snapshots(int limit)
{
	TimestampTz now = GetCurrentTimestamp();
	int			taken = 0;

	for (int kind = 0; kind < store_kinds() && taken < limit; kind++)
	{
		Datum		values[2] = {Int32GetDatum(limit - taken),
		TimestampTzGetDatum(now)};

		if (!store_snapshots_listed())
			store_run_in((StoreKind) kind, &spaced_snapshots_1_0_query, values, 0);
		else
		{
			bool		any;

			store_run_in((StoreKind) kind, &any_snapshot_due_query, &values[1], 1);
			any = SPI_processed > 0;
			SPI_freetuptable(SPI_tuptable);
			if (!any)
				continue;
			store_run_in((StoreKind) kind, &spaced_snapshots_query, values, 0);
		}
		taken += (int) SPI_processed;
	}
	return taken;
}
