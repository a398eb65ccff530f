-- machine_spawn in a chosen state, and if_not_exists

CREATE TABLE spawn_log (actor text, tag text, event text);
CREATE FUNCTION spawn_entered(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO spawn_log VALUES (actor_id, state->>'_tag', event->>'_tag') $$;
SELECT machine_define('seat_ticket', '{
  "initial": "New",
  "states": {
    "New": {"on": {"Pay": "Paid"}, "entry": ["spawn_entered"]},
    "Paid": {"on": {"Use": "Used"}, "entry": ["spawn_entered"],
             "after": [{"delay": "1 day", "event": {"_tag": "Use"}}]},
    "Used": {"final": true, "entry": ["spawn_entered"]}
  },
  "persistence": {"snapshotSchedule": "every 1"}
}');
SELECT machine_define('seat_other', '{"initial": "A", "states": {"A": {}}}');

-- a chosen state: its entry effects run with $init, its timers are armed,
-- and folds start from it
SELECT machine_spawn('t-1', 'seat_ticket', '{"seat": 7}', state => 'Paid');
SELECT actor, tag, event FROM spawn_log;
SELECT actor_id, state_tag, armed_version FROM machine.pending_timers WHERE actor_id = 't-1';
SELECT machine_send('t-1', '{"_tag": "Use"}');
SELECT machine_replay_to('t-1', 0), machine_replay_to('t-1', 1);
SELECT id, status, version FROM machine.actors WHERE id = 't-1';
-- a final state: done at once
SELECT machine_spawn('t-2', 'seat_ticket', state => 'Used');
SELECT status FROM machine.actors WHERE id = 't-2';
SELECT machine_spawn('t-3', 'seat_ticket', state => 'Lost');
SELECT machine_spawn('t-3', 'seat_ticket', state => NULL);

-- if_not_exists: the existing actor, as it is, nothing run again
TRUNCATE spawn_log;
SELECT machine_send('t-3', '{"_tag": "Pay"}');
SELECT machine_spawn('t-3', 'seat_ticket', if_not_exists => true);
SELECT machine_spawn('t-3', 'seat_ticket', '{"other": "data"}', if_not_exists => true, state => 'Used');
SELECT machine_version('t-3'), (SELECT count(*) FROM spawn_log WHERE tag <> 'Paid') AS effects;
SELECT machine_spawn('t-3', 'seat_ticket');
SELECT machine_spawn('t-3', 'seat_other', if_not_exists => true);
SELECT machine_spawn('t-4', 'seat_ticket', if_not_exists => NULL);
SELECT machine_spawn('t-4', 'seat_ticket', if_not_exists => true);

SELECT machine_drop('seat_ticket', true), machine_drop('seat_other');
DROP FUNCTION spawn_entered(text, jsonb, jsonb);
DROP TABLE spawn_log;
