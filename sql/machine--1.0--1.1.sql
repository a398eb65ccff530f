/* machine--1.0--1.1.sql: from 1.0 to 1.1 */

\echo Use "ALTER EXTENSION machine UPDATE TO '1.1'" to load this file. \quit

/* Actors: questions about the current state */

CREATE FUNCTION machine_matches(actor_id text, tag text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_matches'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION machine_matches(text, text) IS
	'is the actor in that state; NULL when there is no such actor';

CREATE FUNCTION machine_can(actor_id text, event jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_can'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION machine_can(text, jsonb) IS
	'would the actor handle this event now, guards included; nothing is written';

/* machine_spawn gains if_not_exists and state */

DROP FUNCTION machine_spawn(text, text, jsonb);
CREATE FUNCTION machine_spawn(actor_id text, machine text, data jsonb DEFAULT '{}',
							  if_not_exists boolean DEFAULT false, state text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_spawn_1_1'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_spawn(text, text, jsonb, boolean, text) IS
	'create an actor at version 0 in the initial state of its machine, or in the state named; with if_not_exists, return an existing actor of that machine';

/* Batches of events */

CREATE FUNCTION machine_send_many(actor_ids text[], events jsonb[],
								  expected_versions bigint[] DEFAULT NULL,
								  on_error text DEFAULT 'abort')
RETURNS TABLE(actor_id text, state jsonb, error text)
AS 'MODULE_PATHNAME', 'machine_send_many'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_send_many(text[], jsonb[], bigint[], text) IS
	'apply a batch of events, actor by actor in actor_id order; one row per event, in input order';

/* Scale-out: the slice of an actor id */

CREATE FUNCTION machine_slice_of(actor_id text, slices integer DEFAULT 1024)
RETURNS integer
AS 'MODULE_PATHNAME', 'machine_slice_of'
LANGUAGE C IMMUTABLE PARALLEL SAFE STRICT;
COMMENT ON FUNCTION machine_slice_of(text, integer) IS
	'the slice of an actor id: FNV-1a of its UTF-8 bytes, finished with murmur3 fmix32, modulo slices (a power of two)';
