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

/*
 * Room on the page for a new version of every live row: a transaction that
 * rewrites all the rows of a page (a restore, a migration) keeps their old
 * versions until it ends, and only updates that fit on the page are HOT.
 * Pages written from now on get it; VACUUM FULL applies it to the others.
 */
ALTER TABLE machine.instances SET (fillfactor = 50);

/* The "memory" adapter */

/*
 * The "memory" adapter: the actors of a machine defined with
 * "persistence": {"adapter": "memory"} live in these UNLOGGED twins of the
 * four tables above, with the same columns and keys.  They write no WAL: a
 * crash empties them, taking every trace of those actors, and a standby
 * has nothing in them.
 */
CREATE UNLOGGED TABLE machine.memory_instances (
	actor_id text PRIMARY KEY,
	machine text NOT NULL REFERENCES machine.machines (name),
	status text NOT NULL
		CHECK (status OPERATOR(pg_catalog.=) ANY ('{running,stopped,done}'::text[])),
	version bigint NOT NULL CHECK (version OPERATOR(pg_catalog.>=) 0),
	state jsonb NOT NULL,
	state_tag text NOT NULL,
	initial_state jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_activity_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	journal_txid pg_catalog.xid8
) WITH (fillfactor = 50);
CREATE INDEX ON machine.memory_instances (machine);
COMMENT ON TABLE machine.memory_instances IS
	'the actors of machines with the "memory" adapter (unlogged: emptied by a crash)';

-- a send records its journal row's txid on the live row; rows of 1.0 do not
-- know it, and their next send looks it up
ALTER TABLE machine.instances ADD COLUMN journal_txid pg_catalog.xid8;
COMMENT ON COLUMN machine.instances.journal_txid IS
	'the txid of the actor''s latest journal row, recorded by the send that wrote it, so that the next send need not look it up; NULL when not known';

CREATE UNLOGGED TABLE machine.memory_events (
	actor_id text NOT NULL,
	version bigint NOT NULL CHECK (version OPERATOR(pg_catalog.>=) 1),
	event jsonb NOT NULL,
	state_tag text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	position bigint NOT NULL
		DEFAULT pg_catalog.nextval('machine.events_position_seq'::pg_catalog.regclass),
	txid pg_catalog.xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	revision integer,
	idempotency_key text,
	PRIMARY KEY (actor_id, version)
);
CREATE INDEX ON machine.memory_events (txid, position);
COMMENT ON TABLE machine.memory_events IS
	'the journal of the actors of the "memory" adapter (unlogged)';

CREATE UNLOGGED TABLE machine.memory_snapshots (
	actor_id text NOT NULL,
	version bigint NOT NULL CHECK (version OPERATOR(pg_catalog.>=) 0),
	state jsonb NOT NULL,
	state_tag text NOT NULL,
	taken_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (actor_id, version)
);
COMMENT ON TABLE machine.memory_snapshots IS
	'the snapshots of the actors of the "memory" adapter (unlogged)';

CREATE UNLOGGED TABLE machine.memory_timers (
	timer_id bigint PRIMARY KEY
		DEFAULT pg_catalog.nextval('machine.timers_timer_id_seq'::pg_catalog.regclass),
	actor_id text NOT NULL,
	armed_version bigint NOT NULL,
	seq integer NOT NULL,
	state_tag text NOT NULL,
	event jsonb NOT NULL,
	due_at timestamptz NOT NULL,
	armed_by regrole NOT NULL,
	UNIQUE (actor_id, armed_version, seq)
);
CREATE INDEX ON machine.memory_timers (due_at, timer_id);
COMMENT ON TABLE machine.memory_timers IS
	'the durable timers of the actors of the "memory" adapter (unlogged)';

SELECT pg_catalog.pg_extension_config_dump('machine.memory_instances', '');
SELECT pg_catalog.pg_extension_config_dump('machine.memory_events', '');
SELECT pg_catalog.pg_extension_config_dump('machine.memory_snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('machine.memory_timers', '');

/* Due timers are claimed in (due_at, timer_id) order, straight from an index */

DROP INDEX machine.timers_due_at_idx;
CREATE INDEX ON machine.timers (due_at, timer_id);

/*
 * Spaced snapshots: the actors due for one are listed as they move, so that
 * a pass of the worker reads only those, not every actor.  The actors of
 * spaced machines that moved past their latest snapshot under 1.0 are due
 * now.
 */

CREATE TABLE machine.snapshots_due (
	actor_id text PRIMARY KEY,
	due_at timestamptz NOT NULL
);
CREATE INDEX ON machine.snapshots_due (due_at);
COMMENT ON TABLE machine.snapshots_due IS
	'actors of machines with a spaced snapshot schedule that moved past their latest snapshot, and when the worker should take the next';
SELECT pg_catalog.pg_extension_config_dump('machine.snapshots_due', '');

CREATE UNLOGGED TABLE machine.memory_snapshots_due (
	actor_id text PRIMARY KEY,
	due_at timestamptz NOT NULL
);
CREATE INDEX ON machine.memory_snapshots_due (due_at);
COMMENT ON TABLE machine.memory_snapshots_due IS
	'the actors of "memory" machines due for a spaced snapshot (unlogged: emptied by a crash)';
SELECT pg_catalog.pg_extension_config_dump('machine.memory_snapshots_due', '');
INSERT INTO machine.snapshots_due (actor_id, due_at)
SELECT i.actor_id, pg_catalog.now()
  FROM machine.instances i
  JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine
 WHERE m.snapshot_spacing IS NOT NULL
   AND i.status OPERATOR(pg_catalog.<>) 'stopped'
   AND i.version OPERATOR(pg_catalog.>) 0
   AND NOT EXISTS (SELECT FROM machine.snapshots s
                    WHERE s.actor_id OPERATOR(pg_catalog.=) i.actor_id
                      AND s.version OPERATOR(pg_catalog.>=) i.version);

/*
 * The views show the actors and timers of the "memory" adapter through
 * these functions: a standby refuses any query that names an UNLOGGED
 * table, and there they return nothing.  Each returns only the rows of the
 * machines the calling role may read, as the views do.
 */
CREATE FUNCTION machine.memory_actors()
RETURNS TABLE (id text, machine text, machine_type text,
			   created_at timestamptz, last_activity_at timestamptz,
			   version bigint, state_tag text, status text,
			   snapshot_version bigint)
AS 'MODULE_PATHNAME', 'machine_memory_actors'
LANGUAGE C STABLE;
COMMENT ON FUNCTION machine.memory_actors() IS
	'the actors of the "memory" adapter the current role may read (none on a standby)';

CREATE FUNCTION machine.memory_pending_timers()
RETURNS TABLE (actor_id text, machine text, state_tag text, event jsonb,
			   due_at timestamptz, armed_version bigint, armed_by regrole)
AS 'MODULE_PATHNAME', 'machine_memory_pending_timers'
LANGUAGE C STABLE;
COMMENT ON FUNCTION machine.memory_pending_timers() IS
	'the timers of actors of the "memory" adapter the current role may read (none on a standby)';

CREATE OR REPLACE VIEW machine.actors WITH (security_barrier) AS
	SELECT i.actor_id AS id,
		   i.machine,
		   m.machine_type,
		   i.created_at,
		   i.last_activity_at,
		   i.version,
		   i.state_tag,
		   i.status,
		   (SELECT pg_catalog.max(s.version)
			  FROM machine.snapshots s
			 WHERE s.actor_id OPERATOR(pg_catalog.=) i.actor_id) AS snapshot_version
	  FROM machine.instances i
	  JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine
	 WHERE machine.may_read(m.owner, m.acl)
	UNION ALL
	SELECT a.id, a.machine, a.machine_type, a.created_at, a.last_activity_at,
		   a.version, a.state_tag, a.status, a.snapshot_version
	  FROM machine.memory_actors() a;

CREATE OR REPLACE VIEW machine.pending_timers WITH (security_barrier) AS
	SELECT t.actor_id,
		   i.machine,
		   t.state_tag,
		   t.event,
		   t.due_at,
		   t.armed_version,
		   t.armed_by
	  FROM machine.timers t
	  JOIN machine.instances i ON i.actor_id OPERATOR(pg_catalog.=) t.actor_id
	  JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine
	 WHERE machine.may_read(m.owner, m.acl)
	UNION ALL
	SELECT t.actor_id, t.machine, t.state_tag, t.event, t.due_at,
		   t.armed_version, t.armed_by
	  FROM machine.memory_pending_timers() t;
/* Subscriptions: reading the journal from a checkpoint */

CREATE TABLE machine.subscribers (
	name text PRIMARY KEY
		CHECK (pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 63
			   AND name OPERATOR(pg_catalog.<>) ''),
	machine_type text,
	owner regrole NOT NULL,
	members integer CHECK (members OPERATOR(pg_catalog.>=) 1),
	start_txid pg_catalog.xid8 NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE machine.subscribers IS
	'durable subscriptions to the journal, one row each';
COMMENT ON COLUMN machine.subscribers.machine_type IS
	'the machine type whose journal rows the subscription delivers; NULL: all';
COMMENT ON COLUMN machine.subscribers.members IS
	'how many members share the subscription, fixed by its first poll; NULL before';
COMMENT ON COLUMN machine.subscribers.start_txid IS
	'where every member starts: rows at or above this txid are delivered';

CREATE TABLE machine.checkpoints (
	subscription text NOT NULL REFERENCES machine.subscribers (name) ON DELETE CASCADE,
	member integer NOT NULL CHECK (member OPERATOR(pg_catalog.>=) 0),
	txid pg_catalog.xid8 NOT NULL,
	position bigint NOT NULL,
	acked_at timestamptz,
	PRIMARY KEY (subscription, member)
);
COMMENT ON TABLE machine.checkpoints IS
	'where each member of a subscription is: the (txid, position) of the last journal row it acknowledged';

SELECT pg_catalog.pg_extension_config_dump('machine.subscribers', '');
SELECT pg_catalog.pg_extension_config_dump('machine.checkpoints', '');

CREATE FUNCTION machine.subscribers_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'machine_subscribers_changed'
LANGUAGE C;
COMMENT ON FUNCTION machine.subscribers_changed() IS
	'trigger of machine.subscribers: sessions check again whether sends must wake consumers';
CREATE TRIGGER subscribers_changed
	AFTER INSERT OR DELETE OR TRUNCATE ON machine.subscribers
	FOR EACH STATEMENT EXECUTE FUNCTION machine.subscribers_changed();

CREATE VIEW machine.subscriptions WITH (security_barrier) AS
	SELECT s.name,
		   s.machine_type,
		   COALESCE(c.member, 0) AS member,
		   CASE WHEN c.acked_at IS NOT NULL THEN c.position END AS checkpoint,
		   l.lag_rows,
		   l.lag_time
	  FROM machine.subscribers s
	  LEFT JOIN machine.checkpoints c ON c.subscription OPERATOR(pg_catalog.=) s.name
	 CROSS JOIN LATERAL (
		SELECT pg_catalog.count(*) AS lag_rows,
			   COALESCE(pg_catalog.now() OPERATOR(pg_catalog.-)
								   pg_catalog.min(e.recorded_at),
								   '0'::pg_catalog.interval) AS lag_time
		  FROM machine.events e
		  JOIN machine.instances i ON i.actor_id OPERATOR(pg_catalog.=) e.actor_id
		  JOIN machine.machines m ON m.name OPERATOR(pg_catalog.=) i.machine
		 WHERE ROW(e.txid, e.position) OPERATOR(pg_catalog.>)
			   ROW(COALESCE(c.txid, s.start_txid), COALESCE(c.position, 0))
		   AND (s.machine_type IS NULL OR m.machine_type OPERATOR(pg_catalog.=) s.machine_type)
		   AND machine.may_read(m.owner, m.acl)
		   AND (COALESCE(s.members, 1) OPERATOR(pg_catalog.=) 1
				OR @extschema@.machine_slice_of(e.actor_id) OPERATOR(pg_catalog.%) s.members
				   OPERATOR(pg_catalog.=) c.member)) l
	 WHERE pg_catalog.pg_has_role(s.owner::pg_catalog.oid, 'USAGE');
COMMENT ON VIEW machine.subscriptions IS
	'the subscriptions of the current role, one row per member: its last acknowledged position and how far it lags, in rows and in time';
GRANT SELECT ON machine.subscriptions TO PUBLIC;

CREATE FUNCTION machine_subscribe(name text, machine_type text DEFAULT NULL,
								  from_start boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'machine_subscribe'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_subscribe(text, text, boolean) IS
	'create a durable subscription to the journal of a machine type (NULL: all), from the start or from now';

CREATE FUNCTION machine_unsubscribe(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_unsubscribe'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION machine_unsubscribe(text) IS
	'drop a subscription with its checkpoints; false when there is no such subscription';

CREATE FUNCTION machine_poll(name text, max integer DEFAULT 100,
							 member integer DEFAULT 0, members integer DEFAULT 1)
RETURNS TABLE ("position" bigint, actor_id text, machine_type text, version bigint,
			   event jsonb, state_tag text, recorded_at timestamptz)
AS 'MODULE_PATHNAME', 'machine_poll'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_poll(text, integer, integer, integer) IS
	'the next committed journal rows after a member''s checkpoint; acknowledge them with machine_ack';

CREATE FUNCTION machine_ack(name text, "position" bigint, member integer DEFAULT 0)
RETURNS void
AS 'MODULE_PATHNAME', 'machine_ack'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_ack(text, bigint, integer) IS
	'move a member''s checkpoint to a row machine_poll returned, and past every row before it';

/* Seeing and testing machines */

CREATE FUNCTION machine_state_at(actor_id text, at timestamptz)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_state_at'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION machine_state_at(text, timestamptz) IS
	'the state an actor had at a time, folded from its journal; NULL before it was spawned';

CREATE FUNCTION machine_fire_timers(as_of timestamptz)
RETURNS integer
AS 'MODULE_PATHNAME', 'machine_fire_timers'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_fire_timers(timestamptz) IS
	'a test clock: fire, in this transaction, the timers that would be due at as_of; returns how many fired';

CREATE FUNCTION machine_diagram(name text, format text DEFAULT 'mermaid')
RETURNS text
AS 'MODULE_PATHNAME', 'machine_diagram'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION machine_diagram(text, text) IS
	'a machine drawn as a Mermaid stateDiagram-v2 (''mermaid'') or a Graphviz digraph (''dot'')';


/* A redefinition's dry run */

CREATE FUNCTION machine_check_define(name text, definition jsonb)
RETURNS TABLE (actor_id text, version bigint, problem text)
AS 'MODULE_PATHNAME', 'machine_check_define'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_check_define(text, jsonb) IS
	'what redefining a machine would break: each actor whose history would not fold through the definition, or whose live state it lacks; writes nothing';

/* machine_simulate gains from_state */

DROP FUNCTION machine_simulate(text, jsonb[], jsonb);
CREATE FUNCTION machine_simulate(machine text, events jsonb[], data jsonb DEFAULT '{}',
								 from_state jsonb DEFAULT NULL)
RETURNS TABLE (step integer, event jsonb, state jsonb)
AS 'MODULE_PATHNAME', 'machine_simulate_1_1'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_simulate(text, jsonb[], jsonb, jsonb) IS
	'run events through a machine in memory, from its initial state or from_state: guards and handlers, no effects, nothing stored';

/*
 * The functions a machine's current revision uses stay where its definition
 * names them: these event triggers refuse a command that drops, renames or
 * moves one of them.
 */
CREATE FUNCTION machine.functions_changed()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'machine_functions_changed'
LANGUAGE C;
COMMENT ON FUNCTION machine.functions_changed() IS
	'event trigger: refuse to drop, rename or move a function that a machine''s current revision uses';
CREATE EVENT TRIGGER machine_functions_dropped ON sql_drop
	EXECUTE FUNCTION machine.functions_changed();
COMMENT ON EVENT TRIGGER machine_functions_dropped IS
	'refuse to drop a function that a machine''s current revision uses';
CREATE EVENT TRIGGER machine_functions_altered ON ddl_command_end
	WHEN TAG IN ('ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER SCHEMA')
	EXECUTE FUNCTION machine.functions_changed();
COMMENT ON EVENT TRIGGER machine_functions_altered IS
	'refuse to rename or move a function that a machine''s current revision uses';
CREATE EVENT TRIGGER machine_functions_altering ON ddl_command_start
	WHEN TAG IN ('ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER SCHEMA')
	EXECUTE FUNCTION machine.functions_changed();
COMMENT ON EVENT TRIGGER machine_functions_altering IS
	'note the functions of machines that are missing before an ALTER, which it is not refused for';

/* Idempotent sends: a key kept with the journal row */

ALTER TABLE machine.events ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX ON machine.events (actor_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN machine.events.idempotency_key IS
	'the key a send was given: a later send to the actor with that key applies nothing and returns the state this row led to';
CREATE UNIQUE INDEX ON machine.memory_events (actor_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;

DROP FUNCTION machine_send(text, jsonb, bigint);
CREATE FUNCTION machine_send(actor_id text, event jsonb, expected_version bigint DEFAULT NULL,
							 idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_send_1_1'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_send(text, jsonb, bigint, text) IS
	'apply one event to an actor in this transaction; returns the new state, or with an idempotency key already used on the actor, the state that send led to';

/* Postponed events */

/*
 * Events that an actor's state postponed ("postpone"), oldest first: each
 * is delivered again after a transition to a state that takes it.  The
 * "memory" adapter keeps its actors' in an UNLOGGED twin.
 */
CREATE SEQUENCE machine.postponed_seq;
CREATE TABLE machine.postponed (
	actor_id text NOT NULL,
	seq bigint NOT NULL DEFAULT pg_catalog.nextval('machine.postponed_seq'::pg_catalog.regclass),
	event jsonb NOT NULL,
	state_tag text NOT NULL,
	postponed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	idempotency_key text,
	PRIMARY KEY (actor_id, seq)
);
ALTER SEQUENCE machine.postponed_seq OWNED BY machine.postponed.seq;
CREATE UNIQUE INDEX ON machine.postponed (actor_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
COMMENT ON TABLE machine.postponed IS
	'events postponed by their actor''s state, delivered again in order once a state takes them';
CREATE UNLOGGED TABLE machine.memory_postponed (
	actor_id text NOT NULL,
	seq bigint NOT NULL DEFAULT pg_catalog.nextval('machine.postponed_seq'::pg_catalog.regclass),
	event jsonb NOT NULL,
	state_tag text NOT NULL,
	postponed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	idempotency_key text,
	PRIMARY KEY (actor_id, seq)
);
CREATE UNIQUE INDEX ON machine.memory_postponed (actor_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
COMMENT ON TABLE machine.memory_postponed IS
	'the postponed events of the actors of the "memory" adapter (unlogged)';
SELECT pg_catalog.pg_extension_config_dump('machine.postponed', '');
SELECT pg_catalog.pg_extension_config_dump('machine.memory_postponed', '');
SELECT pg_catalog.pg_extension_config_dump('machine.postponed_seq', '');

/*
 * Compaction: machine_compact removes the journal rows and snapshots that a
 * newer snapshot covers; each actor's horizon is kept here, so that a fold
 * that would need what was removed fails clearly.
 */
CREATE TABLE machine.compactions (
	actor_id text PRIMARY KEY REFERENCES machine.instances (actor_id) ON DELETE CASCADE,
	horizon bigint NOT NULL CHECK (horizon OPERATOR(pg_catalog.>=) 1),
	compacted_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE machine.compactions IS
	'the compaction horizon of each compacted actor: its journal rows up to it and its snapshots below it were removed';
SELECT pg_catalog.pg_extension_config_dump('machine.compactions', '');

CREATE VIEW machine.journal_stats WITH (security_barrier) AS
	SELECT m.name AS machine,
		   m.machine_type,
		   (SELECT pg_catalog.count(*) FROM machine.instances i
			 WHERE i.machine OPERATOR(pg_catalog.=) m.name) AS actors,
		   (SELECT pg_catalog.count(*) FROM machine.instances i
			  JOIN machine.events e ON e.actor_id OPERATOR(pg_catalog.=) i.actor_id
			 WHERE i.machine OPERATOR(pg_catalog.=) m.name) AS journal_rows,
		   (SELECT pg_catalog.count(*) FROM machine.instances i
			  JOIN machine.snapshots s ON s.actor_id OPERATOR(pg_catalog.=) i.actor_id
			 WHERE i.machine OPERATOR(pg_catalog.=) m.name) AS snapshots,
		   (SELECT pg_catalog.count(*) FROM machine.instances i
			  JOIN machine.compactions c ON c.actor_id OPERATOR(pg_catalog.=) i.actor_id
			 WHERE i.machine OPERATOR(pg_catalog.=) m.name) AS compacted_actors,
		   (SELECT pg_catalog.max(c.horizon) FROM machine.instances i
			  JOIN machine.compactions c ON c.actor_id OPERATOR(pg_catalog.=) i.actor_id
			 WHERE i.machine OPERATOR(pg_catalog.=) m.name) AS max_horizon,
		   (SELECT pg_catalog.max(c.compacted_at) FROM machine.instances i
			  JOIN machine.compactions c ON c.actor_id OPERATOR(pg_catalog.=) i.actor_id
			 WHERE i.machine OPERATOR(pg_catalog.=) m.name) AS last_compacted_at
	  FROM machine.machines m
	 WHERE machine.may_read(m.owner, m.acl);
COMMENT ON VIEW machine.journal_stats IS
	'per machine the current role may read: actors, journal rows, snapshots, and how far machine_compact has gone (the built-in tables)';
GRANT SELECT ON machine.journal_stats TO PUBLIC;

CREATE FUNCTION machine_compact(machine text, keep interval DEFAULT NULL,
								archive regclass DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'machine_compact'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_compact(text, interval, regclass) IS
	'remove (or move into archive) the journal rows and snapshots a newer snapshot covers; returns how many rows went';

/*
 * Scale-out: moving a slice of actors to another shard.  machine_router_move
 * on a router exports the slice from its shard, imports it on the new one,
 * then deletes it from the old one, unless an actor moved on meanwhile.
 * They read and write the extension's tables directly (the built-in ones
 * and the "memory" adapter's), so only their owner may call them.
 */

CREATE FUNCTION machine_slice_export(slice integer, slices integer)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result jsonb := '{}';
	t text;
	rows jsonb;
BEGIN
	IF slice IS NULL OR slices IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'slice and slices must not be NULL';
	END IF;
	IF slices < 1 OR slices > 65536 OR (slices & (slices - 1)) <> 0
	   OR slice < 0 OR slice >= slices THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('slice %s is not one of %s slices', slice, slices),
			DETAIL = 'The number of slices is a power of two from 1 to 65536; slices count from 0.';
	END IF;
	FOREACH t IN ARRAY ARRAY['instances', 'events', 'snapshots', 'timers', 'snapshots_due',
							 'compactions', 'memory_instances', 'memory_events',
							 'memory_snapshots', 'memory_timers', 'memory_snapshots_due'] LOOP
		EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(r)), ''[]'') FROM machine.%I AS r
						 WHERE @extschema@.machine_slice_of(r.actor_id, $1) = $2', t)
		   INTO rows USING slices, slice;
		result := result || jsonb_build_object(t, rows);
	END LOOP;
	RETURN result;
END $$;
REVOKE ALL ON FUNCTION machine_slice_export(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION machine_slice_export(integer, integer) IS
	'the rows of every actor of a slice, from every table of the extension, as JSON (for machine_router_move)';

CREATE FUNCTION machine_slice_import(data jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p text;
	n integer;
	actors integer := 0;
BEGIN
	IF data IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'data must not be NULL';
	END IF;
	FOREACH p IN ARRAY ARRAY['', 'memory_'] LOOP
		-- the txid recorded for an actor's latest journal row is the old
		-- shard's: its journal rows get this shard's txids below
		EXECUTE format('INSERT INTO machine.%I SELECT actor_id, machine, status, version, state, state_tag, initial_state, created_at, last_activity_at FROM jsonb_populate_recordset(NULL::machine.%1$I, $1)',
					   p || 'instances') USING coalesce(data -> (p || 'instances'), '[]');
		GET DIAGNOSTICS n = ROW_COUNT;
		actors := actors + n;
		-- journal rows get positions of this shard, in their order there
		EXECUTE format('INSERT INTO machine.%I (actor_id, version, event, state_tag, recorded_at, revision)
						SELECT actor_id, version, event, state_tag, recorded_at, revision
						  FROM jsonb_populate_recordset(NULL::machine.%1$I, $1) ORDER BY position',
					   p || 'events') USING coalesce(data -> (p || 'events'), '[]');
		EXECUTE format('INSERT INTO machine.%I SELECT * FROM jsonb_populate_recordset(NULL::machine.%1$I, $1)',
					   p || 'snapshots') USING coalesce(data -> (p || 'snapshots'), '[]');
		EXECUTE format('INSERT INTO machine.%I (actor_id, armed_version, seq, state_tag, event, due_at, armed_by)
						SELECT actor_id, armed_version, seq, state_tag, event, due_at, armed_by
						  FROM jsonb_populate_recordset(NULL::machine.%1$I, $1)',
					   p || 'timers') USING coalesce(data -> (p || 'timers'), '[]');
		EXECUTE format('INSERT INTO machine.%I SELECT * FROM jsonb_populate_recordset(NULL::machine.%1$I, $1)',
					   p || 'snapshots_due') USING coalesce(data -> (p || 'snapshots_due'), '[]');
	END LOOP;
	INSERT INTO machine.compactions
		SELECT * FROM jsonb_populate_recordset(NULL::machine.compactions,
											   coalesce(data -> 'compactions', '[]'));
	RETURN actors;
END $$;
REVOKE ALL ON FUNCTION machine_slice_import(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION machine_slice_import(jsonb) IS
	'insert the rows machine_slice_export returned; returns how many actors (for machine_router_move)';

CREATE FUNCTION machine_slice_delete(slice integer, slices integer, versions jsonb DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t text;
	n integer;
	actors integer := 0;
	changed text;
	ids text[] := '{}';
	vers bigint[] := '{}';
	some_ids text[];
	some_vers bigint[];
BEGIN
	IF slice IS NULL OR slices IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'slice and slices must not be NULL';
	END IF;
	IF slices < 1 OR slices > 65536 OR (slices & (slices - 1)) <> 0
	   OR slice < 0 OR slice >= slices THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('slice %s is not one of %s slices', slice, slices),
			DETAIL = 'The number of slices is a power of two from 1 to 65536; slices count from 0.';
	END IF;
	-- lock the slice's actors: their writers in flight (timers) finish first
	FOREACH t IN ARRAY ARRAY['instances', 'memory_instances'] LOOP
		EXECUTE format('SELECT coalesce(array_agg(actor_id), ''{}''), coalesce(array_agg(version), ''{}'')
						  FROM (SELECT actor_id, version FROM machine.%I
								 WHERE @extschema@.machine_slice_of(actor_id, $1) = $2 FOR UPDATE) AS a', t)
		   INTO some_ids, some_vers USING slices, slice;
		ids := ids || some_ids;
		vers := vers || some_vers;
	END LOOP;
	IF versions IS NOT NULL THEN
		SELECT coalesce(a.actor_id, v.key) INTO changed
		  FROM unnest(ids, vers) AS a(actor_id, version)
		  FULL JOIN jsonb_each_text(versions) AS v ON v.key = a.actor_id
		 WHERE a.version IS DISTINCT FROM v.value::bigint
		 LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
				MESSAGE = format('actor %L of slice %s changed while the slice was moved', changed, slice),
				DETAIL = 'Its version is not the one that was copied to the new shard; the copy there was removed again.',
				HINT = 'Retry machine_router_move.';
		END IF;
	END IF;
	FOREACH t IN ARRAY ARRAY['events', 'snapshots', 'timers', 'snapshots_due', 'compactions', 'instances',
							 'memory_events', 'memory_snapshots', 'memory_timers',
							 'memory_snapshots_due', 'memory_instances'] LOOP
		EXECUTE format('DELETE FROM machine.%I WHERE actor_id = ANY ($1)', t) USING ids;
		IF t LIKE '%instances' THEN
			GET DIAGNOSTICS n = ROW_COUNT;
			actors := actors + n;
		END IF;
	END LOOP;
	RETURN actors;
END $$;
REVOKE ALL ON FUNCTION machine_slice_delete(integer, integer, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION machine_slice_delete(integer, integer, jsonb) IS
	'delete every actor of a slice with its rows, provided each is at the version given (for machine_router_move)';
