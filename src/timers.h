/*-------------------------------------------------------------------------
 *
 * timers.h
 *	  Durable timers armed, moved and cancelled on transitions (timers.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_TIMERS_H
#define MACHINE_TIMERS_H

#include "machine.h"

#include "registry.h"
#include "store_timers.h"

extern void timers_transition(const char *actor_id, CompiledMachine *cm,
							  int from, int to, bool left, int64 version);
extern void timers_set_firing(const DueTimer *timer);

#endif							/* MACHINE_TIMERS_H */
