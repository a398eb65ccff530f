-- Privileges: a non-superuser role granted usage does everything an
-- application needs; a role without grants can neither read nor change
-- actors.  Functions run as the role that sends.

CREATE ROLE regress_machine_admin;
CREATE ROLE regress_machine_app;
CREATE ROLE regress_machine_stranger;

-- what an application role needs (the README's GRANTs)
GRANT USAGE ON SCHEMA machine TO regress_machine_app;
GRANT SELECT ON machine.machines, machine.actors, machine.pending_timers TO regress_machine_app;
GRANT SELECT, INSERT, UPDATE, DELETE
   ON machine.instances, machine.events, machine.snapshots, machine.timers TO regress_machine_app;
-- and a role that also defines machines
GRANT regress_machine_app TO regress_machine_admin;
GRANT INSERT, UPDATE, DELETE ON machine.machines TO regress_machine_admin;

CREATE SCHEMA app_code AUTHORIZATION regress_machine_admin;
SET ROLE regress_machine_admin;
CREATE FUNCTION app_code.who(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('by', current_user) $$;
SELECT machine_define('job', '{
  "initial": "Queued",
  "states": {"Queued": {"on": {"Run": {"target": "Running", "handler": "app_code.who"}}},
             "Running": {"on": {"Finish": "Finished"}},
             "Finished": {"final": true}},
  "persistence": {"snapshotSchedule": "every 1"}
}');
RESET ROLE;
GRANT USAGE ON SCHEMA app_code TO regress_machine_app;

SET ROLE regress_machine_app;
SELECT machine_spawn('job-1', 'job');
SELECT machine_send('job-1', '{"_tag": "Run"}');
SELECT machine_state('job-1'), machine_version('job-1');
SELECT machine_persist('job-1');
SELECT machine_stop('job-1');
SELECT machine_restore('job-1');
SELECT machine_replay_to('job-1', 0);
SELECT version, state FROM machine_history('job-1');
SELECT machine_rewind('job-1', 0);
SELECT id, status FROM machine.actors WHERE machine = 'job';
SELECT * FROM machine_simulate('job', ARRAY['{"_tag": "Run"}']::jsonb[]);
SELECT machine_delete('job-1');
-- but it cannot redefine machines
SELECT machine_define('job', '{"initial": "A", "states": {"A": {}}}');
RESET ROLE;

-- EXECUTE on the handler is checked for the sending role
REVOKE EXECUTE ON FUNCTION app_code.who(jsonb, jsonb) FROM PUBLIC;
SET ROLE regress_machine_app;
SELECT machine_spawn('job-2', 'job');
SELECT machine_send('job-2', '{"_tag": "Run"}');
RESET ROLE;

-- a role without grants can do nothing
SET ROLE regress_machine_stranger;
SELECT machine_state('job-2');
SELECT machine_send('job-2', '{"_tag": "Run"}');
SELECT machine_spawn('job-3', 'job');
SELECT * FROM machine.actors;
SELECT machine_define('mine', '{"initial": "A", "states": {"A": {}}}');
RESET ROLE;

SELECT machine_drop('job', true);
DROP SCHEMA app_code CASCADE;
DROP OWNED BY regress_machine_app, regress_machine_admin, regress_machine_stranger;
DROP ROLE regress_machine_admin, regress_machine_app, regress_machine_stranger;
