/*-------------------------------------------------------------------------
 *
 * store.h
 *	  What the two ways into the actors' tables share: store.c (SQL) and
 *	  store_direct.c (the table access method).
 *
 * An actor's status is text in machine.instances.status; both modules
 * convert it here, so that neither calls the other for it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_STORE_H
#define MACHINE_STORE_H

#include "machine.h"

/* machine.instances.status of an ActorStatus */
static inline const char *
actor_status_name(ActorStatus status)
{
	switch (status)
	{
		case ACTOR_RUNNING:
			return "running";
		case ACTOR_STOPPED:
			return "stopped";
		case ACTOR_DONE:
			return "done";
	}
	elog(ERROR, "unexpected actor status %d", (int) status);
	return NULL;				/* keep compiler quiet */
}

/* The ActorStatus of machine.instances.status */
static inline ActorStatus
actor_status_parse(const char *name)
{
	if (strcmp(name, "running") == 0)
		return ACTOR_RUNNING;
	if (strcmp(name, "stopped") == 0)
		return ACTOR_STOPPED;
	if (strcmp(name, "done") == 0)
		return ACTOR_DONE;
	elog(ERROR, "unexpected actor status \"%s\"", name);
	return ACTOR_RUNNING;		/* keep compiler quiet */
}

#endif							/* MACHINE_STORE_H */
