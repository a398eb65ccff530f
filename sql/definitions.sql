-- Definitions: machine_define, machine_definition, machine_drop

CREATE SCHEMA defs;
CREATE FUNCTION defs.can_pay(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION defs.apply_payment(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;
CREATE FUNCTION defs.on_pending(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION defs.wrong_result(state jsonb, event jsonb) RETURNS text
LANGUAGE sql AS $$ SELECT 'x' $$;

-- the complete example of a definition
SELECT machine_define('order', '{
  "initial": "Pending",
  "states": {
    "Pending": {
      "on": {
        "Pay":    [{"target": "Paid", "guard": "defs.can_pay", "handler": "defs.apply_payment"},
                   {"target": "Rejected"}],
        "Cancel": "Cancelled",
        "Expire": "Cancelled",
        "Touch":  {"target": "Pending", "reenter": true},
        "Note":   {"target": "Pending", "merge": true}
      },
      "entry": ["defs.on_pending"],
      "exit":  [],
      "after": [{"delay": "30 minutes", "event": {"_tag": "Expire"}}]
    },
    "Paid":      {"on": {"Ship": "Shipped"}},
    "Shipped":   {"final": true},
    "Cancelled": {"final": true},
    "Rejected":  {"final": true}
  },
  "any":         {"Cancel": "Cancelled"},
  "events":      {"Pay": {"amount": "number"}, "Note": {"text": "string"}},
  "unhandled":   "error",
  "notify":      "orders",
  "persistence": {"snapshotSchedule": "forever", "journalEvents": true, "machineType": "Order"}
}');
SELECT name, revision, functions, machine_type FROM machine.machines WHERE name = 'order';
SELECT machine_definition('order')->'states'->'Paid';
SELECT machine_definition('nothing');

-- functions are resolved through search_path when defined, stored qualified
SET search_path = defs, public;
SELECT machine_define('short', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "guard": "can_pay"}}}}}');
RESET search_path;
SELECT functions FROM machine.machines WHERE name = 'short';

-- redefining makes a new revision, used at once
SELECT machine_define('short', '{"initial": "A", "states": {"A": {"on": {"Go": "B"}}, "B": {}}}');
SELECT machine_spawn('short-1', 'short');
SELECT machine_send('short-1', '{"_tag": "Go"}');
-- refused while a live actor sits in a state the new revision lacks
SELECT machine_define('short', '{"initial": "A", "states": {"A": {}}}');
SELECT revision FROM machine.machines WHERE name = 'short';
-- a stopped actor does not hold its state
SELECT machine_define('volatile_states', '{"initial": "A", "persistence": {}, "states": {"A": {"on": {"Go": "B"}}, "B": {}}}');
SELECT machine_spawn('vs-1', 'volatile_states'), machine_send('vs-1', '{"_tag": "Go"}'), machine_stop('vs-1');
SELECT machine_define('volatile_states', '{"initial": "A", "persistence": {}, "states": {"A": {}}}');

-- invalid definitions name the JSON path of the first problem; nothing is stored
SELECT machine_define('bad', '{"initial": "Paid", "states": {"Paid": {"on": {"Ship": "Shiped"}}}}');
SELECT machine_define('bad', '{"states": {"A": {}}}');
SELECT machine_define('bad', '{"initial": "B", "states": {"A": {}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "colour": "red"}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": 7}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": []}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": {"guard": "defs.can_pay"}}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "wat": 1}}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"$init": "A"}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"final": true, "on": {"Go": "A"}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"after": [{"delay": "soon", "event": {"_tag": "Go"}}], "on": {"Go": "A"}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"after": [{"delay": "1 month", "event": {"_tag": "Go"}}], "on": {"Go": "A"}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"after": [{"delay": "1 hour", "event": {"_tag": "Go"}}]}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "events": {"Go": {"n": "int"}}}');
-- a timer's event must fit its payload schema, as a send's must
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}, "after": [{"delay": "1 hour", "event": {"_tag": "Go", "n": "x"}}]}}, "events": {"Go": {"n": "number"}}}');
SELECT machine_define('timed', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}, "after": [{"delay": "1 hour", "event": {"_tag": "Go", "n": 1}}]}}, "events": {"Go": {"n": "number", "note": "string?"}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "unhandled": "warn"}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"snapshotSchedule": "weekly"}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"snapshotSchedule": "every 0"}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"snapshotSchedule": "spaced never"}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": []}');
SELECT machine_define('bad', '[]');
-- functions: missing, wrong signature, bad name
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "guard": "defs.nope"}}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "handler": "defs.wrong_result"}}}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"entry": ["defs.can_pay"]}}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {"entry": ["a.b.c.d"]}}}');
-- names and NULLs
SELECT machine_define('', '{"initial": "A", "states": {"A": {}}}');
SELECT machine_define(repeat('m', 64), '{"initial": "A", "states": {"A": {}}}');
SELECT machine_define(NULL, '{}');
SELECT machine_define('bad', NULL);
SELECT count(*) FROM machine.machines WHERE name = 'bad';

-- drop: unknown is false; refused while actors exist; cascade erases them
SELECT machine_drop('nothing');
SELECT machine_drop('short');
SELECT machine_drop('short', cascade => true);
SELECT count(*) FROM machine.instances WHERE actor_id = 'short-1';
SELECT machine_spawn('short-2', 'short');
SELECT machine_drop('order');
SELECT machine_drop('volatile_states', true);
SELECT count(*) FROM machine.snapshots WHERE actor_id = 'vs-1';

-- a function the machine uses cannot be dropped (see dependencies.sql);
-- dropped anyway, with the event trigger disabled: a clear error at first use
CREATE FUNCTION defs.temporary_guard(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT true $$;
SELECT machine_define('fragile', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "guard": "defs.temporary_guard"}}}}}');
SELECT machine_spawn('fragile-1', 'fragile');
DROP FUNCTION defs.temporary_guard(jsonb, jsonb);
ALTER EVENT TRIGGER machine_functions_dropped DISABLE;
DROP FUNCTION defs.temporary_guard(jsonb, jsonb);
ALTER EVENT TRIGGER machine_functions_dropped ENABLE;
SELECT machine_send('fragile-1', '{"_tag": "Go"}');

-- a machine's row changed by hand (by the tables' owner): sessions that
-- compiled the machine see the change at once
SELECT machine_define('by_hand', '{"initial": "A", "states": {"A": {"on": {"Go": "B"}}, "B": {}, "C": {}}}');
SELECT state FROM machine_simulate('by_hand', ARRAY['{"_tag": "Go"}']::jsonb[]) WHERE step = 1;
UPDATE machine.machines SET definition = jsonb_set(definition, '{states,A,on,Go}', '"C"')
 WHERE name = 'by_hand';
SELECT state FROM machine_simulate('by_hand', ARRAY['{"_tag": "Go"}']::jsonb[]) WHERE step = 1;
SELECT machine_drop('by_hand');

-- a huge name: the error still says what is wrong with it
DO $$
BEGIN
	PERFORM machine_define('huge', jsonb_build_object('initial', 'A', 'states',
		jsonb_build_object('A', '{}'::jsonb, repeat('x', 1000000), '{}'::jsonb)));
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE '% (% bytes): %', SQLSTATE, length(SQLERRM), SQLERRM;
END $$;
