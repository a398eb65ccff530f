/*-------------------------------------------------------------------------
 *
 * adapter.h
 *	  User adapters (adapter.c): a schema whose functions keep a machine's
 *	  journal and snapshots.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_ADAPTER_H
#define MACHINE_ADAPTER_H

#include "machine.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "utils/jsonb.h"

#include "definition.h"
#include "store.h"

typedef enum AdapterFunctionId
{
	ADAPTER_APPEND_EVENT,
	ADAPTER_LOAD_EVENTS,
	ADAPTER_SAVE_SNAPSHOT,
	ADAPTER_LOAD_SNAPSHOT,
	ADAPTER_DELETE_ACTOR
} AdapterFunctionId;

#define ADAPTER_NFUNCTIONS 5

typedef struct UserAdapter
{
	char	   *schema;
	FmgrInfo	functions[ADAPTER_NFUNCTIONS];
	TupleDesc	columns[ADAPTER_NFUNCTIONS];	/* of those returning records */
} UserAdapter;

extern bool adapter_is_builtin(const char *adapter);
extern void adapter_check_definition(const MachineDef *def);
extern UserAdapter *adapter_open(const MachineDef *def, const char *machine,
								 MemoryContext context);
extern Oid	adapter_function_oid(UserAdapter *adapter, int which);
extern const char *adapter_function_name(int which);
extern bool adapter_function_exists(const char *schema, int which,
									char **signature);

extern void adapter_append_event(UserAdapter *adapter, const char *actor_id,
								 int64 version, Jsonb *event, const char *tag);
extern void adapter_save_snapshot(UserAdapter *adapter, const char *actor_id,
								  int64 version, Jsonb *state,
								  const char *tag);
extern void adapter_delete_actor(UserAdapter *adapter, const char *actor_id);
extern Jsonb *adapter_load_snapshot(UserAdapter *adapter, const char *actor_id,
									int64 upto, int64 *version);
extern void adapter_scan_events(UserAdapter *adapter, const char *actor_id,
								int64 after, int64 upto,
								EventCallback callback, void *arg);

#endif							/* MACHINE_ADAPTER_H */
