-- Restore: machine_restore, machine_restore_many, machine_restore_all

CREATE FUNCTION add_amount(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT state || jsonb_build_object('total',
		coalesce((state->>'total')::numeric, 0) + (event->>'amount')::numeric)
$$;

CREATE TABLE restore_log (actor text, event text, tag text);
CREATE FUNCTION log_restore(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO restore_log VALUES (actor_id, event->>'_tag', state->>'_tag') $$;

SELECT machine_define('cart', '{
  "initial": "Open",
  "states": {
    "Open": {"on": {"Add": {"target": "Open", "handler": "add_amount"}, "Checkout": "Ordered"},
             "entry": ["log_restore"]},
    "Ordered": {"final": true}
  },
  "events": {"Add": {"amount": "number"}},
  "persistence": {"snapshotSchedule": "every 3", "machineType": "Cart"}
}');

SELECT machine_spawn('cart-' || i, 'cart', jsonb_build_object('owner', i)) FROM generate_series(1, 4) i;
SELECT count(machine_send('cart-' || i, jsonb_build_object('_tag', 'Add', 'amount', j)))
  FROM generate_series(1, 4) i, generate_series(1, i + 1) j;
SELECT machine_send('cart-4', '{"_tag": "Checkout"}');

-- stop and restore lose nothing: the fold of snapshot + journal is the state
SELECT machine_state('cart-2') AS before_stop \gset
SELECT machine_stop('cart-2');
DELETE FROM restore_log;
SELECT machine_restore('cart-2') = :'before_stop'::jsonb AS same_state;
SELECT status, version FROM machine.instances WHERE actor_id = 'cart-2';
-- entry effects run once, with "$restore"; none ran during the fold
SELECT * FROM restore_log;
SELECT machine_send('cart-2', '{"_tag": "Add", "amount": 100}');

-- restoring a running actor is an error; nothing persisted is NULL
SELECT machine_restore('cart-2');
SELECT machine_restore('nobody');

-- a done actor comes back done
SELECT machine_stop('cart-4');
SELECT machine_restore('cart-4');
SELECT status FROM machine.instances WHERE actor_id = 'cart-4';

-- restore folds from the latest snapshot: remove the journal below it
SELECT machine_stop('cart-3');
DELETE FROM machine.events WHERE actor_id = 'cart-3' AND version <= 3;
SELECT machine_restore('cart-3');

-- machine_restore_many: restored, skipped, failed; one failure aborts nothing
SELECT machine_stop('cart-1'), machine_stop('cart-2'), machine_stop('cart-3');
UPDATE machine.events SET state_tag = 'Ordered' WHERE actor_id = 'cart-3' AND version = 4;
DELETE FROM machine.snapshots WHERE actor_id = 'cart-3' AND version = 4;
SELECT actor_id, status, state, error
  FROM machine_restore_many(ARRAY['cart-1', 'cart-4', 'cart-3', 'nobody', NULL, 'cart-1']);
-- the failed one stays stopped and untouched
SELECT actor_id, status, version FROM machine.instances WHERE machine = 'cart' ORDER BY 1;

-- machine_restore_all restores every stopped actor of a machine type
SELECT actor_id, status, error FROM machine_restore_all('Cart');
SELECT actor_id, status, state, error FROM machine_restore_all('NoSuchType');

-- a filter in plain SQL over the view
SELECT machine_stop('cart-1'), machine_stop('cart-4');
SELECT actor_id, status
  FROM machine_restore_many(ARRAY(SELECT id FROM machine.actors
                                   WHERE machine_type = 'Cart' AND status = 'stopped'
                                     AND state_tag <> 'Ordered'
                                   ORDER BY id));
SELECT id, status FROM machine.actors WHERE machine = 'cart' ORDER BY id;

-- a volatile machine keeps nothing to restore from
SELECT machine_define('scratch', '{"initial": "A", "states": {"A": {}}}');
SELECT machine_spawn('s-1', 'scratch');
SELECT machine_stop('s-1');
SELECT machine_restore('s-1');
