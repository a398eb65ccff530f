-- Migrations and upcasters: a redefinition migrates every actor in its
-- transaction, journaled as "$migrate" entries; folds upcast older events

CREATE SCHEMA mig;
CREATE FUNCTION mig.add(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', (event->>'amount')::numeric) $$;
-- revision 2 keeps money as {"cents": n} and pays with {"cents": n}
CREATE FUNCTION mig.add_cents(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', jsonb_build_object('cents', (event->>'cents')::int)) $$;
CREATE FUNCTION mig.to_cents(state jsonb, from_revision integer) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT CASE
		WHEN state->>'_tag' = 'Old' THEN (state - 'paid') || '{"_tag": "Pending", "was": "Old"}'
		WHEN state ? 'paid' THEN state || jsonb_build_object('paid',
			jsonb_build_object('cents', ((state->>'paid')::numeric * 100)::int), 'from', from_revision)
		ELSE state
	END
$$;
CREATE FUNCTION mig.pay_in_cents(event jsonb, revision integer) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT CASE WHEN event ? 'amount'
		THEN (event - 'amount') || jsonb_build_object('cents', ((event->>'amount')::numeric * 100)::int)
		ELSE event END
$$;
CREATE TABLE mig.calls (fn text, revision integer);
CREATE FUNCTION mig.logged_upcast(event jsonb, revision integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO mig.calls VALUES ('upcast', revision);
	RETURN mig.pay_in_cents(event, revision);
END $$;
CREATE FUNCTION mig.strict_upcast(event jsonb, revision integer) RETURNS jsonb
LANGUAGE sql STRICT AS $$ SELECT mig.pay_in_cents(event, revision) $$;
CREATE FUNCTION mig.null_state(state jsonb, from_revision integer) RETURNS jsonb
LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION mig.no_tag(state jsonb, from_revision integer) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state - '_tag' $$;
CREATE FUNCTION mig.to_nowhere(state jsonb, from_revision integer) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || '{"_tag": "Nowhere"}' $$;
CREATE FUNCTION mig.fails(state jsonb, from_revision integer) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'cannot migrate %', state->>'_tag'; END $$;
CREATE FUNCTION mig.null_event(event jsonb, revision integer) RETURNS jsonb
LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION mig.wrong(state jsonb, from_revision text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;

SELECT machine_define('mig', '{
  "initial": "Pending",
  "states": {"Pending": {"on": {"Pay": {"target": "Paid", "handler": "mig.add"}, "Age": "Old", "Remind": "Pending"},
                         "after": [{"delay": "1 hour", "event": {"_tag": "Remind"}}]},
             "Paid": {"on": {"Pay": {"target": "Paid", "handler": "mig.add"}}},
             "Old": {}},
  "unhandled": "ignore",
  "persistence": {"snapshotSchedule": "never"}
}');
SELECT machine_spawn('m-1', 'mig'), machine_spawn('m-2', 'mig'), machine_spawn('m-3', 'mig'),
       machine_spawn('m-4', 'mig');
SELECT machine_send('m-2', '{"_tag": "Pay", "amount": 2.5}'),
       machine_send('m-3', '{"_tag": "Age"}'),
       machine_send('m-4', '{"_tag": "Pay", "amount": 1}'), machine_stop('m-4');
SELECT actor_id, armed_version FROM machine.pending_timers ORDER BY 1;

-- the definitions of revision 2, good and bad
CREATE FUNCTION mig.rev2(migrate text DEFAULT 'mig.to_cents', upcast text DEFAULT 'mig.pay_in_cents')
RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
	  'initial', 'Pending',
	  'states', jsonb_build_object(
	      'Pending', jsonb_build_object('on', jsonb_build_object('Pay', jsonb_build_object('target', 'Paid', 'handler', 'mig.add_cents'), 'Remind', 'Pending'),
	                         'after', jsonb_build_array(jsonb_build_object('delay', '1 hour', 'event', jsonb_build_object('_tag', 'Remind')))),
	      'Paid', jsonb_build_object('on', jsonb_build_object('Pay', jsonb_build_object('target', 'Paid', 'handler', 'mig.add_cents')))),
	  'unhandled', 'ignore',
	  'migrate', migrate,
	  'upcast', upcast,
	  'persistence', jsonb_build_object('snapshotSchedule', 'never')))
$$;

-- a migration that fails in any way refuses the redefinition, and leaves
-- everything as it was
SELECT machine_define('mig', mig.rev2(migrate => 'mig.null_state'));
SELECT machine_define('mig', mig.rev2(migrate => 'mig.no_tag'));
SELECT machine_define('mig', mig.rev2(migrate => 'mig.to_nowhere'));
SELECT machine_define('mig', mig.rev2(migrate => 'mig.fails'));
SELECT machine_define('mig', mig.rev2(migrate => 'mig.wrong'));
SELECT machine_define('mig', mig.rev2(upcast => 'mig.wrong'));
SELECT machine_define('mig', mig.rev2(migrate => NULL));
SELECT revision FROM machine.definitions WHERE name = 'mig';
SELECT id, version, state_tag FROM machine.actors WHERE machine = 'mig' ORDER BY id;

-- the dry run shows what revision 2 without its migration would break,
-- and that the upcaster makes the old Pay events fold
SELECT * FROM machine_check_define('mig', mig.rev2(migrate => NULL, upcast => NULL)) ORDER BY 1, 2;
SELECT * FROM machine_check_define('mig', mig.rev2(migrate => NULL)) ORDER BY 1, 2;

-- with the migration, the dry run sees m-3 moved out of Old, and it
-- reports a migration that would fail, for each actor
SELECT * FROM machine_check_define('mig', mig.rev2()) ORDER BY 1, 2;
SELECT * FROM machine_check_define('mig', mig.rev2(migrate => 'mig.to_nowhere')) ORDER BY 1, 2;
SELECT * FROM machine_check_define('mig', mig.rev2(migrate => 'mig.fails')) ORDER BY 1, 2;

-- revision 2 with its migration: every changed actor gets a new version,
-- its "$migrate" journal row recorded by revision 2; m-1 stays as it was
SELECT machine_define('mig', mig.rev2());
SELECT id, version, state_tag, status FROM machine.actors WHERE machine = 'mig' ORDER BY id;
SELECT machine_state('m-2'), machine_state('m-3');
SELECT actor_id, version, event, state_tag, revision FROM machine.events
 WHERE actor_id LIKE 'm-%' ORDER BY actor_id, version;
-- each migrated actor has a snapshot of its new version
SELECT actor_id, version, state_tag FROM machine.snapshots WHERE actor_id LIKE 'm-%' ORDER BY 1, 2;
-- m-1 kept its timer; m-3 entered Pending and got Pending's timer
SELECT actor_id, armed_version FROM machine.pending_timers ORDER BY 1;

-- folds upcast the events of revision 1 and take the migrated states as
-- they are: history, replay, restore
SELECT version, event, state FROM machine_history('m-2');
SELECT machine_replay_to('m-2', 1), machine_replay_to('m-2', 2) = machine_state('m-2') AS same;
SELECT machine_restore('m-4');
SELECT machine_send('m-2', '{"_tag": "Pay", "cents": 7}');
SELECT machine_replay_to('m-2', 3) = machine_state('m-2') AS same;
-- m-3's Age event of revision 1 folds no more (its history before the
-- migration says so); from the migration on it folds.  Redefining with
-- the same definition would run its migration again, which fails on
-- states it migrated already
SELECT * FROM machine_check_define('mig', machine_definition('mig'));
SELECT machine_replay_to('m-3', 2);
SELECT count(*) FROM machine_history('m-3');

-- the upcaster is called for rows of older revisions only, with their
-- revision; rows without one (journaled before 1.1) get NULL, and a
-- STRICT upcaster leaves those as they are
SELECT machine_define('mig', mig.rev2(migrate => NULL, upcast => 'mig.logged_upcast'));
SELECT count(*) FROM machine_history('m-2');
SELECT fn, revision, count(*) FROM mig.calls GROUP BY 1, 2 ORDER BY 1, 2;
UPDATE machine.events SET revision = NULL WHERE actor_id = 'm-2' AND version = 1;
TRUNCATE mig.calls;
SELECT machine_replay_to('m-2', 1);
SELECT fn, revision, count(*) FROM mig.calls GROUP BY 1, 2 ORDER BY 1, 2;
SELECT machine_define('mig', mig.rev2(migrate => NULL, upcast => 'mig.strict_upcast'));
SELECT machine_replay_to('m-2', 1);
-- an upcaster that returns no event stops the fold
SELECT machine_define('mig', mig.rev2(migrate => NULL, upcast => 'mig.null_event'));
SELECT machine_replay_to('m-2', 1);

-- on a new machine a migration has nothing to do
SELECT machine_define('mig_new', mig.rev2());
SELECT machine_drop('mig_new');

SELECT machine_drop('mig', cascade => true);
DROP SCHEMA mig CASCADE;
