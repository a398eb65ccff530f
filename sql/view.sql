-- The registry view machine.actors

SELECT machine_define('ticket', '{
  "initial": "New",
  "states": {"New": {"on": {"Close": "Closed", "Bump": "New"}}, "Closed": {"final": true}},
  "persistence": {"snapshotSchedule": "every 2", "machineType": "Ticket"}
}');
SELECT machine_define('note', '{"initial": "Draft", "states": {"Draft": {}}}');

SELECT machine_spawn('t-' || i, 'ticket') FROM generate_series(1, 3) i;
SELECT machine_spawn('n-1', 'note');
SELECT machine_send('t-1', '{"_tag": "Bump"}'), machine_send('t-1', '{"_tag": "Bump"}');
SELECT machine_send('t-2', '{"_tag": "Close"}');
SELECT machine_stop('t-3');

SELECT id, machine, machine_type, version, state_tag, status, snapshot_version,
       created_at <= last_activity_at AS times_ordered
  FROM machine.actors WHERE machine IN ('ticket', 'note') ORDER BY id;

-- the view's columns, in order
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'machine.actors'::regclass AND attnum > 0 ORDER BY attnum;

-- plain SQL filters
SELECT status, count(*) FROM machine.actors WHERE machine_type = 'Ticket' GROUP BY status ORDER BY status;
