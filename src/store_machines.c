/*-------------------------------------------------------------------------
 *
 * store_machines.c
 *	  The rows of machine.machines (each machine's latest definition, its
 *	  owner and privileges) and of machine.revisions (every definition it
 *	  had), and the machines an event trigger must check.
 *
 * The SQL runs as store.c runs it (store_spi.h): saved plans, as the
 * tables' owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"

#include "store.h"
#include "store_machines.h"
#include "store_spi.h"

/*
 * The machines whose current revision names any of the functions in $1
 * (qualified names), or every machine for a NULL $1
 */
static SavedQuery machines_using_query = {
	"SELECT name, definition::pg_catalog.text, functions FROM machine.machines "
	"WHERE $1 IS NULL OR functions OPERATOR(pg_catalog.&&) $1 "
	"OR definition OPERATOR(pg_catalog.#>>) '{persistence,adapter}' IS NOT NULL "
	"ORDER BY name",
	1, {TEXTARRAYOID}
};

/* The functions an sql_drop event trigger sees dropped: schema, name */
static SavedQuery dropped_functions_query = {
	"SELECT address_names[1], address_names[2] "
	"FROM pg_catalog.pg_event_trigger_dropped_objects() "
	"WHERE object_type OPERATOR(pg_catalog.=) ANY ('{function,procedure}'::text[])",
	0, {InvalidOid}
};

#define MACHINE_COLUMNS \
	"SELECT revision, definition::pg_catalog.text, functions, machine_type, " \
	"owner::pg_catalog.oid, defined_by::pg_catalog.oid, acl " \
	"FROM machine.machines WHERE name OPERATOR(pg_catalog.=) $1"

static SavedQuery load_machine_query[] = {
	[ROW_NO_LOCK] = {MACHINE_COLUMNS, 1, {TEXTOID}},
	[ROW_LOCK_SHARE] = {MACHINE_COLUMNS " FOR SHARE", 1, {TEXTOID}},
	[ROW_LOCK_UPDATE] = {MACHINE_COLUMNS " FOR NO KEY UPDATE", 1, {TEXTOID}},
};

static SavedQuery set_machine_acl_query = {
	"UPDATE machine.machines SET acl = $2 WHERE name OPERATOR(pg_catalog.=) $1",
	2, {TEXTOID, ACLITEMARRAYOID}
};

/*
 * Create a machine, or replace the revision the caller checked ($7; 0 for a
 * new machine): nothing is returned when another revision got there first.
 * The owner and the privileges of an existing machine stay.
 */
static SavedQuery upsert_machine_query = {
	"INSERT INTO machine.machines AS m "
	"(name, revision, definition, functions, machine_type, snapshot_spacing, "
	" owner, defined_by) "
	"VALUES ($1, 1, $2, $3, $4, $5, $6, $6) "
	"ON CONFLICT (name) DO UPDATE SET "
	"revision = m.revision OPERATOR(pg_catalog.+) 1, "
	"definition = excluded.definition, functions = excluded.functions, "
	"machine_type = excluded.machine_type, "
	"snapshot_spacing = excluded.snapshot_spacing, defined_at = pg_catalog.now(), "
	"defined_by = excluded.defined_by "
	"WHERE m.revision OPERATOR(pg_catalog.=) $7 "
	"RETURNING revision",
	7, {TEXTOID, JSONBOID, TEXTARRAYOID, TEXTOID, INTERVALOID, REGROLEOID, INT4OID}
};

static SavedQuery save_revision_query = {
	"INSERT INTO machine.revisions (machine, revision, definition, functions, defined_by) "
	"VALUES ($1, $2, $3, $4, $5)",
	5, {TEXTOID, INT4OID, JSONBOID, TEXTARRAYOID, REGROLEOID}
};

static SavedQuery revision_definition_query = {
	"SELECT definition FROM machine.revisions "
	"WHERE machine OPERATOR(pg_catalog.=) $1 AND revision OPERATOR(pg_catalog.=) $2",
	2, {TEXTOID, INT4OID}
};

static SavedQuery machine_definition_query = {
	"SELECT definition FROM machine.machines "
	"WHERE name OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static SavedQuery delete_machine_query = {
	"DELETE FROM machine.machines WHERE name OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

/*
 * The machines whose current revision names one of these functions (an
 * array of qualified names), or every machine for NULL: a list of
 * StoredMachine with only name, definition and functions set.
 */
List *
store_machines_using(ArrayType *functions)
{
	Datum		values[1] = {PointerGetDatum(functions)};
	char		nulls[1] = {functions ? ' ' : 'n'};
	List	   *result = NIL;

	store_run_in_with_nulls(STORE_TABLES, &machines_using_query, values, nulls, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		StoredMachine *m = palloc0(sizeof(StoredMachine));
		bool		isnull;

		m->name = store_text_column(i, 1);
		m->definition = store_text_column(i, 2);
		m->functions = DatumGetArrayTypePCopy(store_column(i, 3, &isnull));
		result = lappend(result, m);
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
}

/*
 * In an sql_drop event trigger: the qualified names of the functions the
 * command dropped, as a text array; NULL when it dropped none.
 */
ArrayType *
store_dropped_functions(void)
{
	Datum	   *names;
	int			n = 0;
	ArrayType  *result = NULL;

	store_run(&dropped_functions_query, NULL, 0);
	names = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *schema = store_text_column(i, 1);
		char	   *name = store_text_column(i, 2);

		if (schema && name)
			names[n++] = CStringGetTextDatum(quote_qualified_identifier(schema, name));
	}
	SPI_freetuptable(SPI_tuptable);
	if (n > 0)
		result = store_text_array(names, n);
	return result;
}

/* The stored row of a machine, optionally locked; false when there is none */
bool
store_load_machine(const char *name, RowLock lock, StoredMachine *stored)
{
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Datum		acl;

	store_run(&load_machine_query[lock], values, 1);
	if (SPI_processed == 0)
		return false;
	stored->revision = DatumGetInt32(store_column(0, 1, &isnull));
	stored->definition = store_text_column(0, 2);
	stored->functions = DatumGetArrayTypePCopy(store_column(0, 3, &isnull));
	stored->machine_type = store_text_column(0, 4);
	stored->owner = DatumGetObjectId(store_column(0, 5, &isnull));
	stored->defined_by = DatumGetObjectId(store_column(0, 6, &isnull));
	acl = store_column(0, 7, &isnull);
	stored->acl = isnull ? NULL : DatumGetAclPCopy(acl);
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/* Replace the privileges of a machine the caller locked */
void
store_set_machine_acl(const char *name, Acl *acl)
{
	Datum		values[2] = {CStringGetTextDatum(name), PointerGetDatum(acl)};

	store_run(&set_machine_acl_query, values, 0);
}

/*
 * Insert a machine owned by the current role, or replace revision
 * "replaces" of it (0: none), as defined by the current role; returns the
 * new revision, or 0 when "replaces" was not the latest.  snapshot_spacing
 * is in microseconds, or 0 for a schedule that is not "spaced".
 */
int32
store_save_machine(const char *name, int32 replaces, Jsonb *definition,
				   ArrayType *functions, const char *machine_type,
				   int64 snapshot_spacing)
{
	Datum		values[7] = {
		CStringGetTextDatum(name),
		JsonbPGetDatum(definition),
		PointerGetDatum(functions),
		CStringGetTextDatum(machine_type),
		IntervalPGetDatum(store_interval(snapshot_spacing)),
		ObjectIdGetDatum(GetUserId()),
		Int32GetDatum(replaces),
	};
	char		nulls[7] = {' ', ' ', ' ', ' ', snapshot_spacing > 0 ? ' ' : 'n', ' ', ' '};
	bool		isnull;
	int32		revision;

	store_run_in_with_nulls(STORE_TABLES, &upsert_machine_query, values, nulls, 1);
	if (SPI_processed == 0)
		return 0;
	revision = DatumGetInt32(store_column(0, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (store_has_revisions())
	{
		Datum		keep[5] = {
			CStringGetTextDatum(name),
			Int32GetDatum(revision),
			JsonbPGetDatum(definition),
			PointerGetDatum(functions),
			ObjectIdGetDatum(GetUserId()),
		};

		store_run(&save_revision_query, keep, 0);
	}
	return revision;
}

/* The definition of a machine at a revision, or NULL */
Jsonb *
store_revision_definition(const char *name, int32 revision)
{
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(revision)};

	store_run(&revision_definition_query, values, 1);
	if (SPI_processed == 0)
		return NULL;
	return store_jsonb_column(0, 1);
}

/* The stored definition of a machine, or NULL */
Jsonb *
store_machine_definition(const char *name)
{
	Datum		values[1] = {CStringGetTextDatum(name)};

	store_run(&machine_definition_query, values, 1);
	if (SPI_processed == 0)
		return NULL;
	return store_jsonb_column(0, 1);
}

bool
store_delete_machine(const char *name)
{
	Datum		values[1] = {CStringGetTextDatum(name)};

	store_run(&delete_machine_query, values, 0);
	return SPI_processed == 1;
}
