-- Persistence: the journal, snapshot schedules, machine_persist, stop and
-- delete

CREATE FUNCTION count_rows(actor text)
RETURNS TABLE (journal bigint, snapshots bigint, snapshot_versions bigint[])
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM machine.events WHERE actor_id = actor),
	       (SELECT count(*) FROM machine.snapshots WHERE actor_id = actor),
	       (SELECT coalesce(array_agg(version ORDER BY version), '{}')
	          FROM machine.snapshots WHERE actor_id = actor)
$$;

CREATE FUNCTION cycle_definition(persistence jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT jsonb_build_object(
		'initial', 'Red',
		'states', '{"Red": {"on": {"Next": "Green"}},
		            "Green": {"on": {"Next": "Yellow"}},
		            "Yellow": {"on": {"Next": "Red"}}}'::jsonb,
		'persistence', persistence)
$$;

CREATE FUNCTION send_next(actor text, times int) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(machine_send(actor, '{"_tag": "Next"}')) FROM generate_series(1, times)
$$;

SELECT machine_define('forever', cycle_definition('{"snapshotSchedule": "forever"}'));
SELECT machine_define('never', cycle_definition('{}'));
SELECT machine_define('recurs', cycle_definition('{"snapshotSchedule": "recurs 2"}'));
SELECT machine_define('every', cycle_definition('{"snapshotSchedule": "every 3"}'));
SELECT machine_define('spaced', cycle_definition('{"snapshotSchedule": "spaced 5 minutes"}'));
SELECT machine_define('unjournaled', cycle_definition('{"journalEvents": false, "snapshotSchedule": "every 2"}'));
SELECT machine_define('volatile', cycle_definition(NULL) - 'persistence');

SELECT machine_spawn(name || '-1', name) FROM unnest(ARRAY['forever', 'never', 'recurs', 'every', 'spaced', 'unjournaled', 'volatile']) AS name;
SELECT name, send_next(name || '-1', 7) FROM unnest(ARRAY['forever', 'never', 'recurs', 'every', 'spaced', 'unjournaled', 'volatile']) AS name;

-- what each schedule kept
SELECT name, r.* FROM unnest(ARRAY['forever', 'never', 'recurs', 'every', 'spaced', 'unjournaled', 'volatile']) AS name,
	LATERAL count_rows(name || '-1') r;

-- recurs 0: no automatic snapshot, the journal only; every 0 means nothing
SELECT machine_define('recurs0', cycle_definition('{"snapshotSchedule": "recurs 0"}'));
SELECT machine_spawn('recurs0-1', 'recurs0');
SELECT send_next('recurs0-1', 3);
SELECT * FROM count_rows('recurs0-1');
SELECT machine_persist('recurs0-1');
SELECT machine_send('recurs0-1', '{"_tag": "Next"}');
SELECT * FROM count_rows('recurs0-1');
SELECT machine_define('every0', cycle_definition('{"snapshotSchedule": "every 0"}'));

-- the journal holds the event and the state it led to
SELECT version, event, state_tag FROM machine.events WHERE actor_id = 'never-1' ORDER BY version;
SELECT version, state, state_tag FROM machine.snapshots WHERE actor_id = 'every-1' ORDER BY version;

-- machine_persist: a snapshot now; idempotent; checks the expected version
SELECT machine_persist('never-1');
SELECT machine_persist('never-1');
SELECT machine_persist('never-1', 7);
SELECT machine_persist('never-1', 6);
SELECT * FROM count_rows('never-1');
SELECT machine_persist('volatile-1');
SELECT machine_persist('nobody');
SELECT machine_persist(NULL);

-- a transaction that rolls back leaves no journal or snapshot behind
BEGIN;
SELECT machine_send('forever-1', '{"_tag": "Next"}');
ROLLBACK;
SELECT machine_version('forever-1'), * FROM count_rows('forever-1');

-- stop: a persistent actor is snapshotted and kept; a volatile one is removed
SELECT machine_stop('recurs-1');
SELECT status, version FROM machine.instances WHERE actor_id = 'recurs-1';
SELECT * FROM count_rows('recurs-1');
SELECT machine_stop('recurs-1');
SELECT machine_send('recurs-1', '{"_tag": "Next"}');
SELECT machine_stop('volatile-1');
SELECT count(*) FROM machine.instances WHERE actor_id = 'volatile-1';
SELECT machine_stop('nobody');

-- delete: erased everywhere
SELECT machine_delete('forever-1');
SELECT count(*) FROM machine.instances WHERE actor_id = 'forever-1';
SELECT * FROM count_rows('forever-1');
SELECT machine_delete('forever-1');
-- the id is free again
SELECT machine_spawn('forever-1', 'forever');

-- a stopped actor's id is still taken
SELECT machine_spawn('recurs-1', 'recurs');
