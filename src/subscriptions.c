/*-------------------------------------------------------------------------
 *
 * subscriptions.c
 *	  Durable subscriptions to the journal: machine_subscribe,
 *	  machine_unsubscribe, machine_poll, machine_ack, and the notification
 *	  that wakes consumers.
 *
 * Reading order.  Journal rows carry a position (a sequence, drawn when the
 * row is inserted) and a txid (the writing transaction's, or the actor's
 * previous row's when that is greater; see store_direct.c).  Positions
 * follow insertion, not commit, so "everything after the last position
 * read" would skip a row whose transaction commits late.  A poll reads in
 * (txid, position) order, only rows whose txid is below the xmin of its
 * snapshot: those transactions are over, so each such row is visible or
 * rolled back for good, and every row still to come has a txid at or above
 * that horizon, so it sorts after everything delivered.  A member's
 * checkpoint is the (txid, position) of the last row it acknowledged.
 *
 * Members.  With members > 1 each member reads the rows of the actors
 * whose machine_slice_of(actor_id) % members is its number, so one actor's
 * rows go to one member, in version order (an actor's txids never go
 * down).  The first poll fixes the number of members.
 *
 * Locking.  A poll locks its member's checkpoint row until the end of the
 * transaction: two consumers of one member take turns, and the second
 * reads after the first's acknowledgement.  A consumer that writes its
 * projection and acknowledges in the transaction of its poll sees each
 * row once.
 *
 * Rights.  A subscription belongs to the role that created it; polling,
 * acknowledging and dropping it take membership in that role.  A poll
 * delivers only the rows of machines the current role may read; the SQL
 * runs as the tables' owner, like store.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "registry.h"
#include "slice.h"
#include "store.h"
#include "subscriptions.h"

/* The channel that consumers LISTEN on; the payload is the machine type */
#define WAKE_CHANNEL "machine_journal"

/* Members of one subscription: as many as there are slices */
#define MAX_MEMBERS 1024
#define POLL_SLICES 1024

/* Journal rows a poll reads at a time */
#define POLL_CHUNK_MIN 100
#define POLL_CHUNK_MAX 10000

typedef struct SubQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[4];
	SPIPlanPtr	plan;
	int			options;		/* CURSOR_OPT_* for SPI_prepare_cursor */
} SubQuery;

static SubQuery subscribe_query = {
	"INSERT INTO machine.subscribers (name, machine_type, owner, start_txid) "
	"VALUES ($1, $2, $3, CASE WHEN $4 THEN '0'::pg_catalog.xid8 "
	"  ELSE pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) END) "
	"ON CONFLICT (name) DO NOTHING",
	4, {TEXTOID, TEXTOID, REGROLEOID, BOOLOID}
};

static SubQuery unsubscribe_query = {
	"DELETE FROM machine.subscribers WHERE name OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static SubQuery load_query = {
	"SELECT machine_type, owner::pg_catalog.oid, members "
	"FROM machine.subscribers WHERE name OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static SubQuery fix_members_query = {
	"UPDATE machine.subscribers SET members = $2 "
	"WHERE name OPERATOR(pg_catalog.=) $1 AND members IS NULL",
	2, {TEXTOID, INT4OID}
};

static SubQuery add_members_query = {
	"INSERT INTO machine.checkpoints (subscription, member, txid, position) "
	"SELECT s.name, g, s.start_txid, 0 FROM machine.subscribers s, "
	"  pg_catalog.generate_series(0, $2 OPERATOR(pg_catalog.-) 1) g "
	"WHERE s.name OPERATOR(pg_catalog.=) $1 "
	"ON CONFLICT DO NOTHING",
	2, {TEXTOID, INT4OID}
};

static SubQuery lock_member_query = {
	"SELECT txid, position, acked_at IS NOT NULL FROM machine.checkpoints "
	"WHERE subscription OPERATOR(pg_catalog.=) $1 "
	"AND member OPERATOR(pg_catalog.=) $2 FOR NO KEY UPDATE",
	2, {TEXTOID, INT4OID}
};

static SubQuery machines_query = {
	"SELECT name, owner::pg_catalog.oid, acl, machine_type FROM machine.machines "
	"WHERE $1 IS NULL OR machine_type OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

/*
 * The next journal rows after a point, below the horizon: the xmin of the
 * snapshot they are read with.  A poll reads them in chunks, each from
 * where the last one ended, and filters them itself (member, machine);
 * planned for each call's values, as an index range scan, never as a
 * read of the whole journal.
 */
static SubQuery chunk_query = {
	"SELECT e.txid, e.position, e.actor_id, e.version, e.event, "
	"       e.state_tag, e.recorded_at "
	"FROM machine.events e "
	"WHERE ROW(e.txid, e.position) OPERATOR(pg_catalog.>) ROW($1, $2) "
	"AND e.txid OPERATOR(pg_catalog.<) "
	"    pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) "
	"ORDER BY e.txid, e.position LIMIT $3",
	3, {XID8OID, INT8OID, INT8OID}, NULL, CURSOR_OPT_CUSTOM_PLAN
};

/* The chunk's column of each column a poll returns (but machine_type) */
static const int chunk_column[7] = {2, 3, 0, 4, 5, 6, 7};

/* The machines of a chunk's actors, among the machines a poll reads */
static SubQuery actors_query = {
	"SELECT actor_id, machine FROM machine.instances "
	"WHERE actor_id OPERATOR(pg_catalog.=) ANY ($1) "
	"AND machine OPERATOR(pg_catalog.=) ANY ($2)",
	2, {TEXTARRAYOID, TEXTARRAYOID}
};

/* The row an acknowledgement names, among those a poll could deliver */
static SubQuery find_query = {
	"SELECT e.txid, e.actor_id, i.machine "
	"FROM machine.events e "
	"LEFT JOIN machine.instances i ON i.actor_id OPERATOR(pg_catalog.=) e.actor_id "
	"WHERE ROW(e.txid, e.position) OPERATOR(pg_catalog.>) ROW($1, $2) "
	"AND e.txid OPERATOR(pg_catalog.<) "
	"    pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) "
	"AND e.position OPERATOR(pg_catalog.=) $3 "
	"ORDER BY e.txid, e.position LIMIT 1",
	3, {XID8OID, INT8OID, INT8OID}, NULL, CURSOR_OPT_CUSTOM_PLAN
};

static SubQuery ack_query = {
	"UPDATE machine.checkpoints "
	"SET txid = $3, position = $4, acked_at = pg_catalog.now() "
	"WHERE subscription OPERATOR(pg_catalog.=) $1 "
	"AND member OPERATOR(pg_catalog.=) $2",
	4, {TEXTOID, INT4OID, XID8OID, INT8OID}
};

static SubQuery any_subscriber_query = {
	"SELECT EXISTS (SELECT FROM machine.subscribers)",
	0, {InvalidOid}
};

/* Do sends wake consumers?  Asked again after machine.subscribers changes */
static enum
{
	WAKE_UNKNOWN,
	WAKE_NO,
	WAKE_YES
}			wake_state = WAKE_UNKNOWN;
static Oid	subscribers_relid = InvalidOid;

/* A subscription as stored */
typedef struct Subscription
{
	const char *name;
	char	   *machine_type;	/* NULL: all */
	Oid			owner;
	int			members;		/* 0: not fixed yet */
} Subscription;

/* A member's checkpoint */
typedef struct Cursor
{
	Datum		txid;
	int64		position;
	bool		acked;
} Cursor;

static SPIPlanPtr
sub_prepared(SubQuery *query)
{
	if (query->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(query->sql, query->nargs,
											  query->argtypes, query->options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		query->plan = plan;
	}
	return query->plan;
}

/* Run a query as the tables' owner */
static void
sub_run(SubQuery *query, Datum *values, const char *nulls, long count)
{
	AsOwner		saved;
	int			rc;

	store_become_owner(&saved);
	rc = SPI_execute_plan(sub_prepared(query), values, nulls, false, count);
	store_unbecome_owner(&saved);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
}

static Datum
sub_column(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

static const char *
role_name_of(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

static char *
name_argument(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subscription name must not be NULL")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/*
 * Load a subscription the current role may use (as a member of its
 * owner).  Caller is connected to SPI.
 */
static void
load_subscription(const char *name, Subscription *sub)
{
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Datum		d;

	sub_run(&load_query, values, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("subscription \"%s\" does not exist", name),
				 errhint("Create it with machine_subscribe(%s).",
						 quote_literal_cstr(name))));
	sub->name = name;
	d = sub_column(0, 1, &isnull);
	sub->machine_type = isnull ? NULL : TextDatumGetCString(d);
	sub->owner = DatumGetObjectId(sub_column(0, 2, &isnull));
	d = sub_column(0, 3, &isnull);
	sub->members = isnull ? 0 : DatumGetInt32(d);
	SPI_freetuptable(SPI_tuptable);

	if (!has_privs_of_role(GetUserId(), sub->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of subscription \"%s\"", name),
				 errdetail("Subscription \"%s\" belongs to role \"%s\".",
						   name, role_name_of(sub->owner)),
				 errhint("Poll, acknowledge or drop it as that role, or as one of its members.")));
}

static void
check_member(int member, int members)
{
	if (members < 1 || members > MAX_MEMBERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid number of members: %d", members),
				 errdetail("A subscription has from 1 to %d members.", MAX_MEMBERS)));
	if (member < 0 || member >= members)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid member %d of %d", member, members),
				 errdetail("Members are numbered from 0 to %d.", members - 1)));
}

/*
 * Fix the number of members at the first poll, and refuse another number
 * later: each member's checkpoint covers only its own actors.
 */
static void
settle_members(Subscription *sub, int members)
{
	if (sub->members == 0)
	{
		Datum		values[2] = {CStringGetTextDatum(sub->name), Int32GetDatum(members)};

		sub_run(&fix_members_query, values, NULL, 0);
		if (SPI_processed == 1)
		{
			sub_run(&add_members_query, values, NULL, 0);
			sub->members = members;
		}
		else
		{
			/* another first poll got there: take its number */
			load_subscription(sub->name, sub);
		}
	}
	if (sub->members != members)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_plural("subscription \"%s\" has %d member",
							   "subscription \"%s\" has %d members",
							   sub->members, sub->name, sub->members),
				 errdetail("Its first poll fixed the number of members; this call says %d.",
						   members),
				 errhint("Call it with members => %d, or drop the subscription and subscribe again.",
						 sub->members)));
}

/* Lock a member's checkpoint until the end of the transaction */
static void
lock_member(Subscription *sub, int member, Cursor *cursor)
{
	Datum		values[2] = {CStringGetTextDatum(sub->name), Int32GetDatum(member)};
	bool		isnull;

	sub_run(&lock_member_query, values, NULL, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("subscription \"%s\" does not exist", sub->name),
				 errdetail("It was dropped during the call.")));
	cursor->txid = sub_column(0, 1, &isnull);
	cursor->position = DatumGetInt64(sub_column(0, 2, &isnull));
	cursor->acked = DatumGetBool(sub_column(0, 3, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * The machines whose rows the subscription delivers to the current role:
 * of its type, and readable.  NULL when there are none.  With types, their
 * machine types, in the same order (in the caller's memory context).
 */
static ArrayType *
readable_machines(Subscription *sub, Datum **types)
{
	Datum		values[1];
	char		nulls[1] = {' '};
	Datum	   *names;
	int			n = 0;
	ArrayType  *result = NULL;

	if (sub->machine_type)
		values[0] = CStringGetTextDatum(sub->machine_type);
	else
		nulls[0] = 'n';
	sub_run(&machines_query, values, nulls, 0);
	names = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	if (types)
		*types = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		name = sub_column(i, 1, &isnull);
		Oid			owner = DatumGetObjectId(sub_column(i, 2, &isnull));
		Datum		acl = sub_column(i, 3, &isnull);

		if (machine_may_read(owner, isnull ? NULL : DatumGetAclP(acl)))
		{
			if (types)
				(*types)[n] = PointerGetDatum(DatumGetTextPCopy(sub_column(i, 4, &isnull)));
			names[n++] = PointerGetDatum(DatumGetTextPCopy(name));
		}
	}
	SPI_freetuptable(SPI_tuptable);
	if (n > 0)
		result = construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
	return result;
}

/* An actor of a chunk and its machine, by index in readable_machines() */
typedef struct ActorMachine
{
	char	   *actor_id;
	int			machine;
} ActorMachine;

static int
actor_machine_cmp(const void *a, const void *b)
{
	return strcmp(((const ActorMachine *) a)->actor_id,
				  ((const ActorMachine *) b)->actor_id);
}

/* The index of a machine among the n machines of names (text datums) */
static int
machine_index(Datum machine, Datum *names, int n)
{
	text	   *m = DatumGetTextPP(machine);

	for (int i = 0; i < n; i++)
	{
		text	   *name = DatumGetTextPP(names[i]);

		if (VARSIZE_ANY_EXHDR(name) == VARSIZE_ANY_EXHDR(m) &&
			memcmp(VARDATA_ANY(name), VARDATA_ANY(m), VARSIZE_ANY_EXHDR(m)) == 0)
			return i;
	}
	return -1;
}

/*
 * The machines of the actors of a chunk's rows (ids: text datums), sorted
 * by actor id; actors of other machines, or gone, are left out.  Caller is
 * connected to SPI and acts as the tables' owner.
 */
static ActorMachine *
chunk_actors(Datum *ids, int nids, ArrayType *machines, Datum *names,
			 int nnames, int *nfound)
{
	Datum		values[2] = {
		PointerGetDatum(construct_array(ids, nids, TEXTOID, -1, false, TYPALIGN_INT)),
		PointerGetDatum(machines),
	};
	ActorMachine *found;
	int			rc;

	rc = SPI_execute_plan(sub_prepared(&actors_query), values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	found = palloc(sizeof(ActorMachine) * Max(SPI_processed, 1));
	*nfound = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			m = machine_index(sub_column(i, 2, &isnull), names, nnames);

		if (m < 0)
			continue;
		found[*nfound].actor_id = TextDatumGetCString(sub_column(i, 1, &isnull));
		found[*nfound].machine = m;
		(*nfound)++;
	}
	SPI_freetuptable(SPI_tuptable);
	qsort(found, *nfound, sizeof(ActorMachine), actor_machine_cmp);
	return found;
}

/* Is an actor's row for this member? */
static bool
member_of(Datum actor_id, int member, int members)
{
	text	   *id;

	if (members == 1)
		return true;
	id = DatumGetTextPP(actor_id);
	return machine_slice((const unsigned char *) VARDATA_ANY(id),
						 VARSIZE_ANY_EXHDR(id), POLL_SLICES) % members == member;
}

static bool
array_has_text(ArrayType *array, const char *s)
{
	Datum	   *elems;
	int			n;

	if (array == NULL)
		return false;
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
	for (int i = 0; i < n; i++)
		if (strcmp(TextDatumGetCString(elems[i]), s) == 0)
			return true;
	return false;
}

/*
 * machine_subscribe(name text, machine_type text DEFAULT NULL,
 *					 from_start boolean DEFAULT true) RETURNS void
 *
 * A durable subscription owned by the current role.  From the start, its
 * members read the whole journal; otherwise the rows not yet below the
 * horizon when it was created, and every later one.
 */
PG_FUNCTION_INFO_V1(machine_subscribe);
Datum
machine_subscribe(PG_FUNCTION_ARGS)
{
	char	   *name = name_argument(fcinfo);
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_start must not be NULL")));
	if (strlen(name) == 0 || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid subscription name \"%s\"", name),
				 errdetail("A subscription name has from 1 to %d bytes.",
						   NAMEDATALEN - 1)));
	PreventCommandIfReadOnly("machine_subscribe()");

	values[0] = CStringGetTextDatum(name);
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
		values[1] = PG_GETARG_DATUM(1);
	values[2] = ObjectIdGetDatum(GetUserId());
	values[3] = PG_GETARG_DATUM(2);

	SPI_connect();
	sub_run(&subscribe_query, values, nulls, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("subscription \"%s\" already exists", name),
				 errhint("Choose another name, or drop it first with machine_unsubscribe(%s).",
						 quote_literal_cstr(name))));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * machine_unsubscribe(name text) RETURNS boolean
 *
 * Drop a subscription and its members' checkpoints; false when there is
 * none of that name.
 */
PG_FUNCTION_INFO_V1(machine_unsubscribe);
Datum
machine_unsubscribe(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		values[1] = {CStringGetTextDatum(name)};
	Subscription sub;
	bool		dropped;

	PreventCommandIfReadOnly("machine_unsubscribe()");
	SPI_connect();
	sub_run(&load_query, values, NULL, 1);
	dropped = SPI_processed == 1;
	if (dropped)
	{
		load_subscription(name, &sub);
		sub_run(&unsubscribe_query, values, NULL, 0);
		dropped = SPI_processed == 1;
	}
	SPI_finish();
	PG_RETURN_BOOL(dropped);
}

/*
 * machine_poll(name text, max integer DEFAULT 100, member integer DEFAULT 0,
 *				members integer DEFAULT 1)
 * RETURNS TABLE(position bigint, actor_id text, machine_type text,
 *				 version bigint, event jsonb, state_tag text,
 *				 recorded_at timestamptz)
 *
 * Up to max journal rows after the member's checkpoint, committed and
 * below the horizon, in (txid, position) order.  The rows are read through
 * a cursor and handed over in a tuplestore, so a large max needs no more
 * memory than work_mem.
 */
PG_FUNCTION_INFO_V1(machine_poll);
Datum
machine_poll(PG_FUNCTION_ARGS)
{
	char	   *name = name_argument(fcinfo);
	int			max;
	int			member;
	int			members;
	Subscription sub;
	Cursor		cursor;
	ArrayType  *machines;
	Datum	   *types;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	for (int i = 1; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL",
							i == 1 ? "max" : i == 2 ? "member" : "members")));
	max = PG_GETARG_INT32(1);
	member = PG_GETARG_INT32(2);
	members = PG_GETARG_INT32(3);
	if (max < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid max: %d", max),
				 errdetail("A poll returns at least one row when there is one.")));
	check_member(member, members);
	PreventCommandIfReadOnly("machine_poll()");

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	load_subscription(name, &sub);
	settle_members(&sub, members);
	lock_member(&sub, member, &cursor);
	machines = readable_machines(&sub, &types);
	if (machines != NULL)
	{
		Datum		scan_txid = cursor.txid;
		int64		scan_position = cursor.position;
		AsOwner		saved;
		int			delivered = 0;
		Datum	   *names;
		int			nnames;
		MemoryContext chunk_context;
		MemoryContext old;

		deconstruct_array(machines, TEXTOID, -1, false, TYPALIGN_INT,
						  &names, NULL, &nnames);
		chunk_context = AllocSetContextCreate(CurrentMemoryContext,
											  "machine_poll chunk",
											  ALLOCSET_DEFAULT_SIZES);
		store_become_owner(&saved);
		while (delivered < max)
		{
			int64		want = (int64) (max - delivered) * members;
			Datum		values[3] = {scan_txid, Int64GetDatum(scan_position),
			Int64GetDatum(Min(Max(want, POLL_CHUNK_MIN), POLL_CHUNK_MAX))};
			SPITupleTable *chunk;
			uint64		nrows;
			Datum	   *ids;
			bool	   *mine;
			int			nids = 0;
			ActorMachine *actors = NULL;
			int			nactors = 0;
			int			rc;
			bool		isnull;

			CHECK_FOR_INTERRUPTS();
			rc = SPI_execute_plan(sub_prepared(&chunk_query), values, NULL,
								  false, 0);
			if (rc < 0)
				elog(ERROR, "SPI_execute_plan failed: %s",
					 SPI_result_code_string(rc));
			chunk = SPI_tuptable;
			nrows = SPI_processed;
			if (nrows == 0)
				break;

			old = MemoryContextSwitchTo(chunk_context);
			ids = palloc(sizeof(Datum) * nrows);
			mine = palloc(sizeof(bool) * nrows);
			for (uint64 i = 0; i < nrows; i++)
			{
				Datum		id = SPI_getbinval(chunk->vals[i], chunk->tupdesc, 3,
											   &isnull);

				mine[i] = member_of(id, member, members);
				if (mine[i])
					ids[nids++] = id;
			}
			if (nids > 0)
				actors = chunk_actors(ids, nids, machines, names, nnames, &nactors);

			for (uint64 i = 0; i < nrows && delivered < max; i++)
			{
				Datum		row[7];
				bool		nulls[7];
				ActorMachine key;
				ActorMachine *a;

				scan_txid = SPI_getbinval(chunk->vals[i], chunk->tupdesc, 1, &isnull);
				scan_position = DatumGetInt64(SPI_getbinval(chunk->vals[i],
															chunk->tupdesc, 2, &isnull));
				if (!mine[i])
					continue;
				for (int c = 0; c < 7; c++)
					if (c != 2)
						row[c] = SPI_getbinval(chunk->vals[i], chunk->tupdesc,
											   chunk_column[c], &nulls[c]);
				key.actor_id = TextDatumGetCString(row[1]);
				a = bsearch(&key, actors, nactors, sizeof(ActorMachine),
							actor_machine_cmp);
				if (a == NULL)
					continue;
				row[2] = types[a->machine];
				nulls[2] = false;
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
									 row, nulls);
				delivered++;
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(chunk_context);
			SPI_freetuptable(chunk);
			if (nrows < DatumGetInt64(values[2]))
				break;			/* the chunk reached the horizon */
		}
		store_unbecome_owner(&saved);
		MemoryContextDelete(chunk_context);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * machine_ack(name text, position bigint, member integer DEFAULT 0)
 * RETURNS void
 *
 * Move the member's checkpoint to the row at that position, which a poll
 * of this member could have returned: the next poll starts after it.
 * Acknowledging the checkpoint itself again changes nothing.
 */
PG_FUNCTION_INFO_V1(machine_ack);
Datum
machine_ack(PG_FUNCTION_ARGS)
{
	char	   *name = name_argument(fcinfo);
	int64		position;
	int			member;
	Subscription sub;
	Cursor		cursor;
	bool		found = false;
	Datum		txid = (Datum) 0;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", PG_ARGISNULL(1) ? "position" : "member")));
	position = PG_GETARG_INT64(1);
	member = PG_GETARG_INT32(2);
	PreventCommandIfReadOnly("machine_ack()");

	SPI_connect();
	load_subscription(name, &sub);
	check_member(member, Max(sub.members, 1));
	if (sub.members > 0)
	{
		lock_member(&sub, member, &cursor);
		if (cursor.acked && cursor.position == position)
		{
			SPI_finish();
			PG_RETURN_VOID();
		}
		else
		{
			Datum		values[3] = {cursor.txid, Int64GetDatum(cursor.position),
			Int64GetDatum(position)};

			sub_run(&find_query, values, NULL, 1);
			if (SPI_processed == 1)
			{
				bool		isnull;
				Datum		actor_id;
				Datum		machine;
				bool		no_machine;

				txid = sub_column(0, 1, &isnull);
				actor_id = sub_column(0, 2, &isnull);
				machine = sub_column(0, 3, &no_machine);
				found = !no_machine &&
					member_of(actor_id, member, sub.members) &&
					array_has_text(readable_machines(&sub, NULL),
								   TextDatumGetCString(machine));
			}
		}
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("position " INT64_FORMAT " was not delivered to member %d of subscription \"%s\"",
						position, member, name),
				 errdetail("No journal row that a poll of this member could return next has that position."),
				 errhint("Acknowledge a position that machine_poll returned to this member, in the transaction that polled it or later.")));
	{
		Datum		values[4] = {CStringGetTextDatum(name), Int32GetDatum(member),
		txid, Int64GetDatum(position)};

		sub_run(&ack_query, values, NULL, 0);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Wake the consumers after a journal row is written, when there are
 * subscriptions at all: a NOTIFY on WAKE_CHANNEL with the machine type,
 * sent at commit, once per transaction and type.  Caller is connected to
 * SPI.
 */
void
subscriptions_wake(const char *machine_type)
{
	if (wake_state == WAKE_UNKNOWN)
	{
		Oid			nsp = get_namespace_oid("machine", true);
		bool		any = false;

		subscribers_relid = OidIsValid(nsp) ?
			get_relname_relid("subscribers", nsp) : InvalidOid;
		if (OidIsValid(subscribers_relid))
		{
			bool		isnull;

			sub_run(&any_subscriber_query, NULL, NULL, 1);
			any = DatumGetBool(sub_column(0, 1, &isnull));
			SPI_freetuptable(SPI_tuptable);
		}
		wake_state = any ? WAKE_YES : WAKE_NO;
	}
	if (wake_state == WAKE_YES)
		Async_Notify(WAKE_CHANNEL, machine_type);
}

/*
 * A change of machine.subscribers (or, before the table is known, of any
 * relation: the extension may be updated to a version that has it).
 */
static void
subscriptions_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == subscribers_relid ||
		!OidIsValid(subscribers_relid))
		wake_state = WAKE_UNKNOWN;
}

void
subscriptions_init(void)
{
	CacheRegisterRelcacheCallback(subscriptions_relcache_callback, (Datum) 0);
}

/*
 * machine.subscribers_changed() RETURNS trigger
 *
 * AFTER statement trigger of machine.subscribers: every session asks again
 * whether its sends must wake consumers.
 */
PG_FUNCTION_INFO_V1(machine_subscribers_changed);
Datum
machine_subscribers_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "machine.subscribers_changed() must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}
