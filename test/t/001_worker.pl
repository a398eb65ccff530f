# The background worker: the launcher starts one worker per
# database with the extension; timers fire and spaced snapshots appear by
# themselves; a database created later is served; pending timers survive an
# immediate stop and fire exactly once; a crashed worker comes back; DROP
# DATABASE does not wait for the worker; a clean stop stays clean.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'machine'
machine.naptime = 100ms
restart_after_crash = on
});
$node->start;

sub workers
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity
		  WHERE backend_type = 'machine worker' AND datname = '$db'");
}

ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'machine launcher'"),
	'the launcher runs');

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE TABLE fired (actor text, at timestamptz DEFAULT clock_timestamp());
	CREATE FUNCTION record_fire(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO fired (actor) VALUES (actor_id) $$;
	CREATE FUNCTION explode(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the fuse blew'; END $$;
	SELECT machine_define('offer', '{
	  "initial": "Open",
	  "states": {
	    "Open": {"on": {"Expire": "Expired", "Fuse": {"target": "Open", "handler": "explode"}},
	             "after": [{"delay": "1 second", "event": {"_tag": "Expire"}}]},
	    "Trap": {"on": {"Fuse": {"target": "Trap", "handler": "explode"}},
	             "after": [{"delay": "1 second", "event": {"_tag": "Fuse"}}]},
	    "Expired": {"final": true, "entry": ["record_fire"]}
	  },
	  "any": {"Arm": "Trap"},
	  "persistence": {}
	}');
	SELECT machine_define('doc', '{
	  "initial": "Draft",
	  "states": {"Draft": {"on": {"Edit": {"target": "Draft", "merge": true}}}},
	  "persistence": {"snapshotSchedule": "spaced 1 second"}
	}');
});

ok($node->poll_query_until('postgres', "SELECT " . q{(SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'postgres') = 1}),
	'a worker serves the database with the extension');

# a timer fires by itself, exactly once; a failing one is logged and skipped
$node->safe_psql('postgres', q{
	SELECT machine_spawn('bad-1', 'offer');
	SELECT machine_send('bad-1', '{"_tag": "Arm"}');
	SELECT machine_spawn('offer-1', 'offer');
});
ok($node->poll_query_until('postgres',
	"SELECT machine_state('offer-1')->>'_tag' = 'Expired'"),
	'a due timer fires by itself');
is($node->safe_psql('postgres', "SELECT count(*) FROM fired WHERE actor = 'offer-1'"),
	'1', 'its entry effect ran once');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM machine.timers WHERE actor_id = 'bad-1'"),
	'a failing timer is dropped');
ok($node->log_contains(qr/timer of actor "bad-1" failed: the fuse blew/),
	'the failure is logged with the actor id');

# spaced snapshots appear by themselves
$node->safe_psql('postgres', q{
	SELECT machine_spawn('doc-1', 'doc');
	SELECT machine_send('doc-1', '{"_tag": "Edit", "v": 1}');
});
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM machine.snapshots WHERE actor_id = 'doc-1' AND version = 1"),
	'a spaced snapshot is taken by itself');

# a database that gets the extension later is served
$node->safe_psql('postgres', 'CREATE DATABASE later');
$node->safe_psql('later', 'CREATE EXTENSION machine');
ok($node->poll_query_until('postgres', "SELECT " . q{(SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'later') = 1}),
	'a database created later is served');

# machine.databases restricts the served databases, on reload
$node->append_conf('postgresql.conf', "machine.databases = 'postgres'");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT " . q{(SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'later') = 0}),
	'machine.databases stops serving a database left out, on SIGHUP');
$node->append_conf('postgresql.conf', "machine.databases = ''");
$node->reload;

# DROP DATABASE of a served database does not wait for the worker
$node->safe_psql('postgres', 'CREATE DATABASE doomed');
$node->safe_psql('doomed', 'CREATE EXTENSION machine');
ok($node->poll_query_until('postgres', "SELECT " . q{(SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'doomed') = 1}),
	'the database to drop is served');
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE doomed');
is($ret, 0, 'DROP DATABASE of a served database succeeds');
is($stderr, '', 'without complaint');

# pending timers survive an immediate stop and fire exactly once
$node->safe_psql('postgres', q{
	SELECT machine_spawn('crash-' || i, 'offer') FROM generate_series(1, 50) i;
	UPDATE machine.timers SET due_at = clock_timestamp() + interval '3 seconds'
	 WHERE actor_id LIKE 'crash-%';
});
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 50 FROM machine.actors WHERE id LIKE 'crash-%' AND state_tag = 'Expired'"),
	'after an immediate stop, pending timers fire');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT actor FROM fired WHERE actor LIKE 'crash-%'
	                      GROUP BY actor HAVING count(*) = 1) once}),
	'50', 'each exactly once');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.events WHERE actor_id LIKE 'crash-%'}),
	'50', 'one journal row each');

# a worker killed by SIGKILL comes back after the crash restart
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'machine worker' AND datname = 'postgres'");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', "SELECT " . q{(SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'postgres'
	  AND pid <> } . $pid . ") = 1"),
	'a killed worker is started again');
$node->safe_psql('postgres', "SELECT machine_spawn('after-crash', 'offer')");
ok($node->poll_query_until('postgres',
	"SELECT machine_state('after-crash')->>'_tag' = 'Expired'"),
	'and fires timers');

# a clean stop stays clean
$node->stop('fast');
command_like([ 'pg_controldata', $node->data_dir ],
	qr/Database cluster state:\s+shut down\n/, 'a clean stop leaves the cluster shut down');

done_testing();
