# Adapters across a crash (README "Adapters").
#
# Actors of a machine with the "memory" adapter live in UNLOGGED tables: a
# crash (an immediate stop, and a backend killed with SIGKILL) takes them
# away whole -- live state, journal, snapshots, timers -- while the actors
# of the built-in tables keep every committed transition.  After each
# crash the registry view lists exactly the surviving actors, the machines
# are still defined, the memory actors' ids are free again, and new memory
# actors work, timers included.  A standby shows the built-in actors and
# none of the memory ones, through the same view.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('adapters');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'machine'
machine.naptime = 100ms
restart_after_crash = on
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE FUNCTION bump(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1)
	$$;
	CREATE TABLE fired (actor text, at timestamptz DEFAULT clock_timestamp());
	CREATE FUNCTION on_timeout(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO fired (actor) VALUES (actor_id) $$;
	CREATE FUNCTION counter(adapter text) RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object(
		  'initial', 'Counting',
		  'states', jsonb_build_object(
		    'Counting', jsonb_build_object(
		      'on', jsonb_build_object('Add', jsonb_build_object('target', 'Counting', 'handler', 'bump'),
		                               'Timeout', 'Expired'),
		      'after', jsonb_build_array(jsonb_build_object('delay', '1 hour', 'event', '{"_tag": "Timeout"}'::jsonb))),
		    'Expired', jsonb_build_object('final', true, 'entry', jsonb_build_array('on_timeout'))),
		  'persistence', jsonb_build_object('adapter', adapter, 'snapshotSchedule', 'every 3'))
	$$;
	SELECT machine_define('durable', counter('tables'));
	SELECT machine_define('volatile', counter('memory'));
});

# 20 actors of each machine named, 5 sends each; 5 of them stopped
sub fill
{
	my ($round, @machines) = @_;
	my $machines = join(',', @machines);
	$node->safe_psql('postgres', qq{
		SELECT machine_spawn(m || '-$round-' || i, m)
		  FROM unnest('{$machines}'::text[]) m, generate_series(1, 20) i;
		SELECT machine_send(m || '-$round-' || i, '{"_tag": "Add"}')
		  FROM unnest('{$machines}'::text[]) m, generate_series(1, 20) i,
		       generate_series(1, 5) k;
		SELECT machine_stop(m || '-$round-' || i)
		  FROM unnest('{$machines}'::text[]) m, generate_series(1, 5) i;
	});
}

my $durable_rows = q{
	SELECT string_agg(format('%s %s %s %s %s', id, version, state_tag, status, snapshot_version), ', ' ORDER BY id)
	  FROM machine.actors WHERE machine = 'durable'};

# everything of the memory actors is gone, and the view agrees
sub check_gone
{
	my ($what) = @_;
	# every UNLOGGED table of the extension, whatever it holds of them
	is($node->safe_psql('postgres', q{
		SELECT string_agg(c.relname || ' ' ||
		         (xpath('/row/n/text()', query_to_xml(
		            format('SELECT count(*) AS n FROM machine.%I', c.relname),
		            false, true, '')))[1]::text, ', ' ORDER BY c.relname)
		  FROM pg_class c
		 WHERE c.relnamespace = 'machine'::regnamespace AND c.relkind = 'r'
		   AND c.relpersistence = 'u'
		HAVING bool_and((xpath('/row/n/text()', query_to_xml(
		            format('SELECT count(*) AS n FROM machine.%I', c.relname),
		            false, true, '')))[1]::text = '0')}) ne '',
		1, "$what: no row of a memory actor is left anywhere");
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM machine.actors WHERE machine = 'volatile'}),
		'0', "$what: the registry view lists no memory actor");
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM machine.pending_timers WHERE machine = 'volatile'}),
		'0', "$what: no timer of a memory actor is pending");
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM machine.definitions WHERE name IN ('durable', 'volatile')}),
		'2', "$what: both machines are still defined");
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM machine.instances i
		  LEFT JOIN machine.memory_instances m USING (actor_id)
		 WHERE i.machine = 'volatile' OR m.actor_id IS NOT NULL}),
		'0', "$what: no memory actor was moved into the built-in tables");
}

fill(1, 'durable', 'volatile');
my $before = $node->safe_psql('postgres', $durable_rows);
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM machine.actors WHERE machine = 'volatile'}),
	'20', 'the memory actors are listed before the crash');
is($node->safe_psql('postgres', q{SELECT count(*) FROM machine.memory_events}),
	'100', 'their journal is there before the crash');
ok($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_class
	 WHERE relnamespace = 'machine'::regnamespace AND relkind = 'r' AND relpersistence = 'u'}) >= 4,
	'the memory adapter has its UNLOGGED tables');

# a standby: the view works there and shows only what WAL carried
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('adapters_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', $durable_rows), $before,
	'the standby lists the built-in actors as the primary does');
is($standby->safe_psql('postgres',
	q{SELECT count(*) FROM machine.actors WHERE machine = 'volatile'}),
	'0', 'the standby lists no memory actor');
is($standby->safe_psql('postgres',
	q{SELECT count(*) FROM machine.pending_timers}), '15',
	'the standby lists the timers of the running built-in actors');
is($standby->safe_psql('postgres', q{SELECT machine_state('volatile-1-9')}), '',
	'machine_state of a memory actor on the standby: no such actor');
$standby->stop;

# crash 1: immediate stop
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', $durable_rows), $before,
	'immediate stop: the built-in actors are as they were');
check_gone('immediate stop');

# the ids are free, new memory actors work, their timers fire
fill(1, 'volatile');
is($node->safe_psql('postgres', q{
	SELECT machine_state('volatile-1-9') ->> 'n'}), '5',
	'a memory actor of the same id works again');
$node->safe_psql('postgres', q{
	UPDATE machine.memory_timers SET due_at = now() - interval '1 second'
	 WHERE actor_id IN ('volatile-1-10', 'volatile-1-11')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 2 FROM fired WHERE actor IN ('volatile-1-10', 'volatile-1-11')}),
	'the worker fires the timers of memory actors');
is($node->safe_psql('postgres', q{
	SELECT string_agg(status || ' ' || state_tag, ', ' ORDER BY id) FROM machine.actors
	 WHERE id IN ('volatile-1-10', 'volatile-1-11')}),
	'done Expired, done Expired', 'the timers moved the memory actors on');

# crash 2: a process killed with SIGKILL makes the postmaster reinitialize
fill(2, 'durable', 'volatile');
$before = $node->safe_psql('postgres', $durable_rows);
my $pid = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity WHERE backend_type = 'machine worker' AND datname = 'postgres'});
ok($pid =~ /^\d+$/, 'found the worker');
kill 'KILL', $pid;
for (1 .. 600)
{
	last if $node->log_contains(qr/all server processes terminated; reinitializing/);
	usleep(100_000);
}
ok($node->poll_query_until('postgres', 'SELECT true'),
	'the server is back after a backend was killed');
ok($node->log_contains(qr/\(PID $pid\) was terminated by signal 9/),
	'the postmaster saw the killed process');
is($node->safe_psql('postgres', $durable_rows), $before,
	'killed backend: the built-in actors are as they were');
check_gone('killed backend');

# the memory actors come back only by being spawned again
is($node->safe_psql('postgres', q{
	SELECT status FROM machine_restore_many(ARRAY['volatile-2-1', 'volatile-2-7'])}),
	"failed\nfailed", 'nothing persisted survives to restore a memory actor from');

$node->stop;
done_testing();
