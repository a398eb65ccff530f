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

/*
 * Journal positions.  Rows of 1.0 get positions in the order they were
 * recorded, and txid 0: their transactions are long over.
 */

CREATE SEQUENCE machine.events_position_seq;
ALTER TABLE machine.events ADD COLUMN position bigint, ADD COLUMN txid pg_catalog.xid8;
UPDATE machine.events e
   SET position = o.position, txid = '0'
  FROM (SELECT actor_id, version,
			   pg_catalog.row_number() OVER (ORDER BY recorded_at, actor_id, version) AS position
		  FROM machine.events) o
 WHERE e.actor_id OPERATOR(pg_catalog.=) o.actor_id
   AND e.version OPERATOR(pg_catalog.=) o.version;
SELECT pg_catalog.setval('machine.events_position_seq', pg_catalog.max(position))
  FROM machine.events HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;
ALTER TABLE machine.events
	ALTER COLUMN position SET DEFAULT pg_catalog.nextval('machine.events_position_seq'::pg_catalog.regclass),
	ALTER COLUMN position SET NOT NULL,
	ALTER COLUMN txid SET DEFAULT pg_catalog.pg_current_xact_id(),
	ALTER COLUMN txid SET NOT NULL;
ALTER SEQUENCE machine.events_position_seq OWNED BY machine.events.position;
CREATE INDEX ON machine.events (txid, position);
COMMENT ON COLUMN machine.events.position IS
	'unique, increasing in the order rows were inserted, across all actors';
COMMENT ON COLUMN machine.events.txid IS
	'the transaction that wrote the row, or the greater txid of the actor''s previous row: subscriptions deliver rows in (txid, position) order, below the oldest transaction in progress';
SELECT pg_catalog.pg_extension_config_dump('machine.events_position_seq', '');

/* Entities: actors spawned by their first message */

CREATE FUNCTION machine_send_entity(machine text, entity_id text, event jsonb,
									expected_version bigint DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_send_entity'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_send_entity(text, text, jsonb, bigint) IS
	'send an event to the entity of a machine with that id, spawning it on its first message';

/* Every revision of a machine is kept; journal rows record theirs */

CREATE TABLE machine.revisions (
	machine text NOT NULL REFERENCES machine.machines (name) ON DELETE CASCADE,
	revision integer NOT NULL CHECK (revision OPERATOR(pg_catalog.>=) 1),
	definition jsonb NOT NULL,
	functions text[] NOT NULL,
	defined_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	defined_by regrole NOT NULL,
	PRIMARY KEY (machine, revision)
);
COMMENT ON TABLE machine.revisions IS
	'every revision of every machine, the latest included; dropping a machine drops its revisions';
-- 1.0 kept only the latest revision
INSERT INTO machine.revisions (machine, revision, definition, functions, defined_at, defined_by)
SELECT name, revision, definition, functions, defined_at, defined_by FROM machine.machines;
SELECT pg_catalog.pg_extension_config_dump('machine.revisions', '');

ALTER TABLE machine.events ADD COLUMN revision integer;
COMMENT ON COLUMN machine.events.revision IS
	'the revision of the machine that applied the event; NULL for rows journaled before version 1.1 of the extension';

CREATE FUNCTION machine_definition(name text, revision integer)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_definition_revision'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION machine_definition(text, integer) IS
	'the definition of a machine at one of its revisions, or NULL';
