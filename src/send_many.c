/*-------------------------------------------------------------------------
 *
 * send_many.c
 *	  machine_send_many: a batch of events in one call.
 *
 * Order.  The items are applied actor by actor in the byte order of their
 * actor ids, and the events of one actor in the order they were given.
 * Every batch thus takes its actors' row locks in one global order, so two
 * batches that share actors queue behind each other instead of
 * deadlocking.  Rows come back in the order of the input.
 *
 * Failures.  With on_error 'abort' a failing item raises its error, and the
 * statement (with the items applied before it) rolls back as any statement
 * does.  With 'report' the batch runs in one subtransaction; when anything
 * fails it is rolled back and the items are applied again one by one, each
 * in its own subtransaction, so that a failing item is reported in its row
 * and the others apply.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "send.h"
#include "store_direct.h"
#include "subtransaction.h"

typedef struct BatchItem
{
	int			position;		/* in the input, from 0 */
	char	   *actor_id;
	Jsonb	   *event;
	int64		expected;		/* -1: none */
	Jsonb	   *state;			/* after the event; NULL if queued or failed */
	char	   *error;			/* NULL unless it failed */
} BatchItem;

typedef struct Batch
{
	BatchItem  *items;			/* in the order they are applied */
	int			n;
	MemoryContext result_context;	/* where states are kept */
	MemoryContext item_context; /* reset after every item */
} Batch;

/* The item being applied, for the error context */
static const BatchItem *current_item = NULL;

static void
send_many_error_context(void *arg)
{
	if (current_item != NULL)
		errcontext("item %d of machine_send_many (actor \"%s\")",
				   current_item->position + 1, current_item->actor_id);
}

static int
item_order(const void *a, const void *b)
{
	const BatchItem *x = a;
	const BatchItem *y = b;
	int			c = strcmp(x->actor_id, y->actor_id);

	if (c != 0)
		return c;
	return x->position - y->position;
}

static void
send_item(BatchItem *item, Batch *batch)
{
	MemoryContext old = MemoryContextSwitchTo(batch->item_context);
	Jsonb	   *state;

	current_item = item;
	state = actor_send(item->actor_id, item->event, item->expected);
	MemoryContextSwitchTo(batch->result_context);
	item->state = state ? DatumGetJsonbPCopy(JsonbPGetDatum(state)) : NULL;
	MemoryContextSwitchTo(old);
	MemoryContextReset(batch->item_context);
	current_item = NULL;
}

static void
send_all(void *arg)
{
	Batch	   *batch = arg;

	for (int i = 0; i < batch->n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		send_item(&batch->items[i], batch);
	}
}

typedef struct OneItem
{
	BatchItem  *item;
	Batch	   *batch;
} OneItem;

static void
send_one(void *arg)
{
	OneItem    *one = arg;

	send_item(one->item, one->batch);
}

/* Apply every item, each failure in its own subtransaction */
static void
send_reporting(Batch *batch)
{
	if (in_subtransaction(send_all, batch) == NULL)
		return;
	current_item = NULL;
	for (int i = 0; i < batch->n; i++)
	{
		OneItem		one = {&batch->items[i], batch};
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		batch->items[i].state = NULL;
		if ((error = in_subtransaction(send_one, &one)) != NULL)
		{
			current_item = NULL;
			batch->items[i].error = error_text(error);
			FreeErrorData(error);
		}
	}
}

static Datum *
array_elements(ArrayType *array, Oid type, const char *name, int *n,
			   bool **nulls)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(array, type, typlen, typbyval, typalign,
					  &elems, nulls, n);
	return elems;
}

static void
check_no_nulls(const bool *nulls, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name),
					 errdetail("Element %d is NULL.", i + 1)));
}

static void
check_same_length(int n, int m, const char *name)
{
	if (n != m)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must have as many elements as actor_ids", name),
				 errdetail("actor_ids has length %d, %s has length %d.", n, name, m)));
}

/*
 * machine_send_many(actor_ids text[], events jsonb[], expected_versions
 *		bigint[] DEFAULT NULL, on_error text DEFAULT 'abort')
 *		RETURNS TABLE(actor_id text, state jsonb, error text)
 */
PG_FUNCTION_INFO_V1(machine_send_many);
Datum
machine_send_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *ids;
	Datum	   *events;
	Datum	   *expected = NULL;
	bool	   *id_nulls;
	bool	   *event_nulls;
	bool	   *expected_nulls = NULL;
	int			n;
	int			m;
	bool		report;
	char	   *mode;
	Batch		batch;
	BatchItem **by_position;
	ErrorContextCallback callback;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "actor_ids" :
						PG_ARGISNULL(1) ? "events" : "on_error")));
	mode = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (strcmp(mode, "abort") == 0)
		report = false;
	else if (strcmp(mode, "report") == 0)
		report = true;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized on_error mode \"%s\"", mode),
				 errhint("Use 'abort' to fail the whole call on the first error, or 'report' to apply the other items and report each failure in its row.")));

	ids = array_elements(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, "actor_ids",
						 &n, &id_nulls);
	events = array_elements(PG_GETARG_ARRAYTYPE_P(1), JSONBOID, "events",
							&m, &event_nulls);
	check_same_length(n, m, "events");
	check_no_nulls(id_nulls, n, "actor_ids");
	check_no_nulls(event_nulls, n, "events");
	if (!PG_ARGISNULL(2))
	{
		expected = array_elements(PG_GETARG_ARRAYTYPE_P(2), INT8OID,
								  "expected_versions", &m, &expected_nulls);
		check_same_length(n, m, "expected_versions");
	}

	PreventCommandIfReadOnly("machine_send_many()");
	InitMaterializedSRF(fcinfo, 0);

	batch.n = n;
	batch.items = palloc0(sizeof(BatchItem) * Max(n, 1));
	batch.result_context = CurrentMemoryContext;
	batch.item_context = AllocSetContextCreate(CurrentMemoryContext,
											   "machine_send_many item",
											   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < n; i++)
	{
		BatchItem  *item = &batch.items[i];

		item->position = i;
		item->actor_id = TextDatumGetCString(ids[i]);
		item->event = DatumGetJsonbP(events[i]);
		item->expected = -1;
		if (expected != NULL && !expected_nulls[i])
		{
			item->expected = DatumGetInt64(expected[i]);
			if (item->expected < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("expected_versions must not be negative"),
						 errdetail("Element %d is " INT64_FORMAT ".",
								   i + 1, item->expected)));
		}
	}
	qsort(batch.items, n, sizeof(BatchItem), item_order);

	callback.callback = send_many_error_context;
	callback.arg = NULL;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	store_direct_begin_scope();
	PG_TRY();
	{
		for (int k = 0; k < store_kinds(); k++)
			if (store_direct_usable((StoreKind) k, DIRECT_INSTANCES))
				store_direct_find_actors((StoreKind) k, ids, n);
		if (report)
			send_reporting(&batch);
		else
			send_all(&batch);
	}
	PG_CATCH();
	{
		store_direct_end_scope();
		current_item = NULL;
		error_context_stack = callback.previous;
		PG_RE_THROW();
	}
	PG_END_TRY();
	store_direct_end_scope();
	current_item = NULL;
	error_context_stack = callback.previous;

	by_position = palloc(sizeof(BatchItem *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		by_position[batch.items[i].position] = &batch.items[i];
	for (int i = 0; i < n; i++)
	{
		BatchItem  *item = by_position[i];
		Datum		values[3];
		bool		nulls[3] = {false, item->state == NULL, item->error == NULL};

		values[0] = CStringGetTextDatum(item->actor_id);
		values[1] = item->state ? JsonbPGetDatum(item->state) : (Datum) 0;
		values[2] = item->error ? CStringGetTextDatum(item->error) : (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextDelete(batch.item_context);
	return (Datum) 0;
}
