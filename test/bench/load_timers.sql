-- Timers at scale (psql; variable :n).  Machine "tick": the cycle
-- A -> B -> C -> A where every state arms a one-hour timer, so that each
-- send cancels the timer of the state it leaves and arms the next one.
-- Machine "tick_spaced": the plain cycle with snapshotSchedule "spaced 1
-- hour".  Loaded set-based: :n actors k-1000000 .. of tick, each at version
-- 0 with its armed timer, and :n actors q-1000000 .. of tick_spaced at
-- version 1 with a snapshot taken just now (so that no pass has a spaced
-- snapshot to take).
SELECT machine_define('tick', '{
  "initial": "A",
  "states": {
    "A": {"on": {"Next": "B"}, "after": [{"delay": "1 hour", "event": {"_tag": "Next"}}]},
    "B": {"on": {"Next": "C"}, "after": [{"delay": "1 hour", "event": {"_tag": "Next"}}]},
    "C": {"on": {"Next": "A"}, "after": [{"delay": "1 hour", "event": {"_tag": "Next"}}]}
  },
  "persistence": {}
}');
SELECT machine_define('tick_spaced', '{
  "initial": "A",
  "states": {"A": {"on": {"Next": "B"}}, "B": {"on": {"Next": "C"}}, "C": {"on": {"Next": "A"}}},
  "persistence": {"snapshotSchedule": "spaced 1 hour"}
}');

INSERT INTO machine.instances
	(actor_id, machine, status, version, state, state_tag, initial_state)
SELECT 'k-' || (1000000 + i), 'tick', 'running', 0, '{"_tag": "A"}', 'A',
	   '{"_tag": "A"}'
  FROM generate_series(0, :n - 1) i;
INSERT INTO machine.timers
	(actor_id, armed_version, seq, state_tag, event, due_at, armed_by)
SELECT 'k-' || (1000000 + i), 0, 0, 'A', '{"_tag": "Next"}',
	   now() + interval '1 hour', current_user::regrole
  FROM generate_series(0, :n - 1) i;

INSERT INTO machine.instances
	(actor_id, machine, status, version, state, state_tag, initial_state)
SELECT 'q-' || (1000000 + i), 'tick_spaced', 'running', 1, '{"_tag": "B"}', 'B',
	   '{"_tag": "A"}'
  FROM generate_series(0, :n - 1) i;
INSERT INTO machine.events (actor_id, version, event, state_tag)
SELECT 'q-' || (1000000 + i), 1, '{"_tag": "Next"}', 'B'
  FROM generate_series(0, :n - 1) i;
INSERT INTO machine.snapshots (actor_id, version, state, state_tag)
SELECT 'q-' || (1000000 + i), 1, '{"_tag": "B"}', 'B'
  FROM generate_series(0, :n - 1) i;
VACUUM ANALYZE machine.instances, machine.events, machine.snapshots, machine.timers;
