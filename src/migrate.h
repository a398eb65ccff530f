/*-------------------------------------------------------------------------
 *
 * migrate.h
 *	  A redefinition's "migrate" function run on every actor (migrate.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_MIGRATE_H
#define MACHINE_MIGRATE_H

#include "machine.h"

#include "registry.h"

extern int64 machine_migrate_actors(CompiledMachine *cm, int32 from_revision);

#endif							/* MACHINE_MIGRATE_H */
