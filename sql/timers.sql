-- Durable timers and the maintenance pass, driven by hand with
-- machine_run_maintenance ("after" and the worker's pass); due times are moved into
-- the past instead of waiting.

CREATE FUNCTION expire_all() RETURNS void
LANGUAGE sql AS $$ UPDATE machine.timers SET due_at = due_at - interval '2 days' $$;

CREATE TABLE timer_log (actor text, what text, by_role text);
CREATE FUNCTION log_entry(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO timer_log VALUES (actor_id, (state->>'_tag') || ' on ' || (event->>'_tag'), current_user) $$;
CREATE FUNCTION explode(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the fuse blew'; END $$;

SELECT machine_define('offer', '{
  "initial": "Open",
  "states": {
    "Open": {"on": {"Expire": "Expired", "Remind": {"target": "Open", "merge": true},
                    "Bump": "Open", "Renew": {"target": "Open", "reenter": true},
                    "Accept": "Accepted"},
             "after": [{"delay": "1 hour", "event": {"_tag": "Expire"}},
                       {"delay": "10 minutes", "event": {"_tag": "Remind", "n": 1}}]},
    "Accepted": {"on": {"Reopen": "Open", "Fuse": {"target": "Accepted", "handler": "explode"}},
                 "entry": ["log_entry"],
                 "after": [{"delay": "1 day", "event": {"_tag": "Fuse"}}]},
    "Expired": {"final": true, "entry": ["log_entry"]}
  },
  "persistence": {}
}');

-- what earlier tests left due is taken first
SELECT * FROM machine_run_maintenance() \g /dev/null

-- spawning arms the initial state's timers at version 0, in declared order
SELECT machine_spawn('offer-' || i, 'offer') FROM generate_series(1, 6) i;
SELECT actor_id, armed_version, seq, state_tag, event,
       due_at - now() BETWEEN interval '59 minutes' AND interval '61 minutes' AS in_an_hour
  FROM machine.timers WHERE actor_id = 'offer-1' ORDER BY seq;
SELECT actor_id, machine, state_tag, event->>'_tag' AS event, armed_version, armed_by
  FROM machine.pending_timers WHERE actor_id = 'offer-1' ORDER BY event;

-- nothing is due yet
SELECT * FROM machine_run_maintenance();

-- a self-transition without reenter keeps the timers running (moved to the
-- new version); reenter re-arms them; leaving the state cancels them
SELECT machine_send('offer-2', '{"_tag": "Bump"}');
SELECT machine_send('offer-3', '{"_tag": "Renew"}');
SELECT machine_send('offer-4', '{"_tag": "Accept"}');
SELECT actor_id, armed_version, count(*) FROM machine.timers
 WHERE actor_id IN ('offer-2', 'offer-3', 'offer-4') GROUP BY 1, 2 ORDER BY 1, 2;

-- stop and delete cancel timers; restore arms them again
SELECT machine_stop('offer-5');
SELECT count(*) FROM machine.timers WHERE actor_id = 'offer-5';
SELECT machine_restore('offer-5');
SELECT armed_version, count(*) FROM machine.timers WHERE actor_id = 'offer-5' GROUP BY 1;
SELECT machine_delete('offer-6');
SELECT count(*) FROM machine.timers WHERE actor_id = 'offer-6';

-- time passes: every due timer fires once, soonest first, as the role that
-- armed it; the Remind (10 minutes) of each open offer, then its Expire
SELECT expire_all();
SELECT * FROM machine_run_maintenance();
SELECT * FROM machine_run_maintenance();
SELECT id, version, state_tag, status FROM machine.actors WHERE machine = 'offer' ORDER BY id;
SELECT version, event FROM machine.events WHERE actor_id = 'offer-1' ORDER BY version;
SELECT * FROM timer_log ORDER BY actor, what;
SELECT count(*) AS left_over FROM machine.timers;

-- a timer armed in an older state instance is dropped silently; the
-- Remind sent by hand moved the running timers along, so they still fire
SELECT machine_spawn('offer-7', 'offer');
SELECT expire_all();
SELECT machine_send('offer-7', '{"_tag": "Remind", "n": 0}');
INSERT INTO machine.timers (actor_id, armed_version, seq, state_tag, event, due_at, armed_by)
VALUES ('offer-7', 0, 9, 'Open', '{"_tag": "Accept"}', now() - interval '1 hour', current_user::regrole);
SELECT * FROM machine_run_maintenance();
SELECT state_tag, version FROM machine.actors WHERE id = 'offer-7';

-- a timer whose handler fails is logged with its actor and dropped; the
-- others fire
SELECT machine_spawn('offer-8', 'offer'), machine_spawn('offer-9', 'offer');
SELECT machine_send('offer-8', '{"_tag": "Accept"}');
SELECT expire_all();
SELECT * FROM machine_run_maintenance();
SELECT id, state_tag FROM machine.actors WHERE id IN ('offer-8', 'offer-9') ORDER BY id;
SELECT count(*) FROM machine.timers WHERE actor_id IN ('offer-8', 'offer-9');

-- a failing timer between others of the same pass: those before it and
-- after it apply once each, and it alone fails
SELECT machine_spawn('offer-' || i, 'offer') FROM generate_series(10, 12) i \g /dev/null
SELECT machine_send('offer-11', '{"_tag": "Accept"}') \g /dev/null
UPDATE machine.timers SET due_at = now() - interval '1 hour' * (13 - substr(actor_id, 7)::int)
 WHERE actor_id IN ('offer-10', 'offer-11', 'offer-12') AND seq = 0;
SELECT * FROM machine_run_maintenance();
SELECT id, version, state_tag FROM machine.actors WHERE id IN ('offer-10', 'offer-11', 'offer-12') ORDER BY id;
SELECT actor, what, count(*) FROM timer_log WHERE actor IN ('offer-10', 'offer-11', 'offer-12') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT actor_id, count(*) FROM machine.events WHERE actor_id IN ('offer-10', 'offer-11', 'offer-12') GROUP BY 1 ORDER BY 1;
SELECT actor_id, event->>'_tag' AS event FROM machine.timers WHERE actor_id IN ('offer-10', 'offer-11', 'offer-12') ORDER BY 1;

-- a handler that fails on every second call (a sequence does not roll
-- back): when a later timer fails, the batch is rolled back and the timers
-- before it fire again; when one of them then fails, each of those fires
-- on its own once more.  The flaky handler ran three times, and applied
-- once
CREATE SEQUENCE flaky_calls;
CREATE FUNCTION flaky(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	IF nextval('flaky_calls') % 2 = 0 THEN
		RAISE EXCEPTION 'flaky on an even call';
	END IF;
	RETURN state;
END $$;
SELECT machine_define('flaky_m', '{
  "initial": "W",
  "states": {
    "W": {"on": {"Go": {"target": "Done", "handler": "flaky"},
                 "Boom": {"target": "W", "handler": "explode"}},
          "after": [{"delay": "1 hour", "event": {"_tag": "Go"}}]},
    "Done": {"final": true}
  },
  "persistence": {}
}') \g /dev/null
SELECT machine_spawn('f-1', 'flaky_m'), machine_spawn('f-2', 'flaky_m') \g /dev/null
UPDATE machine.timers SET due_at = now() - interval '2 hours' WHERE actor_id = 'f-1';
UPDATE machine.timers SET due_at = now() - interval '1 hour', event = '{"_tag": "Boom"}'
 WHERE actor_id = 'f-2';
SELECT * FROM machine_run_maintenance();
SELECT id, version, state_tag FROM machine.actors WHERE id IN ('f-1', 'f-2') ORDER BY id;
SELECT actor_id, count(*) FROM machine.events WHERE actor_id IN ('f-1', 'f-2') GROUP BY 1 ORDER BY 1;
SELECT last_value AS flaky_calls FROM flaky_calls;

-- max_items bounds a pass
SELECT machine_spawn('bulk-' || i, 'offer') FROM generate_series(1, 5) i \g /dev/null
SELECT expire_all();
SELECT * FROM machine_run_maintenance(3);
SELECT * FROM machine_run_maintenance(100);
SELECT * FROM machine_run_maintenance(0);

-- spaced snapshots: taken for actors whose version moved and whose latest
-- snapshot is older than the spacing
SELECT machine_define('spaced_doc', '{
  "initial": "Draft",
  "states": {"Draft": {"on": {"Edit": {"target": "Draft", "merge": true}}}},
  "persistence": {"snapshotSchedule": "spaced 1 hour"}
}');
SELECT snapshot_spacing FROM machine.machines WHERE name = 'spaced_doc';
SELECT machine_spawn('doc-' || i, 'spaced_doc') FROM generate_series(1, 3) i;
SELECT machine_send('doc-1', '{"_tag": "Edit", "v": 1}'), machine_send('doc-2', '{"_tag": "Edit", "v": 1}');
SELECT snapshots_taken FROM machine_run_maintenance();
SELECT actor_id, version FROM machine.snapshots WHERE actor_id LIKE 'doc-%' ORDER BY 1, 2;
SELECT count(*) AS listed FROM machine.snapshots_due;
-- version moved, but the snapshot is recent: the actor is listed, due when
-- the snapshot is an hour old; once that hour has passed, one more
SELECT machine_send('doc-1', '{"_tag": "Edit", "v": 2}');
SELECT actor_id, due_at BETWEEN now() + interval '59 minutes' AND now() + interval '1 hour' AS in_an_hour
  FROM machine.snapshots_due;
SELECT snapshots_taken FROM machine_run_maintenance();
UPDATE machine.snapshots_due SET due_at = now() - interval '1 second' WHERE actor_id = 'doc-1';
SELECT snapshots_taken FROM machine_run_maintenance();
SELECT actor_id, version FROM machine.snapshots WHERE actor_id LIKE 'doc-%' ORDER BY 1, 2;
-- stopped actors are left alone, and leave the list
SELECT machine_send('doc-2', '{"_tag": "Edit", "v": 2}');
SELECT machine_stop('doc-2');
UPDATE machine.snapshots_due SET due_at = now() - interval '1 second';
SELECT snapshots_taken FROM machine_run_maintenance();
SELECT count(*) AS listed FROM machine.snapshots_due;
-- so do actors that no longer exist
SELECT machine_send('doc-3', '{"_tag": "Edit", "v": 1}');
SELECT machine_delete('doc-3');
SELECT snapshots_taken FROM machine_run_maintenance();
SELECT count(*) AS listed FROM machine.snapshots_due;
-- a machine that gets a spacing lists its actors that moved past their
-- latest snapshot
SELECT machine_define('later_spaced', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}, "persistence": {}}');
SELECT machine_spawn('ls-' || i, 'later_spaced') FROM generate_series(1, 2) i;
SELECT machine_send('ls-1', '{"_tag": "Go"}');
SELECT machine_define('later_spaced', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}, "persistence": {"snapshotSchedule": "spaced 1 minute"}}');
SELECT actor_id FROM machine.snapshots_due;
SELECT snapshots_taken FROM machine_run_maintenance();
SELECT actor_id, version FROM machine.snapshots WHERE actor_id LIKE 'ls-%';
SELECT machine_drop('later_spaced', true);
