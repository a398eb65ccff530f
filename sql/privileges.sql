-- Privileges: the tables belong to the extension and no application role
-- may write them; roles act through the functions, which check the
-- machine's privileges (owner, or machine_grant: read, send, delete,
-- define).  Functions run as the role that sends.

CREATE ROLE regress_machine_admin;		-- creates and owns machine "job"
CREATE ROLE regress_machine_definer;	-- may redefine it
CREATE ROLE regress_machine_app;		-- may send
CREATE ROLE regress_machine_reader;		-- may read
CREATE ROLE regress_machine_eraser;		-- may delete actors
CREATE ROLE regress_machine_stranger;	-- nothing

-- what the README grants: creating machines is EXECUTE on machine_define
GRANT EXECUTE ON FUNCTION machine_define(text, jsonb)
   TO regress_machine_admin, regress_machine_definer;

CREATE SCHEMA app_code AUTHORIZATION regress_machine_admin;
GRANT USAGE ON SCHEMA app_code TO PUBLIC;
SET ROLE regress_machine_admin;
CREATE FUNCTION app_code.who(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('by', current_user) $$;
SELECT machine_define('job', '{
  "initial": "Queued",
  "states": {"Queued": {"on": {"Run": {"target": "Running", "handler": "app_code.who"}}},
             "Running": {"on": {"Finish": "Finished"},
                         "after": [{"delay": "1 hour", "event": {"_tag": "Finish"}}]},
             "Finished": {"final": true}},
  "persistence": {"snapshotSchedule": "every 1"},
  "entity": {}
}');
SELECT machine_grant('job', 'regress_machine_definer', 'define');
SELECT machine_grant('job', 'regress_machine_app', 'send');
SELECT machine_grant('job', 'regress_machine_reader', 'read');
SELECT machine_grant('job', 'regress_machine_eraser', 'delete');
SELECT name, revision, owner, defined_by, acl FROM machine.definitions;
RESET ROLE;

-- the application role does its work; handlers run as it
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
SELECT actor_id, armed_by FROM machine.pending_timers;
SELECT * FROM machine_simulate('job', ARRAY['{"_tag": "Run"}']::jsonb[]);
SELECT machine_has_privilege('job', 'send'), machine_has_privilege('job', 'delete');
RESET ROLE;

-- The matrix: each role, each function, each table.  Every call runs as
-- the role in a subtransaction that is rolled back, so each one starts
-- from the same actors: "ok", a value it returned, or its SQLSTATE.
SELECT machine_spawn('m-1', 'job');
SELECT machine_spawn('m-stopped', 'job'), machine_stop('m-stopped');
SELECT machine_subscribe('sub_super');
CREATE FUNCTION pg_temp.try(role text, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', role);
		EXECUTE stmt INTO result;
		RAISE SQLSTATE 'MZ000' USING MESSAGE = coalesce(result, 'ok');
	EXCEPTION WHEN SQLSTATE 'MZ000' THEN
		result := SQLERRM;
	WHEN OTHERS THEN
		result := SQLSTATE;
	END;
	RESET ROLE;
	RETURN result;
END $$;
SET client_min_messages = error;
SELECT call,
       pg_temp.try('regress_machine_admin', stmt) AS owner,
       pg_temp.try('regress_machine_definer', stmt) AS definer,
       pg_temp.try('regress_machine_app', stmt) AS sender,
       pg_temp.try('regress_machine_reader', stmt) AS reader,
       pg_temp.try('regress_machine_eraser', stmt) AS eraser,
       pg_temp.try('regress_machine_stranger', stmt) AS stranger
  FROM (VALUES
  ('machine_define (new)', $$SELECT 'ok' FROM machine_define('other', '{"initial": "A", "states": {"A": {}}}')$$),
  ('machine_define (redefine)', $$SELECT 'ok' FROM machine_define('job', machine_definition('job'))$$),
  ('machine_definition', $$SELECT 'ok' FROM machine_definition('job')$$),
  ('machine_definition (revision)', $$SELECT machine_definition('job', 1) ->> 'initial'$$),
  ('machine_check_define', $$SELECT count(*)::text FROM machine_check_define('job', machine_definition('job'))$$),
  ('machine_drop', $$SELECT machine_drop('job', true)::text$$),
  ('machine.functions_changed', $$SELECT 'ok' FROM machine.functions_changed()$$),
  ('machine_grant', $$SELECT 'ok' FROM machine_grant('job', 'regress_machine_stranger', 'read')$$),
  ('machine_revoke', $$SELECT 'ok' FROM machine_revoke('job', 'regress_machine_app', 'send')$$),
  ('machine_has_privilege', $$SELECT machine_has_privilege('job', 'read')::text$$),
  ('machine_spawn', $$SELECT 'ok' FROM machine_spawn('new', 'job')$$),
  ('machine_send', $$SELECT 'ok' FROM machine_send('m-1', '{"_tag": "Run"}')$$),
  ('machine_send_entity', $$SELECT 'ok' FROM machine_send_entity('job', 'e-new', '{"_tag": "Run"}')$$),
  ('machine_send_many', $$SELECT 'ok' FROM machine_send_many(ARRAY['m-1'], ARRAY['{"_tag": "Run"}']::jsonb[])$$),
  ('machine_state', $$SELECT machine_state('m-1') ->> '_tag'$$),
  ('machine_version', $$SELECT machine_version('m-1')::text$$),
  ('machine_stop', $$SELECT machine_stop('m-1')::text$$),
  ('machine_delete', $$SELECT machine_delete('m-1')::text$$),
  ('machine_persist', $$SELECT machine_persist('m-1')::text$$),
  ('machine_restore', $$SELECT machine_restore('m-stopped') ->> '_tag'$$),
  ('machine_restore_many', $$SELECT status FROM machine_restore_many(ARRAY['m-stopped'])$$),
  ('machine_restore_all', $$SELECT status FROM machine_restore_all('job')$$),
  ('machine_replay_to', $$SELECT machine_replay_to('m-1', 0) ->> '_tag'$$),
  ('machine_rewind', $$SELECT 'ok' FROM machine_rewind('m-1', 0)$$),
  ('machine_history', $$SELECT count(*)::text FROM machine_history('m-stopped')$$),
  ('machine_state_at', $$SELECT machine_state_at('m-1', 'infinity') ->> '_tag'$$),
  ('machine_simulate', $$SELECT count(*)::text FROM machine_simulate('job', ARRAY['{"_tag": "Run"}']::jsonb[])$$),
  ('machine_assert_reaches', $$SELECT 'ok' FROM machine_assert_reaches('job', ARRAY['{"_tag": "Run"}']::jsonb[], 'Running')$$),
  ('machine_diagram', $$SELECT split_part(machine_diagram('job', 'dot'), ' ', 1)$$),
  ('machine_run_maintenance', $$SELECT 'ok' FROM machine_run_maintenance()$$),
  ('machine_fire_timers', $$SELECT machine_fire_timers('infinity')::text$$),
  ('machine_slice_of', $$SELECT machine_slice_of('m-1')::text$$),
  ('machine_slice_export', $$SELECT 'ok' FROM machine_slice_export(0, 1024)$$),
  ('machine_slice_import', $$SELECT machine_slice_import('{}')::text$$),
  ('machine_slice_delete', $$SELECT machine_slice_delete(0, 1024)::text$$),
  ('machine_subscribe', $$SELECT 'ok' FROM machine_subscribe('sub_new', 'job')$$),
  ('machine_poll (own: rows it may read)', $$SELECT count(*)::text FROM (SELECT machine_subscribe('sub_own')) s, machine_poll('sub_own', 1000)$$),
  ('machine_poll (another role''s)', $$SELECT count(*)::text FROM machine_poll('sub_super')$$),
  ('machine_ack (another role''s)', $$SELECT 'ok' FROM machine_ack('sub_super', 1)$$),
  ('machine_unsubscribe (another role''s)', $$SELECT machine_unsubscribe('sub_super')::text$$),
  ('view machine.subscriptions', $$SELECT count(*)::text FROM machine.subscriptions$$),
  ('view machine.definitions', $$SELECT count(*)::text FROM machine.definitions$$),
  ('view machine.actors', $$SELECT count(*)::text FROM machine.actors$$),
  ('view machine.pending_timers', $$SELECT count(*)::text FROM machine.pending_timers$$),
  ('view machine.journal_stats', $$SELECT count(*)::text FROM machine.journal_stats$$),
  ('machine_compact', $$SELECT machine_compact('job')::text$$),
  ('machine.memory_actors', $$SELECT count(*)::text FROM machine.memory_actors()$$),
  ('machine.memory_pending_timers', $$SELECT count(*)::text FROM machine.memory_pending_timers()$$)
  ) AS calls(call, stmt);
SELECT format('%s %s', priv, t) AS call,
       pg_temp.try('regress_machine_admin', stmt) AS owner,
       pg_temp.try('regress_machine_definer', stmt) AS definer,
       pg_temp.try('regress_machine_app', stmt) AS sender,
       pg_temp.try('regress_machine_reader', stmt) AS reader,
       pg_temp.try('regress_machine_eraser', stmt) AS eraser,
       pg_temp.try('regress_machine_stranger', stmt) AS stranger
  FROM (VALUES ('machine.machines', 'revision'), ('machine.revisions', 'revision'),
               ('machine.instances', 'version'),
               ('machine.events', 'version'), ('machine.snapshots', 'version'),
               ('machine.timers', 'armed_by'), ('machine.compactions', 'horizon'),
               ('machine.subscribers', 'members'),
               ('machine.checkpoints', 'position'), ('machine.snapshots_due', 'due_at'),
               ('machine.memory_instances', 'version'), ('machine.memory_events', 'version'),
               ('machine.memory_snapshots', 'version'), ('machine.memory_timers', 'armed_by'),
               ('machine.memory_snapshots_due', 'due_at'),
               ('machine.postponed', 'state_tag'), ('machine.memory_postponed', 'state_tag')) AS tables(t, col),
       LATERAL (VALUES
         ('SELECT', format('SELECT ''ok'' FROM %s LIMIT 1', t)),
         ('INSERT', format('INSERT INTO %s DEFAULT VALUES', t)),
         ('UPDATE', format('UPDATE %s SET %I = %2$I', t, col)),
         ('DELETE', format('DELETE FROM %s', t)),
         ('TRUNCATE', format('TRUNCATE %s CASCADE', t))) AS s(priv, stmt);
SELECT 'nextval ' || seq AS call,
       pg_temp.try(r, format('SELECT nextval(%L)::text', 'machine.' || seq)) AS outcome
  FROM unnest(ARRAY['regress_machine_admin', 'regress_machine_app', 'regress_machine_stranger']) AS r,
       unnest(ARRAY['timers_timer_id_seq', 'events_position_seq']) AS seq;
RESET client_min_messages;
-- the superuser's own actors are untouched by all of it
SELECT id, version, status FROM machine.actors WHERE id LIKE 'm-%' ORDER BY id;
SELECT name, member, checkpoint FROM machine.subscriptions;
SELECT machine_unsubscribe('sub_super');

-- EXECUTE on the handler is checked for the sending role
REVOKE EXECUTE ON FUNCTION app_code.who(jsonb, jsonb) FROM PUBLIC;
SET ROLE regress_machine_app;
SELECT machine_spawn('job-2', 'job');
SELECT machine_send('job-2', '{"_tag": "Run"}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION app_code.who(jsonb, jsonb) TO PUBLIC;

-- A privilege held through a group role ends with the membership, in the
-- same session: nothing cached outlives a REVOKE (of the role, of the
-- machine's privilege, or of EXECUTE on a function).
CREATE ROLE regress_machine_senders;
CREATE ROLE regress_machine_alice;
GRANT regress_machine_senders TO regress_machine_alice;
SET ROLE regress_machine_admin;
SELECT machine_grant('job', 'regress_machine_senders', 'send');
RESET ROLE;
SET ROLE regress_machine_alice;
SELECT machine_spawn('alice-1', 'job');
RESET ROLE;
REVOKE regress_machine_senders FROM regress_machine_alice;
SET ROLE regress_machine_alice;
SELECT machine_send('alice-1', '{"_tag": "Run"}');
RESET ROLE;
GRANT regress_machine_senders TO regress_machine_alice;
SET ROLE regress_machine_alice;
SELECT machine_send('alice-1', '{"_tag": "Run"}');
RESET ROLE;
SET ROLE regress_machine_admin;
SELECT machine_revoke('job', 'regress_machine_senders', 'send');
RESET ROLE;
SET ROLE regress_machine_alice;
SELECT machine_send('alice-1', '{"_tag": "Finish"}');
RESET ROLE;
-- EXECUTE held only through the group: the handler is refused after the
-- membership ends, in the same session
SET ROLE regress_machine_admin;
SELECT machine_grant('job', 'regress_machine_alice', 'send');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION app_code.who(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_code.who(jsonb, jsonb) TO regress_machine_senders;
SET ROLE regress_machine_alice;
SELECT machine_spawn('alice-2', 'job');
SELECT machine_send('alice-2', '{"_tag": "Run"}');
RESET ROLE;
REVOKE regress_machine_senders FROM regress_machine_alice;
SET ROLE regress_machine_alice;
SELECT machine_spawn('alice-3', 'job');
SELECT machine_send('alice-3', '{"_tag": "Run"}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION app_code.who(jsonb, jsonb) TO PUBLIC;

-- grants name real privileges and real roles; only the owner grants
SET ROLE regress_machine_admin;
SELECT machine_grant('job', 'regress_machine_app', 'everything');
SELECT machine_grant('nope', 'regress_machine_app', 'read');
SELECT machine_has_privilege('nope', 'read');
RESET ROLE;
SET ROLE regress_machine_definer;
SELECT machine_grant('job', 'regress_machine_definer', 'delete');
RESET ROLE;

-- a role that owns a machine keeps it when another role redefines it
SET ROLE regress_machine_definer;
SELECT machine_define('job', machine_definition('job'));
RESET ROLE;
SELECT name, revision, owner, defined_by FROM machine.definitions WHERE name = 'job';

SELECT machine_drop('job', true);
DROP SCHEMA app_code CASCADE;
DROP OWNED BY regress_machine_admin, regress_machine_definer, regress_machine_app,
	regress_machine_reader, regress_machine_eraser, regress_machine_stranger,
	regress_machine_senders, regress_machine_alice;
DROP ROLE regress_machine_admin, regress_machine_definer, regress_machine_app,
	regress_machine_reader, regress_machine_eraser, regress_machine_stranger,
	regress_machine_senders, regress_machine_alice;
