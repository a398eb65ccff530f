-- Replay, rewind, history

CREATE FUNCTION count_up(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1)
$$;

SELECT machine_define('counter', '{
  "initial": "Even",
  "states": {
    "Even": {"on": {"Inc": {"target": "Odd", "handler": "count_up"}}},
    "Odd":  {"on": {"Inc": {"target": "Even", "handler": "count_up"}}}
  },
  "persistence": {"snapshotSchedule": "every 4"}
}');
SELECT machine_spawn('c-1', 'counter', '{"label": "one"}');
SELECT count(machine_send('c-1', '{"_tag": "Inc"}')) FROM generate_series(1, 10);

-- every version, from snapshots and journal; the live actor is untouched
SELECT v, machine_replay_to('c-1', v) FROM generate_series(0, 10) v;
SELECT machine_version('c-1');

-- impossible requests
SELECT machine_replay_to('c-1', 11);
SELECT machine_replay_to('c-1', -1);
SELECT machine_replay_to('nobody', 1);

-- history: each journaled event with the state it led to
SELECT version, event, state FROM machine_history('c-1') ORDER BY version;

-- rewind: a new version, a "$rewind" journal row, history kept
SELECT machine_rewind('c-1', 3);
SELECT machine_version('c-1');
SELECT version, event, state_tag FROM machine.events WHERE actor_id = 'c-1' AND version > 9 ORDER BY version;
SELECT machine_send('c-1', '{"_tag": "Inc"}');
-- folds go through the rewind
SELECT machine_replay_to('c-1', 11), machine_replay_to('c-1', 12);
SELECT version, state FROM machine_history('c-1') WHERE version >= 10 ORDER BY version;
SELECT machine_rewind('c-1', 13);
SELECT machine_rewind('c-1', 12), machine_version('c-1');

-- a fold that reaches another tag than the journal recorded stops there
UPDATE machine.events SET state_tag = 'Even' WHERE actor_id = 'c-1' AND version = 5;
SELECT machine_replay_to('c-1', 6);
SELECT machine_replay_to('c-1', 4);
SELECT count(*) FROM machine_history('c-1');
UPDATE machine.events SET state_tag = 'Odd' WHERE actor_id = 'c-1' AND version = 5;

-- a gap in the journal
DELETE FROM machine.events WHERE actor_id = 'c-1' AND version = 6;
SELECT machine_replay_to('c-1', 7);
SELECT machine_replay_to('c-1', 9);

-- a changed definition the journal no longer replays through
SELECT machine_define('counter', '{
  "initial": "Even",
  "states": {
    "Even": {"on": {"Inc": {"target": "Even", "handler": "count_up"}}},
    "Odd":  {"on": {"Inc": {"target": "Even", "handler": "count_up"}}}
  },
  "persistence": {"snapshotSchedule": "every 4"}
}');
SELECT machine_replay_to('c-1', 2);

-- a machine without a journal replays only to its snapshots and live state
SELECT machine_define('snap_only', '{
  "initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "merge": true}}}},
  "persistence": {"journalEvents": false, "snapshotSchedule": "every 2"}
}');
SELECT machine_spawn('so-1', 'snap_only');
SELECT count(machine_send('so-1', jsonb_build_object('_tag', 'Go', 'i', i))) FROM generate_series(1, 3) i;
SELECT machine_replay_to('so-1', 2), machine_replay_to('so-1', 3);
SELECT machine_replay_to('so-1', 1);
SELECT count(*) FROM machine_history('so-1');
