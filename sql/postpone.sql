-- postpone: a state keeps the events it lists for a later state, durably,
-- and they are delivered again, in order, after a transition to a state
-- that takes them

CREATE FUNCTION pp_save(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT state || jsonb_build_object('saved', coalesce(state->'saved', '[]') || (event->'n'))
$$;
CREATE FUNCTION pp_small(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'n')::int < 100 $$;

SELECT machine_define('uploader', '{
  "initial": "Idle",
  "states": {
    "Idle":    {"on": {"Load": "Loading",
                       "Save": {"target": "Idle", "guard": "pp_small", "handler": "pp_save"}}},
    "Loading": {"on": {"Done": "Idle", "Fail": "Failed"}, "postpone": ["Save", "Cancel"]},
    "Failed":  {"on": {"Retry": "Loading"}, "postpone": ["Save"]},
    "Cancelled": {"final": true}
  },
  "any": {"Cancel": "Cancelled"},
  "events": {"Save": {"n": "number"}},
  "persistence": {}
}');

CREATE FUNCTION pp_pending(actor text) RETURNS TABLE (seq_order bigint, event jsonb, state_tag text)
LANGUAGE sql AS $$
	SELECT row_number() OVER (ORDER BY seq), event, state_tag
	  FROM machine.postponed WHERE actor_id = actor ORDER BY seq
$$;

-- postponed: the send returns the state unchanged, at the same version
SELECT machine_spawn('u-1', 'uploader');
SELECT machine_send('u-1', '{"_tag": "Load"}');
SELECT machine_send('u-1', '{"_tag": "Save", "n": 1}');
SELECT machine_send('u-1', '{"_tag": "Save", "n": 2}', 1);
SELECT machine_version('u-1'), machine_can('u-1', '{"_tag": "Save", "n": 3}') AS can_save;
SELECT * FROM pp_pending('u-1');

-- a state that postpones them too keeps them waiting
SELECT machine_send('u-1', '{"_tag": "Fail"}');
SELECT count(*) AS waiting FROM machine.postponed WHERE actor_id = 'u-1';
SELECT machine_send('u-1', '{"_tag": "Retry"}');

-- a state that takes them: delivered after the transition, in order, each
-- a version of its own in the journal; the send returns the state after them
SELECT machine_send('u-1', '{"_tag": "Done"}');
SELECT version, event, state_tag FROM machine.events WHERE actor_id = 'u-1' ORDER BY version;
SELECT count(*) AS waiting FROM machine.postponed WHERE actor_id = 'u-1';

-- an event the new state's guards refuse waits; later ones go by
SELECT machine_send('u-1', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('u-1', '{"_tag": "Save", "n": 500}') ->> '_tag' AS state;
SELECT machine_send('u-1', '{"_tag": "Save", "n": 3}') ->> '_tag' AS state;
SELECT machine_send('u-1', '{"_tag": "Done"}');
SELECT * FROM pp_pending('u-1');

-- postponing overrides "any" in that state; the oldest event comes back first
SELECT machine_spawn('u-2', 'uploader') \g /dev/null
SELECT machine_send('u-2', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('u-2', '{"_tag": "Cancel"}') ->> '_tag' AS state;
SELECT machine_send('u-2', '{"_tag": "Save", "n": 7}') ->> '_tag' AS state;
SELECT machine_send('u-2', '{"_tag": "Done"}');
SELECT status FROM machine.instances WHERE actor_id = 'u-2';
-- what a done actor still had postponed stays until it is deleted
SELECT * FROM pp_pending('u-2');
SELECT machine_delete('u-2');
SELECT count(*) AS waiting FROM machine.postponed WHERE actor_id = 'u-2';

-- kept durably: they survive stop and restore
SELECT machine_spawn('u-3', 'uploader') \g /dev/null
SELECT machine_send('u-3', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('u-3', '{"_tag": "Save", "n": 4}') ->> '_tag' AS state;
SELECT machine_stop('u-3');
SELECT machine_restore('u-3');
SELECT machine_send('u-3', '{"_tag": "Done"}');

-- in the sender's transaction: a rollback takes the postponed event back
BEGIN;
SELECT machine_send('u-3', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('u-3', '{"_tag": "Save", "n": 5}') ->> '_tag' AS state;
ROLLBACK;
SELECT count(*) AS waiting FROM machine.postponed WHERE actor_id = 'u-3';

-- a send repeated with its idempotency key while postponed is kept once;
-- once delivered, with its key, a repeat applies nothing
SELECT machine_send('u-3', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('u-3', '{"_tag": "Save", "n": 8}', idempotency_key => 'save-8') ->> '_tag' AS state;
SELECT machine_send('u-3', '{"_tag": "Save", "n": 8}', idempotency_key => 'save-8') ->> '_tag' AS state;
SELECT count(*) AS waiting FROM machine.postponed WHERE actor_id = 'u-3';
SELECT machine_send('u-3', '{"_tag": "Done"}');
SELECT machine_send('u-3', '{"_tag": "Save", "n": 8}', idempotency_key => 'save-8');
SELECT machine_version('u-3');

-- a replay folds the journal, where delivered events are rows like others
SELECT machine_replay_to('u-3', machine_version('u-3'));

-- dropping the machine with its actors drops what they postponed
SELECT machine_send('u-3', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('u-3', '{"_tag": "Save", "n": 6}') ->> '_tag' AS state;
SELECT machine_drop('uploader', cascade => true);
SELECT count(*) AS waiting FROM machine.postponed WHERE actor_id LIKE 'u-%';

-- the "memory" adapter keeps them in its own table
SELECT machine_define('uploader_mem', jsonb_set(
  '{"initial": "Idle",
    "states": {"Idle": {"on": {"Load": "Loading", "Save": "Idle"}},
               "Loading": {"on": {"Done": "Idle"}, "postpone": ["Save"]}}}',
  '{persistence}', '{"adapter": "memory"}'));
SELECT machine_spawn('um-1', 'uploader_mem') \g /dev/null
SELECT machine_send('um-1', '{"_tag": "Load"}') ->> '_tag' AS state;
SELECT machine_send('um-1', '{"_tag": "Save"}') ->> '_tag' AS state;
SELECT (SELECT count(*) FROM machine.postponed WHERE actor_id = 'um-1') AS in_tables,
       (SELECT count(*) FROM machine.memory_postponed WHERE actor_id = 'um-1') AS in_memory;
SELECT machine_send('um-1', '{"_tag": "Done"}'), machine_version('um-1');
SELECT count(*) AS waiting FROM machine.memory_postponed WHERE actor_id = 'um-1';

-- the testing helpers postpone as a send does
SELECT machine_define('uploader', '{
  "initial": "Idle",
  "states": {
    "Idle":    {"on": {"Load": "Loading", "Save": {"target": "Idle", "handler": "pp_save"}}},
    "Loading": {"on": {"Done": "Idle"}, "postpone": ["Save"]}
  }
}');
SELECT * FROM machine_simulate('uploader', ARRAY['{"_tag": "Load"}', '{"_tag": "Save", "n": 1}',
                                                 '{"_tag": "Save", "n": 2}', '{"_tag": "Done"}']::jsonb[]);
SELECT machine_assert_path('uploader', ARRAY['{"_tag": "Load"}', '{"_tag": "Save", "n": 1}', '{"_tag": "Done"}']::jsonb[],
                           ARRAY['Idle', 'Loading', 'Idle', 'Idle']);

-- a state cannot both handle and postpone an event
SELECT machine_define('uploader_bad', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}, "postpone": ["Go"]}}}');
