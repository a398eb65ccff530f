-- Actors: spawn, send, guards, handlers, merge, any, final states, payload
-- schemas, unhandled events, effects and sends from inside

CREATE SCHEMA shop;

CREATE FUNCTION shop.can_pay(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= (state->>'total')::numeric $$;

CREATE FUNCTION shop.apply_payment(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', event->'amount') $$;

CREATE FUNCTION shop.pick_state(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT state || jsonb_build_object('_tag', event->>'to')
$$;

CREATE FUNCTION shop.bad_handler(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT event->'result' $$;

SELECT machine_define('order', '{
  "initial": "Pending",
  "states": {
    "Pending": {
      "on": {
        "Pay":    [{"target": "Paid", "guard": "shop.can_pay", "handler": "shop.apply_payment"},
                   {"target": "Rejected"}],
        "Cancel": "Cancelled",
        "Touch":  {"target": "Pending", "reenter": true},
        "Note":   {"target": "Pending", "merge": true},
        "Jump":   {"handler": "shop.pick_state"},
        "Break":  {"handler": "shop.bad_handler"}
      }
    },
    "Paid":      {"on": {"Ship": "Shipped"}},
    "Shipped":   {"final": true},
    "Cancelled": {"final": true},
    "Rejected":  {"final": true}
  },
  "any":    {"Cancel": "Cancelled", "Poke": "Pending"},
  "events": {"Pay": {"amount": "number"}, "Note": {"text": "string", "by": "string?"}}
}');

-- spawn: version 0, initial state, data carried, "_tag" replaced
SELECT machine_spawn('o-1', 'order', '{"total": 10}');
SELECT machine_spawn('o-2', 'order', '{"total": 10, "_tag": "Paid"}');
SELECT machine_version('o-1'), machine_state('o-2');

-- a guard picks the first candidate that passes; the handler makes the data
SELECT machine_send('o-1', '{"_tag": "Pay", "amount": 12}');
SELECT machine_version('o-1');
SELECT machine_send('o-2', '{"_tag": "Pay", "amount": 5}');
SELECT status, version, state_tag FROM machine.instances WHERE actor_id = 'o-2';

-- a final state is done: sends are refused
SELECT machine_send('o-2', '{"_tag": "Cancel"}');
SELECT machine_send('o-1', '{"_tag": "Ship"}');
SELECT machine_send('o-1', '{"_tag": "Ship"}');

-- merge copies the event's fields; a self-transition keeps the data
SELECT machine_spawn('o-3', 'order', '{"total": 3}');
SELECT machine_send('o-3', '{"_tag": "Note", "text": "gift wrap"}');
SELECT machine_send('o-3', '{"_tag": "Touch"}');
SELECT machine_version('o-3');

-- a handler without a target names the state
SELECT machine_send('o-3', '{"_tag": "Jump", "to": "Paid"}');

-- "any" applies where the state itself has no rule for the event
SELECT machine_send('o-3', '{"_tag": "Poke"}');
SELECT machine_send('o-3', '{"_tag": "Cancel"}');

-- bad handler results
SELECT machine_spawn('o-4', 'order', '{"total": 1}');
SELECT machine_send('o-4', '{"_tag": "Break", "result": [1, 2]}');
SELECT machine_send('o-4', '{"_tag": "Break", "result": {"x": 1}}');
SELECT machine_send('o-4', '{"_tag": "Jump", "to": "Nowhere"}');
SELECT machine_send('o-4', '{"_tag": "Break"}');
-- nothing of the failed sends stayed
SELECT version, state_tag FROM machine.instances WHERE actor_id = 'o-4';

-- unhandled events
SELECT machine_send('o-4', '{"_tag": "Ship"}');
SELECT machine_send('o-4', '{"_tag": "Nonsense"}');

-- payload schemas
SELECT machine_send('o-4', '{"_tag": "Pay"}');
SELECT machine_send('o-4', '{"_tag": "Pay", "amount": "ten"}');
SELECT machine_send('o-4', '{"_tag": "Pay", "amount": 1, "tip": 2}');
SELECT machine_send('o-4', '{"_tag": "Note", "text": "a", "by": 7}');
SELECT machine_send('o-4', '{"_tag": "Note", "text": "a", "by": null}');

-- bad events
SELECT machine_send('o-4', '[1]');
SELECT machine_send('o-4', '"Pay"');
SELECT machine_send('o-4', '{"type": "Pay"}');
SELECT machine_send('o-4', '{"_tag": 1}');
SELECT machine_send('o-4', '{"_tag": ""}');
SELECT machine_send('o-4', '{"_tag": "$init"}');
SELECT machine_send('o-4', NULL);
SELECT machine_send(NULL, '{"_tag": "Pay"}');
SELECT machine_send('o-4', '{"_tag": "Cancel"}', -1);

-- unknown actors and machines, bad spawns
SELECT machine_send('nobody', '{"_tag": "Pay", "amount": 1}');
SELECT machine_state('nobody'), machine_version('nobody');
SELECT machine_spawn('o-1', 'order');
SELECT machine_spawn('o-9', 'no_such_machine');
SELECT machine_spawn('', 'order');
SELECT machine_spawn(repeat('x', 256), 'order');
SELECT machine_spawn('o-9', 'order', '[]');
SELECT machine_spawn('o-9', 'order', NULL);
SELECT machine_spawn(NULL, 'order');

-- "unhandled": "ignore" returns the state unchanged, without a new version
SELECT machine_define('lenient', '{
  "initial": "A", "unhandled": "ignore",
  "states": {"A": {"on": {"Go": "B"}}, "B": {}}
}');
SELECT machine_spawn('l-1', 'lenient');
SELECT machine_send('l-1', '{"_tag": "Stay"}'), machine_version('l-1');
SELECT machine_send('l-1', '{"_tag": "Go"}'), machine_version('l-1');

-- effects: exit then entry, after the new state is stored, in order
CREATE TABLE shop.effect_log (n serial, actor text, what text, state jsonb, event text);
CREATE FUNCTION shop.log_entry(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO shop.effect_log (actor, what, state, event)
	VALUES (actor_id, 'entry ' || (state->>'_tag'), machine_state(actor_id), event->>'_tag')
$$;
CREATE FUNCTION shop.log_exit(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO shop.effect_log (actor, what, state, event)
	VALUES (actor_id, 'exit ' || (state->>'_tag'), machine_state(actor_id), event->>'_tag')
$$;
CREATE FUNCTION shop.fail(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'effect failed for %', actor_id; END $$;

SELECT machine_define('lamp', '{
  "initial": "Off",
  "states": {
    "Off": {"on": {"Toggle": "On", "Stay": "Off", "Again": {"target": "Off", "reenter": true}},
            "entry": ["shop.log_entry"], "exit": ["shop.log_exit"]},
    "On":  {"on": {"Toggle": "Off", "Explode": "Broken"}, "entry": ["shop.log_entry", "shop.log_entry"]},
    "Broken": {"entry": ["shop.fail"]}
  }
}');
SELECT machine_spawn('lamp-1', 'lamp');
SELECT machine_send('lamp-1', '{"_tag": "Toggle"}');
SELECT machine_send('lamp-1', '{"_tag": "Toggle"}');
SELECT machine_send('lamp-1', '{"_tag": "Stay"}');
SELECT machine_send('lamp-1', '{"_tag": "Again"}');
SELECT what, state->>'_tag' AS stored, event FROM shop.effect_log ORDER BY n;
-- an effect's error rolls the whole transition back
SELECT machine_send('lamp-1', '{"_tag": "Toggle"}');
SELECT machine_send('lamp-1', '{"_tag": "Explode"}');
SELECT machine_version('lamp-1'), machine_state('lamp-1');

-- a handler that sends to its own actor: queued, applied after, FIFO
CREATE FUNCTION shop.count_and_echo(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	inner_result jsonb;
BEGIN
	IF (event->>'n')::int < 3 THEN
		inner_result := machine_send(state->>'id',
			jsonb_build_object('_tag', 'Count', 'n', (event->>'n')::int + 1));
		ASSERT inner_result IS NULL, 'a send to oneself returns NULL';
		PERFORM machine_send(state->>'id', '{"_tag": "Mark"}');
	END IF;
	RETURN state || jsonb_build_object('seen', coalesce(state->'seen', '[]') || (event->'n'));
END $$;
CREATE FUNCTION shop.mark(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT state || jsonb_build_object('seen', coalesce(state->'seen', '[]') || '"m"'::jsonb)
$$;
SELECT machine_define('echo', '{
  "initial": "On",
  "states": {"On": {"on": {"Count": {"target": "On", "handler": "shop.count_and_echo"},
                          "Mark": {"target": "On", "handler": "shop.mark"}}}}
}');
SELECT machine_spawn('echo-1', 'echo', '{"id": "echo-1"}');
SELECT machine_send('echo-1', '{"_tag": "Count", "n": 1}');
SELECT machine_version('echo-1');

-- sends to other actors nest, up to machine.max_send_depth
CREATE FUNCTION shop.relay(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$
	SELECT machine_send(state->>'next', '{"_tag": "Ping"}') WHERE state ? 'next'
$$;
SELECT machine_define('relay', '{
  "initial": "Idle",
  "states": {"Idle": {"on": {"Ping": {"target": "Idle", "reenter": true}}, "entry": ["shop.relay"]}}
}');
-- spawning runs the entry effect too, so the chain is built from its end
SELECT machine_spawn('r-3', 'relay');
SELECT machine_spawn('r-2', 'relay', '{"next": "r-3"}');
SELECT machine_spawn('r-1', 'relay', '{"next": "r-2"}');
SELECT machine_send('r-1', '{"_tag": "Ping"}');
SELECT actor_id, version FROM machine.instances WHERE machine = 'relay' ORDER BY 1;
SET machine.max_send_depth = 2;
SELECT machine_send('r-1', '{"_tag": "Ping"}');
RESET machine.max_send_depth;
SELECT actor_id, version FROM machine.instances WHERE machine = 'relay' ORDER BY 1;

-- a handler that changes its own actor behind the transition's back
CREATE FUNCTION shop.stop_myself(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT machine_stop(state->>'id'); SELECT state $$;
SELECT machine_define('fickle', '{
  "initial": "On",
  "states": {"On": {"on": {"Quit": {"target": "On", "handler": "shop.stop_myself"}}}},
  "persistence": {}
}');
SELECT machine_spawn('fickle-1', 'fickle', '{"id": "fickle-1"}');
SELECT machine_send('fickle-1', '{"_tag": "Quit"}');
SELECT status, version FROM machine.instances WHERE actor_id = 'fickle-1';
