/*-------------------------------------------------------------------------
 *
 * subtransaction.h
 *	  One item of a batch in a subtransaction of its own
 *	  (subtransaction.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_SUBTRANSACTION_H
#define MACHINE_SUBTRANSACTION_H

#include "machine.h"

extern ErrorData *in_subtransaction(void (*fn) (void *), void *arg);
extern char *error_text(ErrorData *error);

#endif							/* MACHINE_SUBTRANSACTION_H */
