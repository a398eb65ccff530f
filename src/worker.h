/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The launcher and the per-database workers (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_WORKER_H
#define MACHINE_WORKER_H

#include "machine.h"

extern int	machine_naptime;
extern void worker_define_settings(void);
extern void machine_register_launcher(void);

#endif							/* MACHINE_WORKER_H */
