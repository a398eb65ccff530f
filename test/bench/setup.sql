-- Schema and base data of the benchmark (psql; variable :nactors).
--
-- Machines: three-state cycles A -Next-> B -Next-> C -Next-> A.
--	 cycle			journal on, no snapshots (persistence {})
--	 cycle_snap		journal on, a snapshot of every version ("forever")
--	 cycle_restore	journal on, no snapshots; its own machine type, so that
--					machine_restore_all('cycle_restore') sees only its actors
-- Actors: a-0 .. a-(nactors-1) of cycle, p-0 .. p-(nactors-1) of cycle_snap.
--
-- The twin: schema "twin" with tables defined exactly as the extension's
-- (LIKE ... INCLUDING ALL copies columns, defaults, CHECK constraints and
-- indexes; the foreign key and the storage parameters, such as fillfactor,
-- are copied by hand), holding the same actors.
\set ON_ERROR_STOP 1
CREATE EXTENSION machine;

SELECT machine_define(name, format(
	'{"initial": "A", "states": {"A": {"on": {"Next": "B"}}, '
	'"B": {"on": {"Next": "C"}}, "C": {"on": {"Next": "A"}}}, '
	'"persistence": %s}', persistence)::jsonb)
  FROM (VALUES ('cycle', '{}'),
			   ('cycle_snap', '{"snapshotSchedule": "forever"}'),
			   ('cycle_restore', '{}')) AS m (name, persistence);

SELECT count(machine_spawn('a-' || i, 'cycle')) AS spawned
  FROM generate_series(0, :nactors - 1) i;
SELECT count(machine_spawn('p-' || i, 'cycle_snap')) AS spawned
  FROM generate_series(0, :nactors - 1) i;

CREATE SCHEMA twin;
CREATE TABLE twin.instances (LIKE machine.instances INCLUDING ALL);
ALTER TABLE twin.instances
	ADD FOREIGN KEY (machine) REFERENCES machine.machines (name);
CREATE TABLE twin.events (LIKE machine.events INCLUDING ALL);
CREATE TABLE twin.snapshots (LIKE machine.snapshots INCLUDING ALL);
SELECT format('ALTER TABLE twin.%I SET (%s)', c.relname,
			  array_to_string(c.reloptions, ', '))
  FROM pg_class c
 WHERE c.relnamespace = 'machine'::regnamespace
   AND c.relname IN ('instances', 'events', 'snapshots')
   AND c.reloptions IS NOT NULL
\gexec
INSERT INTO twin.instances SELECT * FROM machine.instances;

-- where the twin of machine_restore_all copies the latest snapshots to
CREATE TABLE twin.restored (
	actor_id text PRIMARY KEY,
	version bigint NOT NULL,
	state jsonb NOT NULL,
	state_tag text NOT NULL
);

VACUUM ANALYZE;
