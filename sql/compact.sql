-- Compaction: machine_compact removes (or archives) what newer snapshots
-- cover; folds that would need it fail with MA006

CREATE SCHEMA cmp;
GRANT USAGE ON SCHEMA cmp TO PUBLIC;
CREATE FUNCTION cmp.error_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	state text;
	message text;
	detail text;
	hint text;
BEGIN
	EXECUTE statement;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	RETURN state || ': ' || message || coalesce(' / ' || nullif(detail, ''), '')
		|| coalesce(' / ' || nullif(hint, ''), '');
END $$;

SELECT machine_define('cmp', '{
  "initial": "A",
  "states": {"A": {"on": {"Go": {"target": "B", "merge": true}}},
             "B": {"on": {"Go": {"target": "A", "merge": true}}}},
  "persistence": {"snapshotSchedule": "every 2"}
}');
SELECT machine_spawn('c-1', 'cmp'), machine_spawn('c-2', 'cmp'), machine_spawn('c-3', 'cmp');
SELECT count(machine_send(a, jsonb_build_object('_tag', 'Go', 'n', i)))
  FROM unnest(ARRAY['c-1', 'c-2', 'c-3']) a, generate_series(1, 5) i;
SELECT machine, actors, journal_rows, snapshots, compacted_actors, max_horizon
  FROM machine.journal_stats WHERE machine = 'cmp';

-- snapshots at 2 and 4: journal rows 1..4 and the snapshot at 2 go, for
-- each of the three actors
SELECT machine_compact('cmp');
SELECT actor_id, array_agg(version ORDER BY version) FROM machine.events
 WHERE actor_id LIKE 'c-%' GROUP BY 1 ORDER BY 1;
SELECT actor_id, array_agg(version ORDER BY version) FROM machine.snapshots
 WHERE actor_id LIKE 'c-%' GROUP BY 1 ORDER BY 1;
SELECT machine, actors, journal_rows, snapshots, compacted_actors, max_horizon,
       last_compacted_at <= now() AS dated
  FROM machine.journal_stats WHERE machine = 'cmp';
-- nothing more to do: a second compaction removes nothing
SELECT machine_compact('cmp');

-- at and after the horizon everything folds; before it, MA006
SELECT machine_replay_to('c-1', 5) = machine_state('c-1') AS live,
       machine_replay_to('c-1', 4) ->> 'n' AS at_4, machine_replay_to('c-1', 0) AS spawned;
SELECT cmp.error_of($$SELECT machine_replay_to('c-1', 3)$$);
SELECT cmp.error_of($$SELECT machine_rewind('c-1', 1)$$);
-- a history starts at the horizon
SELECT version, state ->> 'n' AS n FROM machine_history('c-1');
-- a restore starts from the latest snapshot
SELECT machine_stop('c-1'), machine_restore('c-1') = machine_state('c-1') AS restored;
-- the dry run of a redefinition folds from the horizon too
SELECT * FROM machine_check_define('cmp', machine_definition('cmp'));

-- keep: only snapshots older than that cover anything
SELECT machine_send('c-2', '{"_tag": "Go", "n": 6}') ->> 'n';
SELECT machine_compact('cmp', keep => '1 hour');
UPDATE machine.snapshots SET taken_at = taken_at - interval '2 hours'
 WHERE actor_id = 'c-2' AND version = 6;
SELECT machine_compact('cmp', keep => '1 hour');
SELECT array_agg(version ORDER BY version) FROM machine.events WHERE actor_id = 'c-2';

-- archive: the journal rows move into a table made LIKE machine.events
CREATE TABLE cmp.archive (LIKE machine.events);
SELECT count(machine_send('c-3', jsonb_build_object('_tag', 'Go', 'n', i))) FROM generate_series(6, 8) i;
SELECT machine_compact('cmp', archive => 'cmp.archive');
SELECT actor_id, version, event ->> 'n' AS n, state_tag, revision FROM cmp.archive ORDER BY 1, 2;
SELECT array_agg(version ORDER BY version) FROM machine.events WHERE actor_id = 'c-3';

-- subscriptions: a journal row not yet acknowledged by every subscription
-- of the machine's type stays, and so does everything after it
SELECT machine_subscribe('cmp_feed', 'cmp');
SELECT count(machine_send('c-3', jsonb_build_object('_tag', 'Go', 'n', i))) FROM generate_series(9, 12) i;
SELECT machine_compact('cmp');
SELECT array_agg(version ORDER BY version) FROM machine.events WHERE actor_id = 'c-3';
SELECT machine_ack('cmp_feed', max(position)) FROM machine_poll('cmp_feed', 2);
SELECT machine_compact('cmp');
SELECT array_agg(version ORDER BY version) FROM machine.events WHERE actor_id = 'c-3';
SELECT machine_ack('cmp_feed', max(position)) FROM machine_poll('cmp_feed', 100);
SELECT machine_compact('cmp');
SELECT array_agg(version ORDER BY version) FROM machine.events WHERE actor_id = 'c-3';
SELECT machine_unsubscribe('cmp_feed');

-- deleting an actor forgets its horizon
SELECT machine_delete('c-3');
SELECT count(*) FROM machine.compactions WHERE actor_id = 'c-3';

-- bad calls
SELECT cmp.error_of($$SELECT machine_compact(NULL)$$);
SELECT cmp.error_of($$SELECT machine_compact('nope')$$);
SELECT cmp.error_of($$SELECT machine_compact('cmp', keep => '-1 day')$$);
CREATE TABLE cmp.not_like (actor_id text, version bigint);
SELECT cmp.error_of($$SELECT machine_compact('cmp', archive => 'cmp.not_like')$$);
CREATE VIEW cmp.a_view AS SELECT * FROM cmp.archive;
SELECT cmp.error_of($$SELECT machine_compact('cmp', archive => 'cmp.a_view')$$);
SELECT machine_define('cmp_memory', '{"initial": "A", "states": {"A": {}}, "persistence": {"adapter": "memory"}}');
SELECT cmp.error_of($$SELECT machine_compact('cmp_memory')$$);
SELECT machine_drop('cmp_memory');

-- privileges: compaction erases history, so it needs "delete"; an archive
-- needs INSERT on it for the caller
CREATE ROLE regress_cmp_reader;
CREATE ROLE regress_cmp_eraser;
SELECT machine_grant('cmp', 'regress_cmp_reader', 'read');
SELECT machine_grant('cmp', 'regress_cmp_eraser', 'delete');
SET ROLE regress_cmp_reader;
SELECT cmp.error_of($$SELECT machine_compact('cmp')$$);
RESET ROLE;
SET ROLE regress_cmp_eraser;
SELECT machine_compact('cmp');
SELECT cmp.error_of($$SELECT machine_compact('cmp', archive => 'cmp.archive')$$);
RESET ROLE;

SELECT machine_drop('cmp', true);
DROP ROLE regress_cmp_reader, regress_cmp_eraser;
DROP SCHEMA cmp CASCADE;
