# Direct edits of the extension's tables by their owner (the only role
# that may write them): versions at the limits of bigint, journal gaps and
# rows that are not events, states that are not objects or not states of
# their machine, snapshots out of step, machine rows that no definition
# could produce, timers with impossible rows.  Then every function runs on
# every edited actor, each call in its own subtransaction, and the worker
# keeps running:
#   - no backend crashes; every error has a SQLSTATE other than XX000;
#   - no actor moves past the top of bigint, and nothing is written for a
#     failed call;
#   - the worker survives every bad row and still fires a fresh timer;
#   - a timer whose handler runs too long is cancelled after
#     machine.timer_timeout and the other timers fire meanwhile;
#   - intervals at the limits of interval and timestamptz are refused when
#     defining.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('edits');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'machine'
machine.naptime = 100ms
machine.timer_timeout = 1s
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE TABLE fired (actor text);
	CREATE FUNCTION record_fire(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO fired VALUES (actor_id) $$;
	CREATE FUNCTION slow(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT pg_sleep(30); SELECT state $$;
	SELECT machine_define('ledger', '{
	  "initial": "Open",
	  "states": {
	    "Open": {"on": {"Add": {"target": "Open", "merge": true}, "Close": "Closed"},
	             "after": [{"delay": "1 hour", "event": {"_tag": "Close"}}]},
	    "Closed": {"on": {"Reopen": "Open"}}
	  },
	  "persistence": {"snapshotSchedule": "every 2"}
	}');
	SELECT machine_define('beeper', '{
	  "initial": "Waiting",
	  "states": {
	    "Waiting": {"on": {"Beep": "Beeped", "Stall": {"target": "Waiting", "handler": "slow"}},
	                "after": [{"delay": "200 ms", "event": {"_tag": "Beep"}}]},
	    "Beeped": {"entry": ["record_fire"]}
	  }
	}');
	SELECT machine_define('spaced', '{
	  "initial": "A", "states": {"A": {"on": {"Go": "A"}}},
	  "persistence": {"snapshotSchedule": "spaced 1 second"}
	}');
});

ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'postgres'}),
	'a worker serves the database');

# ----------------------------------------------------------------------
# The edits: one actor each, with a journal and snapshots to edit
# ----------------------------------------------------------------------
my @edits = (
	[ 'top' => q{UPDATE machine.instances SET version = 9223372036854775807 WHERE actor_id = 'top'} ],
	[ 'near-top' => q{UPDATE machine.instances SET version = 9223372036854775806 WHERE actor_id = 'near-top'} ],
	[ 'gap' => q{DELETE FROM machine.events WHERE actor_id = 'gap' AND version = 2} ],
	[ 'no-journal' => q{DELETE FROM machine.events WHERE actor_id = 'no-journal'} ],
	[ 'event-number' => q{UPDATE machine.events SET event = '42' WHERE actor_id = 'event-number' AND version = 3} ],
	[ 'event-tag' => q{UPDATE machine.events SET event = '{"_tag": 5}' WHERE actor_id = 'event-tag' AND version = 1} ],
	[ 'event-unknown' => q{UPDATE machine.events SET event = '{"_tag": "Explode"}' WHERE actor_id = 'event-unknown' AND version = 1} ],
	[ 'event-dollar' => q{UPDATE machine.events SET event = '{"_tag": "$rewind"}' WHERE actor_id = 'event-dollar' AND version = 1} ],
	[ 'journal-tag' => q{UPDATE machine.events SET state_tag = 'Nowhere' WHERE actor_id = 'journal-tag' AND version = 1} ],
	[ 'state-tag' => q{UPDATE machine.instances SET state_tag = 'Nowhere' WHERE actor_id = 'state-tag'} ],
	[ 'state-array' => q{UPDATE machine.instances SET state = '[1, 2]' WHERE actor_id = 'state-array'} ],
	[ 'state-untagged' => q{UPDATE machine.instances SET state = '{"x": 1}' WHERE actor_id = 'state-untagged'} ],
	[ 'initial-null' => q{UPDATE machine.instances SET initial_state = 'null' WHERE actor_id = 'initial-null'} ],
	[ 'snapshot-array' => q{UPDATE machine.snapshots SET state = '[]' WHERE actor_id = 'snapshot-array'} ],
	[ 'snapshot-ahead' => q{UPDATE machine.snapshots SET version = 1000 WHERE actor_id = 'snapshot-ahead' AND version = 2} ],
	[ 'version-behind' => q{UPDATE machine.instances SET version = 1 WHERE actor_id = 'version-behind'} ],
	[ 'other-machine' => q{UPDATE machine.instances SET machine = 'spaced' WHERE actor_id = 'other-machine'} ],
	[ 'timer-event' => q{UPDATE machine.timers SET event = '"Close"', due_at = now() - interval '1 day' WHERE actor_id = 'timer-event'} ],
	[ 'timer-role' => q{UPDATE machine.timers SET armed_by = 4000000000::oid::regrole, due_at = now() - interval '1 day' WHERE actor_id = 'timer-role'} ],
	[ 'timer-version' => q{UPDATE machine.timers SET armed_version = 9223372036854775807, due_at = now() - interval '1 day' WHERE actor_id = 'timer-version'} ],
	[ 'timer-far' => q{UPDATE machine.timers SET due_at = '-infinity' WHERE actor_id = 'timer-far'} ],
);

foreach my $e (@edits)
{
	my ($id, $edit) = @$e;
	$node->safe_psql('postgres', qq{
		SELECT machine_spawn('$id', 'ledger');
		SELECT machine_send('$id', jsonb_build_object('_tag', 'Add', 'n', i)) FROM generate_series(1, 4) i;
		$edit;
	});
}
# machine rows no definition could produce
$node->safe_psql('postgres', q{
	SELECT machine_spawn('spaced-1', 'spaced');
	SELECT machine_send('spaced-1', '{"_tag": "Go"}');
	UPDATE machine.machines SET snapshot_spacing = '3000000 days' WHERE name = 'spaced';
	SELECT machine_define('broken', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}}');
	SELECT machine_spawn('broken-1', 'broken');
	UPDATE machine.machines SET definition = '{"initial": 7}' WHERE name = 'broken';
	SELECT machine_define('mismatch', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}}}');
	SELECT machine_spawn('mismatch-1', 'mismatch');
	UPDATE machine.machines SET functions = '{pg_catalog.now}' WHERE name = 'mismatch';
});

# ----------------------------------------------------------------------
# Every function on every actor, each in a subtransaction
# ----------------------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE TABLE outcomes (actor text, call text, sqlstate text, message text);
CREATE PROCEDURE try_all() LANGUAGE plpgsql AS $$
DECLARE
	a text;
	c text;
	st text;
	msg text;
BEGIN
	FOR a IN SELECT actor_id FROM machine.instances ORDER BY actor_id LOOP
		FOREACH c IN ARRAY ARRAY[
			'SELECT machine_state(%L)', 'SELECT machine_version(%L)',
			'SELECT machine_send(%L, ''{"_tag": "Add", "n": 9}'')',
			'SELECT machine_send(%L, ''{"_tag": "Go"}'')',
			'SELECT machine_replay_to(%L, 1)', 'SELECT machine_replay_to(%L, 3)',
			'SELECT count(*) FROM machine_history(%L)',
			'SELECT machine_persist(%L)', 'SELECT machine_rewind(%L, 1)',
			'SELECT machine_stop(%L)', 'SELECT machine_restore(%L)',
			'SELECT count(*) FROM machine_restore_many(ARRAY[%L])'] LOOP
			st := NULL;
			msg := NULL;
			BEGIN
				EXECUTE format(c, a);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			END;
			INSERT INTO outcomes VALUES (a, c, st, msg);
			COMMIT;
		END LOOP;
	END LOOP;
END $$;
});
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'CALL try_all()');
is($ret, 0, 'every call on every edited actor returns or raises an error');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
note("outcomes:\n" . $node->safe_psql('postgres', q{
	SELECT coalesce(sqlstate, 'ok') || ' ' || count(*) || ' ' || coalesce(
	       (array_agg(left(actor || ': ' || message, 120) ORDER BY actor))[1], '')
	  FROM outcomes GROUP BY sqlstate ORDER BY sqlstate NULLS FIRST}));
is($node->safe_psql('postgres', q{
	SELECT string_agg(actor || ' ' || call || ': ' || message, E'\n')
	  FROM outcomes WHERE sqlstate = 'XX000' OR (sqlstate IS NOT NULL AND coalesce(message, '') = '')}),
	'', 'every error has a SQLSTATE other than XX000 and a message');
is($node->safe_psql('postgres', q{
	SELECT sqlstate FROM outcomes
	 WHERE actor = 'top' AND call LIKE '%machine_send%Add%'}),
	'54000', 'an actor at the top of bigint cannot move on');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.instances WHERE version < 0}),
	'0', 'no version wrapped around');
is($node->safe_psql('postgres', q{
	SELECT max(version) FROM machine.events WHERE actor_id = 'near-top'}),
	'9223372036854775807', 'an actor one below the top takes its last step');

# ----------------------------------------------------------------------
# The worker went through all of it
# ----------------------------------------------------------------------
sub log_position { return -s $node->logfile; }
my $pos = log_position();
$node->safe_psql('postgres', q{SELECT machine_spawn('beep-1', 'beeper')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM fired WHERE actor = 'beep-1'}),
	'after the bad rows, a fresh timer still fires');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'postgres'}),
	'1', 'one worker, still serving');
unlike(slurp_file($node->logfile), qr/terminated by signal|PANIC|TRAP:|exited with exit code [^0]|out of range/,
	'no process crashed or exited with an error, no date left its range');
$node->safe_psql('postgres', q{
	SELECT machine_define('spaced-ok', '{
	  "initial": "A", "states": {"A": {"on": {"Go": "A"}}},
	  "persistence": {"snapshotSchedule": "spaced 1 second"}
	}');
	SELECT machine_spawn('spaced-ok-1', 'spaced-ok');
	SELECT machine_send('spaced-ok-1', '{"_tag": "Go"}');
});
ok($node->poll_query_until('postgres', q{SELECT snapshot_version = 1 FROM machine.actors WHERE id = 'spaced-ok-1'}),
	'beside a machine row with an impossible spacing, spaced snapshots are taken');

# a timer that takes too long is cancelled; the others fire meanwhile
$pos = log_position();
$node->safe_psql('postgres', q{
	SELECT machine_spawn('stall-1', 'beeper');
	SELECT machine_send('stall-1', '{"_tag": "Stall"}');
	SELECT machine_spawn('beep-2', 'beeper');
});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM fired WHERE actor = 'beep-2'}),
	'a timer due beside a slow one fires');
ok($node->wait_for_log(qr/timer of actor "stall-1" failed: canceling statement due to statement timeout/, $pos),
	'the slow timer is cancelled after machine.timer_timeout and logged');

# ----------------------------------------------------------------------
# Intervals at the limits are refused when defining
# ----------------------------------------------------------------------
foreach my $interval ('3000000 days', '9223372036854775807 microseconds',
	'36526 days', '5300000 weeks', '106751991167 days')
{
	my ($r, $out, $err) = $node->psql('postgres', qq{
		SELECT machine_define('far', '{"initial": "A", "states": {"A": {"on": {"Go": "A"},
		  "after": [{"delay": "$interval", "event": {"_tag": "Go"}}]}}}')});
	like($err, qr/is (longer than 100 years|out of range)/, "timer delay \"$interval\" is refused");
	($r, $out, $err) = $node->psql('postgres', qq{
		SELECT machine_define('far', '{"initial": "A", "states": {"A": {}},
		  "persistence": {"snapshotSchedule": "spaced $interval"}}')});
	like($err, qr/is (longer than 100 years|out of range)/, "snapshot spacing \"$interval\" is refused");
}
is($node->safe_psql('postgres', q{
	SELECT machine_define('far', '{"initial": "A", "states": {"A": {"on": {"Go": "A"},
	  "after": [{"delay": "36525 days", "event": {"_tag": "Go"}}]}},
	  "persistence": {"snapshotSchedule": "spaced 36525 days"}}')}),
	'1', 'exactly 100 years is accepted');
is($node->safe_psql('postgres', q{SELECT machine_spawn('far-1', 'far') ->> '_tag'}),
	'A', 'and a timer that far arms');

$node->stop;
done_testing();
