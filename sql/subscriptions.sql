-- Journal positions, subscriptions and idempotent sends

-- positions differ from run to run: errors name them as N
CREATE FUNCTION sub_error_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	state text;
	message text;
	detail text;
BEGIN
	EXECUTE statement;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL;
	RETURN regexp_replace(state || ': ' || message || coalesce(' / ' || nullif(detail, ''), ''),
						  'position \d+', 'position N');
END $$;

SELECT machine_define('sub_order', '{
  "initial": "New",
  "states": {"New": {"on": {"Pay": "Paid", "Note": "New"}},
             "Paid": {"on": {"Ship": "Shipped", "Note": "Paid"}},
             "Shipped": {"final": true}},
  "persistence": {}
}');
SELECT machine_define('sub_light', '{
  "initial": "Red",
  "states": {"Red": {"on": {"Next": "Green"}}, "Green": {"on": {"Next": "Red"}}},
  "persistence": {}
}');

-- positions: unique, increasing in insertion order across actors; the
-- txid is the writing transaction's
SELECT machine_spawn('sub-o1', 'sub_order'), machine_spawn('sub-o2', 'sub_order'),
       machine_spawn('sub-l1', 'sub_light');
CREATE TEMP TABLE sent (actor text, version bigint, txid xid8);
BEGIN;
SELECT machine_send('sub-o1', '{"_tag": "Pay"}');
SELECT machine_send('sub-l1', '{"_tag": "Next"}');
INSERT INTO sent SELECT 'tx', 0, pg_current_xact_id();
COMMIT;
SELECT machine_send('sub-o2', '{"_tag": "Pay"}');
SELECT machine_send('sub-o1', '{"_tag": "Ship"}');
SELECT actor_id, version, event->>'_tag' AS tag,
       position - min(position) OVER () AS rel_position,
       txid = (SELECT txid FROM sent) AS in_first_transaction
  FROM machine.events WHERE actor_id LIKE 'sub-%' ORDER BY position;
SELECT count(DISTINCT position) = count(*) AS unique_positions,
       bool_and(txid < pg_snapshot_xmin(pg_current_snapshot())) AS all_below_horizon
  FROM machine.events;

-- the SQL path (a constraint added to the journal) fills them the same way
ALTER TABLE machine.events ADD CONSTRAINT sub_any CHECK (version > 0);
BEGIN;
SELECT machine_send('sub-l1', '{"_tag": "Next"}');
SELECT position > (SELECT max(position) FROM machine.events WHERE actor_id <> 'sub-l1') AS later,
       txid = pg_current_xact_id() AS own_txid
  FROM machine.events WHERE actor_id = 'sub-l1' AND version = 2;
COMMIT;
ALTER TABLE machine.events DROP CONSTRAINT sub_any;
SELECT machine_send('sub-l1', '{"_tag": "Next"}');
SELECT array_agg(version ORDER BY position) FROM machine.events WHERE actor_id = 'sub-l1';

-- subscriptions: a durable checkpoint per member
SELECT machine_subscribe('sub_orders', 'sub_order');
SELECT machine_subscribe('sub_all');
SELECT sub_error_of($$SELECT machine_subscribe('sub_orders')$$);
SELECT sub_error_of($$SELECT machine_subscribe('')$$);
SELECT sub_error_of($$SELECT machine_subscribe(repeat('x', 64))$$);
SELECT sub_error_of($$SELECT machine_subscribe(NULL)$$);
SELECT sub_error_of($$SELECT machine_subscribe('sub_x', NULL, NULL)$$);
SELECT name, machine_type, member, checkpoint,
       CASE WHEN machine_type IS NULL THEN lag_rows > 3 ELSE lag_rows = 3 END AS lag_rows,
       lag_time > '0' AS lags
  FROM machine.subscriptions WHERE name LIKE 'sub_%' ORDER BY name, member;

-- a poll returns the rows after the checkpoint, again until they are
-- acknowledged; an acknowledgement moves past them
SELECT actor_id, machine_type, version, event->>'_tag' AS tag, state_tag
  FROM machine_poll('sub_orders');
SELECT actor_id, version FROM machine_poll('sub_orders', 2);
SELECT actor_id, version FROM machine_poll('sub_orders', 2);
SELECT machine_ack('sub_orders', (SELECT max(position) FROM machine_poll('sub_orders', 2)));
SELECT actor_id, version FROM machine_poll('sub_orders');
SELECT name, checkpoint = (SELECT position FROM machine.events WHERE actor_id = 'sub-o2')
       AS at_second_row, lag_rows
  FROM machine.subscriptions WHERE name = 'sub_orders';
-- acknowledging the checkpoint again changes nothing
SELECT machine_ack('sub_orders', (SELECT position FROM machine.events WHERE actor_id = 'sub-o2'));
-- an acknowledgement rolls back with its transaction
BEGIN;
SELECT machine_ack('sub_orders', position) FROM machine_poll('sub_orders');
SELECT count(*) FROM machine_poll('sub_orders');
ROLLBACK;
SELECT actor_id, version FROM machine_poll('sub_orders');

-- rows of rolled-back sends are never delivered; new rows are
BEGIN;
SELECT machine_send('sub-o2', '{"_tag": "Note"}');
ROLLBACK;
SELECT machine_send('sub-o2', '{"_tag": "Ship"}');
SELECT actor_id, version, event->>'_tag' AS tag FROM machine_poll('sub_orders');

-- only the type subscribed to; the whole journal for NULL
SELECT count(*) = (SELECT count(*) FROM machine.events) AS everything
  FROM machine_poll('sub_all', 1000000);
SELECT DISTINCT machine_type FROM machine_poll('sub_orders');

-- acknowledging a row that was not delivered to the member
SELECT sub_error_of($$SELECT machine_ack('sub_orders', (SELECT position FROM machine.events
                                                        WHERE actor_id = 'sub-l1' AND version = 1))$$);
SELECT sub_error_of($$SELECT machine_ack('sub_orders', 0)$$);
SELECT sub_error_of($$SELECT machine_ack('sub_orders', (SELECT position FROM machine.events
                                                        WHERE actor_id = 'sub-o1' AND version = 1))$$);
SELECT sub_error_of($$SELECT machine_ack('sub_orders', NULL)$$);
SELECT sub_error_of($$SELECT machine_ack('sub_none', 1)$$);
SELECT sub_error_of($$SELECT machine_ack('sub_orders', 1, 1)$$);

-- bad poll arguments
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_none')$$);
SELECT sub_error_of($$SELECT * FROM machine_poll(NULL)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', 0)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', NULL)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', 10, 1)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', 10, -1, 2)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', 10, 0, 0)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', 10, 0, 1025)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_orders', 10, 0, 2)$$);

-- members: each actor's rows go to one member, in version order; the
-- first poll fixes their number
SELECT machine_subscribe('sub_pair', 'sub_light');
SELECT count(machine_spawn('sub-p' || i, 'sub_light')) FROM generate_series(1, 20) i;
SELECT count(machine_send('sub-p' || i, '{"_tag": "Next"}')) FROM generate_series(1, 20) i;
SELECT count(machine_send('sub-p' || i, '{"_tag": "Next"}')) FROM generate_series(1, 20) i;
CREATE TEMP TABLE pair AS
	SELECT 0 AS member, * FROM machine_poll('sub_pair', 1000, 0, 2)
	UNION ALL SELECT 1, * FROM machine_poll('sub_pair', 1000, 1, 2);
SELECT count(*) AS rows, count(DISTINCT member) AS members,
       count(*) = (SELECT count(*) FROM machine.events e JOIN machine.instances i USING (actor_id)
                    WHERE i.machine = 'sub_light') AS all_rows
  FROM pair;
SELECT count(*) AS actors_split FROM (SELECT actor_id FROM pair GROUP BY actor_id
                                      HAVING count(DISTINCT member) > 1) x;
SELECT bool_and(member = machine_slice_of(actor_id) % 2) AS by_slice FROM pair;
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_pair', 10, 0, 3)$$);
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_pair')$$);
SELECT machine_ack('sub_pair', (SELECT max(position) FILTER (WHERE version = 1) FROM pair WHERE member = 1), 1);
SELECT sub_error_of($$SELECT machine_ack('sub_pair', (SELECT min(position) FROM pair WHERE member = 1), 0)$$);
SELECT name, member, checkpoint IS NOT NULL AS acked, lag_rows
  FROM machine.subscriptions WHERE name = 'sub_pair' ORDER BY member;

-- from now: rows written before the subscription are not delivered
SELECT machine_subscribe('sub_late', 'sub_order', false);
SELECT count(*) FROM machine_poll('sub_late');
SELECT machine_spawn('sub-o3', 'sub_order'), machine_send('sub-o3', '{"_tag": "Pay"}');
SELECT actor_id, version FROM machine_poll('sub_late');

-- dropping
SELECT machine_unsubscribe('sub_late'), machine_unsubscribe('sub_late');
SELECT sub_error_of($$SELECT * FROM machine_poll('sub_late')$$);
SELECT machine_unsubscribe('sub_pair'), machine_unsubscribe('sub_all'),
       machine_unsubscribe('sub_orders');
SELECT count(*) FROM machine.checkpoints;

-- idempotent sends: a key applies once per actor; a repeated send returns
-- the state the first one led to, whatever happened since
SELECT machine_spawn('sub-k1', 'sub_order', '{"n": 1}'), machine_spawn('sub-k2', 'sub_order');
SELECT machine_send('sub-k1', '{"_tag": "Pay"}', idempotency_key => 'pay-1');
SELECT machine_send('sub-k1', '{"_tag": "Pay"}', idempotency_key => 'pay-1');
SELECT machine_send('sub-k1', '{"_tag": "Note"}', idempotency_key => 'note-1');
SELECT machine_send('sub-k1', '{"_tag": "Pay"}', 0, 'pay-1');   -- a stale expected version too
SELECT machine_send('sub-k1', '{"_tag": "Ship"}', idempotency_key => 'ship-1');
SELECT machine_send('sub-k1', '{"_tag": "Pay"}', idempotency_key => 'pay-1');   -- done now
SELECT machine_send('sub-k1', '{"_tag": "Ship"}', idempotency_key => 'ship-1');
SELECT version, event->>'_tag' AS tag, idempotency_key FROM machine.events
 WHERE actor_id = 'sub-k1' ORDER BY version;
-- keys belong to one actor
SELECT machine_send('sub-k2', '{"_tag": "Pay"}', idempotency_key => 'pay-1');
SELECT machine_version('sub-k2');
-- a key whose send rolled back was never used
BEGIN;
SELECT machine_send('sub-k2', '{"_tag": "Ship"}', idempotency_key => 'ship-2');
ROLLBACK;
SELECT machine_send('sub-k2', '{"_tag": "Note"}', idempotency_key => 'ship-2');
SELECT machine_version('sub-k2');
-- the SQL path stores and finds keys the same way
ALTER TABLE machine.events ADD CONSTRAINT sub_any CHECK (version > 0);
SELECT machine_send('sub-k2', '{"_tag": "Note"}', idempotency_key => 'ship-2');
SELECT machine_send('sub-k2', '{"_tag": "Ship"}', idempotency_key => 'ship-3');
ALTER TABLE machine.events DROP CONSTRAINT sub_any;
SELECT machine_send('sub-k2', '{"_tag": "Ship"}', idempotency_key => 'ship-3');
SELECT version, idempotency_key FROM machine.events WHERE actor_id = 'sub-k2' ORDER BY version;
-- no key: nothing is looked up or kept
SELECT machine_spawn('sub-k3', 'sub_order'), machine_send('sub-k3', '{"_tag": "Note"}', idempotency_key => NULL);
SELECT idempotency_key IS NULL AS no_key FROM machine.events WHERE actor_id = 'sub-k3';
-- bad keys, and machines without a journal
SELECT sub_error_of($$SELECT machine_send('sub-k3', '{"_tag": "Note"}', idempotency_key => '')$$);
SELECT sub_error_of($$SELECT machine_send('sub-k3', '{"_tag": "Note"}', idempotency_key => repeat('k', 256))$$);
SELECT machine_define('sub_volatile', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}}');
SELECT machine_spawn('sub-v1', 'sub_volatile');
SELECT sub_error_of($$SELECT machine_send('sub-v1', '{"_tag": "Go"}', idempotency_key => 'go-1')$$);
SELECT machine_send('sub-v1', '{"_tag": "Go"}');
-- a key is unique per actor whatever writes the journal
SELECT split_part(sub_error_of($$INSERT INTO machine.events (actor_id, version, event, state_tag, idempotency_key)
                                 VALUES ('sub-k1', 99, '{"_tag": "X"}', 'X', 'pay-1')$$), ' / ', 1);
