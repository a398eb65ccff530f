/*-------------------------------------------------------------------------
 *
 * store_spi.h
 *	  How the store's modules run their saved SQL (see store.c): plans
 *	  prepared once per backend for each kind of tables, run as the tables'
 *	  owner, and the columns of their results.  Private to store*.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_SPI_H
#define MACHINE_STORE_SPI_H

#include "machine.h"

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/jsonb.h"

typedef struct SavedQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[7];
	SPIPlanPtr	plans[STORE_NKINDS];	/* by StoreKind */
} SavedQuery;

extern int	store_run(SavedQuery *query, Datum *values, long count);
extern int	store_run_in(StoreKind kind, SavedQuery *query, Datum *values,
						 long count);
extern int	store_run_in_with_nulls(StoreKind kind, SavedQuery *query,
									Datum *values, const char *nulls,
									long count);
extern Datum store_column(int row, int col, bool *isnull);
extern char *store_text_column(int row, int col);
extern Jsonb *store_jsonb_column(int row, int col);
extern int64 store_int8_column(int row, int col);
extern Interval *store_interval(int64 us);
extern ArrayType *store_text_array(Datum *values, int n);
extern bool store_snapshots_listed(void);

#endif							/* MACHINE_STORE_SPI_H */
