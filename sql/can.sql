-- machine_can and machine_matches: questions about an actor's current
-- state that change nothing

CREATE FUNCTION can_big(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= 10 $$;
CREATE TABLE guard_calls (n int);
CREATE FUNCTION counted(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ INSERT INTO guard_calls VALUES (1); SELECT true $$;
SELECT machine_define('gate', '{
  "initial": "Closed",
  "states": {
    "Closed": {"on": {"Pay": [{"target": "Open", "guard": "can_big"}],
                      "Knock": {"target": "Closed", "guard": "counted"}}},
    "Open": {"on": {"Pass": "Done"}},
    "Done": {"final": true}
  },
  "events": {"Pay": {"amount": "number"}},
  "any": {"Reset": "Closed"},
  "persistence": {}
}');
SELECT machine_spawn('gate-1', 'gate');

-- guards decide; an event without a rule, or only in "any", is answered too
SELECT machine_can('gate-1', '{"_tag": "Pay", "amount": 20}') AS big_payment,
       machine_can('gate-1', '{"_tag": "Pay", "amount": 5}') AS small_payment,
       machine_can('gate-1', '{"_tag": "Pass"}') AS pass,
       machine_can('gate-1', '{"_tag": "Reset"}') AS reset,
       machine_can('gate-1', '{"_tag": "Unknown"}') AS unknown;
SELECT machine_matches('gate-1', 'Closed') AS closed, machine_matches('gate-1', 'Open') AS open;

-- nothing changed: version, state, journal; a guard's own effects are its own
SELECT machine_can('gate-1', '{"_tag": "Knock"}');
SELECT machine_version('gate-1'), machine_state('gate-1'),
       (SELECT count(*) FROM machine.events WHERE actor_id = 'gate-1') AS journal,
       (SELECT count(*) FROM guard_calls) AS guard_ran;

-- stopped and done actors handle nothing; unknown actors are NULL
SELECT machine_send('gate-1', '{"_tag": "Pay", "amount": 10}');
SELECT machine_can('gate-1', '{"_tag": "Pass"}'), machine_matches('gate-1', 'Open');
SELECT machine_stop('gate-1');
SELECT machine_can('gate-1', '{"_tag": "Pass"}') AS stopped, machine_matches('gate-1', 'Open') AS still_open;
SELECT machine_restore('gate-1');
SELECT machine_send('gate-1', '{"_tag": "Pass"}');
SELECT machine_can('gate-1', '{"_tag": "Reset"}') AS done, machine_matches('gate-1', 'Done');
SELECT machine_can('nobody', '{"_tag": "Pass"}') IS NULL AS no_actor,
       machine_matches('nobody', 'Done') IS NULL AS no_actor;

-- bad events are errors, as for a send
SELECT machine_can('gate-1', '{"tag": "Pass"}');
SELECT machine_can('gate-1', '{"_tag": "$init"}');
SELECT machine_can('gate-1', '[]');
SELECT machine_spawn('gate-2', 'gate');
SELECT machine_can('gate-2', '{"_tag": "Pay", "amount": "lots"}');
SELECT machine_can(NULL, '{"_tag": "Pass"}') IS NULL AS strict;

SELECT machine_drop('gate', true);
DROP FUNCTION can_big(jsonb, jsonb), counted(jsonb, jsonb);
DROP TABLE guard_calls;
