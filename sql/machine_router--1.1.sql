/* machine_router--1.1.sql: a router database in front of machine shards */

\echo Use "CREATE EXTENSION machine_router CASCADE" to load this file. \quit

/*
 * The router has the functions of the machine extension, with the same
 * names, arguments and results, implemented in PL/Proxy: each call that
 * names an actor runs on the shard that keeps the actor's slice, and commits
 * there when it returns; machine_define, machine_drop, machine_restore_all
 * and the view machine.actors run on every shard.  The PL/Proxy cluster is
 * the foreign server "machine", with one partition per slice, written by
 * machine_router_configure(); partitions of one shard share a connection.
 * Functions are called on the shards in the schema they have here, so both
 * extensions go into the same schema (public, by default).
 */

CREATE SCHEMA machine_router;
COMMENT ON SCHEMA machine_router IS 'the router''s map of slices to shards, and its internal functions';
GRANT USAGE ON SCHEMA machine_router TO PUBLIC;
CREATE SCHEMA machine;
COMMENT ON SCHEMA machine IS 'the union of the shards'' views';
GRANT USAGE ON SCHEMA machine TO PUBLIC;

CREATE TABLE machine_router.slices (
	slice integer PRIMARY KEY CHECK (slice >= 0),
	shard text NOT NULL CHECK (shard <> '')
);
COMMENT ON TABLE machine_router.slices IS
	'which shard (a libpq connection string) keeps each slice';
SELECT pg_catalog.pg_extension_config_dump('machine_router.slices', '');
GRANT SELECT ON machine_router.slices TO PUBLIC;

/*
 * The slice hash, for RUN ON: PL/Proxy masks it with (partitions - 1).  Not
 * strict: a NULL id goes to slice 0, whose shard refuses it as it would.
 * Volatile: it takes the lock that holds routed calls back while their
 * slice is being moved (machine_router_move).
 */
CREATE FUNCTION machine_router.hash(actor_id text)
RETURNS integer
AS 'MODULE_PATHNAME', 'machine_router_hash'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_router.hash(text) IS
	'the 32-bit slice hash of an actor id; its low bits are the slice';

CREATE FUNCTION machine_slice_of(actor_id text, slices integer DEFAULT 1024)
RETURNS integer
AS 'MODULE_PATHNAME', 'machine_router_slice_of'
LANGUAGE C IMMUTABLE PARALLEL SAFE STRICT;
COMMENT ON FUNCTION machine_slice_of(text, integer) IS
	'the slice of an actor id: FNV-1a of its UTF-8 bytes, finished with murmur3 fmix32, modulo slices (a power of two)';

/* Configuration */

CREATE FUNCTION machine_router_configure(shards text[], slices integer DEFAULT 1024)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := coalesce(array_length(shards, 1), 0);
	options text;
BEGIN
	IF shards IS NULL OR slices IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = format('%s must not be NULL', CASE WHEN shards IS NULL THEN 'shards' ELSE 'slices' END);
	END IF;
	IF slices < 1 OR slices > 65536 OR (slices & (slices - 1)) <> 0 THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('invalid number of slices: %s', slices),
			DETAIL = 'The number of slices must be a power of two from 1 to 65536.',
			HINT = 'Use 1024, the default.';
	END IF;
	IF n = 0 OR array_ndims(shards) <> 1 THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'shards must be a one-dimensional array of connection strings',
			HINT = 'Pass one libpq connection string per shard, like ARRAY[''host=db1 dbname=app'', ''host=db2 dbname=app''].';
	END IF;
	IF n > slices THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('%s shards cannot share %s slices', n, slices),
			DETAIL = 'Every shard keeps at least one slice.',
			HINT = 'Configure more slices.';
	END IF;
	IF EXISTS (SELECT FROM unnest(shards) AS s WHERE s IS NULL OR btrim(s) = '') THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'a shard''s connection string must not be NULL or empty';
	END IF;
	IF (SELECT count(DISTINCT s) FROM unnest(shards) AS s) <> n THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'shards must be distinct',
			DETAIL = (SELECT format('%L is given more than once.', s)
						FROM unnest(shards) AS s GROUP BY s HAVING count(*) > 1 LIMIT 1);
	END IF;

	DELETE FROM machine_router.slices;
	INSERT INTO machine_router.slices (slice, shard)
		SELECT i, shards[1 + (i::bigint * n / slices)::integer]
		  FROM generate_series(0, slices - 1) AS i;
	PERFORM machine_router.write_cluster();
END $$;
REVOKE ALL ON FUNCTION machine_router_configure(text[], integer) FROM PUBLIC;
COMMENT ON FUNCTION machine_router_configure(text[], integer) IS
	'map slices to shards (libpq connection strings) in equal contiguous ranges, and write the PL/Proxy cluster "machine"';

/*
 * (Re)write the foreign server "machine" from machine_router.slices.  An
 * existing server is altered, so that its other options, its user mappings
 * (with passwords, say) and its grants stay.
 */
CREATE FUNCTION machine_router.write_cluster()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	existing text[];
	options text;
BEGIN
	SELECT coalesce(array_agg(split_part(o, '=', 1)), '{}') INTO existing
	  FROM pg_foreign_server AS s, unnest(s.srvoptions) AS o
	 WHERE s.srvname = 'machine';
	IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'machine') THEN
		SELECT string_agg(format('p%s %L', slice, shard), ', ' ORDER BY slice)
		  INTO options FROM machine_router.slices;
		EXECUTE format('CREATE SERVER machine FOREIGN DATA WRAPPER plproxy OPTIONS (%s)', options);
		CREATE USER MAPPING FOR PUBLIC SERVER machine;
		GRANT USAGE ON FOREIGN SERVER machine TO PUBLIC;
		RETURN;
	END IF;
	SELECT string_agg(o, ', ') INTO options FROM (
		SELECT format('%s p%s %L', CASE WHEN ('p' || slice) = ANY (existing) THEN 'SET' ELSE 'ADD' END,
					  slice, shard) AS o
		  FROM machine_router.slices
		UNION ALL
		SELECT format('DROP %I', e)
		  FROM unnest(existing) AS e
		 WHERE e ~ '^p[0-9]+$'
		   AND NOT EXISTS (SELECT FROM machine_router.slices AS s WHERE 'p' || s.slice = e)) AS ops;
	EXECUTE format('ALTER SERVER machine OPTIONS (%s)', options);
END $$;
REVOKE ALL ON FUNCTION machine_router.write_cluster() FROM PUBLIC;
COMMENT ON FUNCTION machine_router.write_cluster() IS
	'write the PL/Proxy cluster "machine": one partition per slice, its shard''s connection string';

CREATE FUNCTION machine_router_slices()
RETURNS TABLE (slice integer, shard text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT slice, shard FROM machine_router.slices ORDER BY slice $$;
COMMENT ON FUNCTION machine_router_slices() IS
	'every slice and the shard that keeps it';

/* One slice of each shard: RUN ON it reaches that shard */
CREATE FUNCTION machine_router.shards()
RETURNS TABLE (shard text, slice integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT shard, min(slice) FROM machine_router.slices GROUP BY shard ORDER BY min(slice) $$;
COMMENT ON FUNCTION machine_router.shards() IS
	'each shard with the first slice it keeps';

/* Definitions: on every shard */

CREATE FUNCTION machine_router.define_on_all(name text, definition jsonb)
RETURNS SETOF integer
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	TARGET machine_define;
$$;

CREATE FUNCTION machine_router.machine_define(name text, definition jsonb)
RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT max(r) FROM machine_router.define_on_all(name, definition) AS r $$;
CREATE FUNCTION machine_define(name text, definition jsonb)
RETURNS integer
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_define(text, jsonb) IS
	'define or redefine a machine on every shard; returns the newest revision among them';

CREATE FUNCTION machine_router.drop_on_all(name text, "cascade" boolean)
RETURNS SETOF boolean
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	TARGET machine_drop;
$$;

CREATE FUNCTION machine_router.machine_drop(name text, "cascade" boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT bool_or(r) FROM machine_router.drop_on_all(name, "cascade") AS r $$;
CREATE FUNCTION machine_drop(name text, "cascade" boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_drop(text, boolean) IS
	'drop a machine on every shard; true when a shard had it';

CREATE FUNCTION machine_router.machine_definition(name text)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON 0;
	TARGET @extschema@.machine_definition;
$$;
CREATE FUNCTION machine_definition(name text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_definition(text) IS
	'the stored definition of a machine, as the shard of slice 0 has it';

CREATE FUNCTION machine_router.machine_definition(name text, revision integer)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON 0;
	TARGET @extschema@.machine_definition;
$$;
CREATE FUNCTION machine_definition(name text, revision integer)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_definition(text, integer) IS
	'the definition of a machine at one of its revisions, as the shard of slice 0 has it';

CREATE FUNCTION machine_router.machine_check_define(name text, definition jsonb)
RETURNS TABLE (actor_id text, version bigint, problem text)
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	TARGET @extschema@.machine_check_define;
$$;
CREATE FUNCTION machine_check_define(name text, definition jsonb)
RETURNS TABLE (actor_id text, version bigint, problem text)
AS 'MODULE_PATHNAME', 'machine_router_forward_rows'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_check_define(text, jsonb) IS
	'what redefining a machine would break, on every shard; writes nothing';

CREATE FUNCTION machine_router.compact_on_all(machine text, keep interval, archive regclass)
RETURNS SETOF bigint
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	TARGET machine_compact;
$$;

-- the archive is named as a table of the router's, and taken by that name
-- on each shard
CREATE FUNCTION machine_router.machine_compact(machine text, keep interval DEFAULT NULL,
								archive regclass DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT sum(r)::bigint FROM machine_router.compact_on_all(machine, keep, archive) AS r $$;
CREATE FUNCTION machine_compact(machine text, keep interval DEFAULT NULL,
								archive regclass DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_compact(text, interval, regclass) IS
	'compact a machine''s journal and snapshots on every shard; returns the rows removed on all of them';

CREATE FUNCTION machine_router.revisions_at(slice integer)
RETURNS TABLE (machine text, revision integer)
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON slice;
	SELECT name AS machine, revision FROM machine.definitions;
$$;

CREATE FUNCTION machine_router_check()
RETURNS TABLE (machine text, shard text, revision integer)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	WITH seen AS (
		SELECT s.shard, s.slice, r.machine, r.revision
		  FROM machine_router.shards() AS s,
			   LATERAL machine_router.revisions_at(s.slice) AS r),
	differing AS (
		SELECT m.machine
		  FROM (SELECT DISTINCT seen.machine FROM seen) AS m
		 CROSS JOIN machine_router.shards() AS s
		  LEFT JOIN seen ON seen.machine = m.machine AND seen.shard = s.shard
		 GROUP BY m.machine
		HAVING count(DISTINCT coalesce(seen.revision, -1)) > 1)
	SELECT d.machine, s.shard, seen.revision
	  FROM differing AS d
	 CROSS JOIN machine_router.shards() AS s
	  LEFT JOIN seen ON seen.machine = d.machine AND seen.shard = s.shard
	 ORDER BY d.machine, s.slice
$$;
COMMENT ON FUNCTION machine_router_check() IS
	'for each machine whose revision differs between shards (or that a shard lacks), every shard''s revision';

/* Actors: on the shard of the actor's slice */

CREATE FUNCTION machine_router.machine_spawn(actor_id text, machine text, data jsonb DEFAULT '{}',
							  if_not_exists boolean DEFAULT false, state text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_spawn;
$$;
CREATE FUNCTION machine_spawn(actor_id text, machine text, data jsonb DEFAULT '{}',
							  if_not_exists boolean DEFAULT false, state text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_spawn(text, text, jsonb, boolean, text) IS
	'create an actor on the shard of its slice';

CREATE FUNCTION machine_router.machine_send(actor_id text, event jsonb, expected_version bigint DEFAULT NULL,
							 idempotency_key text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_send;
$$;
CREATE FUNCTION machine_send(actor_id text, event jsonb, expected_version bigint DEFAULT NULL,
							 idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_send(text, jsonb, bigint, text) IS
	'apply one event to an actor on its shard; commits there when it returns';

CREATE FUNCTION machine_router.machine_send_entity(machine text, entity_id text, event jsonb,
									expected_version bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(entity_id);
	TARGET @extschema@.machine_send_entity;
$$;
CREATE FUNCTION machine_send_entity(machine text, entity_id text, event jsonb,
									expected_version bigint DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_send_entity(text, text, jsonb, bigint) IS
	'send an event to an entity on its shard, spawning it on its first message';

CREATE FUNCTION machine_router.machine_state(actor_id text)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_state;
$$;
CREATE FUNCTION machine_state(actor_id text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_state(text) IS
	'the current state of an actor, from its shard';

CREATE FUNCTION machine_router.machine_version(actor_id text)
RETURNS bigint
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_version;
$$;
CREATE FUNCTION machine_version(actor_id text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_version(text) IS
	'the version of an actor, from its shard';

CREATE FUNCTION machine_router.machine_matches(actor_id text, tag text)
RETURNS boolean
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_matches;
$$;
CREATE FUNCTION machine_matches(actor_id text, tag text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_matches(text, text) IS
	'is the actor in that state, asked on its shard';

CREATE FUNCTION machine_router.machine_can(actor_id text, event jsonb)
RETURNS boolean
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_can;
$$;
CREATE FUNCTION machine_can(actor_id text, event jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_can(text, jsonb) IS
	'would the actor handle this event now, asked on its shard';

CREATE FUNCTION machine_router.machine_stop(actor_id text)
RETURNS boolean
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_stop;
$$;
CREATE FUNCTION machine_stop(actor_id text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_stop(text) IS
	'stop an actor on its shard';

CREATE FUNCTION machine_router.machine_delete(actor_id text)
RETURNS boolean
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_delete;
$$;
CREATE FUNCTION machine_delete(actor_id text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_delete(text) IS
	'erase an actor with its journal, snapshots and timers on its shard';

CREATE FUNCTION machine_router.machine_persist(actor_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_persist;
$$;
CREATE FUNCTION machine_persist(actor_id text, expected_version bigint DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_persist(text, bigint) IS
	'take a snapshot of an actor on its shard';

CREATE FUNCTION machine_router.machine_restore(actor_id text)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_restore;
$$;
CREATE FUNCTION machine_restore(actor_id text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_restore(text) IS
	'bring a stopped actor back on its shard';

CREATE FUNCTION machine_router.machine_restore_many(actor_ids text[])
RETURNS TABLE (actor_id text, status text, state jsonb, error text)
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	SPLIT actor_ids;
	RUN ON machine_router.hash(actor_ids);
	TARGET @extschema@.machine_restore_many;
$$;
CREATE FUNCTION machine_restore_many(actor_ids text[])
RETURNS TABLE (actor_id text, status text, state jsonb, error text)
AS 'MODULE_PATHNAME', 'machine_router_forward_rows'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_restore_many(text[]) IS
	'restore several actors, the ids split by shard; each shard''s rows commit there';

CREATE FUNCTION machine_router.machine_restore_all(machine_type text)
RETURNS TABLE (actor_id text, status text, state jsonb, error text)
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	TARGET @extschema@.machine_restore_all;
$$;
CREATE FUNCTION machine_restore_all(machine_type text)
RETURNS TABLE (actor_id text, status text, state jsonb, error text)
AS 'MODULE_PATHNAME', 'machine_router_forward_rows'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_restore_all(text) IS
	'restore every stopped actor of a machine type, on every shard';

CREATE FUNCTION machine_router.machine_replay_to(actor_id text, version bigint)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_replay_to;
$$;
CREATE FUNCTION machine_replay_to(actor_id text, version bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_replay_to(text, bigint) IS
	'the state an actor had at a version, computed on its shard';

CREATE FUNCTION machine_router.machine_rewind(actor_id text, version bigint)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_rewind;
$$;
CREATE FUNCTION machine_rewind(actor_id text, version bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_rewind(text, bigint) IS
	'set an actor to the state it had at a version, on its shard';

CREATE FUNCTION machine_router.machine_history(actor_id text)
RETURNS TABLE (version bigint, event jsonb, state jsonb, recorded_at timestamptz)
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON machine_router.hash(actor_id);
	TARGET @extschema@.machine_history;
$$;
CREATE FUNCTION machine_history(actor_id text)
RETURNS TABLE (version bigint, event jsonb, state jsonb, recorded_at timestamptz)
AS 'MODULE_PATHNAME', 'machine_router_forward_rows'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_history(text) IS
	'every journaled event of an actor, from its shard';

/* The registry view: the union of every shard's */

CREATE FUNCTION machine_router.shard_actors()
RETURNS TABLE (id text, machine text, machine_type text, created_at timestamptz,
			   last_activity_at timestamptz, version bigint, state_tag text,
			   status text, snapshot_version bigint)
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	SELECT a.id, a.machine, a.machine_type, a.created_at, a.last_activity_at,
		   a.version, a.state_tag, a.status, a.snapshot_version
	  FROM machine.actors AS a;
$$;
COMMENT ON FUNCTION machine_router.shard_actors() IS
	'every shard''s machine.actors, as the calling role sees it there';

CREATE FUNCTION machine.shard_actors()
RETURNS TABLE (id text, machine text, machine_type text, created_at timestamptz,
			   last_activity_at timestamptz, version bigint, state_tag text,
			   status text, snapshot_version bigint)
AS 'MODULE_PATHNAME', 'machine_router_forward_rows'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine.shard_actors() IS
	'machine_router.shard_actors(), with a shard''s errors as the shard raised them';

CREATE VIEW machine.actors AS
	SELECT id, machine, machine_type, created_at, last_activity_at, version,
		   state_tag, status, snapshot_version
	  FROM machine.shard_actors();
COMMENT ON VIEW machine.actors IS
	'the actor registry of every shard: one row per actor';
GRANT SELECT ON machine.actors TO PUBLIC;

/* Moving a slice to another shard */

CREATE FUNCTION machine_router.hold_slice(slice integer, slices integer)
RETURNS void
AS 'MODULE_PATHNAME', 'machine_router_hold_slice'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION machine_router.hold_slice(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION machine_router.hold_slice(integer, integer) IS
	'wait for the routed calls of a slice in flight and hold new ones back until the transaction ends';

CREATE FUNCTION machine_router.export_at(part integer, slice integer, slices integer)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON part;
	SELECT @extschema@.machine_slice_export(slice, slices);
$$;
REVOKE ALL ON FUNCTION machine_router.export_at(integer, integer, integer) FROM PUBLIC;

CREATE FUNCTION machine_router.delete_at(part integer, slice integer, slices integer, versions jsonb)
RETURNS integer
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON part;
	SELECT @extschema@.machine_slice_delete(slice, slices, versions);
$$;
REVOKE ALL ON FUNCTION machine_router.delete_at(integer, integer, integer, jsonb) FROM PUBLIC;

CREATE FUNCTION machine_router.import_to(shard text, data jsonb)
RETURNS integer
LANGUAGE plproxy AS $$
	CONNECT shard;
	SELECT @extschema@.machine_slice_import(data);
$$;
REVOKE ALL ON FUNCTION machine_router.import_to(text, jsonb) FROM PUBLIC;

CREATE FUNCTION machine_router.delete_on(shard text, slice integer, slices integer)
RETURNS integer
LANGUAGE plproxy AS $$
	CONNECT shard;
	SELECT @extschema@.machine_slice_delete(slice, slices, NULL);
$$;
REVOKE ALL ON FUNCTION machine_router.delete_on(text, integer, integer) FROM PUBLIC;

CREATE FUNCTION machine_router_move(slice integer, to_shard text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nslices integer;
	from_shard text;
	data jsonb;
	versions jsonb;
	moved integer;
BEGIN
	IF slice IS NULL OR to_shard IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = format('%s must not be NULL', CASE WHEN slice IS NULL THEN 'slice' ELSE 'to_shard' END);
	END IF;
	SELECT count(*) INTO nslices FROM machine_router.slices;
	IF nslices = 0 THEN
		RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
			MESSAGE = 'the router is not configured',
			HINT = 'Map the slices to shards with machine_router_configure first.';
	END IF;
	IF slice < 0 OR slice >= nslices THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('there is no slice %s', slice),
			DETAIL = format('The router has slices 0 to %s.', nslices - 1);
	END IF;
	IF btrim(to_shard) = '' THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'a shard''s connection string must not be empty';
	END IF;
	SELECT s.shard INTO from_shard FROM machine_router.slices AS s
	 WHERE s.slice = machine_router_move.slice FOR UPDATE;
	IF from_shard = to_shard THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('slice %s is on that shard already', slice);
	END IF;

	-- routed calls of the slice in flight finish, new ones wait
	PERFORM machine_router.hold_slice(slice, nslices);
	data := machine_router.export_at(slice, slice, nslices);
	SELECT coalesce(jsonb_object_agg(i ->> 'actor_id', (i ->> 'version')::bigint), '{}')
	  INTO versions
	  FROM jsonb_array_elements((data -> 'instances') || (data -> 'memory_instances')) AS i;
	moved := machine_router.import_to(to_shard, data);
	BEGIN
		PERFORM machine_router.delete_at(slice, slice, nslices, versions);
	EXCEPTION WHEN OTHERS THEN
		-- an actor moved on at the old shard (a timer): keep it there
		PERFORM machine_router.delete_on(to_shard, slice, nslices);
		RAISE;
	END;
	UPDATE machine_router.slices AS s SET shard = to_shard
	 WHERE s.slice = machine_router_move.slice;
	EXECUTE format('ALTER SERVER machine OPTIONS (SET %I %L)', 'p' || slice, to_shard);
	RETURN moved;
END $$;
REVOKE ALL ON FUNCTION machine_router_move(integer, text) FROM PUBLIC;
COMMENT ON FUNCTION machine_router_move(integer, text) IS
	'move the actors of a slice, with their journal, snapshots and timers, to another shard, and route the slice there';

/* Privileges: granted and revoked on every shard */

CREATE FUNCTION machine_router.grant_on_all(machine text, role text, privilege text)
RETURNS SETOF integer
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	SELECT 1 FROM @extschema@.machine_grant(machine, role::pg_catalog.regrole, privilege);
$$;

CREATE FUNCTION machine_router.machine_grant(machine text, role regrole, privilege text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT count(*) FROM machine_router.grant_on_all(machine, role::text, privilege) $$;
CREATE FUNCTION machine_grant(machine text, role regrole, privilege text)
RETURNS void
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_grant(text, regrole, text) IS
	'grant a privilege on a machine to a role, on every shard (the role must exist on each)';

CREATE FUNCTION machine_router.revoke_on_all(machine text, role text, privilege text)
RETURNS SETOF integer
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON ALL;
	SELECT 1 FROM @extschema@.machine_revoke(machine, role::pg_catalog.regrole, privilege);
$$;

CREATE FUNCTION machine_router.machine_revoke(machine text, role regrole, privilege text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT count(*) FROM machine_router.revoke_on_all(machine, role::text, privilege) $$;
CREATE FUNCTION machine_revoke(machine text, role regrole, privilege text)
RETURNS void
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_revoke(text, regrole, text) IS
	'revoke a privilege on a machine from a role, on every shard';

CREATE FUNCTION machine_router.machine_has_privilege(machine text, privilege text)
RETURNS boolean
LANGUAGE plproxy AS $$
	CLUSTER 'machine';
	RUN ON 0;
	TARGET @extschema@.machine_has_privilege;
$$;
CREATE FUNCTION machine_has_privilege(machine text, privilege text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'machine_router_forward'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION machine_has_privilege(text, text) IS
	'does the current role hold the privilege on the machine, as the shard of slice 0 says';
