/*-------------------------------------------------------------------------
 *
 * values.h
 *	  States and events as jsonb: validation and construction (values.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MACHINE_VALUES_H
#define MACHINE_VALUES_H

#include "machine.h"

#include "utils/jsonb.h"

#include "definition.h"

extern char *event_tag(Jsonb *event);
extern char *state_tag(Jsonb *state, const char *what);
extern void check_actor_id(const char *actor_id);
extern void check_object(Jsonb *value, const char *what);
extern Jsonb *jsonb_with_tag(Jsonb *data, Jsonb *merge, const char *tag);
extern JsonbValue *jsonb_field(Jsonb *object, const char *key);
extern void check_event_payload(const MachineDef *def, Jsonb *event,
								const char *tag);
extern Jsonb *jsonb_from_cstring(const char *json);
extern Jsonb *lifecycle_event(const char *tag);

#endif							/* MACHINE_VALUES_H */
