/*-------------------------------------------------------------------------
 *
 * served.h
 *	  Which databases the background workers serve (served.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SERVED_H
#define SERVED_H

#include "machine.h"

extern char *machine_databases;

extern void served_init(void);
extern bool machine_database_allowed(const char *name);
extern bool served_by_worker(void);
extern void served_launcher_attach(void);
extern int	served_take_wakes(Oid *dboids, int max, bool *all);

#endif							/* SERVED_H */
