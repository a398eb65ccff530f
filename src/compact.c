/*-------------------------------------------------------------------------
 *
 * compact.c
 *	  machine_compact: keeping the journal and the snapshots bounded.
 *
 * A snapshot covers everything before it: a fold that starts from it never
 * reads an older journal row or snapshot.  For each actor of a machine,
 * compaction picks a horizon, its latest snapshot (taken before now -
 * keep, when keep is given), and removes its journal rows up to the horizon
 * and its snapshots below it, recording the horizon in machine.compactions.
 * A fold that would need what went (a replay or rewind to an earlier
 * version) fails with its own SQLSTATE; a history starts at the horizon.
 *
 * Subscriptions.  A journal row that a subscription delivering the
 * machine's type has not acknowledged yet (by every member) stays: the
 * horizon stops below the actor's first such row.
 *
 * Archive.  The removed journal rows can go into a table made LIKE
 * machine.events.  They are inserted as the calling role, which must hold
 * INSERT on it: the table and its triggers are the caller's, and the
 * extension's owner never writes there.
 *
 * Actors are compacted in batches read from a cursor, so memory stays
 * bounded; everything happens in the caller's transaction.  Sends go on
 * meanwhile: they only add rows past the horizon.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "machine.h"
#include "registry.h"
#include "store_compact.h"

/* Actors compacted by one statement */
#define COMPACT_BATCH 500

/* Is the archive a table with machine.events' columns the caller may fill? */
static void
check_archive(Oid archive)
{
	Oid			nsp = get_namespace_oid("machine", false);
	Oid			events = get_relname_relid("events", nsp);
	char		kind = get_rel_relkind(archive);
	Relation	a;
	Relation	e;
	bool		same = true;
	int			ia = 0;
	int			ie = 0;

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("archive \"%s\" is not a table", get_rel_name(archive)),
				 errhint("Create the archive with CREATE TABLE ... (LIKE machine.events).")));
	if (pg_class_aclcheck(archive, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(archive));

	a = table_open(archive, AccessShareLock);
	e = table_open(events, AccessShareLock);
	for (;;)
	{
		Form_pg_attribute aa = NULL;
		Form_pg_attribute ea = NULL;

		while (ia < RelationGetDescr(a)->natts &&
			   TupleDescAttr(RelationGetDescr(a), ia)->attisdropped)
			ia++;
		while (ie < RelationGetDescr(e)->natts &&
			   TupleDescAttr(RelationGetDescr(e), ie)->attisdropped)
			ie++;
		if (ia < RelationGetDescr(a)->natts)
			aa = TupleDescAttr(RelationGetDescr(a), ia++);
		if (ie < RelationGetDescr(e)->natts)
			ea = TupleDescAttr(RelationGetDescr(e), ie++);
		if (aa == NULL && ea == NULL)
			break;
		if (aa == NULL || ea == NULL || aa->atttypid != ea->atttypid ||
			strcmp(NameStr(aa->attname), NameStr(ea->attname)) != 0 ||
			aa->attgenerated)
		{
			same = false;
			break;
		}
	}
	table_close(e, AccessShareLock);
	table_close(a, AccessShareLock);
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("archive \"%s\" does not have the columns of machine.events",
						get_rel_name(archive)),
				 errdetail("An archive receives the journal rows as they are, column by column."),
				 errhint("Create the archive with CREATE TABLE ... (LIKE machine.events).")));
}

/* Insert journal rows (an array of machine.events) into the archive, as the caller */
static void
archive_rows(Oid archive, Datum rows)
{
	Oid			nsp = get_namespace_oid("machine", false);
	Oid			rowtype = get_rel_type_id(get_relname_relid("events", nsp));
	Oid			argtypes[1] = {get_array_type(rowtype)};
	Datum		values[1] = {rows};
	char	   *sql = psprintf("INSERT INTO %s SELECT * FROM pg_catalog.unnest($1)",
							   quote_qualified_identifier(get_namespace_name(get_rel_namespace(archive)),
														  get_rel_name(archive)));
	int			rc = SPI_execute_with_args(sql, 1, argtypes, values, NULL, false, 0);

	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not archive journal rows: %s", SPI_result_code_string(rc));
}

/*
 * machine_compact(machine text, keep interval DEFAULT NULL, archive
 *				   regclass DEFAULT NULL) RETURNS bigint
 *
 * Remove (or move into archive) the journal rows and snapshots of the
 * machine's actors that a newer snapshot covers (one older than keep, when
 * keep is given), never a journal row a subscription still has to deliver.
 * Returns how many rows went, journal rows and snapshots.
 */
PG_FUNCTION_INFO_V1(machine_compact);
Datum
machine_compact(PG_FUNCTION_ARGS)
{
	char	   *name;
	Interval   *keep = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);
	Oid			archive = PG_ARGISNULL(2) ? InvalidOid : PG_GETARG_OID(2);
	CompiledMachine *cm;
	Datum		txid = (Datum) 0;
	int64		position = 0;
	bool		has_limit;
	Portal		portal;
	List	   *ids;
	MemoryContext batch_context;
	int64		removed = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("machine must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (keep != NULL && (keep->time < 0 || keep->day < 0 || keep->month < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep must not be negative"),
				 errhint("Give how long the newest history is kept, e.g. '30 days', or NULL to keep only what the latest snapshots need.")));
	PreventCommandIfReadOnly("machine_compact()");

	SPI_connect();
	if (!store_has_compactions())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("machine_compact needs version 1.1 of extension \"machine\""),
				 errhint("Run ALTER EXTENSION machine UPDATE first.")));
	cm = machine_lookup(name, false);
	machine_authorize(cm, MACHINE_DELETE);
	if (cm->adapter != NULL || cm->store != STORE_TABLES)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot compact machine \"%s\": its actors are not kept in the built-in tables",
						name),
				 errdetail("machine_compact works on machine.events and machine.snapshots."),
				 errhint("Compact the adapter's storage by its own means.")));
	if (OidIsValid(archive))
		check_archive(archive);
	has_limit = store_subscription_limit(cm->machine_type, &txid, &position);

	batch_context = AllocSetContextCreate(CurrentMemoryContext, "compact batch",
										  ALLOCSET_DEFAULT_SIZES);
	portal = store_open_actors_of(STORE_TABLES, name);
	while ((ids = store_fetch_actor_ids(portal, COMPACT_BATCH,
										batch_context)) != NIL)
	{
		int			n = list_length(ids);
		Datum	   *values = MemoryContextAlloc(batch_context, sizeof(Datum) * n);
		int64		events;
		int64		snapshots;
		bool		rows_null;
		Datum		rows;

		CHECK_FOR_INTERRUPTS();
		/* a connection of its own per batch: its memory goes with it */
		SPI_connect();
		for (int i = 0; i < n; i++)
			values[i] = CStringGetTextDatum(list_nth(ids, i));
		rows = store_compact(values, n, keep, has_limit, txid, position,
							 OidIsValid(archive), &events, &snapshots,
							 &rows_null);
		if (OidIsValid(archive) && !rows_null)
			archive_rows(archive, rows);
		removed += events + snapshots;
		SPI_finish();
		MemoryContextReset(batch_context);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(batch_context);
	SPI_finish();

	PG_RETURN_INT64(removed);
}
