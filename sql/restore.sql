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

-- restore_many and restore_all read a chunk's snapshots and journals in one
-- walk of each table's key where its actors are near each other, and actor
-- by actor where not (other actors' rows in between, a long journal below
-- the snapshot, snapshots gone): each actor comes back as it was.  A chunk
-- that failed would be folded again actor by actor, and the sequence, which
-- no rollback resets, would count those handler calls twice.
CREATE SEQUENCE folded;
CREATE FUNCTION counted_add(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nextval('folded');
	RETURN add_amount(state, event);
END
$$;
SELECT machine_define('tally', '{
  "initial": "Counting",
  "states": {"Counting": {"on": {"Add": {"target": "Counting", "handler": "counted_add"}}}},
  "events": {"Add": {"amount": "number"}},
  "persistence": {"snapshotSchedule": "every 3", "machineType": "Tally"}
}');
SELECT machine_define('untallied', '{
  "initial": "A", "states": {"A": {"on": {"Add": "A"}}},
  "events": {"Add": {"amount": "number"}}
}');
SELECT count(machine_spawn('t-' || lpad(i::text, 2, '0'), 'tally')) FROM generate_series(0, 39) i;
SELECT count(machine_spawn('t-' || lpad(i::text, 2, '0') || 'x', 'untallied'))
  FROM generate_series(0, 39, 5) i;
-- t-NN gets NN events, t-39 sixty; t-NNx three each
SELECT count(machine_send('t-' || lpad(i::text, 2, '0'), jsonb_build_object('_tag', 'Add', 'amount', j)))
  FROM generate_series(0, 39) i, generate_series(1, CASE WHEN i = 39 THEN 60 ELSE i END) j;
SELECT count(machine_send('t-' || lpad(i::text, 2, '0') || 'x', '{"_tag": "Add", "amount": 1}'))
  FROM generate_series(0, 39, 5) i, generate_series(1, 3);
CREATE TABLE tally_before AS
  SELECT actor_id AS id, state, version FROM machine.instances WHERE machine = 'tally';
-- stopped without the snapshot that machine_stop takes, so that restores fold
UPDATE machine.instances SET status = 'stopped' WHERE machine = 'tally';
-- the four latest snapshots of t-38 gone: the walk meets their keys only
DELETE FROM machine.snapshots WHERE actor_id = 't-38' AND version > 24;
-- events to fold: those after each actor's latest snapshot
CREATE VIEW tally_to_fold AS
  SELECT sum(b.version - coalesce((SELECT max(s.version) FROM machine.snapshots s
                                    WHERE s.actor_id = b.id), 0)) AS events
    FROM tally_before b;
SELECT setval('folded', 1, false);
SELECT status, count(*)
  FROM machine_restore_many(ARRAY(SELECT id FROM tally_before ORDER BY md5(id)))
 GROUP BY status;
SELECT nextval('folded') - 1 = events AS folded_once FROM tally_to_fold;
SELECT count(*) FILTER (WHERE i.status = 'running' AND i.state = b.state AND
                              i.version = b.version) AS same, count(*) AS actors
  FROM tally_before b JOIN machine.instances i ON i.actor_id = b.id;
UPDATE machine.instances SET status = 'stopped' WHERE machine = 'tally';
SELECT setval('folded', 1, false);
SELECT status, count(*) FROM machine_restore_all('Tally') GROUP BY status;
SELECT nextval('folded') - 1 = events AS folded_once FROM tally_to_fold;
SELECT count(*) FILTER (WHERE i.status = 'running' AND i.state = b.state AND
                              i.version = b.version) AS same, count(*) AS actors
  FROM tally_before b JOIN machine.instances i ON i.actor_id = b.id;
