/*-------------------------------------------------------------------------
 *
 * store_machines.h
 *	  The rows of machine.machines and machine.revisions (store_machines.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_MACHINES_H
#define MACHINE_STORE_MACHINES_H

#include "store.h"

#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/* Rows of machine.machines */
typedef struct StoredMachine
{
	char	   *name;			/* set by store_machines_using() only */
	int32		revision;
	char	   *definition;		/* canonical JSON text */
	ArrayType  *functions;		/* qualified names, parallel to the
								 * compiled definition's functions */
	char	   *machine_type;
	Oid			owner;
	Oid			defined_by;
	Acl		   *acl;
} StoredMachine;

extern bool store_load_machine(const char *name, RowLock lock,
							   StoredMachine *stored);
extern int32 store_save_machine(const char *name, int32 replaces,
								Jsonb *definition, ArrayType *functions,
								const char *machine_type,
								int64 snapshot_spacing);
extern void store_set_machine_acl(const char *name, Acl *acl);
extern Jsonb *store_machine_definition(const char *name);
extern Jsonb *store_revision_definition(const char *name, int32 revision);
extern bool store_delete_machine(const char *name);
extern List *store_machines_using(ArrayType *functions);
extern ArrayType *store_dropped_functions(void);

#endif							/* MACHINE_STORE_MACHINES_H */
