-- Security: no function of the extension is SECURITY DEFINER; the install
-- script and the extension's own SQL mean the same under a hostile
-- search_path; actor ids, tags, machine names and function names are data,
-- never SQL; guards, handlers and effects run as the role that sends, and a
-- timer as the role that armed it, isolated from the session that fires it,
-- with code that only roles allowed to act as it chose; a role without
-- privileges on a machine can neither read nor change its actors, and no
-- application role writes the extension's tables.
--
-- This file drops and re-creates the extension: it runs last, and leaves
-- the extension installed as it found it (in schema public).

\set SHOW_CONTEXT never

-- 1. No SECURITY DEFINER function: this query must return no row.  The
-- second one shows that the first looks at the extension's functions.
SELECT p.oid::regprocedure AS security_definer
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'machine')
   AND d.deptype = 'e'
   AND p.prosecdef;
SELECT count(*) >= 20 AS many_functions,
       count(*) FILTER (WHERE p.oid = 'machine_send(text,jsonb,bigint,text)'::regprocedure) AS has_machine_send
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'machine')
   AND d.deptype = 'e';

-- 2. A hostile search_path.  Schema evil holds objects that would capture
-- every unqualified name the install script and the extension's internal
-- SQL use: each one logs its call (the log survives only when the statement
-- succeeds), raises a WARNING (which shows even when it does not), and
-- returns a harmful value.
CREATE ROLE regress_sec_admin;
CREATE ROLE regress_sec_app;
CREATE ROLE regress_sec_stranger;
CREATE ROLE regress_sec_super SUPERUSER;

CREATE SCHEMA evil;
CREATE TABLE evil.hijack_log (what text);
CREATE FUNCTION evil.hijacked(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO evil.hijack_log VALUES (what);
	RAISE WARNING 'hijacked: %', what;
END $$;

CREATE FUNCTION evil.now() RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('now()'); RETURN 'infinity'; END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('clock_timestamp()'); RETURN 'infinity'; END $$;
CREATE FUNCTION evil.octet_length(text) RETURNS integer
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('octet_length(text)'); RETURN 0; END $$;
CREATE FUNCTION evil.pg_extension_config_dump(text, text) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('pg_extension_config_dump(text,text)'); END $$;
CREATE FUNCTION evil.pg_has_role(oid, text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('pg_has_role(oid,text)'); RETURN true; END $$;
CREATE FUNCTION evil.count_step(bigint) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('count(*)'); RETURN 42; END $$;
CREATE AGGREGATE evil.count(*) (SFUNC = evil.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION evil.max_step(bigint, bigint) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('max(bigint)'); RETURN 42; END $$;
CREATE AGGREGATE evil.max(bigint) (SFUNC = evil.max_step, STYPE = bigint);

CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('=(text,text)'); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
CREATE FUNCTION evil.text_ne(text, text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('<>(text,text)'); RETURN true; END $$;
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_ne);
CREATE FUNCTION evil.int8_eq(bigint, bigint) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('=(bigint,bigint)'); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_eq);
CREATE FUNCTION evil.int8_le(bigint, bigint) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('<=(bigint,bigint)'); RETURN true; END $$;
CREATE OPERATOR evil.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_le);
CREATE FUNCTION evil.int8_gt(bigint, bigint) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('>(bigint,bigint)'); RETURN true; END $$;
CREATE OPERATOR evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_gt);
CREATE FUNCTION evil.int8_ge(bigint, bigint) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('>=(bigint,bigint)'); RETURN true; END $$;
CREATE OPERATOR evil.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_ge);
CREATE FUNCTION evil.int8_pl(bigint, bigint) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('+(bigint,bigint)'); RETURN 0; END $$;
CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_pl);
CREATE FUNCTION evil.int4_pl(integer, integer) RETURNS integer
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('+(integer,integer)'); RETURN 0; END $$;
CREATE OPERATOR evil.+ (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.int4_pl);
CREATE FUNCTION evil.ts_pl(timestamptz, interval) RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('+(timestamptz,interval)'); RETURN '-infinity'; END $$;
CREATE OPERATOR evil.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = evil.ts_pl);
CREATE FUNCTION evil.ts_mi(timestamptz, interval) RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('-(timestamptz,interval)'); RETURN 'infinity'; END $$;
CREATE OPERATOR evil.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = evil.ts_mi);
CREATE FUNCTION evil.ts_le(timestamptz, timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('<=(timestamptz,timestamptz)'); RETURN true; END $$;
CREATE OPERATOR evil.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.ts_le);
CREATE FUNCTION evil.ts_gt(timestamptz, timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('>(timestamptz,timestamptz)'); RETURN true; END $$;
CREATE OPERATOR evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.ts_gt);

-- the traps work: with evil ahead of pg_catalog every one of these is
-- captured; and an unqualified pg_extension_config_dump('...', '') would
-- be captured even with pg_catalog first, as in an install script (text
-- is a better match for its untyped arguments than regclass)
SET search_path = evil, public, pg_catalog;
SELECT now() IS NOT NULL AS now, 'a'::text = 'b' AS text_eq,
       (SELECT count(*) FROM (VALUES (1)) v) AS count,
       2::bigint <= 1::bigint AS int8_le;
SET search_path = pg_catalog, evil;
SELECT pg_extension_config_dump('machine.machines', '');
RESET search_path;
SELECT what FROM evil.hijack_log ORDER BY what;
TRUNCATE evil.hijack_log;

-- 2a. The install script under the hostile search_path.  CREATE EXTENSION
-- without SCHEMA installs into the first schema of the path, evil, and
-- runs the script with evil (and pg_catalog, implicitly first) in view.
SET client_min_messages = warning;
DROP EXTENSION machine CASCADE;
RESET client_min_messages;
SET search_path = evil, public, pg_catalog;
-- a schema "machine" that exists already (someone else's) is never adopted
CREATE SCHEMA machine AUTHORIZATION regress_sec_stranger;
CREATE EXTENSION machine;
DROP SCHEMA machine;
CREATE EXTENSION machine;
SELECT extnamespace::regnamespace AS installed_in FROM pg_extension
 WHERE extname OPERATOR(pg_catalog.=) 'machine';
-- nothing of evil was called, and nothing is granted but USAGE on the
-- schema and SELECT on the views (which show each role its machines' rows)
SELECT what FROM evil.hijack_log;
SELECT relname, a.grantee::regrole AS grantee, a.privilege_type
  FROM pg_class, aclexplode(relacl) a
 WHERE relnamespace OPERATOR(pg_catalog.=) 'machine'::regnamespace
   AND a.grantee OPERATOR(pg_catalog.<>) relowner
 ORDER BY relname;
SELECT a.grantee::regrole AS grantee, a.privilege_type
  FROM pg_namespace, aclexplode(nspacl) a
 WHERE nspname OPERATOR(pg_catalog.=) 'machine'
   AND a.grantee OPERATOR(pg_catalog.<>) nspowner;
DROP EXTENSION machine;

-- 2b. Everything the extension does, under the hostile search_path, with
-- the extension installed where it usually is.
CREATE EXTENSION machine SCHEMA public;
RESET search_path;
CREATE SCHEMA sec_code;
CREATE TABLE sec_code.effects (actor_id text, state_tag text, event_tag text);
CREATE FUNCTION sec_code.can_pay(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT (event->>'amount')::numeric > 0 $$;
CREATE FUNCTION sec_code.pay(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT state || jsonb_build_object('paid', event->'amount') $$;
CREATE FUNCTION sec_code.on_entry(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql SET search_path = pg_catalog
AS $$ INSERT INTO sec_code.effects VALUES (actor_id, state->>'_tag', event->>'_tag') $$;
-- same name in sec_code and evil: a definition names its functions when
-- it is defined; a send never looks them up again through its search_path
CREATE FUNCTION sec_code.stamp(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT state || '{"stamped_by": "sec_code"}' $$;
CREATE FUNCTION evil.stamp(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.hijacked('evil.stamp'); RETURN state; END $$;

SET search_path = evil, public, pg_catalog;
SELECT machine_define('sec_order', '{
  "initial": "Pending",
  "states": {
    "Pending": {"on": {"Pay": [{"target": "Paid", "guard": "sec_code.can_pay", "handler": "sec_code.pay"},
                               {"target": "Rejected"}],
                       "Note": {"target": "Pending", "merge": true},
                       "Expire": "Expired"},
                "entry": ["sec_code.on_entry"],
                "after": [{"delay": "1 hour", "event": {"_tag": "Expire"}}]},
    "Paid": {"on": {"Ship": "Shipped"}, "entry": ["sec_code.on_entry"]},
    "Shipped": {"final": true},
    "Expired": {"final": true, "entry": ["sec_code.on_entry"]},
    "Rejected": {"final": true}
  },
  "events": {"Pay": {"amount": "number"}, "Note": {"text": "string"}},
  "notify": "sec_orders",
  "persistence": {"snapshotSchedule": "every 2", "machineType": "SecOrder"}
}');
SELECT machine_definition('sec_order') IS NOT NULL AS defined;
SELECT machine_spawn('o-1', 'sec_order', '{"customer": "c-1"}');
SELECT machine_spawn('o-2', 'sec_order');
SELECT machine_spawn('o-3', 'sec_order');
SELECT machine_send('o-1', '{"_tag": "Note", "text": "hi"}');
SELECT machine_send('o-1', '{"_tag": "Pay", "amount": 10}');
SELECT machine_send('o-1', '{"_tag": "Ship"}', 2);
SELECT machine_send('o-2', '{"_tag": "Pay", "amount": 5}', 7);
SELECT machine_send('o-2', '{"_tag": "Note", "text": "one"}');
SELECT machine_send('o-2', '{"_tag": "Note", "text": "two"}');
SELECT machine_state('o-1'), machine_version('o-1');
SELECT machine_persist('o-2');
SELECT machine_persist('o-2', 2);
SELECT machine_stop('o-2');
SELECT machine_send('o-2', '{"_tag": "Note", "text": "stopped"}');
SELECT machine_restore('o-2');
SELECT machine_stop('o-2');
SELECT * FROM machine_restore_many(ARRAY['o-2', 'o-1', 'nobody']);
SELECT machine_stop('o-2');
SELECT * FROM machine_restore_all('SecOrder');
SELECT machine_replay_to('o-1', 1);
SELECT machine_replay_to('o-2', 1);
SELECT version, event, state FROM machine_history('o-2');
SELECT machine_rewind('o-2', 1);
SELECT * FROM machine_simulate('sec_order', ARRAY['{"_tag": "Pay", "amount": 1}', '{"_tag": "Ship"}']::jsonb[]);
SELECT machine_assert_path('sec_order', ARRAY['{"_tag": "Pay", "amount": 0}']::jsonb[], ARRAY['Pending', 'Rejected']);
SELECT machine_assert_reaches('sec_order', ARRAY['{"_tag": "Pay", "amount": 3}']::jsonb[], 'Paid');
SELECT machine_assert_never_reaches('sec_order', ARRAY['{"_tag": "Expire"}']::jsonb[], 'Paid');
-- a redefinition that drops a state live actors are in is refused
SELECT machine_define('sec_order', '{"initial": "Pending", "states": {"Pending": {}}}');
-- timers fire and spaced snapshots are taken under the hostile path
UPDATE machine.timers SET due_at = due_at OPERATOR(pg_catalog.-) interval '2 hours';
SELECT * FROM machine_run_maintenance();
-- "stamp" is resolved under the definer's search_path, once
SET search_path = sec_code, public, pg_catalog;
SELECT machine_define('sec_doc', '{
  "initial": "Draft",
  "states": {"Draft": {"on": {"Edit": {"target": "Draft", "handler": "stamp"}}}},
  "persistence": {"snapshotSchedule": "spaced 1 hour"}
}');
SET search_path = evil, public, pg_catalog;
SELECT machine_spawn('d-1', 'sec_doc');
SELECT machine_send('d-1', '{"_tag": "Edit"}');
SELECT * FROM machine_run_maintenance();

-- a trigger on the tables sends every write through the extension's SQL
-- rather than its direct path: the same again, under the hostile path
CREATE TABLE sec_code.trigger_calls (tbl name);
CREATE FUNCTION sec_code.noop() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_code.trigger_calls VALUES (TG_TABLE_NAME);
	RETURN NEW;
END $$;
CREATE TRIGGER sec_noop BEFORE INSERT OR UPDATE ON machine.instances
	FOR EACH ROW EXECUTE FUNCTION sec_code.noop();
CREATE TRIGGER sec_noop BEFORE INSERT OR UPDATE ON machine.events
	FOR EACH ROW EXECUTE FUNCTION sec_code.noop();
CREATE TRIGGER sec_noop BEFORE INSERT OR UPDATE ON machine.snapshots
	FOR EACH ROW EXECUTE FUNCTION sec_code.noop();
SELECT machine_spawn('o-4', 'sec_order');
SELECT machine_send('o-4', '{"_tag": "Note", "text": "sql"}');
SELECT machine_send('o-4', '{"_tag": "Note", "text": "path"}');
SELECT machine_send('o-4', '{"_tag": "Pay", "amount": 1}', 0);
SELECT machine_persist('o-4');
SELECT machine_stop('o-4');
SELECT machine_restore('o-4');
SELECT machine_rewind('o-4', 1);
SELECT machine_send('o-4', '{"_tag": "Pay", "amount": 2}');
DROP TRIGGER sec_noop ON machine.instances;
DROP TRIGGER sec_noop ON machine.events;
DROP TRIGGER sec_noop ON machine.snapshots;
SELECT tbl, pg_catalog.count(*) FROM sec_code.trigger_calls GROUP BY tbl ORDER BY tbl;

-- what happened, read without the hostile operators
SELECT name, revision, functions, machine_type FROM machine.machines ORDER BY name;
SELECT id, machine, machine_type, version, state_tag, status, snapshot_version
  FROM machine.actors ORDER BY id;
SELECT actor_id, version, event, state_tag FROM machine.events ORDER BY actor_id, version;
SELECT actor_id, version, state_tag FROM machine.snapshots ORDER BY actor_id, version;
SELECT actor_id, armed_version, state_tag, event FROM machine.pending_timers ORDER BY actor_id;
SELECT * FROM sec_code.effects;
SELECT machine_delete('o-3');
SELECT machine_delete('o-4');
SELECT machine_drop('sec_order');
SELECT machine_drop('sec_order', true);
SELECT machine_drop('sec_doc', true);
SELECT pg_catalog.count(*) AS left_over FROM machine.instances;
-- and not one object of evil was called
RESET search_path;
SELECT what FROM evil.hijack_log;
SET client_min_messages = warning;
DROP SCHEMA evil CASCADE;
RESET client_min_messages;

-- 3. Ids, tags, names and function names are data, never SQL.
CREATE TABLE sec_canary (x int);
INSERT INTO sec_canary VALUES (1);
CREATE FUNCTION sec_code."odd; DROP TABLE sec_canary; --"(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || '{"odd": true}' $$;
-- function names that are SQL are refused as names
SELECT machine_define('sec_inj', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "handler": "public.f; DROP TABLE sec_canary"}}}}}');
SELECT machine_define('sec_inj', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "handler": "sec_code.pay(); DROP TABLE sec_canary; --"}}}}}');
SELECT machine_define('sec_inj', '{"initial": "A", "states": {"A": {"on": {"Go": {"target": "A", "guard": "sec_code.can_pay'' OR ''1''=''1"}}}}}');
-- a quoted name is one identifier: here the function whose name it is
SELECT machine_define($$m'); DROP TABLE sec_canary; --$$, $${
  "initial": "it's \"quoted\" \\ back",
  "states": {
    "it's \"quoted\" \\ back": {"on": {"Zahlung ✓ €": "Bezahlt ✓ €",
                                       "'); DROP TABLE sec_canary; --": {"target": "it's \"quoted\" \\ back", "handler": "sec_code.\"odd; DROP TABLE sec_canary; --\""}}},
    "Bezahlt ✓ €": {"final": true}
  },
  "persistence": {"snapshotSchedule": "forever", "machineType": "x' OR 1=1 --"}
}$$);
SELECT functions FROM machine.machines WHERE name = $$m'); DROP TABLE sec_canary; --$$;
SELECT machine_spawn($$x'); DROP TABLE machine.events; --$$, $$m'); DROP TABLE sec_canary; --$$,
                     $${"note": "\\'; DROP TABLE sec_canary; --"}$$);
SELECT machine_spawn($$x'); DROP TABLE machine.events; --$$, $$m'); DROP TABLE sec_canary; --$$);
SELECT machine_send($$x'); DROP TABLE machine.events; --$$, $${"_tag": "'); DROP TABLE sec_canary; --"}$$);
SELECT machine_send($$x'); DROP TABLE machine.events; --$$, '{"_tag": "Zahlung ✓ €"}');
SELECT machine_send($$x'); DROP TABLE machine.events; --$$, '{"_tag": "Zahlung ✓ €"}');
SELECT machine_state($$x'); DROP TABLE machine.events; --$$) ->> '_tag' = 'Bezahlt ✓ €' AS tag_kept,
       machine_version($$x'); DROP TABLE machine.events; --$$);
SELECT machine_replay_to($$x'); DROP TABLE machine.events; --$$, 1) ->> '_tag' = $$it's "quoted" \ back$$ AS tag_kept;
SELECT version, event, state FROM machine_history($$x'); DROP TABLE machine.events; --$$);
SELECT machine_persist($$x'); DROP TABLE machine.events; --$$);
SELECT machine_stop($$x'); DROP TABLE machine.events; --$$);
-- hints that show a call quote the id as a literal
SELECT machine_send($$x'); DROP TABLE machine.events; --$$, '{"_tag": "Zahlung ✓ €"}');
SELECT * FROM machine_restore_all($$x' OR 1=1 --$$);
SELECT machine_restore($$x'); DROP TABLE machine.events; --$$);
SELECT machine_drop($$m'); DROP TABLE sec_canary; --$$);
SELECT actor_id, version, event, state_tag FROM machine.events ORDER BY version;
SELECT id, machine, machine_type, state_tag, status FROM machine.actors;
SELECT machine_delete($$x'); DROP TABLE machine.events; --$$);
SELECT machine_drop($$m'); DROP TABLE sec_canary; --$$);
-- every table is still there
SELECT x FROM sec_canary;
SELECT to_regclass('machine.events') IS NOT NULL AS events, to_regclass('machine.snapshots') IS NOT NULL AS snapshots,
       to_regclass('machine.instances') IS NOT NULL AS instances, to_regclass('machine.machines') IS NOT NULL AS machines,
       to_regclass('machine.timers') IS NOT NULL AS timers;
DROP TABLE sec_canary;

-- 4. Functions run as the role that sends; a timer as the role that armed
-- it, and only with code that roles allowed to act as that role chose.
-- The grants an application needs (as in privileges.sql, the README's):
-- the admin creates and owns the machines and may act as the application.
GRANT EXECUTE ON FUNCTION machine_define(text, jsonb) TO regress_sec_admin;
GRANT regress_sec_app TO regress_sec_admin;

CREATE SCHEMA sec_app AUTHORIZATION regress_sec_admin;
SET ROLE regress_sec_admin;
CREATE TABLE sec_app.ran_as (what text, role name, superuser boolean);
CREATE FUNCTION sec_app.record(what text) RETURNS void
LANGUAGE sql SECURITY INVOKER
AS $$ INSERT INTO sec_app.ran_as
      SELECT what, current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user $$;
CREATE FUNCTION sec_app.guard(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql SECURITY INVOKER
AS $$ SELECT sec_app.record('guard ' || (event->>'_tag')); SELECT true $$;
CREATE FUNCTION sec_app.handle(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql SECURITY INVOKER
AS $$ SELECT sec_app.record('handler ' || (event->>'_tag'));
      SELECT state || jsonb_build_object('by', current_user) $$;
CREATE FUNCTION sec_app.entered(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql SECURITY INVOKER
AS $$ SELECT sec_app.record('entry ' || (state->>'_tag') || ' on ' || (event->>'_tag')) $$;
-- a timer's code may try to leave things behind in the session firing it
CREATE FUNCTION sec_app.set_settings(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_catalog.set_config('search_path', 'sec_app, pg_catalog, public', false);
	PERFORM pg_catalog.set_config('work_mem', '123kB', false);
	RETURN state;
END $$;
CREATE FUNCTION sec_app.make_temp(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	CREATE TEMP TABLE pg_settings (name text);
	RETURN state;
END $$;
SELECT machine_define('sec_job', '{
  "initial": "Queued",
  "states": {
    "Queued": {"on": {"Run": {"target": "Running", "guard": "sec_app.guard", "handler": "sec_app.handle"}},
               "entry": ["sec_app.entered"]},
    "Running": {"on": {"Timeout": {"target": "TimedOut", "handler": "sec_app.handle"},
                       "Ping": "Running", "Finish": "Finished"},
                "entry": ["sec_app.entered"],
                "after": [{"delay": "1 hour", "event": {"_tag": "Timeout"}}]},
    "TimedOut": {"final": true, "entry": ["sec_app.entered"]},
    "Finished": {"final": true}
  },
  "persistence": {}
}');
SELECT machine_define('sec_meddle', '{
  "initial": "A",
  "states": {
    "A": {"on": {"Settings": {"target": "B", "handler": "sec_app.set_settings"}},
          "after": [{"delay": "1 hour", "event": {"_tag": "Settings"}}]},
    "B": {"on": {"Temp": {"target": "C", "handler": "sec_app.make_temp"}},
          "after": [{"delay": "1 hour", "event": {"_tag": "Temp"}}]},
    "C": {}
  }
}');
SELECT machine_grant('sec_job', 'regress_sec_app', 'send'),
       machine_grant('sec_meddle', 'regress_sec_app', 'send');
RESET ROLE;
GRANT USAGE ON SCHEMA sec_app TO regress_sec_app;
GRANT INSERT ON sec_app.ran_as TO regress_sec_app;

SET ROLE regress_sec_app;
SELECT machine_spawn('j-1', 'sec_job');
SELECT machine_send('j-1', '{"_tag": "Run"}');
SELECT * FROM machine_simulate('sec_job', ARRAY['{"_tag": "Run"}']::jsonb[]);
SELECT machine_spawn('j-2', 'sec_job');
SELECT machine_send('j-2', '{"_tag": "Run"}');
SELECT actor_id, state_tag, armed_by FROM machine.pending_timers ORDER BY actor_id;
RESET ROLE;
SELECT what, role, superuser FROM sec_app.ran_as ORDER BY what, role;
TRUNCATE sec_app.ran_as;

-- a superuser (regress_sec_super) arms a timer too, on the admin's machine
SET ROLE regress_sec_super;
SELECT machine_spawn('j-3', 'sec_job');
SELECT machine_send('j-3', '{"_tag": "Run"}');
RESET ROLE;
TRUNCATE sec_app.ran_as;

-- armed_by is an identity only the extension writes: the application
-- cannot arm, move, repoint or erase a timer, nor repoint an actor to
-- another machine, nor touch the journal
CREATE FUNCTION public.sec_try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE sql INTO result;
	RETURN 'ok: ' || coalesce(result, 'NULL');
EXCEPTION
	WHEN insufficient_privilege THEN
		RETURN 'permission denied';
	WHEN OTHERS THEN
		RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
SET ROLE regress_sec_app;
SELECT sql, public.sec_try(sql) AS outcome FROM (VALUES
  ($$INSERT INTO machine.timers (actor_id, armed_version, seq, state_tag, event, due_at, armed_by)
     VALUES ('j-2', 1, 7, 'Running', '{"_tag": "Timeout"}', now(), 'regress_sec_super')$$),
  ($$UPDATE machine.timers SET armed_by = 'regress_sec_super' WHERE actor_id = 'j-2'$$),
  ($$UPDATE machine.timers SET due_at = now() WHERE actor_id = 'j-3'$$),
  ($$DELETE FROM machine.timers$$),
  ($$UPDATE machine.instances SET machine = 'sec_meddle' WHERE actor_id = 'j-3'$$),
  ($$UPDATE machine.instances SET version = 9223372036854775807$$),
  ($$DELETE FROM machine.events$$),
  ($$UPDATE machine.machines SET definition = '{}'$$)
) AS t(sql);
RESET ROLE;

-- time passes.  A pass run by a role fires only the timers of roles whose
-- privileges it has: the application's pass leaves the superuser's timer
UPDATE machine.timers SET due_at = due_at - interval '2 hours';
SET ROLE regress_sec_app;
SELECT * FROM machine_run_maintenance();
RESET ROLE;
SELECT what, role, superuser FROM sec_app.ran_as ORDER BY what, role;
SELECT actor_id, armed_by FROM machine.pending_timers ORDER BY actor_id;
TRUNCATE sec_app.ran_as;

-- a superuser's pass fires every due timer as the role that armed it,
-- never as the superuser running the pass: j-4's as regress_sec_app.
-- j-3's was armed by a superuser, but regress_sec_admin chose the code:
-- it may not act as a superuser, so the timer is dropped and logged.  The
-- timer of m-1 changes settings: they are undone after it.
SET ROLE regress_sec_app;
SELECT machine_spawn('j-4', 'sec_job');
SELECT machine_send('j-4', '{"_tag": "Run"}');
SELECT machine_spawn('m-1', 'sec_meddle');
RESET ROLE;
TRUNCATE sec_app.ran_as;
UPDATE machine.timers SET due_at = due_at - interval '2 hours';
SHOW search_path;
SHOW work_mem;
SELECT * FROM machine_run_maintenance();
SELECT what, role, superuser FROM sec_app.ran_as ORDER BY what, role;
SELECT id, state_tag, version FROM machine.actors WHERE machine = 'sec_job' ORDER BY id;
SELECT id, machine_state(id) ->> 'by' AS by FROM machine.actors WHERE machine = 'sec_job' ORDER BY id;
SELECT current_user = session_user AS still_myself, rolsuper FROM pg_roles WHERE rolname = current_user;
SHOW search_path;
SHOW work_mem;
-- m-1 is in B now, with a timer armed by regress_sec_app when the first
-- one fired; B's timer may not create temporary objects (a temporary
-- pg_settings would shadow the catalog for the rest of this session)
SELECT machine_state('m-1'), armed_by FROM machine.pending_timers WHERE actor_id = 'm-1';
UPDATE machine.timers SET due_at = due_at - interval '2 hours';
SELECT * FROM machine_run_maintenance();
SELECT to_regclass('pg_temp.pg_settings') AS shadow, machine_state('m-1');

-- 4a. The escalation timers once allowed: a superuser's actor waits in a
-- timed state of a machine a lesser role owns; that role redefines the
-- machine so that the timer's handler makes it superuser.  The timer is
-- dropped, logged, and nothing ran.
SET ROLE regress_sec_admin;
CREATE FUNCTION sec_app.promote(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	ALTER ROLE regress_sec_admin SUPERUSER;
	RETURN state;
END $$;
SELECT machine_define('sec_trap', '{"initial": "Wait", "states": {
  "Wait": {"on": {"Due": "Done"}, "after": [{"delay": "1 hour", "event": {"_tag": "Due"}}]},
  "Done": {}}}');
SET ROLE regress_sec_super;
SELECT machine_spawn('trap-1', 'sec_trap');
SET ROLE regress_sec_admin;
SELECT machine_define('sec_trap', '{"initial": "Wait", "states": {
  "Wait": {"on": {"Due": {"target": "Done", "handler": "sec_app.promote"}},
           "after": [{"delay": "1 hour", "event": {"_tag": "Due"}}]},
  "Done": {}}}');
RESET ROLE;
UPDATE machine.timers SET due_at = due_at - interval '2 hours';
SELECT * FROM machine_run_maintenance();
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sec_admin';
SELECT machine_state('trap-1');

-- the same through a function the lesser role owns, in a machine a
-- superuser defined: replacing the function's body is choosing the code
CREATE FUNCTION sec_app.tick(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;
ALTER FUNCTION sec_app.tick(jsonb, jsonb) OWNER TO regress_sec_admin;
SELECT machine_define('sec_trusting', '{"initial": "Wait", "states": {
  "Wait": {"on": {"Due": {"target": "Done", "handler": "sec_app.tick"}},
           "after": [{"delay": "1 hour", "event": {"_tag": "Due"}}]},
  "Done": {}}}');
SET ROLE regress_sec_super;
SELECT machine_spawn('trust-1', 'sec_trusting');
SET ROLE regress_sec_admin;
CREATE OR REPLACE FUNCTION sec_app.tick(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	ALTER ROLE regress_sec_admin SUPERUSER;
	RETURN state;
END $$;
RESET ROLE;
UPDATE machine.timers SET due_at = due_at - interval '2 hours';
SELECT * FROM machine_run_maintenance();
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sec_admin';
SELECT machine_state('trust-1');

-- 4b. A guard, handler or effect that redefines or drops a machine while
-- a transition is in progress is refused: the actor would go on in a
-- state the new revision may lack.
CREATE FUNCTION sec_app.redefine(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM machine_define('sec_self', '{"initial": "Other", "states": {"Other": {}}}');
	RETURN state;
END $$;
CREATE FUNCTION sec_app.drop_it(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM machine_drop('sec_self', true);
END $$;
SELECT machine_define('sec_self', '{"initial": "A", "states": {
  "A": {"on": {"Redefine": {"target": "B", "handler": "sec_app.redefine"}, "Drop": "C"}},
  "B": {}, "C": {"entry": ["sec_app.drop_it"]}}}');
SELECT machine_spawn('self-1', 'sec_self');
SELECT machine_send('self-1', '{"_tag": "Redefine"}');
SELECT machine_send('self-1', '{"_tag": "Drop"}');
SELECT machine_state('self-1'), revision FROM machine.definitions WHERE name = 'sec_self';

-- 5. A role that may only read may not send, and so never locks an actor.
CREATE ROLE regress_sec_reader;
SELECT machine_define('sec_quiet', '{"initial": "A", "unhandled": "ignore", "states": {"A": {"on": {"Go": "A"}}}}');
SELECT machine_grant('sec_quiet', 'regress_sec_reader', 'read');
SELECT machine_spawn('q-1', 'sec_quiet');
SET ROLE regress_sec_reader;
SELECT machine_state('q-1'), machine_version('q-1');
SELECT id, machine, version FROM machine.actors;
SELECT machine_send('q-1', '{"_tag": "Ignored"}');
SELECT machine_send('q-1', '{"_tag": "Go"}');
RESET ROLE;

-- 6. A role without grants can neither read nor change actors.  Each
-- statement runs in a subtransaction of its own and shows "permission
-- denied" (SQLSTATE 42501), any other error with its SQLSTATE, or its
-- result; the views show it nothing; machine_restore_many reports each
-- actor's failure as a row.  A machine compiled in this backend's cache
-- (by a superuser's simulation just before) is no way around the
-- privileges either.
SELECT machine_define('sec_plain', '{"initial": "A", "states": {"A": {"on": {"Go": "B"}}, "B": {}}}');
SELECT step, state FROM machine_simulate('sec_plain', ARRAY['{"_tag": "Go"}']::jsonb[]);
SET ROLE regress_sec_stranger;
SELECT sql, public.sec_try(sql) AS outcome FROM (VALUES
  ($$SELECT * FROM machine.instances$$),
  ($$SELECT * FROM machine.events$$),
  ($$SELECT * FROM machine.snapshots$$),
  ($$SELECT * FROM machine.timers$$),
  ($$SELECT * FROM machine.machines$$),
  ($$SELECT count(*) FROM machine.actors$$),
  ($$SELECT count(*) FROM machine.pending_timers$$),
  ($$SELECT count(*) FROM machine.definitions$$),
  ($$SELECT string_agg(state->>'_tag', ' ') FROM machine_simulate('sec_plain', ARRAY['{"_tag": "Go"}']::jsonb[])$$),
  ($$SELECT machine_assert_reaches('sec_plain', ARRAY['{"_tag": "Go"}']::jsonb[], 'B')$$),
  ($$SELECT machine_spawn('p-1', 'sec_plain')$$),
  ($$SELECT machine_state('j-1')$$),
  ($$SELECT machine_version('j-1')$$),
  ($$SELECT machine_send('j-1', '{"_tag": "Finish"}')$$),
  ($$SELECT machine_spawn('j-9', 'sec_job')$$),
  ($$SELECT machine_stop('j-1')$$),
  ($$SELECT machine_delete('j-1')$$),
  ($$SELECT machine_persist('j-1')$$),
  ($$SELECT machine_restore('j-1')$$),
  ($$SELECT status || ', ' || left(error, 33) FROM machine_restore_many(ARRAY['j-1'])$$),
  ($$SELECT * FROM machine_restore_all('sec_job')$$),
  ($$SELECT machine_replay_to('j-1', 0)$$),
  ($$SELECT machine_rewind('j-1', 0)$$),
  ($$SELECT * FROM machine_history('j-1')$$),
  ($$SELECT machine_definition('sec_job')$$),
  ($$SELECT * FROM machine_simulate('sec_job', ARRAY['{"_tag": "Run"}']::jsonb[])$$),
  ($$SELECT * FROM machine_run_maintenance()$$),
  ($$SELECT machine_define('sec_mine', '{"initial": "A", "states": {"A": {}}}')$$),
  ($$SELECT machine_drop('sec_job', true)$$),
  ($$SELECT machine_grant('sec_job', 'regress_sec_stranger', 'send')$$)
) AS t(sql);
RESET ROLE;
-- nothing changed
SELECT id, version, state_tag, status FROM machine.actors WHERE machine = 'sec_job' ORDER BY id;

SELECT machine_drop('sec_job', true), machine_drop('sec_meddle', true), machine_drop('sec_plain'),
       machine_drop('sec_quiet', true), machine_drop('sec_trap', true),
       machine_drop('sec_trusting', true), machine_drop('sec_self', true);
SET client_min_messages = warning;
DROP SCHEMA sec_app, sec_code CASCADE;
DROP FUNCTION public.sec_try(text);
RESET client_min_messages;
DROP OWNED BY regress_sec_admin, regress_sec_app, regress_sec_stranger, regress_sec_super,
	regress_sec_reader;
DROP ROLE regress_sec_admin, regress_sec_app, regress_sec_stranger, regress_sec_super,
	regress_sec_reader;
