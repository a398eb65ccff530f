-- machine_send_many: batches of events, per-item errors, lock order

CREATE FUNCTION add_amount(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT state || jsonb_build_object('total',
		(state->>'total')::numeric + (event->>'amount')::numeric)
$$;

SELECT machine_define('tab', '{
  "initial": "Open",
  "states": {
    "Open":   {"on": {"Add": {"target": "Open", "handler": "add_amount"}, "Close": "Closed"}},
    "Closed": {"final": true}
  },
  "events": {"Add": {"amount": "number"}},
  "persistence": {}
}');
SELECT machine_spawn(id, 'tab', '{"total": 0}') IS NOT NULL
FROM unnest(ARRAY['t-1', 't-2', 't-3']) AS id;

-- rows come back in input order; events of one actor apply in input order
SELECT * FROM machine_send_many(
	ARRAY['t-3', 't-1', 't-3', 't-2'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 2}',
		  '{"_tag": "Add", "amount": 3}', '{"_tag": "Close"}']::jsonb[]);
SELECT actor_id, version, event->>'amount' AS amount
FROM machine.events WHERE actor_id LIKE 't-%' ORDER BY actor_id, version;

-- expected versions, one per item; NULL means none
SELECT * FROM machine_send_many(
	ARRAY['t-1', 't-3'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}']::jsonb[],
	ARRAY[1, NULL]::bigint[]);

-- 'abort' (the default): the first failure fails the call, nothing applied
SELECT * FROM machine_send_many(
	ARRAY['t-1', 't-2', 't-3'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}',
		  '{"_tag": "Add", "amount": 1}']::jsonb[]);
SELECT actor_id, version FROM machine.instances WHERE actor_id LIKE 't-%' ORDER BY actor_id;

-- 'report': each failure in its row, the other items apply
SELECT * FROM machine_send_many(
	ARRAY['t-1', 't-2', 'nobody', 't-3', 't-1'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}',
		  '{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": "x"}',
		  '{"_tag": "Add", "amount": 1}']::jsonb[],
	ARRAY[2, NULL, NULL, NULL, 3]::bigint[],
	on_error => 'report');
SELECT actor_id, version, state FROM machine.instances WHERE actor_id LIKE 't-%' ORDER BY actor_id;
SELECT count(*) AS journal_rows FROM machine.events WHERE actor_id LIKE 't-%';

-- the tables that sends write stay open until the transaction ends: an
-- exception block that rolls back the sends that opened them leaves them
-- usable, DDL on them in the same transaction finds them free, and an index
-- created between two sends gets the second one's rows
DO $$
BEGIN
	BEGIN
		PERFORM machine_send('t-1', '{"_tag": "Add", "amount": 1}');
		PERFORM machine_send('t-1', '{"_tag": "Add", "amount": "x"}');
	EXCEPTION WHEN OTHERS THEN
		RAISE NOTICE 'rolled back: %', SQLERRM;
	END;
	PERFORM machine_send('t-1', '{"_tag": "Add", "amount": 10}');
END $$;
BEGIN;
SELECT count(*) FROM machine_send_many(ARRAY['t-1', 't-3'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}']::jsonb[]);
CREATE INDEX events_by_time ON machine.events (recorded_at, actor_id);
SELECT count(*) FROM machine_send_many(ARRAY['t-1', 't-3'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}']::jsonb[]);
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT count(*) AS indexed_rows FROM machine.events
WHERE recorded_at >= '-infinity' AND actor_id LIKE 't-%';
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT count(*) AS journal_rows FROM machine.events WHERE actor_id LIKE 't-%';
ROLLBACK;
SELECT actor_id, version, state FROM machine.instances WHERE actor_id LIKE 't-%' ORDER BY actor_id;

-- a send looks for the live row where the transaction last saw it, and
-- searches the key when another version of the row has replaced it, or
-- the actor was deleted and spawned again
BEGIN;
SELECT count(*) FROM machine_send_many(ARRAY['t-1', 't-3'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}']::jsonb[]);
UPDATE machine.instances SET last_activity_at = now() WHERE actor_id = 't-1';
SELECT machine_delete('t-3');
SELECT machine_spawn('t-3', 'tab', '{"total": 100}') IS NOT NULL AS spawned;
SELECT machine_send('t-1', '{"_tag": "Add", "amount": 1}');
SELECT machine_send('t-3', '{"_tag": "Add", "amount": 1}');
SELECT * FROM machine_send_many(ARRAY['t-1', 't-3', 't-1'],
	ARRAY['{"_tag": "Add", "amount": 1}', '{"_tag": "Add", "amount": 1}',
		  '{"_tag": "Add", "amount": 1}']::jsonb[]);
SELECT actor_id, version, state FROM machine.instances WHERE actor_id IN ('t-1', 't-3') ORDER BY actor_id;
ROLLBACK;

-- an empty batch is no work
SELECT count(*) FROM machine_send_many('{}', '{}');

-- bad arguments
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY[]::jsonb[]);
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY['{"_tag": "Add", "amount": 1}']::jsonb[], ARRAY[1, 2]::bigint[]);
SELECT * FROM machine_send_many(ARRAY['t-1', NULL], ARRAY['{}', '{}']::jsonb[]);
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY[NULL]::jsonb[]);
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY['{"_tag": "Add", "amount": 1}']::jsonb[], ARRAY[-1]::bigint[]);
SELECT * FROM machine_send_many(ARRAY[['t-1']], ARRAY[['{}']]::jsonb[]);
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY['{"_tag": "Add", "amount": 1}']::jsonb[], on_error => 'skip');
SELECT * FROM machine_send_many(NULL, ARRAY['{}']::jsonb[]);
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY['{"_tag": "Add", "amount": 1}']::jsonb[], on_error => NULL);

-- a read-only transaction cannot send
BEGIN READ ONLY;
SELECT * FROM machine_send_many(ARRAY['t-1'], ARRAY['{"_tag": "Add", "amount": 1}']::jsonb[]);
ROLLBACK;

SELECT machine_drop('tab', true);
DROP FUNCTION add_amount(jsonb, jsonb);
