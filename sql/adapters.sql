-- Adapters: where a machine's actors, journal and snapshots live.  The same
-- behaviour on each, then what sets each apart.

CREATE TABLE ad_log (actor text, what text);
CREATE FUNCTION ad_log(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO ad_log VALUES (actor_id, (state->>'_tag') || ' on ' || (event->>'_tag')) $$;
CREATE FUNCTION ad_tick(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	IF event ? 'fail' THEN
		RAISE EXCEPTION 'tick failed';
	END IF;
	RETURN state || jsonb_build_object('n', (state->>'n')::int + 1);
END $$;
CREATE FUNCTION ad_below_ten(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (state->>'n')::int < 10 $$;
CREATE FUNCTION ad_expire() RETURNS void LANGUAGE sql AS $$
	UPDATE machine.timers SET due_at = due_at - interval '2 days';
	UPDATE machine.memory_timers SET due_at = due_at - interval '2 days';
$$;
-- what earlier tests left due is taken first
SELECT * FROM machine_run_maintenance() \g /dev/null

-- a user adapter: a schema with five functions, here over plain tables
CREATE SCHEMA ad_plain;
CREATE TABLE ad_plain.journal (actor_id text, version bigint, event jsonb, state_tag text,
                               recorded_at timestamptz NOT NULL DEFAULT now(),
                               PRIMARY KEY (actor_id, version));
CREATE TABLE ad_plain.snapshots (actor_id text, version bigint, state jsonb, state_tag text,
                                 PRIMARY KEY (actor_id, version));
CREATE FUNCTION ad_plain.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO ad_plain.journal (actor_id, version, event, state_tag) VALUES ($1, $2, $3, $4)
$$;
CREATE FUNCTION ad_plain.load_events(actor_id text, after_version bigint, upto_version bigint)
RETURNS TABLE (version bigint, event jsonb, state_tag text, recorded_at timestamptz)
LANGUAGE sql AS $$
	SELECT j.version, j.event, j.state_tag, j.recorded_at FROM ad_plain.journal j
	 WHERE j.actor_id = $1 AND j.version > $2 AND j.version <= $3 ORDER BY j.version
$$;
CREATE FUNCTION ad_plain.save_snapshot(actor_id text, version bigint, state jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO ad_plain.snapshots VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING
$$;
CREATE FUNCTION ad_plain.load_snapshot(actor_id text, max_version bigint,
                                       OUT version bigint, OUT state jsonb)
RETURNS record LANGUAGE sql AS $$
	SELECT s.version, s.state FROM ad_plain.snapshots s
	 WHERE s.actor_id = $1 AND s.version <= $2 ORDER BY s.version DESC LIMIT 1
$$;
CREATE FUNCTION ad_plain.delete_actor(actor_id text) RETURNS void LANGUAGE sql AS $$
	DELETE FROM ad_plain.journal j WHERE j.actor_id = $1;
	DELETE FROM ad_plain.snapshots s WHERE s.actor_id = $1;
$$;

-- (from the source directory, so that messages name the file by a relative path)
\getenv abs_srcdir PG_ABS_SRCDIR
\cd :abs_srcdir
\set adapter tables
\i sql/adapter_behaviour.psql
\set adapter memory
\i sql/adapter_behaviour.psql
\set adapter ad_plain
\i sql/adapter_behaviour.psql

--
-- The "memory" adapter: UNLOGGED tables of their own
--
SELECT c.relname, c.relpersistence FROM pg_class c
 WHERE c.relnamespace = 'machine'::regnamespace AND c.relkind = 'r'
   AND c.relname ~ '^(memory_)?(instances|events|snapshots|timers)$'
 ORDER BY c.relname;
SELECT machine_define('mem', '{"initial": "A", "states": {"A": {"on": {"Go": "A"},
  "after": [{"delay": "1 hour", "event": {"_tag": "Go"}}]}},
  "persistence": {"adapter": "memory", "snapshotSchedule": "forever"}}');
SELECT machine_spawn('mem-1', 'mem'), machine_send('mem-1', '{"_tag": "Go"}');
SELECT (SELECT count(*) FROM machine.memory_instances WHERE actor_id = 'mem-1') AS instances,
       (SELECT count(*) FROM machine.memory_events WHERE actor_id = 'mem-1') AS events,
       (SELECT count(*) FROM machine.memory_snapshots WHERE actor_id = 'mem-1') AS snapshots,
       (SELECT count(*) FROM machine.memory_timers WHERE actor_id = 'mem-1') AS timers;
SELECT (SELECT count(*) FROM machine.instances WHERE actor_id = 'mem-1') AS instances,
       (SELECT count(*) FROM machine.events WHERE actor_id = 'mem-1') AS events,
       (SELECT count(*) FROM machine.snapshots WHERE actor_id = 'mem-1') AS snapshots,
       (SELECT count(*) FROM machine.timers WHERE actor_id = 'mem-1') AS timers;

-- an actor id is unique across adapters
SELECT machine_define('tab', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "tables"}}');
SELECT machine_spawn('tab-1', 'tab');
SELECT machine_spawn('mem-1', 'tab');
SELECT machine_spawn('tab-1', 'mem');
SELECT machine_spawn('mem-1', 'tab', if_not_exists => true);
SELECT machine_spawn('mem-1', 'mem', if_not_exists => true);

-- actors of both adapters restored together
SELECT machine_stop('tab-1'), machine_stop('mem-1');
SELECT * FROM machine_restore_many(ARRAY['tab-1', 'mem-1']);
SELECT id, status, version FROM machine.actors WHERE id IN ('tab-1', 'mem-1') ORDER BY id;

-- the views show the actors and timers of the "memory" adapter only to
-- roles that may read their machine, as they show the others
CREATE ROLE regress_adapter_reader;
SET ROLE regress_adapter_reader;
SELECT count(*) FROM machine.actors WHERE id = 'mem-1';
SELECT count(*) FROM machine.memory_actors();
SELECT count(*) FROM machine.memory_pending_timers();
SELECT count(*) FROM machine.memory_instances;
RESET ROLE;
SELECT machine_grant('mem', 'regress_adapter_reader', 'read');
SET ROLE regress_adapter_reader;
SELECT id, machine, status FROM machine.actors WHERE id = 'mem-1';
SELECT id, machine FROM machine.memory_actors();
SELECT actor_id, machine, event FROM machine.pending_timers WHERE actor_id = 'mem-1';
RESET ROLE;

-- a machine changes its adapter only while it has no actors
SELECT machine_define('mem', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}, "persistence": {}}');
SELECT machine_define('tab', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "memory"}}');
SELECT machine_define('mem', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
  "persistence": {"adapter": "memory", "journalEvents": false}}');
SELECT machine_delete('tab-1');
SELECT machine_define('tab', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "memory"}}');
SELECT machine_spawn('tab-2', 'tab');
SELECT count(*) FROM machine.memory_instances WHERE actor_id = 'tab-2';

-- adapters that do not exist, and adapter values that are not names
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "nowhere"}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": 1}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": ""}}');

SELECT machine_drop('mem', true), machine_drop('tab', true);

--
-- User adapters: a schema's functions keep the journal and snapshots; the
-- actor's row, its timers and the version checks stay the extension's
--
SELECT machine_define('plain', '{"initial": "A", "states": {"A": {"on": {"Go": "A"},
  "after": [{"delay": "1 hour", "event": {"_tag": "Go"}}]}},
  "persistence": {"adapter": "ad_plain", "snapshotSchedule": "every 2"}}');
SELECT machine_spawn('plain-1', 'plain');
SELECT machine_send('plain-1', ('{"_tag": "Go", "n": ' || i || '}')::jsonb) FROM generate_series(1, 3) i;
SELECT actor_id, version, event, state_tag FROM ad_plain.journal WHERE actor_id = 'plain-1' ORDER BY version;
SELECT actor_id, version, state, state_tag FROM ad_plain.snapshots WHERE actor_id = 'plain-1' ORDER BY version;
SELECT (SELECT count(*) FROM machine.instances WHERE actor_id = 'plain-1') AS instances,
       (SELECT count(*) FROM machine.events WHERE actor_id = 'plain-1') AS events,
       (SELECT count(*) FROM machine.snapshots WHERE actor_id = 'plain-1') AS snapshots,
       (SELECT count(*) FROM machine.timers WHERE actor_id = 'plain-1') AS timers;

-- a version the adapter already holds is a version conflict, whatever the
-- adapter raised (here unique_violation, or serialization_failure), and
-- nothing of the send stays
INSERT INTO ad_plain.journal (actor_id, version, event, state_tag)
VALUES ('plain-1', 4, '{"_tag": "Go", "stray": true}', 'A');
SELECT machine_send('plain-1', '{"_tag": "Go"}');
SELECT machine_version('plain-1'), machine_state('plain-1');
DELETE FROM ad_plain.journal WHERE actor_id = 'plain-1' AND version = 4;
-- the adapter's functions can be replaced in place (not dropped, renamed
-- or moved while a machine uses them)
ALTER FUNCTION ad_plain.append_event(text, bigint, jsonb, text) RENAME TO plain_append;
DROP FUNCTION ad_plain.append_event(text, bigint, jsonb, text);
CREATE OR REPLACE FUNCTION ad_plain.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF event ? 'boom' THEN
		RAISE EXCEPTION 'the journal server is down' USING ERRCODE = 'connection_failure';
	END IF;
	IF EXISTS (SELECT FROM ad_plain.journal j WHERE j.actor_id = $1 AND j.version >= $2) THEN
		RAISE EXCEPTION 'version % of % is taken', $2, $1 USING ERRCODE = 'serialization_failure';
	END IF;
	INSERT INTO ad_plain.journal (actor_id, version, event, state_tag) VALUES ($1, $2, $3, $4);
END $$;
INSERT INTO ad_plain.journal (actor_id, version, event, state_tag)
VALUES ('plain-1', 5, '{"_tag": "Go", "stray": true}', 'A');
SELECT machine_send('plain-1', '{"_tag": "Go"}');
DELETE FROM ad_plain.journal WHERE actor_id = 'plain-1' AND version = 5;
-- an adapter's error fails the send as it is
SELECT machine_send('plain-1', '{"_tag": "Go", "boom": 1}');
SELECT machine_version('plain-1'), (SELECT max(version) FROM ad_plain.journal WHERE actor_id = 'plain-1');
SELECT machine_send('plain-1', '{"_tag": "Go"}');

-- stop, restore, history and replay read through the adapter
SELECT machine_stop('plain-1');
SELECT max(version) FROM ad_plain.snapshots WHERE actor_id = 'plain-1';
UPDATE ad_plain.snapshots SET state = state || '{"from": "snapshot"}' WHERE actor_id = 'plain-1' AND version = 2;
DELETE FROM ad_plain.snapshots WHERE actor_id = 'plain-1' AND version = 4;
SELECT machine_restore('plain-1');
SELECT version, event->>'n' AS n, state FROM machine_history('plain-1');
SELECT machine_replay_to('plain-1', 3);
-- a load_events that materializes its rows (PL/pgSQL) reads the same
CREATE OR REPLACE FUNCTION ad_plain.load_events(actor_id text, after_version bigint, upto_version bigint)
RETURNS TABLE (version bigint, event jsonb, state_tag text, recorded_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY SELECT j.version, j.event, j.state_tag, j.recorded_at FROM ad_plain.journal j
	 WHERE j.actor_id = $1 AND j.version > $2 AND j.version <= $3 ORDER BY j.version;
END $$;
SELECT version, event->>'n' AS n, state FROM machine_history('plain-1');
SELECT machine_replay_to('plain-1', 3);

-- a gap in what the adapter returns stops the fold, as in the tables
UPDATE ad_plain.journal SET version = version + 100 WHERE actor_id = 'plain-1' AND version = 3;
SELECT machine_replay_to('plain-1', 3);
UPDATE ad_plain.journal SET version = version - 100 WHERE actor_id = 'plain-1' AND version = 103;

-- EXECUTE on the adapter's functions is the caller's to hold (and, as
-- they run as the caller, whatever they use)
CREATE ROLE regress_adapter_sender;
GRANT USAGE ON SCHEMA ad_plain TO regress_adapter_sender;
GRANT SELECT, INSERT, DELETE ON ad_plain.journal, ad_plain.snapshots TO regress_adapter_sender;
SELECT machine_grant('plain', 'regress_adapter_sender', 'send');
REVOKE EXECUTE ON FUNCTION ad_plain.load_events(text, bigint, bigint) FROM PUBLIC;
SET ROLE regress_adapter_sender;
SELECT machine_send('plain-1', '{"_tag": "Go"}');
SELECT machine_replay_to('plain-1', 1);
RESET ROLE;
GRANT EXECUTE ON FUNCTION ad_plain.load_events(text, bigint, bigint) TO PUBLIC;
SET ROLE regress_adapter_sender;
SELECT machine_replay_to('plain-1', 1);
RESET ROLE;
REVOKE ALL ON SCHEMA ad_plain FROM regress_adapter_sender;
REVOKE ALL ON ad_plain.journal, ad_plain.snapshots FROM regress_adapter_sender;
DROP ROLE regress_adapter_sender;

-- delete and drop with cascade erase through the adapter
SELECT machine_spawn('plain-2', 'plain'), machine_send('plain-2', '{"_tag": "Go"}');
-- machine_check_define folds the histories read through the adapter, and
-- knows that the adapter of a machine with actors does not change
SELECT * FROM machine_check_define('plain', '{"initial": "A", "states": {"A": {"on": {"Stop": "A"}}},
  "persistence": {"adapter": "ad_plain", "snapshotSchedule": "every 2"}}') ORDER BY 1, 2;
SELECT * FROM machine_check_define('plain', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
  "persistence": {"adapter": "memory"}}') ORDER BY 1, 2;
SELECT * FROM machine_check_define('plain', machine_definition('plain'));
SELECT machine_delete('plain-1');
SELECT actor_id, count(*) FROM ad_plain.journal GROUP BY 1 ORDER BY 1;
SELECT machine_drop('plain', true);
SELECT count(*) FROM ad_plain.journal;
SELECT count(*) FROM ad_plain.snapshots;

-- definitions whose adapter is missing, incomplete or of the wrong shape
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "no_such_schema"}}');
CREATE SCHEMA ad_broken;
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "ad_broken"}}');
CREATE FUNCTION ad_broken.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "ad_broken"}}');
DROP FUNCTION ad_broken.append_event(text, bigint, jsonb, text);
CREATE FUNCTION ad_broken.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION ad_broken.load_events(actor_id text, after_version bigint, upto_version bigint)
RETURNS TABLE (version bigint, event jsonb) LANGUAGE sql AS $$ SELECT 1::bigint, '{}'::jsonb $$;
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "ad_broken"}}');
SELECT machine_define('bad', '{"initial": "A", "states": {"A": {}},
  "persistence": {"adapter": "ad_plain", "snapshotSchedule": "spaced 1 minute"}}');
-- a function of the adapter gone after the definition (behind the back of
-- the extension's event triggers, which refuse it otherwise)
SELECT machine_define('fragile', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}, "persistence": {"adapter": "ad_plain"}}');
SELECT machine_spawn('fragile-1', 'fragile');
ALTER SCHEMA ad_plain RENAME TO ad_moved;
SET session_replication_role = replica;
ALTER FUNCTION ad_plain.load_snapshot(text, bigint) RENAME TO gone;
RESET session_replication_role;
SELECT machine_send('fragile-1', '{"_tag": "Go"}');
SET session_replication_role = replica;
ALTER FUNCTION ad_plain.gone(text, bigint) RENAME TO load_snapshot;
RESET session_replication_role;
SELECT machine_send('fragile-1', '{"_tag": "Go"}');
-- an adapter with actors stays their adapter
SELECT machine_define('fragile', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}, "persistence": {}}');
SELECT machine_drop('fragile', true);
DROP SCHEMA ad_broken CASCADE;

-- a timer sends as the role that armed it: the adapter's functions are
-- code it runs, refused when their owner could not act as that role
CREATE ROLE regress_adapter_lesser;
CREATE ROLE regress_adapter_super SUPERUSER;
CREATE SCHEMA ad_lesser AUTHORIZATION regress_adapter_lesser;
SET ROLE regress_adapter_lesser;
CREATE FUNCTION ad_lesser.append_event(actor_id text, version bigint, event jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION ad_lesser.load_events(actor_id text, after_version bigint, upto_version bigint)
RETURNS TABLE (version bigint, event jsonb, state_tag text, recorded_at timestamptz)
LANGUAGE sql AS $$ SELECT NULL::bigint, NULL::jsonb, NULL::text, NULL::timestamptz WHERE false $$;
CREATE FUNCTION ad_lesser.save_snapshot(actor_id text, version bigint, state jsonb, state_tag text)
RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION ad_lesser.load_snapshot(actor_id text, max_version bigint, OUT version bigint, OUT state jsonb)
RETURNS record LANGUAGE sql AS $$ SELECT NULL::bigint, NULL::jsonb $$;
CREATE FUNCTION ad_lesser.delete_actor(actor_id text) RETURNS void LANGUAGE sql AS $$ SELECT $$;
RESET ROLE;
SELECT machine_define('lesser', '{"initial": "Wait", "states": {
  "Wait": {"on": {"Due": "Done"}, "after": [{"delay": "1 hour", "event": {"_tag": "Due"}}]},
  "Done": {}}, "persistence": {"adapter": "ad_lesser"}}');
SET ROLE regress_adapter_super;
SELECT machine_spawn('lesser-1', 'lesser');
RESET ROLE;
UPDATE machine.timers SET due_at = due_at - interval '2 hours' WHERE actor_id = 'lesser-1';
SELECT timers_fired, timers_failed FROM machine_run_maintenance();
SELECT machine_state('lesser-1');
SELECT machine_drop('lesser', true);
DROP SCHEMA ad_lesser CASCADE;
DROP ROLE regress_adapter_lesser, regress_adapter_super;
SELECT count(*) FROM machine.memory_instances;
DROP ROLE regress_adapter_reader;
