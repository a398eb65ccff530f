-- Journal positions, subscriptions and idempotent sends

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
	RETURN state || ': ' || message || coalesce(' / ' || nullif(detail, ''), '');
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
