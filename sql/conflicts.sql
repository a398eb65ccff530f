-- Version conflicts: one SQLSTATE (MA001) for every refused version

CREATE FUNCTION error_of(statement text) RETURNS text
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

SELECT machine_define('account', '{
  "initial": "Open",
  "states": {"Open": {"on": {"Deposit": {"target": "Open", "merge": true}, "Close": "Closed"}},
             "Closed": {"final": true}},
  "persistence": {"snapshotSchedule": "every 2"}
}');
SELECT machine_spawn('acc-1', 'account', '{"balance": 0}');

-- expected_version: equal applies, anything else is refused
SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 5}', 0);
SELECT error_of($$SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 5}', 0)$$);
SELECT error_of($$SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 5}', 7)$$);
SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 6}', 1);
SELECT error_of($$SELECT machine_persist('acc-1', 1)$$);

-- a duplicate version on the journal: a row written behind the extension's
-- back occupies the next version
INSERT INTO machine.events (actor_id, version, event, state_tag)
VALUES ('acc-1', 3, '{"_tag": "Deposit"}', 'Open');
SELECT error_of($$SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 1}')$$);
DELETE FROM machine.events WHERE actor_id = 'acc-1' AND version = 3;

-- a duplicate version on the snapshots
INSERT INTO machine.snapshots (actor_id, version, state, state_tag)
VALUES ('acc-1', 4, '{"_tag": "Open"}', 'Open');
SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 1}');
SELECT error_of($$SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 1}')$$);
DELETE FROM machine.snapshots WHERE actor_id = 'acc-1' AND version = 4;

-- the refused sends left nothing: version 3, journal 1..3
SELECT machine_version('acc-1');
SELECT array_agg(version ORDER BY version) FROM machine.events WHERE actor_id = 'acc-1';

-- the primary keys refuse a duplicate whatever writes it
SELECT error_of($$INSERT INTO machine.events (actor_id, version, event, state_tag)
                 VALUES ('acc-1', 1, '{"_tag": "X"}', 'Open')$$);
SELECT error_of($$INSERT INTO machine.snapshots (actor_id, version, state, state_tag)
                 VALUES ('acc-1', 2, '{"_tag": "Open"}', 'Open')$$);

-- a CHECK constraint added to the tables is enforced on every send
ALTER TABLE machine.events ADD CONSTRAINT no_big_deposits
	CHECK ((event->>'amount')::numeric IS NULL OR (event->>'amount')::numeric < 100);
SELECT split_part(error_of($$SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 500}')$$), ' / ', 1);
SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 50}');
ALTER TABLE machine.events DROP CONSTRAINT no_big_deposits;
SELECT machine_send('acc-1', '{"_tag": "Deposit", "amount": 500}');
