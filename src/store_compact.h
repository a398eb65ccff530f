/*-------------------------------------------------------------------------
 *
 * store_compact.h
 *	  What compaction reads and removes (store_compact.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_COMPACT_H
#define MACHINE_STORE_COMPACT_H

#include "machine.h"

#include "datatype/timestamp.h"

extern int64 store_compaction_horizon(StoreKind kind, const char *actor_id);
extern bool store_subscription_limit(const char *machine_type, Datum *txid,
									 int64 *position);
extern Datum store_compact(Datum *ids, int n, Interval *keep, bool has_limit,
						   Datum txid, int64 position, bool want_rows,
						   int64 *events, int64 *snapshots, bool *rows_null);

#endif							/* MACHINE_STORE_COMPACT_H */
