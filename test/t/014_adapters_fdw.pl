# A user adapter that keeps the journal on another server (README
# "Adapters"): the example adapter of test/t/fdw_journal, over postgres_fdw,
# between two nodes.  Sends journal on the remote node; restore, replay and
# history read from it; a version taken there is the extension's version
# conflict.  With the remote node down, a send fails cleanly: nothing of it
# stays on the local node (actor, timers, the caller's own writes in the
# same transaction), and once the remote node is back the actor carries on
# from where it was, its remote journal without a gap.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = PostgreSQL::Test::Cluster->new('journal');
$remote->init;
$remote->start;
$remote->safe_psql('postgres', slurp_file('t/fdw_journal/remote.sql'));

my $local = PostgreSQL::Test::Cluster->new('actors');
$local->init;
$local->start;
my $user = $local->safe_psql('postgres', 'SELECT current_user');
$local->safe_psql('postgres', 'CREATE EXTENSION machine');
$local->command_ok(
	[
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		'-d', $local->connstr('postgres'),
		'-v', 'remote_host=' . $remote->host,
		'-v', 'remote_port=' . $remote->port,
		'-v', 'remote_db=postgres',
		'-v', "remote_user=$user",
		'-f', 't/fdw_journal/local.sql'
	],
	'the adapter installs');

$local->safe_psql('postgres', q{
	CREATE FUNCTION add(state jsonb, event jsonb) RETURNS jsonb LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('total', (state->>'total')::int + (event->>'amount')::int)
	$$;
	SELECT machine_define('order', '{
	  "initial": "Open",
	  "states": {
	    "Open": {"on": {"Add": {"target": "Open", "handler": "add"}, "Close": "Closed"},
	             "after": [{"delay": "1 hour", "event": {"_tag": "Close"}}]},
	    "Closed": {"final": true}},
	  "persistence": {"adapter": "fdw_journal", "snapshotSchedule": "every 2"}}');
	SELECT machine_spawn('o-' || i, 'order', '{"total": 0}') FROM generate_series(1, 3) i;
	SELECT machine_send('o-' || i, jsonb_build_object('_tag', 'Add', 'amount', k))
	  FROM generate_series(1, 3) i, generate_series(1, 3) k;
});

is($remote->safe_psql('postgres', q{
	SELECT string_agg(actor_id || ':' || version || ':' || (event->>'amount'), ' ' ORDER BY actor_id, version)
	  FROM machine_journal}),
	'o-1:1:1 o-1:2:2 o-1:3:3 o-2:1:1 o-2:2:2 o-2:3:3 o-3:1:1 o-3:2:2 o-3:3:3',
	'the journal is on the remote node');
is($remote->safe_psql('postgres', q{
	SELECT string_agg(actor_id || ':' || version, ' ' ORDER BY actor_id, version) FROM machine_snapshots}),
	'o-1:2 o-2:2 o-3:2', 'so are the snapshots of the schedule');
is($local->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM machine.events) + (SELECT count(*) FROM machine.snapshots)}),
	'0', 'the local node keeps no journal or snapshot of them');
is($local->safe_psql('postgres', q{
	SELECT string_agg(version || '=' || (state->>'total'), ' ' ORDER BY version) FROM machine_history('o-1')}),
	'1=1 2=3 3=6', 'history reads the remote journal');
is($local->safe_psql('postgres', q{SELECT machine_replay_to('o-2', 1) ->> 'total'}),
	'1', 'replay reads it');
is($local->safe_psql('postgres', q{
	SELECT machine_stop('o-3'), machine_restore('o-3') ->> 'total'}),
	"t|6", 'stop saves a snapshot remotely; restore folds from it');

# a version the remote journal holds already
$remote->safe_psql('postgres', q{
	INSERT INTO machine_journal VALUES ('o-1', 4, '{"_tag": "Add", "amount": 100}', 'Open', now())});
my ($rc, $out, $err) = $local->psql('postgres', q{
	SELECT machine_send('o-1', '{"_tag": "Add", "amount": 4}')}, on_error_stop => 1,
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/MA001: version conflict on actor "o-1"/,
	'a version taken on the remote node is a version conflict');
is($local->safe_psql('postgres', q{SELECT machine_version('o-1')}), '3',
	'and the actor did not move');
$remote->safe_psql('postgres', q{DELETE FROM machine_journal WHERE actor_id = 'o-1' AND version = 4});

# a role that may send needs no user mapping: the adapter's functions
# reach the remote node as their owner
$local->safe_psql('postgres', q{
	CREATE ROLE clerk LOGIN;
	GRANT EXECUTE ON FUNCTION add(jsonb, jsonb) TO clerk;
	SELECT machine_grant('order', 'clerk', 'send');
});
is($local->safe_psql('postgres', q{
	SET ROLE clerk;
	SELECT machine_send('o-2', '{"_tag": "Add", "amount": 4}') ->> 'total'}),
	'10', 'a role without a user mapping sends through the adapter');

# the remote node goes down
my $before = $local->safe_psql('postgres', q{
	SELECT string_agg(id || ' ' || version || ' ' || state_tag, ', ' ORDER BY id) FROM machine.actors});
my $timers = $local->safe_psql('postgres', q{
	SELECT string_agg(actor_id || ' ' || armed_version, ', ' ORDER BY actor_id) FROM machine.timers});
$remote->stop('immediate');

$local->safe_psql('postgres', 'CREATE TABLE audit (note text)');
($rc, $out, $err) = $local->psql('postgres', q{
	BEGIN;
	INSERT INTO audit VALUES ('before the send');
	SELECT machine_send('o-1', '{"_tag": "Add", "amount": 4}');
	COMMIT;}, extra_params => [ '-v', 'VERBOSITY=verbose', '-v', 'ON_ERROR_STOP=1' ]);
isnt($rc, 0, 'a send fails while the remote node is down');
like($err, qr/ERROR:  08\d\d\d: could not connect to server "fdw_journal_server"/,
	'with the connection failure of postgres_fdw');
is($local->safe_psql('postgres', q{
	SELECT string_agg(id || ' ' || version || ' ' || state_tag, ', ' ORDER BY id) FROM machine.actors}),
	$before, 'no actor moved');
is($local->safe_psql('postgres', q{
	SELECT string_agg(actor_id || ' ' || armed_version, ', ' ORDER BY actor_id) FROM machine.timers}),
	$timers, 'no timer moved');
is($local->safe_psql('postgres', 'SELECT count(*) FROM audit'), '0',
	"the caller's own writes of that transaction are gone with it");
($rc, $out, $err) = $local->psql('postgres', q{SELECT machine_send('o-1', '{"_tag": "Close"}')});
isnt($rc, 0, 'a send into a final state fails too');
is($local->safe_psql('postgres', q{SELECT machine_state('o-1') ->> '_tag'}), 'Open',
	'and leaves the actor open');
($rc, $out, $err) = $local->psql('postgres', q{SELECT count(*) FROM machine_history('o-1')});
like($err, qr/could not connect to server "fdw_journal_server"/,
	'history fails with the same error');
is($local->safe_psql('postgres', q{SELECT machine_state('o-1') ->> 'total'}), '6',
	'the live state is still read locally');
is($local->safe_psql('postgres', q{SELECT machine_spawn('o-4', 'order', '{"total": 0}') ->> 'total'}),
	'0', 'a spawn, which journals nothing, still works');

# back up: the actor carries on where it was
$remote->start;
is($local->safe_psql('postgres', q{
	SELECT machine_send('o-1', '{"_tag": "Add", "amount": 4}') ->> 'total'}),
	'10', 'with the remote node back, the send goes through');
is($remote->safe_psql('postgres', q{
	SELECT string_agg(version::text, ' ' ORDER BY version) FROM machine_journal WHERE actor_id = 'o-1'}),
	'1 2 3 4', 'its remote journal has no gap and no stray row');
is($local->safe_psql('postgres', q{
	SELECT machine_stop('o-1'), machine_restore('o-1') ->> 'total'}),
	"t|10", 'and folds to the live state');

# delete erases the remote rows
$local->safe_psql('postgres', q{SELECT machine_delete('o-1')});
is($remote->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM machine_journal WHERE actor_id = 'o-1') +
	       (SELECT count(*) FROM machine_snapshots WHERE actor_id = 'o-1')}),
	'0', 'machine_delete erases the actor on the remote node');

$local->stop;
$remote->stop;
done_testing();
