-- Testing helpers: machine_simulate and the assertions

CREATE FUNCTION big_enough(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'size')::int >= 10 $$;
CREATE TABLE simulate_effects (what text);
CREATE FUNCTION record_entry(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO simulate_effects VALUES (state->>'_tag') $$;

SELECT machine_define('door', '{
  "initial": "Closed",
  "states": {
    "Closed": {"on": {"Open": "Opened", "Lock": "Locked"}, "entry": ["record_entry"]},
    "Opened": {"on": {"Close": "Closed", "Smash": [{"target": "Broken", "guard": "big_enough"}]}},
    "Locked": {"on": {"Unlock": "Closed"}},
    "Broken": {"final": true}
  },
  "events": {"Smash": {"size": "number"}}
}');

SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Open"}', '{"_tag": "Close"}', '{"_tag": "Lock"}']::jsonb[], '{"room": 1}');
-- stops at a final state
SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Open"}', '{"_tag": "Smash", "size": 12}', '{"_tag": "Close"}']::jsonb[]);
-- a refused guard leaves the event unhandled
SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Open"}', '{"_tag": "Smash", "size": 2}']::jsonb[]);
SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Open"}', '{"_tag": "Smash"}']::jsonb[]);
SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Open"}', NULL]::jsonb[]);
SELECT * FROM machine_simulate('door', '{}');
SELECT * FROM machine_simulate('nope', '{}');
SELECT * FROM machine_simulate('door', NULL);
SELECT * FROM machine_simulate('door', '{}', '[]');

-- from_state: start in a chosen state, its data included
SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Close"}', '{"_tag": "Lock"}']::jsonb[],
                               from_state => '{"_tag": "Opened", "room": 7}');
-- from a final state, nothing moves
SELECT * FROM machine_simulate('door', ARRAY['{"_tag": "Open"}']::jsonb[], from_state => '{"_tag": "Broken"}');
-- NULL: the initial state
SELECT * FROM machine_simulate('door', '{}', from_state => NULL);
SELECT * FROM machine_simulate('door', '{}', from_state => '{"_tag": "Ajar"}');
SELECT * FROM machine_simulate('door', '{}', from_state => '{"room": 1}');
SELECT * FROM machine_simulate('door', '{}', from_state => '[1]');
SELECT * FROM machine_simulate('door', '{}', '{"room": 1}', '{"_tag": "Opened"}');

-- with "unhandled": "ignore", an ignored event makes no step
SELECT machine_define('loader', '{
  "initial": "Idle",
  "unhandled": "ignore",
  "states": {
    "Idle": {"on": {"Load": "Loading"}},
    "Loading": {"on": {"Done": "Idle", "Fail": [{"target": "Idle", "guard": "big_enough"}]}}
  },
  "events": {"Fail": {"size": "number"}}
}');
SELECT * FROM machine_simulate('loader', ARRAY['{"_tag": "Done"}', '{"_tag": "Load"}', '{"_tag": "Fail", "size": 1}',
                                             '{"_tag": "Load"}', '{"_tag": "Fail", "size": 20}']::jsonb[]);
SELECT machine_assert_path('loader', ARRAY['{"_tag": "Done"}', '{"_tag": "Load"}']::jsonb[], ARRAY['Idle', 'Loading']);
SELECT machine_assert_path('loader', ARRAY['{"_tag": "Done"}', '{"_tag": "Load"}']::jsonb[], ARRAY['Idle', 'Idle', 'Loading']);
SELECT machine_assert_reaches('loader', ARRAY['{"_tag": "Done"}']::jsonb[], 'Idle');

-- pure: no effect ran, no actor exists
SELECT count(*) AS effects FROM simulate_effects;
SELECT count(*) AS actors FROM machine.instances WHERE machine = 'door';

-- assertions
SELECT machine_assert_path('door', ARRAY['{"_tag": "Lock"}', '{"_tag": "Unlock"}']::jsonb[],
                           ARRAY['Closed', 'Locked', 'Closed']);
SELECT machine_assert_path('door', ARRAY['{"_tag": "Lock"}']::jsonb[], ARRAY['Closed', 'Opened']);
SELECT machine_assert_path('door', ARRAY['{"_tag": "Lock"}']::jsonb[], ARRAY['Closed']);
SELECT machine_assert_reaches('door', ARRAY['{"_tag": "Open"}', '{"_tag": "Smash", "size": 50}']::jsonb[],
                              'Broken', '{"house": 9}');
SELECT machine_assert_reaches('door', ARRAY['{"_tag": "Open"}']::jsonb[], 'Broken');
SELECT machine_assert_never_reaches('door', ARRAY['{"_tag": "Lock"}', '{"_tag": "Unlock"}']::jsonb[], 'Opened');
SELECT machine_assert_never_reaches('door', ARRAY['{"_tag": "Open"}', '{"_tag": "Close"}']::jsonb[], 'Opened');
SELECT machine_assert_never_reaches('door', '{}', 'Closed');

-- a failed assertion is SQLSTATE P0004, like PL/pgSQL's ASSERT
DO $$
BEGIN
	PERFORM machine_assert_reaches('door', '{}', 'Broken');
EXCEPTION WHEN assert_failure THEN
	RAISE NOTICE 'caught %', SQLSTATE;
END $$;
