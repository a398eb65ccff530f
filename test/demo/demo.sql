-- The machine demo: an order workflow, told step by step.
-- Run it with test/demo/run; every statement is echoed before its result.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset null '(null)'
\set QUIET 0
\set ECHO queries

\echo '== 1. Install the extension.'
CREATE EXTENSION machine;

\echo '== 2. The shop: an outbox table, a guard, a handler and an entry effect.'
CREATE SCHEMA shop;
CREATE TABLE shop.outbox (
	id       bigserial PRIMARY KEY,
	actor_id text NOT NULL,
	topic    text NOT NULL,
	payload  jsonb NOT NULL
);
-- guard: the payment covers the order's total
CREATE FUNCTION shop.covers_total(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= (state->>'total')::numeric $$;
-- handler: record the payment in the order's data
CREATE FUNCTION shop.record_payment(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', event->'amount') $$;
-- entry effect: announce the new state through the transactional outbox
-- (not on "$restore": bringing an order back is not news)
CREATE FUNCTION shop.announce(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO shop.outbox (actor_id, topic, payload)
	SELECT actor_id, 'order.' || lower(state->>'_tag'), state
	 WHERE event->>'_tag' <> '$restore'
$$;

\echo '== 3. Define the order machine (revision 1).'
SELECT machine_define('order', '{
  "initial": "Pending",
  "states": {
    "Pending":   {"on": {"Pay":  [{"target": "Paid", "guard": "shop.covers_total",
                                   "handler": "shop.record_payment"},
                                  {"target": "Rejected"}],
                         "Note": {"target": "Pending", "merge": true}}},
    "Paid":      {"on": {"Ship": "Shipped"}, "entry": ["shop.announce"]},
    "Shipped":   {"final": true, "entry": ["shop.announce"]},
    "Cancelled": {"final": true, "entry": ["shop.announce"]},
    "Rejected":  {"final": true, "entry": ["shop.announce"]}
  },
  "any":         {"Cancel": "Cancelled"},
  "events":      {"Pay": {"amount": "number"}, "Note": {"text": "string"}},
  "persistence": {"snapshotSchedule": "every 2", "machineType": "Order"}
}');

\echo '== 4. A definition with a typo is refused, naming the JSON path of the problem.'
DO $$
BEGIN
	PERFORM machine_define('typo', '{"initial": "Pending",
		"states": {"Pending": {"on": {"Ship": "Shiped"}}}}');
EXCEPTION WHEN invalid_object_definition THEN
	RAISE NOTICE 'refused (SQLSTATE %): %', SQLSTATE, SQLERRM;
END $$;
SELECT machine_definition('typo');

\echo '== 5. Spawn five orders: each starts Pending, at version 0.'
SELECT machine_spawn('order-' || n, 'order', jsonb_build_object('total', total))
  FROM (VALUES (1, 40), (2, 25), (3, 15), (4, 60), (5, 20)) AS o(n, total);

\echo '== 6. order-1 gets a note, is paid in full and shipped.'
SELECT machine_send('order-1', '{"_tag": "Note", "text": "leave at the door"}');
SELECT machine_send('order-1', '{"_tag": "Pay", "amount": 40}');
SELECT machine_send('order-1', '{"_tag": "Ship"}');

\echo '== 7. order-2 pays too little: the guard refuses and Pay falls through to Rejected.'
SELECT machine_send('order-2', '{"_tag": "Pay", "amount": 10}');

\echo '== 8. order-3 is paid, then cancelled through the "any" transition.'
SELECT machine_send('order-3', '{"_tag": "Pay", "amount": 15}');
SELECT machine_send('order-3', '{"_tag": "Cancel"}');

\echo '== 9. Two clerks edit order-4, both having read version 0: the second is refused.'
SELECT machine_send('order-4', '{"_tag": "Note", "text": "gift wrap"}', 0);
DO $$
DECLARE
	detail text;
BEGIN
	PERFORM machine_send('order-4', '{"_tag": "Note", "text": "no gift wrap"}', 0);
EXCEPTION WHEN SQLSTATE 'MA001' THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'conflict (SQLSTATE %): % -- %', SQLSTATE, SQLERRM, detail;
END $$;
\echo '   The second clerk re-reads the version and retries.'
SELECT machine_version('order-4');
SELECT machine_send('order-4', '{"_tag": "Note", "text": "no gift wrap"}', 1);
SELECT machine_send('order-4', '{"_tag": "Pay", "amount": 75}');

\echo '== 10. The outbox: written by the entry effects, in the same transactions.'
SELECT id, actor_id, topic, payload FROM shop.outbox ORDER BY id;

\echo '== 11. The journal and the snapshots ("every 2": even versions) of order-4.'
SELECT version, event, state_tag FROM machine.events WHERE actor_id = 'order-4' ORDER BY version;
SELECT version, state FROM machine.snapshots WHERE actor_id = 'order-4' ORDER BY version;

\echo '== 12. Stop order-4 (a snapshot is taken first), then restore it: nothing is lost.'
SELECT machine_stop('order-4');
SELECT id, version, state_tag, status, snapshot_version FROM machine.actors WHERE id = 'order-4';
SELECT machine_restore('order-4');

\echo '== 13. Replay order-4 to version 1: the state it had then; the live actor is untouched.'
SELECT machine_replay_to('order-4', 1);
SELECT machine_state('order-4'), machine_version('order-4');

\echo '== 14. The history of order-4: each journaled event and the state it led to.'
SELECT version, event, state FROM machine_history('order-4') ORDER BY version;

\echo '== 15. The payment bounced: rewind order-4 to version 2, recorded as a NEW version.'
SELECT machine_rewind('order-4', 2);
SELECT version, event, state_tag FROM machine.events WHERE actor_id = 'order-4' ORDER BY version;
SELECT machine_send('order-4', '{"_tag": "Pay", "amount": 60}');

\echo '== 16. Every actor, through the registry view.'
SELECT id, machine, machine_type, version, state_tag, status, snapshot_version
  FROM machine.actors ORDER BY id;

\echo '== 17. Maintenance: stop every order, then restore the open ones (a filter over the view).'
SELECT id, machine_stop(id) FROM machine.actors WHERE machine_type = 'Order' ORDER BY id;
SELECT actor_id, status, state, error
  FROM machine_restore_many(ARRAY(SELECT id FROM machine.actors
                                   WHERE machine_type = 'Order'
                                     AND state_tag NOT IN ('Shipped', 'Cancelled', 'Rejected')
                                   ORDER BY id));
SELECT id, state_tag, status FROM machine.actors ORDER BY id;

\echo '== 18. Test the machine without touching any actor: simulate, then assert.'
SELECT * FROM machine_simulate('order',
	ARRAY['{"_tag": "Note", "text": "fragile"}', '{"_tag": "Pay", "amount": 30}',
	      '{"_tag": "Ship"}']::jsonb[],
	'{"total": 30}');
SELECT machine_assert_reaches('order', ARRAY['{"_tag": "Pay", "amount": 5}']::jsonb[],
                              'Rejected', '{"total": 30}');

\echo '== 19. The outbox at the end: order-4 was paid again after the rewind; restores announce nothing.'
SELECT id, actor_id, topic FROM shop.outbox ORDER BY id;
