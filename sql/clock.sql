-- Time in tests: machine_state_at reads the journal as of a time, and
-- machine_fire_timers fires the timers that would be due at a time (a test
-- clock: nothing waits)

CREATE TABLE clock_log (actor text, what text, by_role text);
CREATE FUNCTION clock_entry(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO clock_log VALUES (actor_id, (state->>'_tag') || ' on ' || (event->>'_tag'), current_user) $$;
CREATE FUNCTION clock_fuse(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the fuse blew'; END $$;

SELECT machine_define('clock_offer', '{
  "initial": "Open",
  "states": {
    "Open": {"on": {"Expire": "Expired", "Remind": {"target": "Open", "merge": true},
                    "Snooze": "Snoozed", "Arm": "Trap"},
             "after": [{"delay": "1 hour", "event": {"_tag": "Expire"}},
                       {"delay": "10 minutes", "event": {"_tag": "Remind", "n": 1}}]},
    "Snoozed": {"on": {"Wake": "Open"}, "entry": ["clock_entry"],
                "after": [{"delay": "5 minutes", "event": {"_tag": "Wake"}}]},
    "Trap": {"on": {"Fuse": {"target": "Trap", "handler": "clock_fuse"}},
             "after": [{"delay": "1 minute", "event": {"_tag": "Fuse"}}]},
    "Expired": {"final": true, "entry": ["clock_entry"]}
  },
  "persistence": {"snapshotSchedule": "every 2"}
}') \g /dev/null

-- machine_fire_timers: nothing is due now
SELECT machine_spawn('clock-' || i, 'clock_offer') FROM generate_series(1, 3) i \g /dev/null
SELECT machine_fire_timers(now());
-- in a quarter of an hour the reminders are due: each fires once
SELECT machine_fire_timers(now() + interval '15 minutes');
SELECT actor_id, machine_state(actor_id), machine_version(actor_id)
  FROM (VALUES ('clock-1'), ('clock-2'), ('clock-3')) AS a(actor_id);
SELECT machine_fire_timers(now() + interval '15 minutes');

-- in the caller's transaction: rolled back, the timers are still there
BEGIN;
SELECT machine_fire_timers(now() + interval '2 hours');
SELECT count(*) AS done FROM machine.instances WHERE actor_id LIKE 'clock-%' AND status = 'done';
ROLLBACK;
SELECT count(*) AS pending FROM machine.timers WHERE actor_id LIKE 'clock-%';

-- earliest first; timers armed by the timers it fires wait for the next call
SELECT machine_send('clock-3', '{"_tag": "Snooze"}') \g /dev/null
SELECT machine_fire_timers(now() + interval '2 hours');
SELECT * FROM clock_log ORDER BY actor, what;
SELECT actor_id, state_tag, event->>'_tag' AS event FROM machine.timers
 WHERE actor_id LIKE 'clock-%' ORDER BY actor_id, seq;
SELECT machine_fire_timers(now() + interval '2 hours');
SELECT actor_id, machine_state(actor_id) ->> '_tag' AS state
  FROM (VALUES ('clock-1'), ('clock-2'), ('clock-3')) AS a(actor_id);

-- a failing timer is logged and dropped, as in the background worker
SELECT machine_spawn('clock-trap', 'clock_offer') \g /dev/null
SELECT machine_send('clock-trap', '{"_tag": "Arm"}') \g /dev/null
SELECT machine_fire_timers(now() + interval '1 day');
SELECT count(*) AS pending FROM machine.timers WHERE actor_id = 'clock-trap';

-- only the timers of roles whose privileges the caller has
CREATE ROLE regress_clock_armer;
CREATE ROLE regress_clock_other;
SELECT machine_grant('clock_offer', 'regress_clock_armer', 'send');
SELECT machine_grant('clock_offer', 'regress_clock_other', 'send');
GRANT INSERT ON clock_log TO regress_clock_armer;
SET ROLE regress_clock_armer;
SELECT machine_spawn('clock-armed', 'clock_offer') ->> '_tag' AS spawned;
SET ROLE regress_clock_other;
SELECT machine_fire_timers(now() + interval '2 hours');
SET ROLE regress_clock_armer;
SELECT machine_fire_timers(now() + interval '2 hours');
RESET ROLE;
SELECT * FROM clock_log WHERE actor = 'clock-armed';

-- bad input
SELECT machine_fire_timers(NULL);
BEGIN READ ONLY;
SELECT machine_fire_timers(now());
ROLLBACK;

-- machine_state_at: the journal as of a time (recorded_at is the start of
-- the event's transaction); the times are set by hand here
SELECT machine_spawn('clock-past', 'clock_offer') \g /dev/null
SELECT machine_send('clock-past', '{"_tag": "Remind", "n": 1}') \g /dev/null
SELECT machine_send('clock-past', '{"_tag": "Remind", "n": 2}') \g /dev/null
SELECT machine_send('clock-past', '{"_tag": "Snooze"}') \g /dev/null
UPDATE machine.instances SET created_at = '2026-01-01 10:00+00' WHERE actor_id = 'clock-past';
UPDATE machine.events SET recorded_at = '2026-01-01 10:00+00'::timestamptz + version * interval '1 hour'
 WHERE actor_id = 'clock-past';
SELECT at, machine_state_at('clock-past', at)
  FROM unnest(ARRAY['2026-01-01 09:59:59+00', '2026-01-01 10:00+00', '2026-01-01 11:30+00',
                    '2026-01-01 12:00+00', '2026-01-01 13:00+00', 'infinity']::timestamptz[]) AS at;
-- the fold runs from the snapshot at version 2, through the journal
SELECT version FROM machine.snapshots WHERE actor_id = 'clock-past';
SELECT machine_state_at('nobody', now()) IS NULL AS unknown,
       machine_state_at(NULL, now()) IS NULL AS null_id,
       machine_state_at('clock-past', NULL) IS NULL AS null_time;

-- without a journal there is no past to read
SELECT machine_define('clock_volatile', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}}') \g /dev/null
SELECT machine_spawn('clock-v', 'clock_volatile') \g /dev/null
SELECT machine_state_at('clock-v', now());

-- after machine_compact, a time whose journal rows were removed is refused
SELECT machine_compact('clock_offer') > 0 AS compacted;
SELECT horizon FROM machine.compactions WHERE actor_id = 'clock-past';
SELECT machine_state_at('clock-past', '2026-01-01 11:30+00');
SELECT machine_state_at('clock-past', '2026-01-01 13:00+00');
SELECT machine_state_at('clock-past', '2026-01-01 09:00+00') IS NULL AS before_spawn;
