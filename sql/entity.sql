-- Entities: a machine with "entity" gets an actor per id, spawned by the
-- id's first message with the data its "init" returns.
CREATE TABLE entity_init_calls (entity_id text);
CREATE FUNCTION new_cart(entity_id text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO entity_init_calls VALUES (entity_id);
	RETURN jsonb_build_object('owner', split_part(entity_id, ':', 2), 'items', '[]'::jsonb);
END $$;
CREATE FUNCTION add_item(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_set(state, '{items}', (state->'items') || (event->'item')) $$;
SELECT machine_define('cart', '{
  "initial": "Open",
  "states": {"Open": {"on": {"Add": {"target": "Open", "handler": "add_item"},
                              "CheckOut": "Done"}},
             "Done": {"final": true}},
  "entity": {"init": "new_cart"},
  "persistence": {"snapshotSchedule": "every 2"}
}');

-- the first message spawns the entity, then applies the event
SELECT machine_send_entity('cart', 'cart:alice', '{"_tag": "Add", "item": "tea"}');
SELECT machine_version('cart:alice'), machine_state('cart:alice');
-- later messages go to the same actor; init is not called again
SELECT machine_send_entity('cart', 'cart:alice', '{"_tag": "Add", "item": "milk"}', 1);
SELECT entity_id, count(*) FROM entity_init_calls GROUP BY 1;
-- it is an ordinary actor: machine_send, history, the view
SELECT machine_send('cart:alice', '{"_tag": "Add", "item": "jam"}');
SELECT version, event->>'item' AS item FROM machine_history('cart:alice');
SELECT id, machine, version, status FROM machine.actors WHERE id LIKE 'cart:%';

-- an entity without init starts with {}
SELECT machine_define('counter', '{
  "initial": "Zero",
  "states": {"Zero": {"on": {"Tick": {"target": "Zero", "merge": true}}}},
  "entity": {}
}');
SELECT machine_send_entity('counter', 'c-1', '{"_tag": "Tick", "n": 1}');

-- a failed first message spawns nothing
SELECT machine_send_entity('cart', 'cart:bob', '{"_tag": "Nope"}');
SELECT machine_send_entity('cart', 'cart:bob', '{"_tag": "Add", "item": "x"}', 3);
SELECT machine_send_entity('cart', 'cart:bob', '{"no": "tag"}');
SELECT count(*) FROM machine.instances WHERE actor_id = 'cart:bob';
-- within a transaction that rolls back, neither
BEGIN;
SELECT machine_send_entity('cart', 'cart:bob', '{"_tag": "CheckOut"}');
ROLLBACK;
SELECT machine_state('cart:bob');
-- expected_version 0 on a new entity is the spawned version
SELECT machine_send_entity('cart', 'cart:bob', '{"_tag": "CheckOut"}', 0);
-- a done entity refuses further messages, as any actor does
SELECT machine_send_entity('cart', 'cart:bob', '{"_tag": "Add", "item": "x"}');
-- so does a stopped one, until it is restored
SELECT machine_stop('cart:alice');
SELECT machine_send_entity('cart', 'cart:alice', '{"_tag": "Add", "item": "x"}');
SELECT machine_restore('cart:alice') ->> '_tag';
-- a deleted entity starts over with its next message
SELECT machine_delete('cart:alice');
SELECT machine_send_entity('cart', 'cart:alice', '{"_tag": "Add", "item": "bread"}');

-- bad arguments
SELECT machine_send_entity('nope', 'x', '{"_tag": "Add"}');
SELECT machine_send_entity('cart', '', '{"_tag": "Add"}');
SELECT machine_send_entity('cart', repeat('x', 256), '{"_tag": "Add"}');
SELECT machine_send_entity(NULL, 'x', '{"_tag": "Add"}');
SELECT machine_send_entity('cart', NULL, '{"_tag": "Add"}');
SELECT machine_send_entity('cart', 'x', NULL);
SELECT machine_send_entity('cart', 'x', '{"_tag": "Add"}', -1);
-- a machine that is not an entity
SELECT machine_define('plain', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}}');
SELECT machine_send_entity('plain', 'p-1', '{"_tag": "Go"}');
-- an id taken by an actor of another machine
SELECT machine_spawn('taken', 'plain');
SELECT machine_send_entity('cart', 'taken', '{"_tag": "Add", "item": "x"}');

-- init must return a JSON object
CREATE FUNCTION null_init(entity_id text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION array_init(entity_id text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '[1]'::jsonb $$;
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
                                    "entity": {"init": "null_init"}}');
SELECT machine_send_entity('bad_init', 'b-1', '{"_tag": "Go"}');
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
                                    "entity": {"init": "array_init"}}');
SELECT machine_send_entity('bad_init', 'b-1', '{"_tag": "Go"}');
SELECT count(*) FROM machine.instances WHERE actor_id = 'b-1';
-- init is resolved when the machine is defined
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}},
                                    "entity": {"init": "no_such_init"}}');
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}},
                                    "entity": {"init": "add_item"}}');
CREATE FUNCTION text_init(entity_id text) RETURNS text
LANGUAGE sql AS $$ SELECT entity_id $$;
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}},
                                    "entity": {"init": "text_init"}}');
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}},
                                    "entity": {"init": "a.b.c"}}');
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}},
                                    "entity": {"init": 1}}');
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}},
                                    "entity": {"start": "new_cart"}}');
SELECT machine_define('bad_init', '{"initial": "A", "states": {"A": {}}, "entity": true}');
-- privileges: send on the machine, and EXECUTE on init as on its other
-- functions; init runs as the sender
CREATE ROLE regress_entity_app;
GRANT INSERT ON entity_init_calls TO regress_entity_app;
SET ROLE regress_entity_app;
SELECT machine_send_entity('cart', 'cart:carol', '{"_tag": "Add", "item": "x"}');
RESET ROLE;
SELECT machine_grant('cart', 'regress_entity_app', 'send');
REVOKE EXECUTE ON FUNCTION new_cart(text) FROM PUBLIC;
SET ROLE regress_entity_app;
SELECT machine_send_entity('cart', 'cart:carol', '{"_tag": "Add", "item": "x"}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION new_cart(text) TO regress_entity_app;
SET ROLE regress_entity_app;
SELECT machine_send_entity('cart', 'cart:carol', '{"_tag": "Add", "item": "x"}');
RESET ROLE;
SELECT count(*) FROM entity_init_calls WHERE entity_id = 'cart:carol';

-- the definition keeps "entity"
SELECT machine_definition('cart') -> 'entity';

SELECT machine_drop('cart', true), machine_drop('counter', true),
       machine_drop('plain', true), machine_drop('bad_init', true);
DROP FUNCTION new_cart(text), add_item(jsonb, jsonb), null_init(text), array_init(text),
	text_init(text);
DROP TABLE entity_init_calls;
DROP ROLE regress_entity_app;
