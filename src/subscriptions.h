/*-------------------------------------------------------------------------
 *
 * subscriptions.h
 *	  Durable subscriptions to the journal (subscriptions.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_SUBSCRIPTIONS_H
#define MACHINE_SUBSCRIPTIONS_H

#include "machine.h"

extern void subscriptions_init(void);
extern void subscriptions_wake(const char *machine_type);

#endif							/* MACHINE_SUBSCRIPTIONS_H */
