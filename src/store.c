/*-------------------------------------------------------------------------
 *
 * store.c
 *	  The actors' rows, journals, snapshots and postponed events, in SQL,
 *	  and how every module of the store runs its SQL (store_spi.h).
 *
 * The tables (see sql/machine--1.0.sql):
 *	 machine.machines	one row per machine: its latest definition
 *	 machine.revisions	every revision of every machine (both in
 *						store_machines.c)
 *	 machine.compactions	compaction horizons (store_compact.c)
 *	 machine.instances	one row per actor: live state, status, and the state it
 *						was spawned with (what a fold starts from)
 *	 machine.events		the journal, primary key (actor_id, version)
 *	 machine.snapshots	snapshots, primary key (actor_id, version)
 *	 machine.timers		durable timers (store_timers.c)
 *
 * The actors of a machine with the "memory" adapter live in UNLOGGED twins
 * of the last four, machine.memory_instances and so on, with the same
 * columns and keys: every query on the actors' tables is prepared for
 * both, the twin's text derived from the other by its table names.  An
 * actor is looked for in the built-in tables first, then in the twins;
 * its id is unique across both.  A crash empties the twins, and with them
 * every trace of those actors; a standby has nothing in them to read.
 *
 * All access goes through SPI plans prepared once per backend and kept, so
 * the per-call cost is the executor's, not the parser's.  The SQL text is
 * fully schema-qualified, operators included, so no search_path can change
 * what it means.  Callers must be connected to SPI.
 *
 * Rights.  The tables belong to the extension: application roles hold no
 * privilege on them and act through the functions, which check the
 * machine's privileges (registry.c) first.  Every statement here runs as
 * the tables' owner, as a security-restricted operation, as PostgreSQL
 * runs a foreign key's checks as the referenced table's owner.  Nothing of
 * the caller's runs meanwhile: the SQL text is fixed and calls no function
 * a role could define.
 *
 * Journal and snapshot rows are written with ON CONFLICT DO NOTHING and the
 * row count checked: a duplicate (actor_id, version) becomes the extension's
 * version-conflict error without the cost of a subtransaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "machine.h"
#include "store.h"
#include "store_direct.h"
#include "store_spi.h"


#define ACTOR_COLUMNS \
	"SELECT machine, status, version, state, state_tag, initial_state, created_at " \
	"FROM machine.instances WHERE actor_id OPERATOR(pg_catalog.=) $1"

static SavedQuery read_actor_query[] = {
	[ROW_NO_LOCK] = {ACTOR_COLUMNS, 1, {TEXTOID}},
	[ROW_LOCK_SHARE] = {ACTOR_COLUMNS " FOR SHARE", 1, {TEXTOID}},
	[ROW_LOCK_UPDATE] = {ACTOR_COLUMNS " FOR NO KEY UPDATE", 1, {TEXTOID}},
};

static SavedQuery insert_actor_query = {
	"INSERT INTO machine.instances "
	"(actor_id, machine, status, version, state, state_tag, initial_state) "
	"VALUES ($1, $2, $3, 0, $4, $5, $4) ON CONFLICT (actor_id) DO NOTHING",
	5, {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID}
};

static SavedQuery update_actor_query = {
	"UPDATE machine.instances "
	"SET status = $2, version = $3, state = $4, state_tag = $5, "
	"last_activity_at = pg_catalog.now() "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1",
	5, {TEXTOID, TEXTOID, INT8OID, JSONBOID, TEXTOID}
};

/*
 * The same, for a transition journaled through SQL: the txid the direct
 * path recorded for the journal no longer holds
 */
static SavedQuery update_journaled_actor_query = {
	"UPDATE machine.instances "
	"SET status = $2, version = $3, state = $4, state_tag = $5, "
	"last_activity_at = pg_catalog.now(), journal_txid = NULL "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1",
	5, {TEXTOID, TEXTOID, INT8OID, JSONBOID, TEXTOID}
};

static SavedQuery set_status_query = {
	"UPDATE machine.instances "
	"SET status = $2, last_activity_at = pg_catalog.now() "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1",
	2, {TEXTOID, TEXTOID}
};

static SavedQuery delete_actor_query = {
	"WITH i AS (DELETE FROM machine.instances "
	"           WHERE actor_id OPERATOR(pg_catalog.=) $1 RETURNING 1), "
	"     e AS (DELETE FROM machine.events "
	"           WHERE actor_id OPERATOR(pg_catalog.=) $1 RETURNING 1), "
	"     s AS (DELETE FROM machine.snapshots "
	"           WHERE actor_id OPERATOR(pg_catalog.=) $1 RETURNING 1), "
	"     t AS (DELETE FROM machine.timers "
	"           WHERE actor_id OPERATOR(pg_catalog.=) $1) "
	"SELECT (SELECT pg_catalog.count(*) FROM i) OPERATOR(pg_catalog.+) "
	"       (SELECT pg_catalog.count(*) FROM e) OPERATOR(pg_catalog.+) "
	"       (SELECT pg_catalog.count(*) FROM s)",
	1, {TEXTOID}
};

/*
 * A journal row's txid is its transaction's, or the greater one of the
 * actor's previous row (see store_direct.c); its position the sequence's.
 */
static SavedQuery append_event_query = {
	"INSERT INTO machine.events "
	"(actor_id, version, event, state_tag, txid, revision, idempotency_key) "
	"VALUES ($1, $2, $3, $4, GREATEST(pg_catalog.pg_current_xact_id(), "
	"  (SELECT p.txid FROM machine.events p "
	"   WHERE p.actor_id OPERATOR(pg_catalog.=) $1 "
	"   AND p.version OPERATOR(pg_catalog.<) $2 "
	"   ORDER BY p.version DESC LIMIT 1)), $5, $6) "
	"ON CONFLICT DO NOTHING",
	6, {TEXTOID, INT8OID, JSONBOID, TEXTOID, INT4OID, TEXTOID}
};

/* The version an idempotency key was journaled with */
static SavedQuery find_key_query = {
	"SELECT version FROM machine.events "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 "
	"AND idempotency_key OPERATOR(pg_catalog.=) $2",
	2, {TEXTOID, TEXTOID}
};

/* The same for a journal of 1.0, before ALTER EXTENSION UPDATE */
static SavedQuery append_event_1_0_query = {
	"INSERT INTO machine.events (actor_id, version, event, state_tag) "
	"VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
	4, {TEXTOID, INT8OID, JSONBOID, TEXTOID}
};

static SavedQuery insert_snapshot_query = {
	"INSERT INTO machine.snapshots (actor_id, version, state, state_tag) "
	"VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
	4, {TEXTOID, INT8OID, JSONBOID, TEXTOID}
};

static SavedQuery latest_snapshot_query = {
	"SELECT version, state FROM machine.snapshots "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 "
	"AND version OPERATOR(pg_catalog.<=) $2 "
	"ORDER BY version DESC LIMIT 1",
	2, {TEXTOID, INT8OID}
};

static SavedQuery scan_events_query = {
	"SELECT version, event, state_tag, recorded_at, revision FROM machine.events "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 "
	"AND version OPERATOR(pg_catalog.>) $2 "
	"AND version OPERATOR(pg_catalog.<=) $3 "
	"ORDER BY version",
	3, {TEXTOID, INT8OID, INT8OID}
};

/* The same for a journal of 1.0, which records no revisions */
static SavedQuery scan_events_1_0_query = {
	"SELECT version, event, state_tag, recorded_at FROM machine.events "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 "
	"AND version OPERATOR(pg_catalog.>) $2 "
	"AND version OPERATOR(pg_catalog.<=) $3 "
	"ORDER BY version",
	3, {TEXTOID, INT8OID, INT8OID}
};

/* Postponed events: kept in order, delivered again one at a time */
/* A send repeated with the key of one still postponed postpones nothing */
static SavedQuery postpone_query = {
	"INSERT INTO machine.postponed (actor_id, event, state_tag, idempotency_key) "
	"VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (actor_id, idempotency_key) WHERE idempotency_key IS NOT NULL "
	"DO NOTHING",
	4, {TEXTOID, JSONBOID, TEXTOID, TEXTOID}
};

static SavedQuery postponed_query = {
	"SELECT seq, event, idempotency_key FROM machine.postponed "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.>) $2 "
	"ORDER BY seq LIMIT $3",
	3, {TEXTOID, INT8OID, INT4OID}
};

static SavedQuery take_postponed_query = {
	"DELETE FROM machine.postponed "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.=) $2",
	2, {TEXTOID, INT8OID}
};

static SavedQuery delete_postponed_query = {
	"DELETE FROM machine.postponed WHERE actor_id OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static SavedQuery delete_postponed_of_query = {
	"DELETE FROM machine.postponed p USING machine.instances i "
	"WHERE i.machine OPERATOR(pg_catalog.=) $1 "
	"AND p.actor_id OPERATOR(pg_catalog.=) i.actor_id",
	1, {TEXTOID}
};

/* The version of the latest journal row recorded at or before a time */
static SavedQuery version_at_query = {
	"SELECT pg_catalog.max(version) FROM machine.events "
	"WHERE actor_id OPERATOR(pg_catalog.=) $1 "
	"AND recorded_at OPERATOR(pg_catalog.<=) $2",
	2, {TEXTOID, TIMESTAMPTZOID}
};

/*
 * The latest snapshot at or below a version of each of several actors,
 * by their position in the arrays (ROWS FROM and qualified unnest, so that
 * no search_path can change the function).
 */
static SavedQuery latest_snapshots_query = {
	"SELECT w.pos, s.version, s.state "
	"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) "
	"     WITH ORDINALITY AS w (actor_id, upto, pos) "
	"CROSS JOIN LATERAL (SELECT version, state FROM machine.snapshots s "
	"    WHERE s.actor_id OPERATOR(pg_catalog.=) w.actor_id "
	"    AND s.version OPERATOR(pg_catalog.<=) w.upto "
	"    ORDER BY version DESC LIMIT 1) s",
	2, {TEXTARRAYOID, INT8ARRAYOID}
};

/* The journal rows after..upto of several actors, by position then version */
static SavedQuery scan_events_of_query = {
	"SELECT w.pos, e.version, e.event, e.state_tag, e.recorded_at, e.revision "
	"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) "
	"     WITH ORDINALITY AS w (actor_id, after, upto, pos) "
	"JOIN machine.events e ON e.actor_id OPERATOR(pg_catalog.=) w.actor_id "
	"    AND e.version OPERATOR(pg_catalog.>) w.after "
	"    AND e.version OPERATOR(pg_catalog.<=) w.upto "
	"ORDER BY w.pos, e.version",
	3, {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID}
};

static SavedQuery scan_events_of_1_0_query = {
	"SELECT w.pos, e.version, e.event, e.state_tag, e.recorded_at "
	"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) "
	"     WITH ORDINALITY AS w (actor_id, after, upto, pos) "
	"JOIN machine.events e ON e.actor_id OPERATOR(pg_catalog.=) w.actor_id "
	"    AND e.version OPERATOR(pg_catalog.>) w.after "
	"    AND e.version OPERATOR(pg_catalog.<=) w.upto "
	"ORDER BY w.pos, e.version",
	3, {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID}
};

/* Every actor of a machine, by id, for a cursor */
static SavedQuery actors_of_query = {
	"SELECT actor_id FROM machine.instances "
	"WHERE machine OPERATOR(pg_catalog.=) $1 ORDER BY actor_id",
	1, {TEXTOID}
};

/*
 * Where a fold of the whole persisted history of each of several actors
 * starts: its row, its first journaled version, and the latest snapshot
 * below that (or, without a journal, at or below its version).
 */
static SavedQuery fold_starts_query = {
	"SELECT w.pos, i.status, i.version, i.state_tag, i.initial_state, "
	"       e.first, s.version, s.state, i.state "
	"FROM ROWS FROM (pg_catalog.unnest($1)) WITH ORDINALITY AS w (actor_id, pos) "
	"JOIN machine.instances i ON i.actor_id OPERATOR(pg_catalog.=) w.actor_id "
	"LEFT JOIN LATERAL (SELECT pg_catalog.min(e.version) AS first FROM machine.events e "
	"    WHERE e.actor_id OPERATOR(pg_catalog.=) w.actor_id) e ON true "
	"LEFT JOIN LATERAL (SELECT s.version, s.state FROM machine.snapshots s "
	"    WHERE s.actor_id OPERATOR(pg_catalog.=) w.actor_id "
	"    AND s.version OPERATOR(pg_catalog.<=) "
	"        COALESCE(e.first OPERATOR(pg_catalog.-) 1, i.version) "
	"    ORDER BY s.version DESC LIMIT 1) s ON true",
	1, {TEXTARRAYOID}
};

static SavedQuery count_actors_query = {
	"SELECT pg_catalog.count(*) FROM machine.instances "
	"WHERE machine OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static SavedQuery actor_ids_of_query = {
	"SELECT actor_id FROM machine.instances "
	"WHERE machine OPERATOR(pg_catalog.=) $1 ORDER BY actor_id",
	1, {TEXTOID}
};

static SavedQuery delete_actors_of_query = {
	"WITH a AS (DELETE FROM machine.instances "
	"           WHERE machine OPERATOR(pg_catalog.=) $1 RETURNING actor_id), "
	"     e AS (DELETE FROM machine.events e USING a "
	"           WHERE e.actor_id OPERATOR(pg_catalog.=) a.actor_id), "
	"     s AS (DELETE FROM machine.snapshots s USING a "
	"           WHERE s.actor_id OPERATOR(pg_catalog.=) a.actor_id), "
	"     t AS (DELETE FROM machine.timers t USING a "
	"           WHERE t.actor_id OPERATOR(pg_catalog.=) a.actor_id) "
	"SELECT pg_catalog.count(*) FROM a",
	1, {TEXTOID}
};

static SavedQuery actors_outside_query = {
	"SELECT actor_id, state_tag FROM machine.instances "
	"WHERE machine OPERATOR(pg_catalog.=) $1 "
	"AND status OPERATOR(pg_catalog.<>) 'stopped' "
	"AND NOT (state_tag OPERATOR(pg_catalog.=) ANY ($2)) "
	"ORDER BY actor_id LIMIT 6",
	2, {TEXTOID, TEXTARRAYOID}
};

static SavedQuery stopped_of_type_query = {
	"SELECT i.actor_id FROM machine.instances i "
	"JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine "
	"WHERE m.machine_type OPERATOR(pg_catalog.=) $1 "
	"AND i.status OPERATOR(pg_catalog.=) 'stopped' "
	"ORDER BY i.actor_id",
	1, {TEXTOID}
};

static Oid	instances_relid = InvalidOid;
static Oid	memory_relid = InvalidOid;
static Oid	postponed_relid = InvalidOid;
static bool read_actor_in(StoreKind kind, const char *actor_id, RowLock lock,
						  ActorRow *row);
static Oid	tables_owner = InvalidOid;
static Oid	events_relid = InvalidOid;
static bool journal_positioned;	/* valid while events_relid is */
static bool journal_revisions;	/* likewise */
static bool journal_compactions;	/* likewise */
static bool snapshots_listed;	/* likewise: machine.snapshots_due exists */

Interval *
store_interval(int64 us)
{
	Interval   *interval = palloc0(sizeof(Interval));

	interval->time = us;
	return interval;
}

/* The role that owns the extension's tables */
static Oid
store_owner(void)
{
	if (!OidIsValid(tables_owner))
	{
		HeapTuple	tuple = SearchSysCache1(RELOID,
											ObjectIdGetDatum(store_instances_relid()));

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for machine.instances");
		tables_owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
		ReleaseSysCache(tuple);
	}
	return tables_owner;
}

/*
 * Act as the tables' owner until store_unbecome_owner(); an error on the way
 * needs no cleanup, since (sub)transaction abort restores the user.
 */
void
store_become_owner(AsOwner *saved)
{
	Oid			owner = store_owner();

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(owner, saved->sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
store_unbecome_owner(AsOwner *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/* The actors' tables whose twins hold the actors of the "memory" adapter */
static const char *const actor_tables[] = {
	"machine.instances", "machine.events", "machine.snapshots", "machine.timers",
	"machine.snapshots_due", "machine.postponed"
};

/* A query's text with the actors' tables replaced by their memory twins */
static char *
memory_twin_sql(const char *sql)
{
	StringInfoData buf;
	const char *p = sql;

	initStringInfo(&buf);
	while (*p)
	{
		bool		replaced = false;

		for (int i = 0; i < lengthof(actor_tables); i++)
		{
			size_t		len = strlen(actor_tables[i]);

			if (strncmp(p, actor_tables[i], len) == 0 && !isalnum((unsigned char) p[len]) &&
				p[len] != '_')
			{
				appendStringInfo(&buf, "machine.memory_%s", actor_tables[i] + strlen("machine."));
				p += len;
				replaced = true;
				break;
			}
		}
		if (!replaced)
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/*
 * The plan of a saved query on the tables of one kind, prepared on first use
 * in this backend
 */
static SPIPlanPtr
prepared_in(StoreKind kind, SavedQuery *query)
{
	if (query->plans[kind] == NULL)
	{
		char	   *sql = kind == STORE_MEMORY ?
			memory_twin_sql(query->sql) : (char *) query->sql;
		SPIPlanPtr	plan = SPI_prepare(sql, query->nargs, query->argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		query->plans[kind] = plan;
	}
	return query->plans[kind];
}

int
store_run_in_with_nulls(StoreKind kind, SavedQuery *query, Datum *values,
				  const char *nulls, long count)
{
	AsOwner		saved;
	int			rc;

	store_become_owner(&saved);
	rc = SPI_execute_plan(prepared_in(kind, query), values, nulls, false, count);
	store_unbecome_owner(&saved);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return rc;
}

/* Run a query on the built-in tables */
int
store_run(SavedQuery *query, Datum *values, long count)
{
	return store_run_in_with_nulls(STORE_TABLES, query, values, NULL, count);
}

/* Run a query on the tables of one kind */
int
store_run_in(StoreKind kind, SavedQuery *query, Datum *values, long count)
{
	return store_run_in_with_nulls(kind, query, values, NULL, count);
}

/*
 * Do the "memory" adapter's tables exist?  They do not in a database whose
 * extension is still at 1.0.  Only their presence is remembered, until an
 * invalidation: a later ALTER EXTENSION UPDATE is seen at once.
 */
bool
store_memory_available(void)
{
	if (!OidIsValid(memory_relid))
	{
		Oid			nsp = get_namespace_oid("machine", true);

		if (OidIsValid(nsp))
			memory_relid = get_relname_relid("memory_instances", nsp);
	}
	return OidIsValid(memory_relid);
}

/*
 * Is there a table for postponed events?  Not while the extension's schema
 * is still 1.0's.
 */
bool
store_postponed_available(void)
{
	if (!OidIsValid(postponed_relid))
	{
		Oid			nsp = get_namespace_oid("machine", true);

		if (OidIsValid(nsp))
			postponed_relid = get_relname_relid("postponed", nsp);
	}
	return OidIsValid(postponed_relid);
}

/*
 * How many kinds of tables may hold actors here (StoreKinds from 0): a
 * standby cannot read UNLOGGED tables, and they hold nothing there.
 */
int
store_kinds(void)
{
	return RecoveryInProgress() || !store_memory_available() ? 1 : STORE_NKINDS;
}

Datum
store_column(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

char *
store_text_column(int row, int col)
{
	bool		isnull;
	Datum		d = store_column(row, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

Jsonb *
store_jsonb_column(int row, int col)
{
	bool		isnull;
	Datum		d = store_column(row, col, &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

int64
store_int8_column(int row, int col)
{
	bool		isnull;

	return DatumGetInt64(store_column(row, col, &isnull));
}

/*
 * The OID of machine.instances, for explicit table locks; cached, and
 * forgotten by store_forget_relation() when the table changes.
 */
Oid
store_instances_relid(void)
{
	if (!OidIsValid(instances_relid))
	{
		Oid			nsp = get_namespace_oid("machine", false);

		instances_relid = get_relname_relid("instances", nsp);
		if (!OidIsValid(instances_relid))
			elog(ERROR, "table machine.instances does not exist");
	}
	return instances_relid;
}

void
store_forget_relation(Oid relid)
{
	store_direct_forget(relid);
	if (relid == InvalidOid || relid == instances_relid)
	{
		instances_relid = InvalidOid;
		tables_owner = InvalidOid;
	}
	if (relid == InvalidOid || relid == memory_relid)
		memory_relid = InvalidOid;
	if (relid == InvalidOid || relid == postponed_relid)
		postponed_relid = InvalidOid;
	if (relid == InvalidOid || relid == events_relid)
		events_relid = InvalidOid;
}

/*
 * Has the journal its positions?  Not while the extension's schema is
 * still 1.0's (this library serves both until ALTER EXTENSION UPDATE).
 */
static bool
store_journal_positioned(void)
{
	if (!OidIsValid(events_relid))
	{
		Oid			nsp = get_namespace_oid("machine", false);
		Oid			relid = get_relname_relid("events", nsp);

		if (!OidIsValid(relid))
			elog(ERROR, "table machine.events does not exist");
		journal_positioned = get_attnum(relid, "txid") != InvalidAttrNumber;
		journal_revisions = get_attnum(relid, "revision") != InvalidAttrNumber &&
			OidIsValid(get_relname_relid("revisions", nsp));
		snapshots_listed = OidIsValid(get_relname_relid("snapshots_due", nsp));
		journal_compactions = OidIsValid(get_relname_relid("compactions", nsp));
		events_relid = relid;
	}
	return journal_positioned;
}

/* Are actors due for spaced snapshots listed?  Not in 1.0's schema either */
bool
store_snapshots_listed(void)
{
	(void) store_journal_positioned();
	return snapshots_listed;
}

/*
 * Are revisions kept (machine.revisions, machine.events.revision)?  Not
 * while the schema is still 1.0's either; the same update adds them and
 * the journal's positions.
 */
bool
store_has_revisions(void)
{
	(void) store_journal_positioned();
	return journal_revisions;
}

/* Can actors be compacted (machine.compactions)?  Not in 1.0's schema */
bool
store_has_compactions(void)
{
	(void) store_journal_positioned();
	return journal_compactions;
}

/*
 * Read an actor's row, optionally locking it; false when there is none.
 *
 * A locking read is a writer's first step, so it takes its machine's lock
 * (machine_lock()) before it locks the row: that waits out a
 * machine_define or machine_drop of that machine in progress and delivers
 * its invalidations before the caller looks the machine up.  The machine
 * is known only from the row: read it once without a lock first.  An
 * actor's machine never changes, so the locked row has the same one.
 */
bool
store_read_actor(const char *actor_id, RowLock lock, ActorRow *row)
{
	for (int kind = 0; kind < store_kinds(); kind++)
		if (read_actor_in((StoreKind) kind, actor_id, lock, row))
			return true;
	return false;
}

/*
 * Lock and read the rows of a chunk of actors, as store_read_actor() with
 * ROW_LOCK_UPDATE does each: found[i] says whether ids[i] (text) has one,
 * in rows[i].  Each kind of tables is looked in for the actors not found
 * in the ones before, through the direct path where it is usable.
 */
void
store_lock_actors(Datum *ids, int n, ActorRow *rows, bool *found)
{
	memset(found, 0, sizeof(bool) * n);
	for (int kind = 0; kind < store_kinds(); kind++)
	{
		if (store_direct_usable((StoreKind) kind, DIRECT_INSTANCES))
		{
			store_direct_lock_actors((StoreKind) kind, ids, n, rows, found);
			continue;
		}
		for (int i = 0; i < n; i++)
			if (!found[i])
				found[i] = read_actor_in((StoreKind) kind,
										 TextDatumGetCString(ids[i]),
										 ROW_LOCK_UPDATE, &rows[i]);
	}
}

static bool
read_actor_in(StoreKind kind, const char *actor_id, RowLock lock,
			  ActorRow *row)
{
	Datum		values[1] = {CStringGetTextDatum(actor_id)};
	bool		isnull;

	if (lock == ROW_LOCK_UPDATE && store_direct_usable(kind, DIRECT_INSTANCES))
		return store_direct_lock_actor(kind, actor_id, row);
	if (lock != ROW_NO_LOCK)
	{
		LockRelationOid(store_instances_relid(), RowExclusiveLock);
		store_run_in(kind, &read_actor_query[ROW_NO_LOCK], values, 1);
		if (SPI_processed == 0)
			return false;
		machine_lock(store_text_column(0, 1), RowExclusiveLock);
		SPI_freetuptable(SPI_tuptable);
	}
	store_run_in(kind, &read_actor_query[lock], values, 1);
	if (SPI_processed == 0)
		return false;
	row->store = kind;
	row->machine = store_text_column(0, 1);
	row->status = actor_status_parse(store_text_column(0, 2));
	row->version = store_int8_column(0, 3);
	row->state = store_jsonb_column(0, 4);
	row->state_tag = store_text_column(0, 5);
	row->initial_state = datumCopy(store_column(0, 6, &isnull), false, -1);
	row->created_at = store_column(0, 7, &isnull);
	ItemPointerSetInvalid(&row->tid);
	row->journal_txid = InvalidFullTransactionId;
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/*
 * Insert a new actor at version 0 into the tables of its kind; false when
 * the id is taken, in those tables or in the others.  An id is unique
 * across both: after the insert, a spawn of the same id into the others
 * that is under way is waited for, and if it succeeded this one fails.
 */
bool
store_insert_actor(StoreKind kind, const char *actor_id, const char *machine,
				   ActorStatus status, Jsonb *state, const char *tag)
{
	Datum		values[5] = {
		CStringGetTextDatum(actor_id),
		CStringGetTextDatum(machine),
		CStringGetTextDatum(actor_status_name(status)),
		JsonbPGetDatum(state),
		CStringGetTextDatum(tag),
	};

	StoreKind	other = kind == STORE_TABLES ? STORE_MEMORY : STORE_TABLES;
	ActorRow	row;

	if (store_kinds() > 1 && read_actor_in(other, actor_id, ROW_NO_LOCK, &row))
		return false;
	store_run_in(kind, &insert_actor_query, values, 0);
	if (SPI_processed != 1)
		return false;
	/* a spawn of the same id into the other tables may be under way */
	if (store_kinds() > 1 && store_direct_usable(other, DIRECT_INSTANCES) &&
		store_direct_actor_exists(other, actor_id))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("actor \"%s\" already exists", actor_id),
				 errdetail("It was spawned concurrently, with a machine of another adapter.")));
	return true;
}

static void update_actor(const char *actor_id, ActorRow *row,
						 ActorStatus status, int64 version, Jsonb *state,
						 const char *tag, bool journaled);

/* Update the row of an actor read (and locked) by store_read_actor() */
void
store_update_actor(const char *actor_id, ActorRow *row, ActorStatus status,
				   int64 version, Jsonb *state, const char *tag)
{
	update_actor(actor_id, row, status, version, state, tag, false);
}

/*
 * The same for a transition whose journal row store_append_event() writes
 * next: the row records that journal row's txid (row->journal_txid), so
 * that the next send need not look it up.
 */
void
store_update_journaled_actor(const char *actor_id, ActorRow *row,
							 ActorStatus status, int64 version, Jsonb *state,
							 const char *tag)
{
	update_actor(actor_id, row, status, version, state, tag, true);
}

static void
update_actor(const char *actor_id, ActorRow *row, ActorStatus status,
			 int64 version, Jsonb *state, const char *tag, bool journaled)
{
	Datum		values[5] = {
		CStringGetTextDatum(actor_id),
		CStringGetTextDatum(actor_status_name(status)),
		Int64GetDatum(version),
		JsonbPGetDatum(state),
		CStringGetTextDatum(tag),
	};

	if (ItemPointerIsValid(&row->tid) &&
		store_direct_usable(row->store, DIRECT_INSTANCES))
	{
		store_direct_update_actor(actor_id, row, status, version, state, tag,
								  journaled);
		return;
	}
	row->journal_txid = InvalidFullTransactionId;
	store_run_in(row->store, journaled && store_has_revisions() ?
				 &update_journaled_actor_query : &update_actor_query,
				 values, 0);
	if (SPI_processed != 1)
		elog(ERROR, "actor \"%s\" vanished while locked", actor_id);
}

void
store_set_status(StoreKind kind, const char *actor_id, ActorStatus status)
{
	Datum		values[2] = {
		CStringGetTextDatum(actor_id),
		CStringGetTextDatum(actor_status_name(status)),
	};

	store_run_in(kind, &set_status_query, values, 0);
}

/* Erase an actor everywhere; false when nothing was there */
bool
store_delete_actor(StoreKind kind, const char *actor_id)
{
	Datum		values[1] = {CStringGetTextDatum(actor_id)};
	int64		deleted;

	store_run_in(kind, &delete_actor_query, values, 1);
	deleted = store_int8_column(0, 1);
	SPI_freetuptable(SPI_tuptable);
	if (store_postponed_available())
		store_run_in(kind, &delete_postponed_query, values, 0);
	return deleted > 0;
}

/* Keep an event that the actor's state (tag) postpones */
void
store_postpone(StoreKind kind, const char *actor_id, Jsonb *event,
			   const char *tag, const char *key)
{
	Datum		values[4] = {
		CStringGetTextDatum(actor_id),
		JsonbPGetDatum(event),
		CStringGetTextDatum(tag),
		key ? CStringGetTextDatum(key) : (Datum) 0
	};
	char		nulls[4] = {' ', ' ', ' ', key ? ' ' : 'n'};

	if (!store_postponed_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot postpone an event of actor \"%s\"", actor_id),
				 errdetail("The extension's tables are those of version 1.0, which has no place for postponed events."),
				 errhint("Run ALTER EXTENSION machine UPDATE.")));
	store_run_in_with_nulls(kind, &postpone_query, values, nulls, 0);
}

/*
 * Up to "limit" of an actor's postponed events after seq "after", oldest
 * first, as Postponed; NIL when there are no more.
 */
List *
store_postponed(StoreKind kind, const char *actor_id, int64 after, int limit)
{
	Datum		values[3] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(after),
		Int32GetDatum(limit)
	};
	List	   *result = NIL;

	if (!store_postponed_available())
		return NIL;
	store_run_in(kind, &postponed_query, values, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Postponed  *p = palloc(sizeof(Postponed));

		p->seq = store_int8_column(i, 1);
		p->event = store_jsonb_column(i, 2);
		p->key = store_text_column(i, 3);
		result = lappend(result, p);
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
}

/* Remove a postponed event that is being delivered */
void
store_take_postponed(StoreKind kind, const char *actor_id, int64 seq)
{
	Datum		values[2] = {CStringGetTextDatum(actor_id), Int64GetDatum(seq)};

	store_run_in(kind, &take_postponed_query, values, 0);
}

/*
 * Append a journal row, applied by that revision of the actor's machine; a
 * row already there for that version is a conflict.  "txid" is the one
 * store_update_journaled_actor() chose for it, or invalid: look it up.
 */
void
store_append_event(StoreKind kind, const char *actor_id, int64 version,
				   Jsonb *event, const char *tag, int32 revision,
				   const char *key, FullTransactionId txid)
{
	Datum		values[6] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(version),
		JsonbPGetDatum(event),
		CStringGetTextDatum(tag),
		Int32GetDatum(revision),
		key ? CStringGetTextDatum(key) : (Datum) 0,
	};
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', key ? ' ' : 'n'};
	bool		appended;

	if (store_direct_usable(kind, DIRECT_EVENTS))
		appended = store_direct_append_event(kind, actor_id, version, event,
											 tag, revision, key, txid);
	else
	{
		if (store_has_revisions())
			store_run_in_with_nulls(kind, &append_event_query, values, nulls, 0);
		else
			store_run_in(kind, &append_event_1_0_query, values, 0);
		appended = SPI_processed == 1;
	}
	if (!appended)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_VERSION_CONFLICT),
				 errmsg("version conflict on actor \"%s\"", actor_id),
				 errdetail("The journal already holds version " INT64_FORMAT ".",
						   version)));
}

/*
 * The version of an actor's journal row with that idempotency key; -1 when
 * there is none.  The caller holds the actor's lock, so a send with the
 * key that committed meanwhile is seen (a new snapshot per statement).
 */
int64
store_find_idempotency_key(StoreKind kind, const char *actor_id,
						   const char *key)
{
	Datum		values[2] = {CStringGetTextDatum(actor_id), CStringGetTextDatum(key)};
	int64		version = -1;

	store_run_in(kind, &find_key_query, values, 1);
	if (SPI_processed == 1)
		version = store_int8_column(0, 1);
	if (SPI_tuptable)
		SPI_freetuptable(SPI_tuptable);
	return version;
}

/*
 * Insert a snapshot unless one of that version exists (or is being
 * inserted) already; false then.  For machine_persist and machine_stop,
 * which take an existing snapshot as success: ON CONFLICT waits for a
 * concurrent inserter instead of failing.
 */
bool
store_insert_snapshot(StoreKind kind, const char *actor_id, int64 version,
					  Jsonb *state, const char *tag)
{
	Datum		values[4] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(version),
		JsonbPGetDatum(state),
		CStringGetTextDatum(tag),
	};

	store_run_in(kind, &insert_snapshot_query, values, 0);
	return SPI_processed == 1;
}

/* The snapshot a send's schedule takes; one of that version is a conflict */
void
store_append_snapshot(StoreKind kind, const char *actor_id, int64 version,
					  Jsonb *state, const char *tag)
{
	bool		appended;

	if (store_direct_usable(kind, DIRECT_SNAPSHOTS))
		appended = store_direct_append_snapshot(kind, actor_id, version,
												state, tag);
	else
		appended = store_insert_snapshot(kind, actor_id, version, state, tag);
	if (!appended)
		ereport(ERROR,
				(errcode(ERRCODE_MACHINE_VERSION_CONFLICT),
				 errmsg("version conflict on actor \"%s\"", actor_id),
				 errdetail("A snapshot of version " INT64_FORMAT " exists already.",
						   version)));
}

/* The latest snapshot at or below a version; NULL when there is none */
Jsonb *
store_latest_snapshot(StoreKind kind, const char *actor_id, int64 upto,
					  int64 *version)
{
	Datum		values[2] = {CStringGetTextDatum(actor_id), Int64GetDatum(upto)};
	Jsonb	   *state;

	store_run_in(kind, &latest_snapshot_query, values, 1);
	if (SPI_processed == 0)
		return NULL;
	*version = store_int8_column(0, 1);
	state = store_jsonb_column(0, 2);
	SPI_freetuptable(SPI_tuptable);
	return state;
}

/*
 * The version of the latest journal row recorded at or before "at"; -1
 * when there is none.
 */
int64
store_version_at(StoreKind kind, const char *actor_id, TimestampTz at)
{
	Datum		values[2] = {CStringGetTextDatum(actor_id), TimestampTzGetDatum(at)};
	bool		isnull;
	Datum		d;

	store_run_in(kind, &version_at_query, values, 1);
	d = store_column(0, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	return isnull ? -1 : DatumGetInt64(d);
}

/*
 * Call back for each journal row a cursor returns: (version, event,
 * state_tag, recorded_at), preceded by the actor's position when
 * with_pos.  Rows are fetched in batches, so a long journal never sits in
 * memory whole; each batch's memory is freed after it.
 */
static void
fetch_journal(StoreKind kind, SavedQuery *query, Datum *values, bool with_pos,
			  EventCallback callback, void *arg)
{
	int			first = with_pos ? 2 : 1;
	AsOwner		saved;
	Portal		portal;

	store_become_owner(&saved);
	portal = SPI_cursor_open(NULL, prepared_in(kind, query), values, NULL,
							 false);
	store_unbecome_owner(&saved);
	for (;;)
	{
		store_become_owner(&saved);
		SPI_cursor_fetch(portal, true, 1000);
		store_unbecome_owner(&saved);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			JournalEntry entry;

			entry.pos = with_pos ? (int) store_int8_column(i, 1) - 1 : 0;
			entry.version = store_int8_column(i, first);
			entry.event = DatumGetJsonbP(store_column(i, first + 1, &isnull));
			entry.state_tag = store_text_column(i, first + 2);
			entry.recorded_at = store_column(i, first + 3, &isnull);
			entry.revision = -1;
			if (SPI_tuptable->tupdesc->natts >= first + 4)
			{
				Datum		d = store_column(i, first + 4, &isnull);

				if (!isnull)
					entry.revision = DatumGetInt32(d);
			}
			callback(&entry, arg);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

/* Call back for each journal row with after < version <= upto, in order */
void
store_scan_events(StoreKind kind, const char *actor_id, int64 after,
				  int64 upto, EventCallback callback, void *arg)
{
	Datum		values[3] = {
		CStringGetTextDatum(actor_id),
		Int64GetDatum(after),
		Int64GetDatum(upto),
	};

	fetch_journal(kind, store_has_revisions() ? &scan_events_query :
				  &scan_events_1_0_query, values, false, callback, arg);
}

ArrayType *
store_text_array(Datum *values, int n)
{
	return construct_array(values, n, TEXTOID, -1, false, TYPALIGN_INT);
}

static ArrayType *
int8_array(Datum *values, int n)
{
	return construct_array(values, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * The latest snapshot at or below uptos[i] of each actor ids[i]: its state
 * into states[i] and its version into versions[i], which stay NULL and 0
 * where there is none.
 */
void
store_latest_snapshots(StoreKind kind, Datum *ids, Datum *uptos, int n,
					   Jsonb **states, int64 *versions)
{
	Datum		values[2];

	if (store_direct_usable(kind, DIRECT_SNAPSHOTS))
	{
		store_direct_latest_snapshots(kind, ids, uptos, n, states, versions);
		return;
	}
	values[0] = PointerGetDatum(store_text_array(ids, n));
	values[1] = PointerGetDatum(int8_array(uptos, n));
	store_run_in(kind, &latest_snapshots_query, values, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		int			pos = (int) store_int8_column(i, 1) - 1;

		versions[pos] = store_int8_column(i, 2);
		states[pos] = store_jsonb_column(i, 3);
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Call back for each journal row of each actor ids[i] with afters[i] <
 * version <= uptos[i], by position in the arrays (entry->pos, from 0), then
 * version.
 */
void
store_scan_events_of(StoreKind kind, Datum *ids, Datum *afters, Datum *uptos,
					 int n, EventCallback callback, void *arg)
{
	Datum		values[3];

	if (store_direct_usable(kind, DIRECT_EVENTS))
	{
		store_direct_scan_events_of(kind, ids, afters, uptos, n, callback, arg);
		return;
	}
	values[0] = PointerGetDatum(store_text_array(ids, n));
	values[1] = PointerGetDatum(int8_array(afters, n));
	values[2] = PointerGetDatum(int8_array(uptos, n));
	fetch_journal(kind, store_has_revisions() ? &scan_events_of_query :
				  &scan_events_of_1_0_query, values, true, callback, arg);
}

/*
 * A cursor over the ids of every actor of a machine, in order; read it with
 * store_fetch_actor_ids() and close it with SPI_cursor_close().
 */
Portal
store_open_actors_of(StoreKind kind, const char *machine)
{
	Datum		values[1] = {CStringGetTextDatum(machine)};
	AsOwner		saved;
	Portal		portal;

	store_become_owner(&saved);
	portal = SPI_cursor_open(NULL, prepared_in(kind, &actors_of_query), values,
							 NULL, true);
	store_unbecome_owner(&saved);
	return portal;
}

/* The next "limit" ids of the cursor, allocated in "context"; NIL at the end */
List *
store_fetch_actor_ids(Portal portal, int limit, MemoryContext context)
{
	AsOwner		saved;
	List	   *ids = NIL;
	MemoryContext old;

	store_become_owner(&saved);
	SPI_cursor_fetch(portal, true, limit);
	store_unbecome_owner(&saved);
	old = MemoryContextSwitchTo(context);
	for (uint64 i = 0; i < SPI_processed; i++)
		ids = lappend(ids, store_text_column(i, 1));
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	return ids;
}

/*
 * Where a fold of the whole persisted history of each actor ids[i] starts
 * (see FoldStart); an actor that is gone has found false.
 */
void
store_fold_starts(StoreKind kind, Datum *ids, int n, FoldStart *starts)
{
	Datum		values[1] = {PointerGetDatum(store_text_array(ids, n))};

	for (int i = 0; i < n; i++)
		starts[i].found = false;
	store_run_in(kind, &fold_starts_query, values, 0);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		FoldStart  *start = &starts[(int) store_int8_column(r, 1) - 1];
		bool		isnull;
		Datum		d;

		start->found = true;
		start->status = actor_status_parse(store_text_column(r, 2));
		start->version = store_int8_column(r, 3);
		start->state_tag = store_text_column(r, 4);
		start->initial_state = store_jsonb_column(r, 5);
		d = store_column(r, 6, &isnull);
		start->first_event = isnull ? 0 : DatumGetInt64(d);
		d = store_column(r, 7, &isnull);
		start->snapshot_version = isnull ? 0 : DatumGetInt64(d);
		start->snapshot = store_jsonb_column(r, 8);
		start->state = store_jsonb_column(r, 9);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* How many actors a machine has, wherever they live */
int64
store_count_actors(const char *machine)
{
	Datum		values[1] = {CStringGetTextDatum(machine)};
	int64		count = 0;

	for (int kind = 0; kind < store_kinds(); kind++)
	{
		store_run_in((StoreKind) kind, &count_actors_query, values, 1);
		count += store_int8_column(0, 1);
		SPI_freetuptable(SPI_tuptable);
	}
	return count;
}

/* The ids of the actors of a machine in the built-in tables */
List *
store_actor_ids_of(const char *machine)
{
	Datum		values[1] = {CStringGetTextDatum(machine)};
	List	   *result = NIL;

	store_run(&actor_ids_of_query, values, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
		result = lappend(result, store_text_column(i, 1));
	SPI_freetuptable(SPI_tuptable);
	return result;
}

/* Erase every actor of a machine, with its journal, snapshots and timers */
void
store_delete_actors_of(const char *machine)
{
	Datum		values[1] = {CStringGetTextDatum(machine)};

	for (int kind = 0; kind < store_kinds(); kind++)
	{
		if (store_postponed_available())
			store_run_in((StoreKind) kind, &delete_postponed_of_query, values, 0);
		store_run_in((StoreKind) kind, &delete_actors_of_query, values, 1);
	}
}

/*
 * Up to six live actors of a machine whose state is not among the given
 * tags, as "actor_id", "state_tag" pairs in a list of strings.
 */
List *
store_actors_outside(const char *machine, ArrayType *tags)
{
	Datum		values[2] = {CStringGetTextDatum(machine), PointerGetDatum(tags)};
	List	   *result = NIL;

	for (int kind = 0; kind < store_kinds(); kind++)
	{
		store_run_in((StoreKind) kind, &actors_outside_query, values, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			result = lappend(result, store_text_column(i, 1));
			result = lappend(result, store_text_column(i, 2));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	return result;
}

static int
compare_ids(const ListCell *a, const ListCell *b)
{
	const char *x = lfirst(a);
	const char *y = lfirst(b);

	return varstr_cmp(x, strlen(x), y, strlen(y), DEFAULT_COLLATION_OID);
}

/* The ids of the stopped actors of a machine type, in order */
List *
store_stopped_of_type(const char *machine_type)
{
	Datum		values[1] = {CStringGetTextDatum(machine_type)};
	List	   *result = NIL;
	bool		merged = false;

	for (int kind = 0; kind < store_kinds(); kind++)
	{
		store_run_in((StoreKind) kind, &stopped_of_type_query, values, 0);
		merged |= result != NIL && SPI_processed > 0;
		for (uint64 i = 0; i < SPI_processed; i++)
			result = lappend(result, store_text_column(i, 1));
		SPI_freetuptable(SPI_tuptable);
	}
	if (merged)
		list_sort(result, compare_ids);
	return result;
}
