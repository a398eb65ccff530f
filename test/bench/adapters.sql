-- Schema and data of test/bench/adapters (psql; variable :nactors): the
-- same three-state cycle on each adapter, :nactors actors each.
\set ON_ERROR_STOP 1
CREATE EXTENSION machine;

-- a trivial user adapter over plain tables, as a user would write it
CREATE SCHEMA bench_store;
CREATE TABLE bench_store.journal (actor_id text, version bigint, event jsonb NOT NULL,
	state_tag text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (actor_id, version));
CREATE TABLE bench_store.snapshots (actor_id text, version bigint, state jsonb NOT NULL,
	state_tag text NOT NULL, PRIMARY KEY (actor_id, version));
CREATE FUNCTION bench_store.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO bench_store.journal (actor_id, version, event, state_tag) VALUES ($1, $2, $3, $4)
$$;
CREATE FUNCTION bench_store.load_events(actor_id text, after_version bigint, upto_version bigint)
RETURNS TABLE (version bigint, event jsonb, state_tag text, recorded_at timestamptz)
LANGUAGE sql AS $$
	SELECT j.version, j.event, j.state_tag, j.recorded_at FROM bench_store.journal j
	 WHERE j.actor_id = $1 AND j.version > $2 AND j.version <= $3 ORDER BY j.version
$$;
CREATE FUNCTION bench_store.save_snapshot(actor_id text, version bigint, state jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO bench_store.snapshots VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING
$$;
CREATE FUNCTION bench_store.load_snapshot(actor_id text, max_version bigint,
										  OUT version bigint, OUT state jsonb)
RETURNS record LANGUAGE sql AS $$
	SELECT s.version, s.state FROM bench_store.snapshots s
	 WHERE s.actor_id = $1 AND s.version <= $2 ORDER BY s.version DESC LIMIT 1
$$;
CREATE FUNCTION bench_store.delete_actor(actor_id text) RETURNS void LANGUAGE sql AS $$
	DELETE FROM bench_store.journal j WHERE j.actor_id = $1;
	DELETE FROM bench_store.snapshots s WHERE s.actor_id = $1;
$$;

SELECT machine_define(name, format(
	'{"initial": "A", "states": {"A": {"on": {"Next": "B"}}, '
	'"B": {"on": {"Next": "C"}}, "C": {"on": {"Next": "A"}}}, '
	'"persistence": %s}', persistence)::jsonb)
  FROM (VALUES ('cycle', '{}'),
			   ('cycle_memory', '{"adapter": "memory"}'),
			   ('cycle_user', '{"adapter": "bench_store"}')) AS m (name, persistence);

SELECT count(machine_spawn(m || '-' || i, m)) AS spawned
  FROM unnest(ARRAY['cycle', 'cycle_memory', 'cycle_user']) m,
	   generate_series(0, :nactors - 1) i;
VACUUM ANALYZE;
