# A streaming standby: what the primary wrote -- actors, the
# journal, snapshots -- reads the same on a hot standby through the view and
# every reading function; every writing function is refused there with the
# standard read-only error (25006), as it is in a read-only transaction on
# the primary, and changes nothing; no launcher or worker runs during
# recovery; after promotion the launcher and a worker start and a timer
# armed on the old primary fires, exactly once.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $preload = qq{
shared_preload_libraries = 'machine'
machine.naptime = 100ms
};

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', $preload);
$primary->start;
$primary->backup('backup');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->append_conf('postgresql.conf', $preload);
$standby->start;

sub backends
{
	my ($node, $type) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = '$type'");
}

# On the primary: a persistent machine with a journal, "every 2" snapshots,
# a short timer (Open -> Expired) and a longer one (Held -> Expired); the
# entry effect of Expired counts the firings.
$primary->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE TABLE fired (actor text, at timestamptz DEFAULT clock_timestamp());
	CREATE FUNCTION record_fire(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO fired (actor) VALUES (actor_id) $$;
	CREATE FUNCTION count_up(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1)
	$$;
	SELECT machine_define('offer', '{
	  "initial": "Open",
	  "states": {
	    "Open": {"on": {"Bump": {"target": "Open", "handler": "count_up"},
	                    "Note": {"target": "Open", "merge": true},
	                    "Expire": "Expired", "Hold": "Held", "Park": "Idle"},
	             "after": [{"delay": "2 seconds", "event": {"_tag": "Expire"}}]},
	    "Held": {"on": {"Bump": {"target": "Held", "handler": "count_up"},
	                    "Expire": "Expired"},
	             "after": [{"delay": "8 seconds", "event": {"_tag": "Expire"}}]},
	    "Idle": {"on": {"Bump": {"target": "Idle", "handler": "count_up"}, "Wake": "Open"}},
	    "Expired": {"final": true, "entry": ["record_fire"]}
	  },
	  "persistence": {"snapshotSchedule": "every 2", "journalEvents": true,
	                  "machineType": "Offer"}
	}');
	BEGIN;
	SELECT machine_spawn('busy', 'offer', '{"owner": "ann"}');
	SELECT machine_send('busy', '{"_tag": "Hold"}');
	SELECT count(machine_send('busy', '{"_tag": "Bump"}')) FROM generate_series(1, 4);
	SELECT machine_spawn('noted', 'offer');
	SELECT machine_send('noted', '{"_tag": "Note", "text": "hello"}');
	SELECT machine_send('noted', '{"_tag": "Bump"}');
	SELECT machine_send('noted', '{"_tag": "Bump"}');
	SELECT machine_send('noted', '{"_tag": "Bump"}');
	SELECT machine_spawn('short', 'offer');
	SELECT machine_spawn('parked', 'offer');
	SELECT machine_send('parked', '{"_tag": "Hold"}');
	SELECT machine_stop('parked');
	SELECT machine_spawn('live', 'offer');
	SELECT machine_send('live', '{"_tag": "Park"}');
	SELECT machine_send('live', '{"_tag": "Bump"}');
	COMMIT;
});

# the primary's worker fires the short timers of "noted" and "short"; the
# Held timer of "busy" (8 seconds after its Hold) fires too: wait for all
ok($primary->poll_query_until('postgres', q{
	SELECT count(*) = 3 FROM machine.actors WHERE state_tag = 'Expired'}),
	'on the primary, the timers fire');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM machine.timers'), '0',
	'no timer is left on the primary');
$primary->wait_for_catchup($standby);

ok($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()') eq 't',
	'the standby is in recovery');

# Read-only, the standby answers exactly as the primary does
my @reads = (
	[ 'the registry view', 'SELECT * FROM machine.actors ORDER BY id' ],
	[ 'machine_state and machine_version', q{
		SELECT id, machine_state(id), machine_version(id)
		  FROM machine.actors ORDER BY id} ],
	[ 'machine_replay_to at every version', q{
		SELECT a.id, v, machine_replay_to(a.id, v)
		  FROM machine.actors a, generate_series(0, a.version) v ORDER BY 1, 2} ],
	[ 'machine_history', q{
		SELECT a.id, h.* FROM machine.actors a, machine_history(a.id) h ORDER BY 1, 2} ],
	[ 'machine_definition', q{SELECT machine_definition('offer')} ],
	[ 'the journal and snapshots', q{
		SELECT 'e', actor_id, version, state_tag, event FROM machine.events
		UNION ALL
		SELECT 's', actor_id, version, state_tag, state FROM machine.snapshots
		ORDER BY 1, 2, 3} ],
	[ 'machine_simulate', q{
		SELECT * FROM machine_simulate('offer',
			ARRAY['{"_tag": "Bump"}', '{"_tag": "Hold"}', '{"_tag": "Expire"}']::jsonb[])} ],
);
foreach my $read (@reads)
{
	my ($what, $sql) = @$read;
	my $on_primary = $primary->safe_psql('postgres', $sql);
	my ($ret, $on_standby, $stderr) = $standby->psql('postgres', $sql);
	is($ret, 0, "on the standby, $what answers");
	is($stderr, '', "on the standby, $what answers without complaint");
	is($on_standby, $on_primary, "on the standby, $what equals the primary's");
}

# the answers are not empty: 5 actors, journals, snapshots every 2 versions
is($standby->safe_psql('postgres', q{
	SELECT string_agg(id || ':' || version || ':' || state_tag || ':' || status
	                  || ':' || coalesce(snapshot_version::text, '-'), ' ' ORDER BY id)
	  FROM machine.actors}),
	'busy:6:Expired:done:6 live:2:Idle:running:2 noted:5:Expired:done:4 parked:1:Held:stopped:1 short:1:Expired:done:-',
	'the standby sees every actor, its version, state and latest snapshot');
is($standby->safe_psql('postgres', q{SELECT machine_replay_to('busy', 3)}),
	'{"n": 2, "_tag": "Held", "owner": "ann"}',
	'the standby folds snapshot and journal');

# Every writing function is refused on the standby with the standard
# read-only error, and changes nothing
my @writes = (
	[ 'machine_send', q{SELECT machine_send('live', '{"_tag": "Bump"}')} ],
	[ 'machine_send with the expected version', q{SELECT machine_send('live', '{"_tag": "Wake"}', 2)} ],
	[ 'machine_spawn', q{SELECT machine_spawn('new', 'offer')} ],
	[ 'machine_define', q{SELECT machine_define('other', '{"initial": "A", "states": {"A": {}}}')} ],
	[ 'machine_define of an existing machine', q{SELECT machine_define('offer', machine_definition('offer'))} ],
	[ 'machine_persist', q{SELECT machine_persist('live')} ],
	[ 'machine_stop', q{SELECT machine_stop('live')} ],
	[ 'machine_delete', q{SELECT machine_delete('live')} ],
	[ 'machine_drop', q{SELECT machine_drop('offer', true)} ],
	[ 'machine_restore', q{SELECT machine_restore('parked')} ],
	[ 'machine_rewind', q{SELECT machine_rewind('live', 1)} ],
	[ 'machine_run_maintenance', q{SELECT * FROM machine_run_maintenance()} ],
);
my $before = $standby->safe_psql('postgres',
	'SELECT * FROM machine.actors ORDER BY id');
foreach my $write (@writes)
{
	my ($what, $sql) = @$write;
	my ($ret, $stdout, $stderr) = $standby->psql('postgres',
		"\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "on the standby, $what fails");
	like($stderr, qr/ERROR:  (?!XX)[0-9A-Z]{5}: \S/,
		"on the standby, $what fails with a clean error");
	like($stderr, qr/ERROR:  25006: cannot execute .* in a read-only transaction/,
		"on the standby, $what fails with the read-only error (25006)");
}
is($standby->safe_psql('postgres', 'SELECT * FROM machine.actors ORDER BY id'),
	$before, 'the standby is unchanged');

# A standby's sessions are read-only transactions: on the primary, a
# read-only transaction refuses the same writes with the same error
my $before_primary = $primary->safe_psql('postgres', q{
	SELECT (SELECT string_agg(concat_ws(',', id, version, state_tag, status), ';' ORDER BY id)
	          FROM machine.actors),
	       (SELECT count(*) FROM machine.events), (SELECT count(*) FROM machine.snapshots),
	       (SELECT count(*) FROM machine.machines)});
foreach my $write (@writes)
{
	my ($what, $sql) = @$write;
	my ($ret, $stdout, $stderr) = $primary->psql('postgres',
		"\\set VERBOSITY verbose\nSET default_transaction_read_only = on;\n$sql");
	isnt($ret, 0, "in a read-only transaction on the primary, $what fails");
	like($stderr, qr/ERROR:  25006: cannot execute .* in a read-only transaction/,
		"in a read-only transaction on the primary, $what fails with the read-only error (25006)");
}
is($primary->safe_psql('postgres', q{
	SELECT (SELECT string_agg(concat_ws(',', id, version, state_tag, status), ';' ORDER BY id)
	          FROM machine.actors),
	       (SELECT count(*) FROM machine.events), (SELECT count(*) FROM machine.snapshots),
	       (SELECT count(*) FROM machine.machines)}),
	$before_primary, 'read-only transactions on the primary changed nothing');

# No launcher and no worker during recovery
sleep(1);    # ten naptimes
is(backends($standby, 'machine worker'), '0', 'no machine worker runs on the standby');
is(backends($standby, 'machine launcher'), '0', 'nor the launcher');
is(backends($primary, 'machine worker'), '1', 'while the primary has its worker');

# Arm a timer on the primary (Held: 8 seconds), stop the primary, promote
$primary->safe_psql('postgres', q{
	SELECT machine_spawn('failover', 'offer');
	SELECT machine_send('failover', '{"_tag": "Hold"}');
});
$primary->wait_for_catchup($standby);
$primary->stop('fast');
is($standby->safe_psql('postgres', q{
	SELECT state_tag || ' ' || version FROM machine.actors WHERE id = 'failover'}),
	'Held 1', 'the standby has the actor in the state with the armed timer');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM machine.timers WHERE actor_id = 'failover'}),
	'1', 'and its timer');

$standby->promote;
ok($standby->poll_query_until('postgres', "SELECT NOT pg_is_in_recovery()"),
	'the standby is promoted');
ok($standby->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'machine launcher'"),
	'after promotion, the launcher starts');
ok($standby->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'machine worker' AND datname = 'postgres'}),
	'and a worker serves the database');
ok($standby->poll_query_until('postgres',
	"SELECT machine_state('failover')->>'_tag' = 'Expired'"),
	'the timer armed on the old primary fires on the new one');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM machine.events WHERE actor_id = 'failover' AND event->>'_tag' = 'Expire'}),
	'1', 'once in the journal');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM fired WHERE actor = 'failover'}),
	'1', 'its entry effect ran once');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM machine.timers}),
	'0', 'no timer is left');

# the promoted node writes
is($standby->safe_psql('postgres', q{
	SELECT machine_restore('parked')->>'_tag'}), 'Held',
	'the promoted node accepts writes');

$standby->stop('fast');
done_testing();
