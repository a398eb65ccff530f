/*-------------------------------------------------------------------------
 *
 * store_compact.c
 *	  What compaction reads and removes: an actor's compaction horizon,
 *	  the journal position every subscription has acknowledged, and the
 *	  compaction of a batch of actors.
 *
 * The SQL runs as store.c runs it (store_spi.h): saved plans, as the
 * tables' owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datum.h"

#include "store.h"
#include "store_compact.h"
#include "store_spi.h"

static SavedQuery compaction_horizon_query = {
	"SELECT horizon FROM machine.compactions WHERE actor_id OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

/*
 * The (txid, position) up to which every subscription that delivers a
 * machine type's journal has acknowledged (before its first poll, below
 * its start): the least of them
 */
static SavedQuery subscription_limit_query = {
	"SELECT l.txid, l.position FROM ("
	"  SELECT c.txid, c.position FROM machine.subscribers s "
	"  JOIN machine.checkpoints c ON c.subscription OPERATOR(pg_catalog.=) s.name "
	"  WHERE s.machine_type IS NULL OR s.machine_type OPERATOR(pg_catalog.=) $1 "
	"  UNION ALL "
	"  SELECT s.start_txid, 0 FROM machine.subscribers s "
	"  WHERE (s.machine_type IS NULL OR s.machine_type OPERATOR(pg_catalog.=) $1) "
	"  AND NOT EXISTS (SELECT FROM machine.checkpoints c "
	"                  WHERE c.subscription OPERATOR(pg_catalog.=) s.name)"
	") l ORDER BY l.txid, l.position LIMIT 1",
	1, {TEXTOID}
};

/*
 * Compact the actors $1: each one's horizon is its latest snapshot (taken
 * before now - $2, when $2 is given) below which every journal row was
 * acknowledged by every subscription ($3, $4: the limit, or NULL), if it
 * is past the horizon it has; its journal rows up to the horizon and its
 * snapshots below it go.  Returns the rows removed, and with $5 the journal
 * rows themselves, for an archive.
 */
static SavedQuery compact_query = {
	"WITH w AS (SELECT i.actor_id, i.version FROM machine.instances i "
	"           WHERE i.actor_id OPERATOR(pg_catalog.=) ANY ($1)), "
	"a AS (SELECT w.actor_id, "
	"        (SELECT pg_catalog.max(s.version) FROM machine.snapshots s "
	"         WHERE s.actor_id OPERATOR(pg_catalog.=) w.actor_id "
	"         AND ($2 IS NULL OR s.taken_at OPERATOR(pg_catalog.<=) "
	"              (pg_catalog.now() OPERATOR(pg_catalog.-) $2)) "
	"         AND s.version OPERATOR(pg_catalog.<=) COALESCE("
	"             (SELECT pg_catalog.min(e.version) OPERATOR(pg_catalog.-) 1 "
	"              FROM machine.events e "
	"              WHERE e.actor_id OPERATOR(pg_catalog.=) w.actor_id AND $3 IS NOT NULL "
	"              AND (e.txid OPERATOR(pg_catalog.>) $3 OR "
	"                   (e.txid OPERATOR(pg_catalog.=) $3 AND "
	"                    e.position OPERATOR(pg_catalog.>) $4))), "
	"             w.version)) AS horizon "
	"      FROM w), "
	"h AS (SELECT a.actor_id, a.horizon FROM a "
	"      LEFT JOIN machine.compactions c ON c.actor_id OPERATOR(pg_catalog.=) a.actor_id "
	"      WHERE a.horizon OPERATOR(pg_catalog.>=) 1 "
	"      AND a.horizon OPERATOR(pg_catalog.>) COALESCE(c.horizon, 0)), "
	"gone AS (DELETE FROM machine.events ev USING h "
	"         WHERE ev.actor_id OPERATOR(pg_catalog.=) h.actor_id "
	"         AND ev.version OPERATOR(pg_catalog.<=) h.horizon RETURNING ev), "
	"sn AS (DELETE FROM machine.snapshots s USING h "
	"       WHERE s.actor_id OPERATOR(pg_catalog.=) h.actor_id "
	"       AND s.version OPERATOR(pg_catalog.<) h.horizon RETURNING 1), "
	"hz AS (INSERT INTO machine.compactions AS c (actor_id, horizon) "
	"       SELECT actor_id, horizon FROM h "
	"       ON CONFLICT (actor_id) DO UPDATE SET horizon = excluded.horizon, "
	"       compacted_at = pg_catalog.now()) "
	"SELECT (SELECT pg_catalog.count(*) FROM gone), (SELECT pg_catalog.count(*) FROM sn), "
	"       CASE WHEN $5 THEN (SELECT pg_catalog.array_agg(g.ev) FROM gone g) END",
	5, {TEXTARRAYOID, INTERVALOID, XID8OID, INT8OID, BOOLOID}
};

/*
 * The compaction horizon of an actor: its journal rows up to it and its
 * snapshots below it were removed; 0 when it was never compacted
 */
int64
store_compaction_horizon(StoreKind kind, const char *actor_id)
{
	Datum		values[1] = {CStringGetTextDatum(actor_id)};
	int64		horizon = 0;

	if (kind != STORE_TABLES || !store_has_compactions())
		return 0;
	store_run(&compaction_horizon_query, values, 1);
	if (SPI_processed == 1)
		horizon = store_int8_column(0, 1);
	SPI_freetuptable(SPI_tuptable);
	return horizon;
}

/*
 * The (txid, position) below which every subscription that delivers the
 * machine type has acknowledged the journal; false when none delivers it
 */
bool
store_subscription_limit(const char *machine_type, Datum *txid,
						 int64 *position)
{
	Datum		values[1] = {CStringGetTextDatum(machine_type)};
	bool		isnull;
	bool		found;

	store_run(&subscription_limit_query, values, 1);
	found = SPI_processed == 1;
	if (found)
	{
		*txid = datumCopy(store_column(0, 1, &isnull), FLOAT8PASSBYVAL, 8);
		*position = store_int8_column(0, 2);
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * Compact a batch of actors (see compact_query); keep NULL for none, txid
 * without has_limit for no subscription.  The counts go to *events and
 * *snapshots; with want_rows, the removed journal rows as an array of
 * machine.events (in the current memory context), or NULL when there were
 * none.
 */
Datum
store_compact(Datum *ids, int n, Interval *keep, bool has_limit, Datum txid,
			  int64 position, bool want_rows, int64 *events, int64 *snapshots,
			  bool *rows_null)
{
	Datum		values[5] = {
		PointerGetDatum(store_text_array(ids, n)),
		PointerGetDatum(keep),
		txid,
		Int64GetDatum(position),
		BoolGetDatum(want_rows),
	};
	char		nulls[5] = {' ', keep ? ' ' : 'n', has_limit ? ' ' : 'n',
		has_limit ? ' ' : 'n', ' '};
	Datum		rows;

	store_run_in_with_nulls(STORE_TABLES, &compact_query, values, nulls, 1);
	*events = store_int8_column(0, 1);
	*snapshots = store_int8_column(0, 2);
	rows = store_column(0, 3, rows_null);
	if (!*rows_null)
		rows = datumCopy(rows, false, -1);
	SPI_freetuptable(SPI_tuptable);
	return rows;
}
