/*-------------------------------------------------------------------------
 *
 * actors.h
 *	  Spawning actors (actors.c), for the callers that spawn on their own
 *	  account.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_ACTORS_H
#define MACHINE_ACTORS_H

#include "machine.h"

#include "utils/jsonb.h"

extern Jsonb *actor_spawn(const char *actor_id, const char *machine,
						  Jsonb *data, bool if_not_exists);

#endif							/* MACHINE_ACTORS_H */
