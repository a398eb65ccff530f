/*-------------------------------------------------------------------------
 *
 * store_direct.c
 *	  The per-send path through the table access method: lock and read an
 *	  actor's row, update it, append its journal row and snapshot, without
 *	  the executor.
 *
 * A send is a locking read, an update and one or two inserts (three, when
 * it enters a state with a timer).  Through SPI
 * each is a statement with its executor start-up and shutdown, which costs
 * more than the work itself; here they are an index probe, a tuple lock, a
 * heap update and heap inserts with their index entries, as PostgreSQL's
 * own catalog code does them (CatalogTupleUpdate, CatalogIndexInsert).
 *
 * The same code serves the UNLOGGED twins of the "memory" adapter, whose
 * columns and keys are the built-in tables'.
 *
 * Visibility follows what SPI gives a volatile function: the command
 * counter is advanced and a fresh snapshot taken before the read, so the
 * read sees everything this transaction did so far.  The row is locked FOR
 * NO KEY UPDATE with the executor's rules: in READ COMMITTED the latest
 * version is followed and locked; under REPEATABLE READ and SERIALIZABLE a
 * concurrent update is a serialization failure.
 *
 * The direct path is taken only while the tables are as the install script
 * made them (columns per tables.h, plain column indexes, no row security,
 * no triggers but the foreign key's, whose key column a send never
 * changes, and the journal's position sequence in place); otherwise
 * store.c's SQL does the same work, defaults included.  Any relcache
 * invalidation of the tables makes the next send check again.  Like the
 * SQL, it acts for the extension: the caller's privileges on the machine
 * were checked before (registry.c), and the tables grant it none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "machine.h"
#include "store.h"
#include "store_direct.h"
#include "store_timers.h"
#include "tables.h"

typedef struct DirectTable
{
	const char *name;
	int			natts;
	const char *const *columns;
	const Oid  *types;
	int			nkeys;			/* columns of the primary key, leading */
	int			nchecks;		/* CHECK constraints the script creates */
	Oid			relid;
	Oid			pkey;
} DirectTable;

static const char *const instances_columns[Natts_instances] = {
	"actor_id", "machine", "status", "version", "state", "state_tag",
	"initial_state", "created_at", "last_activity_at", "journal_txid"
};
static const Oid instances_types[Natts_instances] = {
	TEXTOID, TEXTOID, TEXTOID, INT8OID, JSONBOID, TEXTOID, JSONBOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, XID8OID
};
static const char *const events_columns[Natts_events] = {
	"actor_id", "version", "event", "state_tag", "recorded_at", "position",
	"txid", "revision", "idempotency_key"
};
static const Oid events_types[Natts_events] = {
	TEXTOID, INT8OID, JSONBOID, TEXTOID, TIMESTAMPTZOID, INT8OID, XID8OID,
	INT4OID, TEXTOID
};
static const char *const snapshots_columns[Natts_snapshots] = {
	"actor_id", "version", "state", "state_tag", "taken_at"
};
static const Oid snapshots_types[Natts_snapshots] = {
	TEXTOID, INT8OID, JSONBOID, TEXTOID, TIMESTAMPTZOID
};
static const char *const timers_columns[Natts_timers] = {
	"timer_id", "actor_id", "armed_version", "seq", "state_tag", "event",
	"due_at", "armed_by"
};
static const Oid timers_types[Natts_timers] = {
	INT8OID, TEXTOID, INT8OID, INT4OID, TEXTOID, JSONBOID, TIMESTAMPTZOID,
	REGROLEOID
};

#define INSTANCES DIRECT_INSTANCES
#define EVENTS DIRECT_EVENTS
#define SNAPSHOTS DIRECT_SNAPSHOTS
#define TIMERS DIRECT_TIMERS
#define NTABLES 4

/* the built-in tables, and their UNLOGGED twins of the "memory" adapter */
static DirectTable all_tables[STORE_NKINDS][NTABLES] = {
	[STORE_TABLES] = {
		[INSTANCES] = {"instances", Natts_instances, instances_columns, instances_types, 1, 2},
		[EVENTS] = {"events", Natts_events, events_columns, events_types, 2, 1},
		[SNAPSHOTS] = {"snapshots", Natts_snapshots, snapshots_columns, snapshots_types, 2, 1},
		[TIMERS] = {"timers", Natts_timers, timers_columns, timers_types, 1, 0},
	},
	[STORE_MEMORY] = {
		[INSTANCES] = {"memory_instances", Natts_instances, instances_columns, instances_types, 1, 2},
		[EVENTS] = {"memory_events", Natts_events, events_columns, events_types, 2, 1},
		[SNAPSHOTS] = {"memory_snapshots", Natts_snapshots, snapshots_columns, snapshots_types, 2, 1},
		[TIMERS] = {"memory_timers", Natts_timers, timers_columns, timers_types, 1, 0},
	},
};

/* The sequence of machine.events.position, which both journals share */
static Oid	position_seq = InvalidOid;

/* The sequence of machine.timers.timer_id, which both timer tables share */
static Oid	timer_id_seq = InvalidOid;

typedef enum DirectStatus
{
	DIRECT_UNKNOWN,
	DIRECT_USABLE,
	DIRECT_UNUSABLE
} DirectStatus;

static DirectStatus direct_status[STORE_NKINDS] = {DIRECT_UNKNOWN, DIRECT_UNKNOWN};

/* An open table with its indexes, for writing */
typedef struct OpenTable
{
	Relation	rel;
	int			nindexes;
	Relation   *indexes;
	IndexInfo **info;
	bool		indexes_open;
	Relation	pkey_alone;		/* the primary key, opened without the
								 * others, or NULL */
	bool		kept;			/* by the scope below: not closed after use */
	bool		stale;			/* a relcache invalidation: open it again */
} OpenTable;

/*
 * Tables kept open.  Opening a table and its indexes and building their
 * IndexInfo costs about as much as the HOT update of a live row, so the
 * tables a send writes (inside a scope of sends: a machine_send, the items
 * of a machine_send_many, a maintenance batch) stay open from their first
 * use to the end of the transaction, as the locks taken on them do anyway.
 * A statement that sends to many actors, or a transaction of many sends,
 * opens them once.
 *
 * They are opened for the top transaction's resource owner, so that a
 * subtransaction that aborts (machine_send_many's 'report' mode, a
 * PL/pgSQL exception block) releases neither them nor their locks; they
 * are closed before the transaction commits, and forgotten when it aborts
 * (its resource owner closes them).  A utility statement closes them
 * first, so that DDL on the tables (DROP EXTENSION, ALTER TABLE) does not
 * find them in use.  A relcache invalidation of a table (an index created
 * by a handler, say) makes its next use open it again.
 */
static int	scope_depth = 0;
static MemoryContext scope_context = NULL;
static OpenTable scope_tables[STORE_NKINDS][NTABLES];
static bool scope_tables_open = false;

/*
 * Where the live row of an actor was last seen in this transaction, while
 * the tables are kept open: a send finds the row there with one heap fetch
 * instead of a descent of the primary key (a dozen thousand instructions,
 * more once the actor's HOT chain grows).  A hint is only a guess: the row
 * is taken only if the snapshot sees the version at that place and it is
 * the actor's, else the key is searched as without it.  An MVCC snapshot
 * sees one version of a row, so a version it sees is the one the key
 * would find.  Keyed by a hash of the id; a collision only costs the
 * search.  Bounded; dropped with the kept tables.
 */
typedef struct TidHintKey
{
	uint32		hash;
	int32		kind;
} TidHintKey;

typedef struct TidHint
{
	TidHintKey	key;
	ItemPointerData tid;
} TidHint;

#define MAX_TID_HINTS 65536

static HTAB *tid_hints = NULL;

/* Rows locked by sends in this transaction: the first needs no hint */
static int	xact_locks = 0;
static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Open a table of the direct path by its remembered OID.  A DROP EXTENSION
 * that commits while a session holds the OID leaves nothing to open: say
 * so clearly, and look the tables up again on the next call.
 */
static Relation
open_direct(DirectTable *t, LOCKMODE lockmode)
{
	Relation	rel = try_table_open(t->relid, lockmode);

	if (rel == NULL)
	{
		for (int k = 0; k < STORE_NKINDS; k++)
			direct_status[k] = DIRECT_UNKNOWN;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table machine.%s was dropped during the call", t->name),
				 errdetail("The extension was dropped, or dropped and created again, concurrently."),
				 errhint("Retry the call.")));
	}
	return rel;
}

/*
 * Is an index with a predicate the journal's index of idempotency keys,
 * (actor_id, idempotency_key) WHERE idempotency_key IS NOT NULL?  Rows
 * without a key need no entry in it.
 */
static bool
is_key_index(DirectTable *t, Relation index)
{
	Form_pg_index form = index->rd_index;
	List	   *pred = RelationGetIndexPredicate(index);
	NullTest   *test;

	if (t->natts != Natts_events || strcmp(t->columns[Natts_events - 1],
										   "idempotency_key") != 0)
		return false;
	if (form->indnatts != 2 || form->indkey.values[0] != Anum_events_actor_id ||
		form->indkey.values[1] != Anum_events_idempotency_key ||
		list_length(pred) != 1 || !IsA(linitial(pred), NullTest))
		return false;
	test = linitial(pred);
	return test->nulltesttype == IS_NOT_NULL && IsA(test->arg, Var) &&
		((Var *) test->arg)->varattno == Anum_events_idempotency_key;
}

/* Is a table of the direct path as the install script made it? */
static bool
table_is_plain(Relation rel, DirectTable *t)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;
	ListCell   *lc;
	bool		plain = true;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
		desc->natts != t->natts)
		return false;
	for (int i = 0; i < t->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);

		if (attr->attisdropped || attr->attgenerated ||
			attr->atttypid != t->types[i] ||
			strcmp(NameStr(attr->attname), t->columns[i]) != 0)
			return false;
	}
	/* the direct path writes only values that pass the script's own CHECKs */
	if ((desc->constr ? desc->constr->num_check : 0) != t->nchecks)
		return false;
	for (int i = 0; i < t->nchecks; i++)
	{
		char	   *expected = psprintf("%s_%s_check", t->name,
										t->nkeys == 1 && i == 0 ? "status" : "version");
		bool		found = false;

		for (int j = 0; j < desc->constr->num_check; j++)
			found |= strcmp(desc->constr->check[j].ccname, expected) == 0;
		if (!found)
			return false;
	}
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *trigger = &rel->trigdesc->triggers[i];

			if (!trigger->tgisinternal ||
				RI_FKey_trigger_type(trigger->tgfoid) == RI_TRIGGER_NONE)
				return false;
		}

	t->pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(t->pkey))
		return false;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (RelationGetIndexExpressions(index) != NIL ||
			(RelationGetIndexPredicate(index) != NIL &&
			 !is_key_index(t, index)) ||
			form->indisexclusion || !form->indimmediate)
			plain = false;
		if (form->indexrelid == t->pkey &&
			(form->indnkeyatts != t->nkeys || form->indkey.values[0] != 1 ||
			 (t->nkeys > 1 && form->indkey.values[1] != 2)))
			plain = false;
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	return plain;
}

/*
 * Are the tables of a kind as the install script made them?  UNKNOWN when
 * one does not exist (yet: an extension at an older version), so that it
 * is looked for again next time.
 */
static DirectStatus
check_tables(StoreKind kind)
{
	DirectTable *tables = all_tables[kind];
	Oid			nsp = get_namespace_oid("machine", true);

	if (!OidIsValid(nsp))
		return DIRECT_UNKNOWN;
	for (int i = 0; i < NTABLES; i++)
	{
		Relation	rel;
		bool		plain;

		tables[i].relid = get_relname_relid(tables[i].name, nsp);
		if (!OidIsValid(tables[i].relid))
			return DIRECT_UNKNOWN;
		rel = open_direct(&tables[i], AccessShareLock);
		plain = table_is_plain(rel, &tables[i]);
		table_close(rel, AccessShareLock);
		if (!plain)
		{
			elog(DEBUG1, "machine.%s is not as installed: sends go through SQL",
				 tables[i].name);
			return DIRECT_UNUSABLE;
		}
	}
	position_seq = get_relname_relid("events_position_seq", nsp);
	timer_id_seq = get_relname_relid("timers_timer_id_seq", nsp);
	return OidIsValid(position_seq) &&
		get_rel_relkind(position_seq) == RELKIND_SEQUENCE &&
		OidIsValid(timer_id_seq) &&
		get_rel_relkind(timer_id_seq) == RELKIND_SEQUENCE ?
		DIRECT_USABLE : DIRECT_UNUSABLE;
}

/* May this access to a table take the direct path? */
bool
store_direct_usable(StoreKind kind, DirectTableId table)
{
	if (direct_status[kind] == DIRECT_UNKNOWN)
		direct_status[kind] = check_tables(kind);
	return direct_status[kind] == DIRECT_USABLE;
}

/* machine.machines, whose object locks are the machines' (machine_lock) */
static Oid	machines_relid = InvalidOid;

/*
 * Lock a machine by name until the end of the transaction: RowExclusiveLock
 * to write its actors, ExclusiveLock to redefine or drop it.  Acquiring the
 * lock delivers the invalidations of a redefinition waited for.  The lock
 * is an object lock named by machine.machines and a hash of the name.
 */
void
machine_lock(const char *name, LOCKMODE mode)
{
	if (!OidIsValid(machines_relid))
	{
		Oid			nsp = get_namespace_oid("machine", false);

		machines_relid = get_relname_relid("machines", nsp);
		if (!OidIsValid(machines_relid))
			elog(ERROR, "table machine.machines does not exist");
	}
	LockDatabaseObject(machines_relid,
					   hash_bytes((const unsigned char *) name, strlen(name)),
					   0, mode);
}

/* Relcache invalidation: check the tables again before the next send */
void
store_direct_forget(Oid relid)
{
	if (relid == InvalidOid || relid == machines_relid)
		machines_relid = InvalidOid;
	for (int k = 0; k < STORE_NKINDS; k++)
	{
		if (relid == InvalidOid)
			direct_status[k] = DIRECT_UNKNOWN;
		for (int i = 0; i < NTABLES; i++)
		{
			if (relid == all_tables[k][i].relid)
				direct_status[k] = DIRECT_UNKNOWN;
			if (relid == InvalidOid ||
				(scope_tables[k][i].rel != NULL &&
				 relid == RelationGetRelid(scope_tables[k][i].rel)))
				scope_tables[k][i].stale = true;
		}
	}
}

/* Open the indexes of an open table, for inserting their entries */
static void
open_indexes(OpenTable *ot)
{
	List	   *oids;
	ListCell   *lc;
	int			i = 0;

	oids = RelationGetIndexList(ot->rel);
	ot->nindexes = list_length(oids);
	ot->indexes = palloc(sizeof(Relation) * Max(ot->nindexes, 1));
	ot->info = palloc(sizeof(IndexInfo *) * Max(ot->nindexes, 1));
	foreach(lc, oids)
	{
		ot->indexes[i] = index_open(lfirst_oid(lc), RowExclusiveLock);
		ot->info[i] = BuildIndexInfo(ot->indexes[i]);
		i++;
	}
	list_free(oids);
	ot->indexes_open = true;
}

static void
open_table(DirectTable *t, OpenTable *ot, bool with_indexes)
{
	ot->rel = open_direct(t, RowExclusiveLock);
	ot->nindexes = 0;
	ot->indexes_open = false;
	ot->pkey_alone = NULL;
	ot->kept = false;
	ot->stale = false;
	if (with_indexes)
		open_indexes(ot);
}

static void
close_table(OpenTable *ot)
{
	for (int i = 0; i < ot->nindexes; i++)
		index_close(ot->indexes[i], RowExclusiveLock);
	if (ot->pkey_alone != NULL)
		index_close(ot->pkey_alone, RowExclusiveLock);
	table_close(ot->rel, NoLock);
}

/*
 * Open or close a table the scope keeps, as the resource owner of the
 * scope: open its indexes too when asked, open only them when the table is
 * open already, or (with "close") close it.
 */
static void
as_scope_owner(OpenTable *ot, DirectTable *t, bool with_indexes, bool close)
{
	ResourceOwner save = CurrentResourceOwner;
	MemoryContext old = MemoryContextSwitchTo(scope_context);

	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		if (close)
		{
			close_table(ot);
			memset(ot, 0, sizeof(OpenTable));
		}
		else if (ot->rel == NULL)
		{
			scope_tables_open = true;
			open_table(t, ot, with_indexes);
			ot->kept = true;
		}
		else
			open_indexes(ot);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
		MemoryContextSwitchTo(old);
	}
	PG_END_TRY();
}

/*
 * A table of the direct path, open for writing (with its indexes if asked):
 * the scope's, or "local" opened now.  Give it back with release_table().
 */
static OpenTable *
use_table(StoreKind kind, DirectTableId id, bool with_indexes,
		  OpenTable *local)
{
	OpenTable  *ot = &scope_tables[kind][id];

	if (scope_depth == 0)
	{
		open_table(&all_tables[kind][id], local, with_indexes);
		return local;
	}
	if (ot->rel != NULL && ot->stale)
	{
		as_scope_owner(ot, NULL, false, true);
		if (tid_hints != NULL)
		{
			hash_destroy(tid_hints);
			tid_hints = NULL;
		}
	}
	if (ot->rel == NULL || (with_indexes && !ot->indexes_open))
		as_scope_owner(ot, &all_tables[kind][id], with_indexes, false);
	return ot;
}

/* Open the indexes of a table from use_table() that was opened without */
static void
use_indexes(OpenTable *ot)
{
	if (ot->indexes_open)
		return;
	if (ot->kept)
		as_scope_owner(ot, NULL, true, false);
	else
		open_indexes(ot);
}

static void
release_table(OpenTable *ot)
{
	if (!ot->kept)
		close_table(ot);
}

/*
 * Close the tables kept open ("close"), or only forget them (the
 * transaction aborts, and its resource owner closes them).
 */
static void
release_kept_tables(bool close)
{
	if (!scope_tables_open)
		return;
	if (close)
		for (int k = 0; k < STORE_NKINDS; k++)
			for (int i = 0; i < NTABLES; i++)
				if (scope_tables[k][i].rel != NULL)
					as_scope_owner(&scope_tables[k][i], NULL, false, true);
	memset(scope_tables, 0, sizeof(scope_tables));
	scope_tables_open = false;
	tid_hints = NULL;
	xact_locks = 0;
	MemoryContextReset(scope_context);
}

static TidHintKey
tid_hint_key(StoreKind kind, const char *actor_id, int len)
{
	TidHintKey	key;

	memset(&key, 0, sizeof(key));
	key.hash = hash_bytes((const unsigned char *) actor_id, len);
	key.kind = kind;
	return key;
}

/*
 * Remember where an actor's live row is, while the tables are kept open;
 * from the second send of a transaction on (a transaction of one send
 * would only pay for the table), or when "force"d
 */
static void
remember_tid(StoreKind kind, const char *actor_id, int len, ItemPointer tid,
			 bool force)
{
	TidHintKey	key;
	TidHint    *hint;

	if (!scope_tables_open || scope_tables[kind][INSTANCES].rel == NULL)
		return;
	if (tid_hints == NULL && !force && xact_locks < 2)
		return;
	if (tid_hints == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(TidHintKey);
		ctl.entrysize = sizeof(TidHint);
		ctl.hcxt = scope_context;
		tid_hints = hash_create("machine live row places", 256, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	key = tid_hint_key(kind, actor_id, len);
	if (hash_get_num_entries(tid_hints) >= MAX_TID_HINTS)
	{
		hint = hash_search(tid_hints, &key, HASH_FIND, NULL);
		if (hint == NULL)
			return;
	}
	else
		hint = hash_search(tid_hints, &key, HASH_ENTER, NULL);
	hint->tid = *tid;
}

/*
 * Fetch an actor's row from where it was last seen, if the snapshot sees
 * it there; the slot holds it
 */
static bool
fetch_by_hint(Relation rel, StoreKind kind, Snapshot snapshot,
			  const char *actor_id, TupleTableSlot *slot)
{
	TidHintKey	key;
	TidHint    *hint;
	ItemPointerData tid;
	bool		isnull;
	text	   *id;

	if (tid_hints == NULL)
		return false;
	key = tid_hint_key(kind, actor_id, strlen(actor_id));
	hint = hash_search(tid_hints, &key, HASH_FIND, NULL);
	if (hint == NULL)
		return false;
	tid = hint->tid;
	if (!table_tuple_fetch_row_version(rel, &tid, snapshot, slot))
		return false;
	id = DatumGetTextPP(slot_getattr(slot, Anum_instances_actor_id, &isnull));
	if (VARSIZE_ANY_EXHDR(id) == strlen(actor_id) &&
		memcmp(VARDATA_ANY(id), actor_id, VARSIZE_ANY_EXHDR(id)) == 0)
		return true;
	ExecClearTuple(slot);
	return false;
}

static void
store_direct_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			release_kept_tables(true);
			break;
		default:
			release_kept_tables(false);
			scope_depth = 0;
			break;
	}
}

static void
store_direct_process_utility(PlannedStmt *pstmt, const char *queryString,
							 bool readOnlyTree, ProcessUtilityContext context,
							 ParamListInfo params, QueryEnvironment *queryEnv,
							 DestReceiver *dest, QueryCompletion *qc)
{
	release_kept_tables(true);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* At load: the hooks that close the tables kept open */
void
store_direct_init(void)
{
	scope_context = AllocSetContextCreate(TopMemoryContext,
										  "machine open tables",
										  ALLOCSET_SMALL_SIZES);
	RegisterXactCallback(store_direct_xact_callback, NULL);
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = store_direct_process_utility;
}

/* Begin a scope of sends: tables used in it are kept open (see above) */
void
store_direct_begin_scope(void)
{
	scope_depth++;
}

/*
 * End a scope, after an error too (its callers catch and re-throw): the
 * tables stay open, the top transaction owns them.
 */
void
store_direct_end_scope(void)
{
	if (scope_depth > 0)
		scope_depth--;
}

/*
 * Index entries for a tuple just stored in the slot's table.  With
 * partial, the primary key's uniqueness is checked without raising an
 * error and the result says whether it held, so that the caller can raise
 * a duplicate version as a version conflict.
 */
static bool
insert_index_entries(OpenTable *ot, TupleTableSlot *slot, bool update,
					 bool partial)
{
	bool		unique = true;

	for (int i = 0; i < ot->nindexes; i++)
	{
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		Relation	index = ot->indexes[i];
		IndexUniqueCheck check = UNIQUE_CHECK_NO;

		if (!ot->info[i]->ii_ReadyForInserts)
			continue;
		/* the only partial index allowed is the idempotency keys' */
		if (ot->info[i]->ii_Predicate != NIL &&
			slot->tts_isnull[Anum_events_idempotency_key - 1])
			continue;
		if (index->rd_index->indisunique)
			check = partial && index->rd_index->indisprimary ?
				UNIQUE_CHECK_PARTIAL : UNIQUE_CHECK_YES;
		FormIndexDatum(ot->info[i], slot, NULL, values, isnull);
		/* a send never changes an indexed column: tell nbtree so */
		if (!index_insert(index, values, isnull, &slot->tts_tid, ot->rel,
						  check, update, ot->info[i]) &&
			check == UNIQUE_CHECK_PARTIAL)
			unique = false;
	}
	return unique;
}

/* Scan keys on the leading columns of a primary key: actor_id, version */
static int
pkey_keys(Relation index, ScanKey keys, const char *actor_id, int64 version,
		  int nkeys)
{
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(actor_id));
	if (nkeys > 1)
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_INT8EQ, Int64GetDatum(version));
	return nkeys;
}

/*
 * Find the row of a primary key visible to the snapshot; the slot holds it.
 */
static bool
fetch_by_pkey(Relation rel, DirectTable *t, Snapshot snapshot,
			  const char *actor_id, int64 version, TupleTableSlot *slot)
{
	Relation	index = index_open(t->pkey, AccessShareLock);
	ScanKeyData keys[2];
	int			nkeys = pkey_keys(index, keys, actor_id, version, t->nkeys);
	IndexScanDesc scan = index_beginscan(rel, index, snapshot, nkeys, 0);
	bool		found;

	index_rescan(scan, keys, nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	return found;
}

/* The primary key among the open indexes of a table */
static Relation
open_pkey(OpenTable *ot, DirectTable *t)
{
	for (int i = 0; i < ot->nindexes; i++)
		if (RelationGetRelid(ot->indexes[i]) == t->pkey)
			return ot->indexes[i];
	elog(ERROR, "primary key of machine.%s is not open", t->name);
	return NULL;				/* keep compiler quiet */
}

/*
 * The primary key of a table the scope keeps, opened alone if its indexes
 * are not open: a send's lock needs only it, and its HOT update none
 */
static Relation
kept_pkey(OpenTable *ot, DirectTable *t)
{
	ResourceOwner save;

	if (ot->indexes_open)
		return open_pkey(ot, t);
	if (ot->pkey_alone != NULL)
		return ot->pkey_alone;
	save = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		ot->pkey_alone = index_open(t->pkey, RowExclusiveLock);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
	}
	PG_END_TRY();
	return ot->pkey_alone;
}

/*
 * Lock FOR NO KEY UPDATE the row of an actor found in the slot (the latest
 * version, in READ COMMITTED) and read it; false when it was deleted
 * meanwhile.  The slot holds the locked version afterwards.
 */
static bool
lock_fetched(Relation rel, Snapshot snapshot, TupleTableSlot *slot,
			 StoreKind kind, const char *actor_id, ActorRow *row)
{
	ItemPointerData tid = slot->tts_tid;
	TM_Result	result;
	TM_FailureData tmfd;
	bool		isnull;

	/* the machine's lock first: a redefinition may migrate the row */
	machine_lock(TextDatumGetCString(slot_getattr(slot, Anum_instances_machine,
												  &isnull)),
				 RowExclusiveLock);

	result = table_tuple_lock(rel, &tid, snapshot, slot,
							  GetCurrentCommandId(false),
							  LockTupleNoKeyExclusive, LockWaitBlock,
							  IsolationUsesXactSnapshot() ? 0 :
							  TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
							  &tmfd);
	switch (result)
	{
		case TM_Ok:
			break;
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent delete")));
			return false;
		case TM_Updated:
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent update")));
			break;
		default:
			elog(ERROR, "unexpected result %d locking actor \"%s\"",
				 (int) result, actor_id);
	}

	slot_getallattrs(slot);
	row->tid = slot->tts_tid;
	row->machine = TextDatumGetCString(slot->tts_values[Anum_instances_machine - 1]);
	row->status = actor_status_parse(TextDatumGetCString(slot->tts_values[Anum_instances_status - 1]));
	row->version = DatumGetInt64(slot->tts_values[Anum_instances_version - 1]);
	row->state = DatumGetJsonbPCopy(slot->tts_values[Anum_instances_state - 1]);
	row->state_tag = TextDatumGetCString(slot->tts_values[Anum_instances_state_tag - 1]);
	/* kept as stored (perhaps toasted): an update writes it back as is */
	row->initial_state = datumCopy(slot_getattr(slot, Anum_instances_initial_state, &isnull),
								   false, -1);
	row->created_at = slot->tts_values[Anum_instances_created_at - 1];
	row->journal_txid = slot->tts_isnull[Anum_instances_journal_txid - 1] ?
		InvalidFullTransactionId :
		DatumGetFullTransactionId(slot->tts_values[Anum_instances_journal_txid - 1]);
	row->store = kind;
	return true;
}

/*
 * Lock and read an actor's row FOR NO KEY UPDATE; false when there is none.
 */
bool
store_direct_lock_actor(StoreKind kind, const char *actor_id, ActorRow *row)
{
	DirectTable *t = &all_tables[kind][INSTANCES];
	OpenTable	local;
	OpenTable  *ot;
	Relation	rel;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		found;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ot = use_table(kind, INSTANCES, false, &local);
	rel = ot->rel;
	slot = table_slot_create(rel, NULL);

	if (ot->kept && fetch_by_hint(rel, kind, snapshot, actor_id, slot))
		found = true;
	else if (ot->kept)
	{
		Relation	index = kept_pkey(ot, t);
		ScanKeyData keys[1];
		IndexScanDesc scan;

		pkey_keys(index, keys, actor_id, 0, 1);
		scan = index_beginscan(rel, index, snapshot, 1, 0);
		index_rescan(scan, keys, 1, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
		index_endscan(scan);
	}
	else
		found = fetch_by_pkey(rel, t, snapshot, actor_id, 0, slot);
	if (found)
		found = lock_fetched(rel, snapshot, slot, kind, actor_id, row);
	if (found && ot->kept)
	{
		xact_locks++;
		remember_tid(kind, actor_id, strlen(actor_id), &row->tid, false);
	}
	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
	UnregisterSnapshot(snapshot);
	return found;
}

/*
 * Is there a row of that actor id in the instances of one kind, committed
 * or being inserted?  An insertion or deletion in progress is waited for,
 * as ON CONFLICT waits, so that a spawn that inserted its row and then
 * finds none in the other tables knows that no concurrent spawn of the same
 * id into them can succeed.
 */
bool
store_direct_actor_exists(StoreKind kind, const char *actor_id)
{
	DirectTable *t = &all_tables[kind][INSTANCES];
	Relation	rel;
	TupleTableSlot *slot;
	SnapshotData dirty;
	bool		found;

	rel = open_direct(t, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	for (;;)
	{
		TransactionId wait;

		InitDirtySnapshot(dirty);
		found = fetch_by_pkey(rel, t, &dirty, actor_id, 0, slot);
		/* the dirty snapshot's xmin and xmax are set only for a row seen */
		if (!found)
			break;
		wait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
		if (!TransactionIdIsValid(wait))
			break;
		ExecClearTuple(slot);
		XactLockTableWait(wait, rel, &slot->tts_tid, XLTW_InsertIndex);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The txid of an actor's latest journal row below a version, or an invalid
 * one when there is none.  That row committed before the caller locked the
 * actor (or is the caller's own), so SnapshotSelf sees it whatever the
 * statement's snapshot.  Versions start at 1: an actor's first event has
 * nothing below it to look for.
 */
static FullTransactionId
previous_txid(DirectTable *t, OpenTable *ot, const char *actor_id,
			  int64 version)
{
	Relation	rel;
	Relation	index;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
	IndexScanDesc scan;
	FullTransactionId txid = InvalidFullTransactionId;

	if (version <= 1)
		return txid;
	rel = ot->rel;
	index = open_pkey(ot, t);
	slot = table_slot_create(rel, NULL);

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(actor_id));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTLessStrategyNumber, InvalidOid,
						   InvalidOid, F_INT8LT, Int64GetDatum(version));
	scan = index_beginscan(rel, index, SnapshotSelf, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, Anum_events_txid, &isnull);

		if (!isnull)
			txid = DatumGetFullTransactionId(d);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return txid;
}

/*
 * The txid a journal row gets: its transaction's, unless the actor's
 * previous row has a greater one (a transaction that took its id before
 * the previous writer did, then waited for the actor).  So an actor's rows
 * never go down in (txid, position) order, the order subscriptions read.
 */
static FullTransactionId
journal_txid(FullTransactionId previous)
{
	FullTransactionId own = GetTopFullTransactionId();

	if (FullTransactionIdIsValid(previous) &&
		FullTransactionIdFollows(previous, own))
		return previous;
	return own;
}

/*
 * Update the row an earlier store_direct_lock_actor() locked.  When the
 * version is journaled ("journaled": its journal row follows), the row
 * records the txid that journal row gets, in row->journal_txid too; a row
 * that does not know its latest journal row's txid (written by SQL, or
 * before the column existed) looks it up once.
 */
void
store_direct_update_actor(const char *actor_id, ActorRow *row,
						  ActorStatus status, int64 version, Jsonb *state,
						  const char *tag, bool journaled)
{
	OpenTable	local;
	OpenTable  *ot;
	TupleTableSlot *slot;
	bool		update_indexes;
	TupleTableSlot *current;
	Datum	   *values;
	bool	   *nulls;

	/* a HOT update adds no index entries: open the indexes only if needed */
	ot = use_table(row->store, INSTANCES, false, &local);
	slot = table_slot_create(ot->rel, NULL);
	ExecClearTuple(slot);
	values = slot->tts_values;
	nulls = slot->tts_isnull;
	memset(nulls, 0, sizeof(bool) * Natts_instances);
	values[Anum_instances_actor_id - 1] = CStringGetTextDatum(actor_id);
	values[Anum_instances_machine - 1] = CStringGetTextDatum(row->machine);
	values[Anum_instances_status - 1] = CStringGetTextDatum(actor_status_name(status));
	values[Anum_instances_version - 1] = Int64GetDatum(version);
	values[Anum_instances_state - 1] = JsonbPGetDatum(state);
	values[Anum_instances_state_tag - 1] = CStringGetTextDatum(tag);
	values[Anum_instances_initial_state - 1] = row->initial_state;
	values[Anum_instances_created_at - 1] = row->created_at;
	values[Anum_instances_last_activity_at - 1] =
		TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (journaled)
	{
		FullTransactionId previous = row->journal_txid;

		if (!FullTransactionIdIsValid(previous) && version > 1)
		{
			OpenTable	events_local;
			OpenTable  *events = use_table(row->store, EVENTS, true,
										   &events_local);

			previous = previous_txid(&all_tables[row->store][EVENTS], events,
									 actor_id, version);
			release_table(events);
		}
		row->journal_txid = journal_txid(previous);
	}
	nulls[Anum_instances_journal_txid - 1] =
		!FullTransactionIdIsValid(row->journal_txid);
	values[Anum_instances_journal_txid - 1] =
		FullTransactionIdGetDatum(row->journal_txid);
	ExecStoreVirtualTuple(slot);

	/*
	 * Only code running inside this transition (a guard or handler) can have
	 * replaced the row locked for it; heap_update() would fail on that with
	 * an internal error, so look first.
	 */
	current = table_slot_create(ot->rel, NULL);
	if (!table_tuple_fetch_row_version(ot->rel, &row->tid, SnapshotSelf, current))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("actor \"%s\" was changed during its own transition", actor_id),
				 errdetail("A guard or handler of the transition stopped, deleted or otherwise changed the actor."),
				 errhint("Send the actor an event instead: a send to an actor whose transition is under way is queued.")));
	ExecDropSingleTupleTableSlot(current);

	simple_table_tuple_update(ot->rel, &row->tid, slot, GetActiveSnapshot(),
							  &update_indexes);
	if (update_indexes)
	{
		use_indexes(ot);
		(void) insert_index_entries(ot, slot, true, false);
	}
	row->tid = slot->tts_tid;
	if (ot->kept)
		remember_tid(row->store, actor_id, strlen(actor_id), &row->tid,
					 false);

	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
}

/*
 * Insert a journal or snapshot row (actor_id, version, jsonb, tag, now),
 * and for the journal its position, txid (looked up when invalid), the
 * revision that applied the event and the idempotency key (or NULL).  False when the primary key's partial check finds that
 * version there already (live, or being inserted by another transaction):
 * the caller must then raise an error, which takes the new row away with
 * the transaction.
 */
static bool
insert_versioned(StoreKind kind, DirectTableId id, const char *actor_id,
				 int64 version, Jsonb *value, const char *tag, int32 revision,
				 const char *key, FullTransactionId txid)
{
	DirectTable *t = &all_tables[kind][id];
	OpenTable	local;
	OpenTable  *ot;
	TupleTableSlot *slot;
	bool		unique;

	ot = use_table(kind, id, true, &local);
	slot = table_slot_create(ot->rel, NULL);

	/* the journal and the snapshots share their column order */
	ExecClearTuple(slot);
	memset(slot->tts_isnull, 0, sizeof(bool) * t->natts);
	slot->tts_values[Anum_events_actor_id - 1] = CStringGetTextDatum(actor_id);
	slot->tts_values[Anum_events_version - 1] = Int64GetDatum(version);
	slot->tts_values[Anum_events_event - 1] = JsonbPGetDatum(value);
	slot->tts_values[Anum_events_state_tag - 1] = CStringGetTextDatum(tag);
	slot->tts_values[Anum_events_recorded_at - 1] =
		TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (id == EVENTS)
	{
		if (!FullTransactionIdIsValid(txid))
			txid = journal_txid(previous_txid(t, ot, actor_id, version));

		slot->tts_values[Anum_events_position - 1] =
			Int64GetDatum(nextval_internal(position_seq, false));
		slot->tts_values[Anum_events_txid - 1] = FullTransactionIdGetDatum(txid);
		slot->tts_values[Anum_events_revision - 1] = Int32GetDatum(revision);
		if (key != NULL)
			slot->tts_values[Anum_events_idempotency_key - 1] =
				CStringGetTextDatum(key);
		else
			slot->tts_isnull[Anum_events_idempotency_key - 1] = true;
	}
	ExecStoreVirtualTuple(slot);
	simple_table_tuple_insert(ot->rel, slot);
	unique = insert_index_entries(ot, slot, false, true);

	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
	return unique;
}

/* Append a journal row; false for a duplicate version, which must be raised */
bool
store_direct_append_event(StoreKind kind, const char *actor_id, int64 version,
						  Jsonb *event, const char *tag, int32 revision,
						  const char *key, FullTransactionId txid)
{
	return insert_versioned(kind, EVENTS, actor_id, version, event, tag,
							revision, key, txid);
}

/* Append a snapshot; false for a duplicate version, which must be raised */
bool
store_direct_append_snapshot(StoreKind kind, const char *actor_id,
							 int64 version, Jsonb *state, const char *tag)
{
	return insert_versioned(kind, SNAPSHOTS, actor_id, version, state, tag,
							0, NULL, InvalidFullTransactionId);
}

/*
 * Arm a timer: its row, due "delay_us" from now, with the next timer_id of
 * the sequence the column's default takes it from.
 */
void
store_direct_arm_timer(StoreKind kind, const char *actor_id, int64 version,
					   int seq, const char *tag, Jsonb *event, int64 delay_us,
					   Oid role)
{
	OpenTable	local;
	OpenTable  *ot;
	TupleTableSlot *slot;
	Interval	delay = {.time = delay_us};

	ot = use_table(kind, TIMERS, true, &local);
	slot = table_slot_create(ot->rel, NULL);
	ExecClearTuple(slot);
	memset(slot->tts_isnull, 0, sizeof(bool) * Natts_timers);
	slot->tts_values[Anum_timers_timer_id - 1] =
		Int64GetDatum(nextval_internal(timer_id_seq, false));
	slot->tts_values[Anum_timers_actor_id - 1] = CStringGetTextDatum(actor_id);
	slot->tts_values[Anum_timers_armed_version - 1] = Int64GetDatum(version);
	slot->tts_values[Anum_timers_seq - 1] = Int32GetDatum(seq);
	slot->tts_values[Anum_timers_state_tag - 1] = CStringGetTextDatum(tag);
	slot->tts_values[Anum_timers_event - 1] = JsonbPGetDatum(event);
	slot->tts_values[Anum_timers_due_at - 1] =
		DirectFunctionCall2(timestamptz_pl_interval,
							TimestampTzGetDatum(GetCurrentTimestamp()),
							IntervalPGetDatum(&delay));
	slot->tts_values[Anum_timers_armed_by - 1] = ObjectIdGetDatum(role);
	ExecStoreVirtualTuple(slot);
	simple_table_tuple_insert(ot->rel, slot);
	(void) insert_index_entries(ot, slot, false, false);
	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
}

/*
 * Delete a timer's row as DELETE does: a row another transaction changes
 * is waited for; then, in READ COMMITTED, its newest version is deleted if
 * it is still the actor's, and under REPEATABLE READ or SERIALIZABLE the
 * change is a serialization failure.
 */
static void
delete_timer_row(Relation rel, ItemPointer tid, Snapshot snapshot,
				 TupleTableSlot *slot, const char *actor_id)
{
	ItemPointerData current = *tid;

	for (;;)
	{
		TM_FailureData tmfd;
		TM_Result	result;
		bool		isnull;
		char	   *owner;

		result = table_tuple_delete(rel, &current, GetCurrentCommandId(true),
									snapshot, InvalidSnapshot, true, &tmfd,
									false);
		switch (result)
		{
			case TM_Ok:
			case TM_SelfModified:
				return;
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent delete")));
				return;
			case TM_Updated:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				current = tmfd.ctid;
				if (table_tuple_lock(rel, &current, snapshot, slot,
									 GetCurrentCommandId(true),
									 LockTupleExclusive, LockWaitBlock,
									 TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
									 &tmfd) != TM_Ok)
					return;
				owner = TextDatumGetCString(slot_getattr(slot, Anum_timers_actor_id,
														 &isnull));
				if (strcmp(owner, actor_id) != 0)
					return;
				current = slot->tts_tid;
				break;
			default:
				elog(ERROR, "unexpected table_tuple_delete status: %u", result);
		}
	}
}

/* The index of a timers table on (due_at, timer_id), the claim's, or NULL */
static Relation
timers_due_index(OpenTable *ot)
{
	for (int i = 0; i < ot->nindexes; i++)
	{
		Form_pg_index form = ot->indexes[i]->rd_index;

		if (form->indnkeyatts == 2 &&
			form->indkey.values[0] == Anum_timers_due_at &&
			form->indkey.values[1] == Anum_timers_timer_id)
			return ot->indexes[i];
	}
	return NULL;
}

/* May the claim take this version of a timer's row? */
static bool
timer_claimable(TupleTableSlot *slot, TimestampTz due_by, int64 last_timer,
				Oid member)
{
	bool		isnull;

	if (DatumGetTimestampTz(slot_getattr(slot, Anum_timers_due_at, &isnull)) > due_by)
		return false;
	if (last_timer >= 0 &&
		DatumGetInt64(slot_getattr(slot, Anum_timers_timer_id, &isnull)) > last_timer)
		return false;
	return has_privs_of_role(member,
							 DatumGetObjectId(slot_getattr(slot, Anum_timers_armed_by,
														   &isnull)));
}

/*
 * Claim due timers as the claim's SQL does (SELECT ... ORDER BY due_at,
 * timer_id LIMIT n FOR UPDATE SKIP LOCKED): those due at due_by (armed up
 * to last_timer, unless it is negative) by a role whose privileges
 * "member" has, soonest first, locked for this transaction, skipping rows
 * another transaction holds; a row changed meanwhile is locked in its
 * newest version and checked again.  Appends up to "limit" TimerRefs to
 * *claimed and returns how many; -1 when the table lacks the index on
 * (due_at, timer_id): the caller then runs the SQL.
 */
int
store_direct_claim_timers(StoreKind kind, TimestampTz due_by,
						  int64 last_timer, Oid member, int limit,
						  List **claimed)
{
	OpenTable	local;
	OpenTable  *ot;
	Relation	index;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	TupleTableSlot *locked;
	IndexScanDesc scan;
	ScanKeyData key;
	int			lockflags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS;
	int			n = 0;

	ot = use_table(kind, TIMERS, true, &local);
	index = timers_due_index(ot);
	if (index == NULL)
	{
		release_table(ot);
		return -1;
	}
	if (!IsolationUsesXactSnapshot())
		lockflags |= TUPLE_LOCK_FLAG_FIND_LAST_VERSION;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	slot = table_slot_create(ot->rel, NULL);
	locked = table_slot_create(ot->rel, NULL);
	ScanKeyEntryInitialize(&key, 0, 1, BTLessEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_TIMESTAMPTZ_LE,
						   TimestampTzGetDatum(due_by));
	scan = index_beginscan(ot->rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (n < limit && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		ItemPointerData tid = slot->tts_tid;
		TM_FailureData tmfd;
		TM_Result	result;
		TimerRef   *ref;
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		if (!timer_claimable(slot, due_by, last_timer, member))
			continue;
		result = table_tuple_lock(ot->rel, &tid, snapshot, locked,
								  GetCurrentCommandId(true), LockTupleExclusive,
								  LockWaitSkip, lockflags, &tmfd);
		switch (result)
		{
			case TM_Ok:
				if (tmfd.traversed &&
					!timer_claimable(locked, due_by, last_timer, member))
					continue;
				break;
			case TM_WouldBlock:
			case TM_SelfModified:
				continue;
			case TM_Deleted:
			case TM_Updated:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				if (result == TM_Deleted)
					continue;
				elog(ERROR, "unexpected table_tuple_lock status: %u", result);
				break;
			default:
				elog(ERROR, "unexpected table_tuple_lock status: %u", result);
		}
		ref = palloc(sizeof(TimerRef));
		ref->kind = kind;
		ref->timer_id = DatumGetInt64(slot_getattr(locked, Anum_timers_timer_id,
												   &isnull));
		ref->tid = locked->tts_tid;
		*claimed = lappend(*claimed, ref);
		n++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(locked);
	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
	UnregisterSnapshot(snapshot);
	return n;
}

/*
 * Is an actor listed as due for a spaced snapshot?  Read with a snapshot
 * taken now, after the caller locked the actor: a maintenance pass that
 * took its snapshot held the actor's row until it committed, and removed
 * the listing then, so this sees that removal (the statement's snapshot
 * would not); a listing another transaction is adding is not seen, and
 * the caller's INSERT ... ON CONFLICT settles it.  False also when the
 * list's key is not as installed: the INSERT then decides alone.
 */
bool
store_direct_snapshot_listed(StoreKind kind, const char *actor_id)
{
	Oid			nsp = get_namespace_oid("machine", true);
	Oid			relid;
	Relation	rel;
	Relation	index;
	Oid			pkey;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(nsp))
		return false;
	relid = get_relname_relid(kind == STORE_TABLES ? "snapshots_due" :
							  "memory_snapshots_due", nsp);
	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkey))
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	index = index_open(pkey, AccessShareLock);
	if (index->rd_index->indnkeyatts != 1 ||
		index->rd_index->indkey.values[0] != 1 ||
		TupleDescAttr(RelationGetDescr(rel), 0)->atttypid != TEXTOID)
	{
		index_close(index, AccessShareLock);
		table_close(rel, AccessShareLock);
		return false;
	}
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(actor_id));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/* The unique index of a timers table that leads with actor_id, or NULL */
static Relation
timers_actor_index(OpenTable *ot)
{
	for (int i = 0; i < ot->nindexes; i++)
		if (ot->indexes[i]->rd_index->indisunique &&
			ot->indexes[i]->rd_index->indkey.values[0] == Anum_timers_actor_id)
			return ot->indexes[i];
	return NULL;
}

/*
 * Give a timer's row a new armed version as UPDATE does (waiting for,
 * following or failing on another transaction's change as
 * delete_timer_row() does), with the new version's index entries.  "row"
 * holds the row as found at "tid".
 */
static void
move_timer_row(OpenTable *ot, ItemPointer tid, Snapshot snapshot,
			   TupleTableSlot *row, TupleTableSlot *locked,
			   TupleTableSlot *moved, const char *actor_id, int64 version)
{
	ItemPointerData current = *tid;
	TupleTableSlot *from = row;

	for (;;)
	{
		TM_FailureData tmfd;
		TM_Result	result;
		LockTupleMode lockmode;
		bool		update_indexes;
		bool		isnull;
		char	   *owner;

		slot_getallattrs(from);
		ExecClearTuple(moved);
		memcpy(moved->tts_values, from->tts_values, sizeof(Datum) * Natts_timers);
		memcpy(moved->tts_isnull, from->tts_isnull, sizeof(bool) * Natts_timers);
		moved->tts_values[Anum_timers_armed_version - 1] = Int64GetDatum(version);
		ExecStoreVirtualTuple(moved);
		result = table_tuple_update(ot->rel, &current, moved,
									GetCurrentCommandId(true), snapshot,
									InvalidSnapshot, true, &tmfd, &lockmode,
									&update_indexes);
		switch (result)
		{
			case TM_Ok:
				if (update_indexes)
					(void) insert_index_entries(ot, moved, false, false);
				return;
			case TM_SelfModified:
				return;
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent delete")));
				return;
			case TM_Updated:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				current = tmfd.ctid;
				if (table_tuple_lock(ot->rel, &current, snapshot, locked,
									 GetCurrentCommandId(true),
									 lockmode, LockWaitBlock,
									 TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
									 &tmfd) != TM_Ok)
					return;
				owner = TextDatumGetCString(slot_getattr(locked, Anum_timers_actor_id,
														 &isnull));
				if (strcmp(owner, actor_id) != 0)
					return;
				current = locked->tts_tid;
				from = locked;
				break;
			default:
				elog(ERROR, "unexpected table_tuple_update status: %u", result);
		}
	}
}

/*
 * Move each timer row of an actor to "version" (with "move"), or delete
 * it, found through the unique index that leads with actor_id.  False when
 * the table has no such index: the caller then runs the SQL.
 */
static bool
change_actor_timers(StoreKind kind, const char *actor_id, bool move,
					int64 version)
{
	OpenTable	local;
	OpenTable  *ot;
	Relation	index;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	TupleTableSlot *locked;
	TupleTableSlot *moved = NULL;
	IndexScanDesc scan;
	ScanKeyData key;

	ot = use_table(kind, TIMERS, true, &local);
	index = timers_actor_index(ot);
	if (index == NULL)
	{
		release_table(ot);
		return false;
	}

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	slot = table_slot_create(ot->rel, NULL);
	locked = table_slot_create(ot->rel, NULL);
	if (move)
		moved = table_slot_create(ot->rel, NULL);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(actor_id));
	scan = index_beginscan(ot->rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		if (move)
			move_timer_row(ot, &slot->tts_tid, snapshot, slot, locked, moved,
						   actor_id, version);
		else
			delete_timer_row(ot->rel, &slot->tts_tid, snapshot, locked,
							 actor_id);
	}
	index_endscan(scan);
	if (moved)
		ExecDropSingleTupleTableSlot(moved);
	ExecDropSingleTupleTableSlot(locked);
	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
	UnregisterSnapshot(snapshot);
	return true;
}

/*
 * Move an actor's timers to a new version of the same state, as UPDATE
 * ... SET armed_version = $2 WHERE actor_id = $1 does.  The rows it writes
 * are invisible to its own scan (written by the scan's command).  False
 * when the table has no index that leads with actor_id: the caller then
 * runs the SQL.
 */
bool
store_direct_move_timers(StoreKind kind, const char *actor_id, int64 version)
{
	return change_actor_timers(kind, actor_id, true, version);
}

/*
 * Cancel an actor's timers: delete its rows as DELETE ... WHERE actor_id =
 * $1 does.  False as for store_direct_move_timers().
 */
bool
store_direct_cancel_timers(StoreKind kind, const char *actor_id)
{
	return change_actor_timers(kind, actor_id, false, 0);
}

/*
 * An index scan of a table's primary key, with a snapshot that sees what
 * this transaction did so far (as SPI gives a volatile function).
 */
typedef struct KeyScan
{
	Snapshot	snapshot;
	Relation	rel;
	Relation	index;
	TupleTableSlot *slot;
	IndexScanDesc scan;
} KeyScan;

static void
key_scan_begin(KeyScan *ks, DirectTable *t, LOCKMODE lockmode, int nkeys)
{
	CommandCounterIncrement();
	ks->snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ks->rel = open_direct(t, lockmode);
	ks->index = index_open(t->pkey, AccessShareLock);
	ks->slot = table_slot_create(ks->rel, NULL);
	ks->scan = index_beginscan(ks->rel, ks->index, ks->snapshot, nkeys, 0);
}

static void
key_scan_end(KeyScan *ks)
{
	index_endscan(ks->scan);
	ExecDropSingleTupleTableSlot(ks->slot);
	index_close(ks->index, AccessShareLock);
	table_close(ks->rel, NoLock);
	UnregisterSnapshot(ks->snapshot);
}

/*
 * A walk of a primary key over the actors of a chunk: one forward scan of
 * the key range from the least to the greatest of their ids, reading the
 * index entries as an index-only scan does (the heap only for the entries
 * wanted), instead of a descent from the root per actor.  It pays when the
 * chunk's actors are near each other in the key, as restore_all's and a
 * check's chunks are (runs of ids in key order): then a descent, a dozen
 * thousand instructions, becomes the reading of an actor's few entries.
 * An entry read in vain (another actor's in the range, or a version not
 * wanted) costs about a seventh of a descent, so a walk stops once it has
 * read more of them than WALK_WASTE_PER_ACTOR for each actor it reached
 * (beyond a first WALK_RUN_LIMIT), or more than WALK_RUN_LIMIT within one
 * actor's entries (a long journal below the snapshot, many snapshots); the
 * actors it did not finish are then probed one by one, as without it.  A
 * chunk scattered among other actors thus costs little more than probes.
 * Actors whose id comes twice in the chunk are always probed.
 */
#define WALK_WASTE_PER_ACTOR 4
#define WALK_RUN_LIMIT 32		/* entries in vain within one actor's */

typedef struct WalkId
{
	text	   *id;
	int			pos;			/* in the chunk */
	bool		twice;			/* another position has the same id */
} WalkId;

typedef struct KeyWalk
{
	KeyScan		ks;
	WalkId	   *ids;			/* sorted by bytes, to look entries up */
	text	  **id_of;			/* by position */
	int			n;
	int			nkeys;			/* of the primary key: versions if 2 */
	FmgrInfo   *order;			/* the index's, on actor_id */
	Oid			collation;
	Datum		greatest;		/* of the ids, in the index's order */
	bool	   *done;			/* by position: walked past */
	bool	   *twice;			/* by position: its id comes twice */
	bool		complete;		/* the walk reached the end of its range */
	int			current;		/* position of the latest entry, or -1 */
	bool		stopped;		/* read too many entries in vain */
	int			reached;		/* actors the walk met entries of */
	int64		waste;			/* entries read in vain */
	int			run_waste;		/* of them, in this actor's */
	text	   *inside;			/* the latest other actor's id, known to be
								 * within the range (a copy), or NULL */
	Size		inside_size;	/* allocated for it */
} KeyWalk;

/* Order of ids by their bytes (not the index's; only to look them up) */
static int
walk_id_cmp(const void *a, const void *b)
{
	const text *x = ((const WalkId *) a)->id;
	const text *y = ((const WalkId *) b)->id;
	int			lx = VARSIZE_ANY_EXHDR(x);
	int			ly = VARSIZE_ANY_EXHDR(y);
	int			r = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(lx, ly));

	return r != 0 ? r : (lx > ly) - (lx < ly);
}

/*
 * Begin a walk over ids[0..n-1] in a table's primary key,
 * seeing only entries whose version is above "above"; false when there is
 * nothing to walk (then only probes are made, with the scan of w->ks, which
 * is open either way).
 */
static bool
walk_begin(KeyWalk *w, DirectTable *t, LOCKMODE lockmode, Datum *ids, int n,
		   int64 above)
{
	Relation	index;
	FmgrInfo   *order;
	Oid			collation;
	int			least = 0;
	int			greatest = 0;
	ScanKeyData keys[2];

	key_scan_begin(&w->ks, t, lockmode, Min(t->nkeys, 2));
	index = w->ks.index;
	w->n = n;
	w->nkeys = t->nkeys;
	w->done = palloc0(sizeof(bool) * Max(n, 1));
	w->twice = palloc0(sizeof(bool) * Max(n, 1));
	w->complete = false;
	w->current = -1;
	w->stopped = false;
	w->reached = 0;
	w->waste = 0;
	w->run_waste = 0;
	w->inside = NULL;
	w->inside_size = 0;
	collation = index->rd_indcollation[0];
	/* entries are matched to ids byte for byte, as equal ids are then */
	if (n < 2 || !get_collation_isdeterministic(collation))
		return false;

	/* the range, in the index's order */
	order = index_getprocinfo(index, 1, BTORDER_PROC);
	for (int i = 1; i < n; i++)
	{
		if (DatumGetInt32(FunctionCall2Coll(order, collation, ids[i],
											ids[least])) < 0)
			least = i;
		if (DatumGetInt32(FunctionCall2Coll(order, collation, ids[i],
											ids[greatest])) > 0)
			greatest = i;
	}

	w->order = order;
	w->collation = collation;
	w->greatest = ids[greatest];
	w->ids = palloc(sizeof(WalkId) * n);
	w->id_of = palloc(sizeof(text *) * n);
	for (int i = 0; i < n; i++)
	{
		w->ids[i].id = w->id_of[i] = DatumGetTextPP(ids[i]);
		w->ids[i].pos = i;
		w->ids[i].twice = false;
	}
	qsort(w->ids, n, sizeof(WalkId), walk_id_cmp);
	for (int i = 1; i < n; i++)
		if (walk_id_cmp(&w->ids[i - 1], &w->ids[i]) == 0)
			w->ids[i - 1].twice = w->ids[i].twice =
				w->twice[w->ids[i - 1].pos] = w->twice[w->ids[i].pos] = true;

	/*
	 * Entries' keys are read from the index, as an index-only scan does.  No
	 * upper bound: the scan would compare every entry with it; an entry of
	 * another actor is compared instead, the only kind that can be past it.
	 * The versions' bound filters entries inside the index.
	 */
	w->ks.scan->xs_want_itup = true;
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTGreaterEqualStrategyNumber,
						   InvalidOid, collation, F_TEXT_GE, ids[least]);
	if (w->nkeys > 1)
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTGreaterStrategyNumber,
							   InvalidOid, InvalidOid, F_INT8GT,
							   Int64GetDatum(above));
	index_rescan(w->ks.scan, keys, Min(w->nkeys, 2), NULL, 0);
	return true;
}

/* Are two ids the same, byte for byte? */
static inline bool
walk_id_equal(const text *x, const text *y)
{
	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/* Remember another actor's id as within the range (entries are the scan's) */
static void
walk_inside(KeyWalk *w, const text *id)
{
	Size		size = VARSIZE_ANY(id);

	if (size > w->inside_size)
	{
		w->inside_size = Max(size, 64);
		w->inside = w->inside ? repalloc(w->inside, w->inside_size) :
			palloc(w->inside_size);
	}
	memcpy(w->inside, id, size);
}

/*
 * The next index entry of the walk: the position of its actor in the chunk
 * (-1 for another actor's, or an id that comes twice) and its version; false
 * at the end of the range or when the walk stopped.  Walking past an actor marks it
 * done; the end of the range marks the last one done too.
 */
static bool
walk_next(KeyWalk *w, int *pos, int64 *version)
{
	IndexScanDesc scan = w->ks.scan;
	WalkId		key;
	WalkId	   *found = NULL;
	bool		isnull;

	if (w->stopped)
		return false;
	CHECK_FOR_INTERRUPTS();
	if (index_getnext_tid(scan, ForwardScanDirection) == NULL)
	{
		if (w->current >= 0)
			w->done[w->current] = true;
		w->current = -1;
		w->complete = true;
		return false;
	}
	key.id = DatumGetTextPP(index_getattr(scan->xs_itup, 1, scan->xs_itupdesc,
										  &isnull));
	/* mostly another entry of the actor before */
	if (w->current >= 0 && walk_id_equal(key.id, w->id_of[w->current]))
		*pos = w->current;
	else
	{
		found = bsearch(&key, w->ids, w->n, sizeof(WalkId), walk_id_cmp);
		*pos = found == NULL || found->twice ? -1 : found->pos;
		/* past the greatest id: the end of the range (once per other id) */
		if (found == NULL &&
			(w->inside == NULL || !walk_id_equal(key.id, w->inside)) &&
			DatumGetInt32(FunctionCall2Coll(w->order, w->collation,
											PointerGetDatum(key.id),
											w->greatest)) > 0)
		{
			if (w->current >= 0)
				w->done[w->current] = true;
			w->current = -1;
			w->complete = true;
			return false;
		}
	}
	*version = w->nkeys < 2 ? 0 :
		DatumGetInt64(index_getattr(scan->xs_itup, 2, scan->xs_itupdesc,
									&isnull));
	if (*pos != w->current)
	{
		if (w->current >= 0)
			w->done[w->current] = true;
		w->current = *pos;
		w->run_waste = 0;
		if (*pos >= 0)
			w->reached++;
		/* an id within the range: its other entries are too */
		if (*pos < 0 && found == NULL)
			walk_inside(w, key.id);
	}
	return true;
}

/* Has the walk met all it will of the actor at a position? */
static bool
walk_done(KeyWalk *w, int pos)
{
	return w->done[pos] || (w->complete && !w->twice[pos]);
}

/*
 * Make the walk's scan one for probes with nkeys keys (a scan's number of
 * keys is set when it begins).
 */
static void
walk_probes(KeyWalk *w, int nkeys)
{
	index_endscan(w->ks.scan);
	w->ks.scan = index_beginscan(w->ks.rel, w->ks.index, w->ks.snapshot,
								 nkeys, 0);
}

/* The row of the walk's current entry, if the snapshot sees it */
static bool
walk_fetch(KeyWalk *w)
{
	return index_fetch_heap(w->ks.scan, w->ks.slot);
}

/* An entry read in vain: too many, and the walk stops */
static void
walk_waste(KeyWalk *w)
{
	w->waste++;
	if (++w->run_waste > WALK_RUN_LIMIT ||
		w->waste > WALK_RUN_LIMIT + (int64) WALK_WASTE_PER_ACTOR * w->reached)
		w->stopped = true;
}

static void
walk_end(KeyWalk *w)
{
	key_scan_end(&w->ks);
}

/*
 * Note where the live rows of ids[0..n-1] are, with one walk of the
 * primary key, for the sends to them that follow in this transaction
 * (their ids sorted, a batch's actors are mostly near each other in the
 * key).  Only inside a scope of sends, whose tables the notes live with.
 */
void
store_direct_find_actors(StoreKind kind, Datum *ids, int n)
{
	KeyWalk		w;
	int			pos;
	int64		version;
	bool	   *seen;

	if (scope_depth == 0 || n < 2)
		return;
	(void) use_table(kind, INSTANCES, false, NULL);
	seen = palloc0(sizeof(bool) * n);
	if (walk_begin(&w, &all_tables[kind][INSTANCES], RowExclusiveLock, ids, n,
				   0))
		while (walk_next(&w, &pos, &version))
		{
			if (pos < 0 || seen[pos])
			{
				walk_waste(&w);
				continue;
			}
			if (!walk_fetch(&w))
				continue;
			seen[pos] = true;
			remember_tid(kind, VARDATA_ANY(w.id_of[pos]),
						 VARSIZE_ANY_EXHDR(w.id_of[pos]), &w.ks.slot->tts_tid,
						 true);
		}
	walk_end(&w);
	pfree(seen);
}

/* Hand a journal row in the slot to the callback, for the actor at pos */
static void
deliver_event(TupleTableSlot *slot, int pos, MemoryContext row_context,
			  EventCallback callback, void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(row_context);
	JournalEntry entry;

	slot_getallattrs(slot);
	entry.pos = pos;
	entry.version = DatumGetInt64(slot->tts_values[Anum_events_version - 1]);
	entry.event = DatumGetJsonbP(slot->tts_values[Anum_events_event - 1]);
	entry.state_tag = TextDatumGetCString(slot->tts_values[Anum_events_state_tag - 1]);
	entry.recorded_at = slot->tts_values[Anum_events_recorded_at - 1];
	entry.revision = slot->tts_isnull[Anum_events_revision - 1] ? -1 :
		DatumGetInt32(slot->tts_values[Anum_events_revision - 1]);
	MemoryContextSwitchTo(old);
	callback(&entry, arg);
	MemoryContextReset(row_context);
}

/*
 * Call back for each journal row of each actor ids[i] with afters[i] <
 * version <= uptos[i]: each actor's rows together and in version order, the
 * actors in key order as a walk meets them, then those it did not finish in
 * the order of the arrays.  A walk's rows and a probe's come in key order
 * with no sort and no cursor.  Each row's values live until its callback
 * returns.
 */
void
store_direct_scan_events_of(StoreKind kind, Datum *ids, Datum *afters,
							Datum *uptos, int n, EventCallback callback,
							void *arg)
{
	MemoryContext row_context = AllocSetContextCreate(CurrentMemoryContext,
													  "machine journal row",
													  ALLOCSET_SMALL_SIZES);
	KeyWalk		w;
	int64	   *last = palloc(sizeof(int64) * Max(n, 1));
	int			pos;
	int64		version;
	ScanKeyData keys[3];
	int64		above = PG_INT64_MAX;

	for (int i = 0; i < n; i++)
	{
		last[i] = DatumGetInt64(afters[i]);
		above = Min(above, last[i]);
	}
	if (walk_begin(&w, &all_tables[kind][EVENTS], AccessShareLock, ids, n,
				   above))
		while (walk_next(&w, &pos, &version))
		{
			if (pos < 0 || version <= last[pos] ||
				version > DatumGetInt64(uptos[pos]))
				walk_waste(&w);
			else if (walk_fetch(&w))
			{
				last[pos] = version;
				deliver_event(w.ks.slot, pos, row_context, callback, arg);
			}
		}

	/* the actor the walk stopped in first, so that its rows stay together */
	walk_probes(&w, 3);
	for (int k = -1; k < n; k++)
	{
		int			i = k < 0 ? w.current : k;

		if (i < 0 || walk_done(&w, i) || (k >= 0 && i == w.current))
			continue;
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   w.ks.index->rd_indcollation[0], F_TEXTEQ, ids[i]);
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTGreaterStrategyNumber,
							   InvalidOid, InvalidOid, F_INT8GT,
							   Int64GetDatum(last[i]));
		ScanKeyEntryInitialize(&keys[2], 0, 2, BTLessEqualStrategyNumber,
							   InvalidOid, InvalidOid, F_INT8LE, uptos[i]);
		index_rescan(w.ks.scan, keys, 3, NULL, 0);
		while (index_getnext_slot(w.ks.scan, ForwardScanDirection, w.ks.slot))
		{
			CHECK_FOR_INTERRUPTS();
			deliver_event(w.ks.slot, i, row_context, callback, arg);
		}
	}
	walk_end(&w);
	MemoryContextDelete(row_context);
}

/* The latest snapshot among those a walk met of an actor (see below) */
#define WALK_SNAPSHOT_CANDIDATES 4

/*
 * Take the latest visible of the snapshots a walk met of an actor, latest
 * first: true when one is, or when there was none; false when none of the
 * candidates kept is visible and older ones were dropped (probe then).
 */
static bool
walk_take_snapshot(KeyWalk *w, ItemPointerData *tids, int ntids,
				   bool dropped, Jsonb **state, int64 *version)
{
	IndexFetchTableData *fetch = w->ks.scan->xs_heapfetch;

	for (int k = ntids - 1; k >= 0; k--)
	{
		bool		call_again = false;
		bool		all_dead = false;
		bool		isnull;

		if (!table_index_fetch_tuple(fetch, &tids[k], w->ks.snapshot,
									 w->ks.slot, &call_again, &all_dead))
			continue;
		*version = DatumGetInt64(slot_getattr(w->ks.slot, Anum_snapshots_version,
											  &isnull));
		*state = DatumGetJsonbPCopy(slot_getattr(w->ks.slot, Anum_snapshots_state,
												 &isnull));
		ExecClearTuple(w->ks.slot);
		return true;
	}
	return !dropped;
}

/*
 * The latest snapshot of each actor ids[i] at or below uptos[i]: a walk
 * over the chunk, then a backward probe of the primary key for each actor
 * it did not settle.  An actor without one is left as it is.
 */
void
store_direct_latest_snapshots(StoreKind kind, Datum *ids, Datum *uptos,
							  int n, Jsonb **states, int64 *versions)
{
	KeyWalk		w;
	bool	   *settled = palloc0(sizeof(bool) * Max(n, 1));
	bool	   *tried = palloc0(sizeof(bool) * Max(n, 1));
	ItemPointerData tids[WALK_SNAPSHOT_CANDIDATES];
	int			ntids = 0;
	bool		dropped = false;
	int			of = -1;		/* the actor of the candidates */
	int			pos;
	int64		version;
	ScanKeyData keys[2];

	if (walk_begin(&w, &all_tables[kind][SNAPSHOTS], AccessShareLock, ids, n,
				   -1))
	{
		for (;;)
		{
			bool		more = walk_next(&w, &pos, &version);

			/* an actor walked past: its latest visible candidate */
			if (of >= 0 && (!more || pos != of) && walk_done(&w, of))
			{
				tried[of] = true;
				settled[of] = walk_take_snapshot(&w, tids, ntids, dropped,
												 &states[of], &versions[of]);
			}
			if (!more)
				break;
			if (pos != of)
			{
				of = pos;
				ntids = 0;
				dropped = false;
			}
			if (pos < 0 || version > DatumGetInt64(uptos[pos]))
			{
				walk_waste(&w);
				continue;
			}
			if (ntids == WALK_SNAPSHOT_CANDIDATES)
			{
				memmove(&tids[0], &tids[1], sizeof(ItemPointerData) * (ntids - 1));
				ntids--;
				dropped = true;
			}
			tids[ntids++] = w.ks.scan->xs_heaptid;
			if (dropped || ntids > 1)
				walk_waste(&w);
		}
	}

	walk_probes(&w, 2);
	for (int i = 0; i < n; i++)
	{
		/* settled, or never met by a walk that reached its end: none */
		if (settled[i] || (walk_done(&w, i) && !tried[i]))
			continue;
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   w.ks.index->rd_indcollation[0], F_TEXTEQ, ids[i]);
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTLessEqualStrategyNumber,
							   InvalidOid, InvalidOid, F_INT8LE, uptos[i]);
		index_rescan(w.ks.scan, keys, 2, NULL, 0);
		if (index_getnext_slot(w.ks.scan, BackwardScanDirection, w.ks.slot))
		{
			bool		isnull;

			versions[i] = DatumGetInt64(slot_getattr(w.ks.slot, Anum_snapshots_version,
													 &isnull));
			states[i] = DatumGetJsonbPCopy(slot_getattr(w.ks.slot, Anum_snapshots_state,
														&isnull));
		}
	}
	walk_end(&w);
}

/*
 * Lock and read FOR NO KEY UPDATE the rows of the actors ids[i] not found
 * yet (found[i] false) in the instances of one kind, as
 * store_direct_lock_actor() does each: a walk over the chunk, then a probe
 * of the primary key for each actor it did not settle.  found[i] says
 * whether the row of ids[i] is in rows[i] now.  Rows are locked in key
 * order as the walk meets them, then in the order of the arrays.
 */
void
store_direct_lock_actors(StoreKind kind, Datum *ids, int n, ActorRow *rows,
						 bool *found)
{
	KeyWalk		w;
	int			pos;
	int64		version;
	ScanKeyData key;

	if (walk_begin(&w, &all_tables[kind][INSTANCES], RowExclusiveLock, ids, n,
				   0))
		while (walk_next(&w, &pos, &version))
		{
			char	   *actor_id;

			if (pos < 0 || found[pos])
			{
				walk_waste(&w);
				continue;
			}
			if (!walk_fetch(&w))
				continue;
			actor_id = text_to_cstring(w.id_of[pos]);
			found[pos] = lock_fetched(w.ks.rel, w.ks.snapshot, w.ks.slot, kind,
									  actor_id, &rows[pos]);
			pfree(actor_id);
		}

	walk_probes(&w, 1);
	for (int i = 0; i < n; i++)
	{
		char	   *actor_id;

		if (found[i] || walk_done(&w, i))
			continue;
		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   w.ks.index->rd_indcollation[0], F_TEXTEQ, ids[i]);
		index_rescan(w.ks.scan, &key, 1, NULL, 0);
		if (!index_getnext_slot(w.ks.scan, ForwardScanDirection, w.ks.slot))
			continue;
		actor_id = TextDatumGetCString(ids[i]);
		found[i] = lock_fetched(w.ks.rel, w.ks.snapshot, w.ks.slot, kind,
								actor_id, &rows[i]);
	}
	walk_end(&w);
}

/*
 * Take a claimed timer out of its table and return it as it is now; false
 * when it is gone.  The claim locked the row in this transaction, so no
 * one else changes it, but an earlier timer of the same batch may have
 * moved it (updated it) or cancelled it (deleted it) since.  Mostly it is
 * still the row the claim found at "tid": that one is taken if this
 * transaction sees it live (SnapshotSelf, which sees even this command's
 * changes).  Otherwise the primary key finds its newer version, if any,
 * after a new command.
 */
bool
store_direct_take_timer(StoreKind kind, int64 timer_id, ItemPointer tid,
						DueTimer *timer)
{
	OpenTable	local;
	OpenTable  *ot;
	Snapshot	snapshot = NULL;
	TupleTableSlot *slot;
	bool		found;

	ot = use_table(kind, TIMERS, true, &local);
	slot = table_slot_create(ot->rel, NULL);
	found = ItemPointerIsValid(tid) &&
		table_tuple_fetch_row_version(ot->rel, tid, SnapshotSelf, slot);
	if (found)
	{
		bool		isnull;

		found = DatumGetInt64(slot_getattr(slot, Anum_timers_timer_id,
										   &isnull)) == timer_id;
	}
	if (!found)
	{
		IndexScanDesc scan;
		ScanKeyData key;

		CommandCounterIncrement();
		snapshot = RegisterSnapshot(GetTransactionSnapshot());
		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_INT8EQ, Int64GetDatum(timer_id));
		scan = index_beginscan(ot->rel, open_pkey(ot, &all_tables[kind][TIMERS]),
							   snapshot, 1, 0);
		index_rescan(scan, &key, 1, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
		index_endscan(scan);
	}
	if (found)
	{
		slot_getallattrs(slot);
		timer->actor_id = TextDatumGetCString(slot->tts_values[Anum_timers_actor_id - 1]);
		timer->armed_version = DatumGetInt64(slot->tts_values[Anum_timers_armed_version - 1]);
		timer->event = DatumGetJsonbPCopy(slot->tts_values[Anum_timers_event - 1]);
		timer->role = DatumGetObjectId(slot->tts_values[Anum_timers_armed_by - 1]);
		simple_table_tuple_delete(ot->rel, &slot->tts_tid,
								  snapshot ? snapshot : SnapshotSelf);
	}
	ExecDropSingleTupleTableSlot(slot);
	release_table(ot);
	if (snapshot)
		UnregisterSnapshot(snapshot);
	return found;
}
