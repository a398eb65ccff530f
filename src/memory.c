/*-------------------------------------------------------------------------
 *
 * memory.c
 *	  The rows of the "memory" adapter's UNLOGGED tables that the views
 *	  machine.actors and machine.pending_timers show.
 *
 * The views cannot name the UNLOGGED tables themselves: a standby refuses
 * to plan any query that touches one, and the views must keep working
 * there.  So they call these functions, which return nothing during
 * recovery (the tables are empty on a standby anyway) and otherwise read
 * the tables as their owner, as the views read the built-in tables.  Like
 * the views, they return only the rows of the machines the calling role may
 * read: the filter is written out for the caller's role, since the query
 * itself runs as the tables' owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "store.h"

/* may_read(m.owner, m.acl) for the role $1 */
#define MAY_READ \
	"(pg_catalog.pg_has_role($1, m.owner::pg_catalog.oid, 'USAGE') " \
	" OR EXISTS (SELECT FROM pg_catalog.aclexplode(m.acl) a " \
	"    WHERE a.privilege_type OPERATOR(pg_catalog.=) ANY ('{SELECT,UPDATE,CREATE}'::text[]) " \
	"    AND (a.grantee OPERATOR(pg_catalog.=) 0 " \
	"         OR pg_catalog.pg_has_role($1, a.grantee, 'USAGE'))))"

static const char *const memory_actors_sql =
"SELECT i.actor_id, i.machine, m.machine_type, i.created_at, "
"       i.last_activity_at, i.version, i.state_tag, i.status, "
"       (SELECT pg_catalog.max(s.version) FROM machine.memory_snapshots s "
"         WHERE s.actor_id OPERATOR(pg_catalog.=) i.actor_id) "
"FROM machine.memory_instances i "
"JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine "
"WHERE " MAY_READ;

static const char *const memory_timers_sql =
"SELECT t.actor_id, i.machine, t.state_tag, t.event, t.due_at, "
"       t.armed_version, t.armed_by "
"FROM machine.memory_timers t "
"JOIN machine.memory_instances i ON i.actor_id OPERATOR(pg_catalog.=) t.actor_id "
"JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine "
"WHERE " MAY_READ;

/*
 * Run a query for the calling role, as the tables' owner, into the
 * function's result, a batch of rows at a time.
 */
static void
memory_rows(FunctionCallInfo fcinfo, const char *sql)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(GetUserId())};
	SPIPlanPtr	plan;
	Portal		portal;
	AsOwner		saved;

	InitMaterializedSRF(fcinfo, 0);
	if (RecoveryInProgress())
		return;

	SPI_connect();
	store_become_owner(&saved);
	plan = SPI_prepare(sql, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, values, NULL, true);
	store_unbecome_owner(&saved);
	for (;;)
	{
		store_become_owner(&saved);
		SPI_cursor_fetch(portal, true, 1000);
		store_unbecome_owner(&saved);
		if (SPI_processed == 0)
			break;
		if (SPI_tuptable->tupdesc->natts != rsinfo->setDesc->natts)
			elog(ERROR, "memory rows have %d columns, the result %d",
				 SPI_tuptable->tupdesc->natts, rsinfo->setDesc->natts);
		for (uint64 i = 0; i < SPI_processed; i++)
			tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

/*
 * machine.memory_actors() RETURNS TABLE(id text, machine text,
 *		machine_type text, created_at timestamptz,
 *		last_activity_at timestamptz, version bigint, state_tag text,
 *		status text, snapshot_version bigint)
 *
 * The actors of the "memory" adapter the calling role may read.
 */
PG_FUNCTION_INFO_V1(machine_memory_actors);
Datum
machine_memory_actors(PG_FUNCTION_ARGS)
{
	memory_rows(fcinfo, memory_actors_sql);
	return (Datum) 0;
}

/*
 * machine.memory_pending_timers() RETURNS TABLE(actor_id text, machine text,
 *		state_tag text, event jsonb, due_at timestamptz,
 *		armed_version bigint, armed_by regrole)
 *
 * The pending timers of actors of the "memory" adapter the calling role
 * may read.
 */
PG_FUNCTION_INFO_V1(machine_memory_pending_timers);
Datum
machine_memory_pending_timers(PG_FUNCTION_ARGS)
{
	memory_rows(fcinfo, memory_timers_sql);
	return (Datum) 0;
}
