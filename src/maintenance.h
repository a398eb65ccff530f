/*-------------------------------------------------------------------------
 *
 * maintenance.h
 *	  The maintenance pass (maintenance.c): due timers fired, spaced
 *	  snapshots taken.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_MAINTENANCE_H
#define MACHINE_MAINTENANCE_H

#include "machine.h"

typedef struct MaintenanceCounts
{
	int			fired;
	int			dropped;		/* stale: their actor moved on */
	int			failed;
	int			snapshots;
} MaintenanceCounts;

extern int	machine_timer_timeout;
extern void maintenance_define_settings(void);
extern bool maintenance_batch(int max_items, MaintenanceCounts *counts);

#endif							/* MACHINE_MAINTENANCE_H */
