-- Adapters: where a machine's actors, journal and snapshots live.  The same
-- behaviour on each, then what sets each apart.

CREATE TABLE ad_log (actor text, what text);
CREATE FUNCTION ad_log(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO ad_log VALUES (actor_id, (state->>'_tag') || ' on ' || (event->>'_tag')) $$;
CREATE FUNCTION ad_tick(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	IF event ? 'fail' THEN
		RAISE EXCEPTION 'tick failed';
	END IF;
	RETURN state || jsonb_build_object('n', (state->>'n')::int + 1);
END $$;
CREATE FUNCTION ad_below_ten(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (state->>'n')::int < 10 $$;
CREATE FUNCTION ad_expire() RETURNS void LANGUAGE sql AS $$
	UPDATE machine.timers SET due_at = due_at - interval '2 days';
	UPDATE machine.memory_timers SET due_at = due_at - interval '2 days';
$$;
-- what earlier tests left due is taken first
SELECT * FROM machine_run_maintenance() \g /dev/null

\getenv abs_srcdir PG_ABS_SRCDIR
\set behaviour :abs_srcdir '/sql/adapter_behaviour.psql'
\set adapter tables
\i :behaviour
\set adapter memory
\i :behaviour

--
-- The "memory" adapter: UNLOGGED tables of their own
--
SELECT c.relname, c.relpersistence FROM pg_class c
 WHERE c.relnamespace = 'machine'::regnamespace AND c.relkind = 'r'
   AND c.relname ~ '^(memory_)?(instances|events|snapshots|timers)$'
 ORDER BY c.relname;
SELECT machine_define('mem', '{"initial": "A", "states": {"A": {"on": {"Go": "A"},
  "after": [{"delay": "1 hour", "event": {"_tag": "Go"}}]}},
  "persistence": {"adapter": "memory", "snapshotSchedule": "forever"}}');
SELECT machine_spawn('mem-1', 'mem'), machine_send('mem-1', '{"_tag": "Go"}');
SELECT (SELECT count(*) FROM machine.memory_instances WHERE actor_id = 'mem-1') AS instances,
       (SELECT count(*) FROM machine.memory_events WHERE actor_id = 'mem-1') AS events,
       (SELECT count(*) FROM machine.memory_snapshots WHERE actor_id = 'mem-1') AS snapshots,
       (SELECT count(*) FROM machine.memory_timers WHERE actor_id = 'mem-1') AS timers;
SELECT (SELECT count(*) FROM machine.instances WHERE actor_id = 'mem-1') AS instances,
       (SELECT count(*) FROM machine.events WHERE actor_id = 'mem-1') AS events,
       (SELECT count(*) FROM machine.snapshots WHERE actor_id = 'mem-1') AS snapshots,
       (SELECT count(*) FROM machine.timers WHERE actor_id = 'mem-1') AS timers;

-- an actor id is unique across adapters
SELECT machine_define('tab', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "tables"}}');
SELECT machine_spawn('tab-1', 'tab');
SELECT machine_spawn('mem-1', 'tab');
SELECT machine_spawn('tab-1', 'mem');
SELECT machine_spawn('mem-1', 'tab', if_not_exists => true);
SELECT machine_spawn('mem-1', 'mem', if_not_exists => true);

-- actors of both adapters restored together
SELECT machine_stop('tab-1'), machine_stop('mem-1');
SELECT * FROM machine_restore_many(ARRAY['tab-1', 'mem-1']);
SELECT id, status, version FROM machine.actors WHERE id IN ('tab-1', 'mem-1') ORDER BY id;

-- the views show the actors and timers of the "memory" adapter only to
-- roles that may read their machine, as they show the others
CREATE ROLE regress_adapter_reader;
SET ROLE regress_adapter_reader;
SELECT count(*) FROM machine.actors WHERE id = 'mem-1';
SELECT count(*) FROM machine.memory_actors();
SELECT count(*) FROM machine.memory_pending_timers();
SELECT count(*) FROM machine.memory_instances;
RESET ROLE;
SELECT machine_grant('mem', 'regress_adapter_reader', 'read');
SET ROLE regress_adapter_reader;
SELECT id, machine, status FROM machine.actors WHERE id = 'mem-1';
SELECT id, machine FROM machine.memory_actors();
SELECT actor_id, machine, event FROM machine.pending_timers WHERE actor_id = 'mem-1';
RESET ROLE;

-- a machine changes its adapter only while it has no actors
SELECT machine_define('mem', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}, "persistence": {}}');
SELECT machine_define('tab', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "memory"}}');
SELECT machine_define('mem', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
  "persistence": {"adapter": "memory", "journalEvents": false}}');
SELECT machine_delete('tab-1');
SELECT machine_define('tab', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "memory"}}');
SELECT machine_spawn('tab-2', 'tab');
SELECT count(*) FROM machine.memory_instances WHERE actor_id = 'tab-2';

-- adapters that do not exist, and adapter values that are not names
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "nowhere"}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": 1}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": ""}}');

SELECT machine_drop('mem', true), machine_drop('tab', true);
SELECT count(*) FROM machine.memory_instances;
DROP ROLE regress_adapter_reader;
