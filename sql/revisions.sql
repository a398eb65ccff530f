-- Revisions: every revision of a machine is kept, and every journal row
-- records the revision that applied it

CREATE SCHEMA revs;
GRANT USAGE ON SCHEMA revs TO PUBLIC;
CREATE FUNCTION revs.error_of(statement text) RETURNS text
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

SELECT machine_define('rev', '{
  "initial": "Open",
  "states": {"Open": {"on": {"Add": {"target": "Open", "merge": true}, "Close": "Closed"}},
             "Closed": {"final": true}},
  "persistence": {"snapshotSchedule": "never"}
}');
SELECT machine_spawn('rev-1', 'rev');
SELECT machine_send('rev-1', '{"_tag": "Add", "n": 1}');

-- revision 2 adds an event; revision 3 is refused and leaves nothing
SELECT machine_define('rev', '{
  "initial": "Open",
  "states": {"Open": {"on": {"Add": {"target": "Open", "merge": true}, "Note": "Open", "Close": "Closed"}},
             "Closed": {"final": true}},
  "persistence": {"snapshotSchedule": "never"}
}');
SELECT revs.error_of($$SELECT machine_define('rev', '{"initial": "Gone", "states": {"Gone": {}}}')$$);
SELECT revs.error_of($$SELECT machine_define('rev', '{"initial": "Open", "states": {"Open": {"on": {"X": "Nowhere"}}}}')$$);
SELECT machine_send('rev-1', '{"_tag": "Note"}');
SELECT machine_rewind('rev-1', 1);

-- the journal says which revision applied each event, the rewind included
SELECT version, event ->> '_tag' AS tag, revision FROM machine.events
 WHERE actor_id = 'rev-1' ORDER BY version;
SELECT machine, revision, definition = machine_definition('rev', revision) AS same,
       defined_by, defined_at <= now() AS dated
  FROM machine.revisions WHERE machine = 'rev' ORDER BY revision;

-- machine_definition(name, revision): any revision kept; NULL for one
-- never made, and for an unknown machine
SELECT machine_definition('rev', 1) -> 'states' -> 'Open' -> 'on' ? 'Note' AS r1_notes,
       machine_definition('rev', 2) -> 'states' -> 'Open' -> 'on' ? 'Note' AS r2_notes,
       machine_definition('rev', 2) = machine_definition('rev') AS r2_latest;
SELECT machine_definition('rev', 3) IS NULL AS r3, machine_definition('nope', 1) IS NULL AS nope,
       machine_definition('rev', NULL) IS NULL AS null_revision;
SELECT revs.error_of($$SELECT machine_definition('rev', 0)$$);
SELECT revs.error_of($$SELECT machine_definition('rev', -5)$$);

-- the journal rows written through SQL (the tables changed by hand, so
-- that the direct path steps aside) record their revision too
ALTER TABLE machine.events ADD CONSTRAINT revs_small CHECK (version < 1000);
SELECT machine_send('rev-1', '{"_tag": "Add", "n": 2}');
ALTER TABLE machine.events DROP CONSTRAINT revs_small;
SELECT machine_send('rev-1', '{"_tag": "Add", "n": 3}');
SELECT version, revision FROM machine.events WHERE actor_id = 'rev-1' AND version > 3 ORDER BY version;
-- and replay still folds them all
SELECT machine_replay_to('rev-1', 5) = machine_state('rev-1') AS replayed;

-- two redefinitions in one transaction keep both revisions
BEGIN;
SELECT machine_define('rev', machine_definition('rev', 1));
SELECT machine_define('rev', machine_definition('rev', 2));
COMMIT;
SELECT array_agg(revision ORDER BY revision) FROM machine.revisions WHERE machine = 'rev';

-- dropping a machine drops its revisions; a new machine of that name
-- starts again at revision 1
SELECT machine_drop('rev', cascade => true);
SELECT count(*) FROM machine.revisions WHERE machine = 'rev';
SELECT machine_define('rev', '{"initial": "A", "states": {"A": {}}}');
SELECT machine, revision FROM machine.revisions WHERE machine = 'rev';
SELECT machine_drop('rev');

-- a role that may not read the machine gets nothing of its revisions
CREATE ROLE regress_revs_stranger;
SELECT machine_define('rev_private', '{"initial": "A", "states": {"A": {}}}');
SET ROLE regress_revs_stranger;
SELECT revs.error_of($$SELECT machine_definition('rev_private', 1)$$);
SELECT revs.error_of($$SELECT count(*) FROM machine.revisions$$);
RESET ROLE;
SELECT machine_drop('rev_private');
DROP ROLE regress_revs_stranger;
DROP SCHEMA revs CASCADE;
