# A machine with 10,000 live actors is redefined with a migration and an
# upcaster while 4 clients keep sending to those actors.  Afterwards:
#   - no send was lost or failed: the actors' totals add up to every send
#     made, the initial ones and every transaction pgbench counted;
#   - every actor was migrated once, in the defining transaction: one
#     "$migrate" journal row each, recorded by revision 2, every earlier row
#     by revision 1 and every later one by revision 2, and the state the
#     migration added kept in step by revision 2's handler;
#   - every actor's journal still folds to its live state (its history,
#     upcaster included, ends in the live state), and the dry run of the
#     current definition finds nothing wrong.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);

my $actors = 10000;

my $node = PostgreSQL::Test::Cluster->new('evolve');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 20\n");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE SCHEMA evo;
	-- revision 1 keeps a total
	CREATE FUNCTION evo.add1(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('total',
			coalesce((state->>'total')::numeric, 0) + (event->>'amount')::numeric)
	$$;
	-- revision 2 keeps it in cents too
	CREATE FUNCTION evo.add2(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object(
			'total', coalesce((state->>'total')::numeric, 0) + (event->>'amount')::numeric,
			'cents', coalesce((state->>'cents')::numeric, 0) + 100 * (event->>'amount')::numeric)
	$$;
	CREATE FUNCTION evo.to_cents(state jsonb, from_revision integer) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('cents', 100 * coalesce((state->>'total')::numeric, 0),
		                                   'migrated_from', from_revision)
	$$;
	CREATE FUNCTION evo.upcast(event jsonb, revision integer) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT event || jsonb_build_object('upcast_from', revision) $$;
	CREATE FUNCTION evo.def(handler text, extra jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT jsonb_build_object(
			'initial', 'Open',
			'states', jsonb_build_object('Open', jsonb_build_object('on', jsonb_build_object(
				'Add', jsonb_build_object('target', 'Open', 'handler', handler)))),
			'events', jsonb_build_object('Add', jsonb_build_object('amount', 'number')),
			'persistence', jsonb_build_object('snapshotSchedule', 'every 5')) || extra
	$$;
	SELECT machine_define('evo', evo.def('evo.add1'));
});

my $t0 = time;
is($node->safe_psql('postgres', qq{
	SELECT count(machine_spawn('e-' || i, 'evo')) FROM generate_series(1, $actors) i;
	SELECT count(machine_send('e-' || i, '{"_tag": "Add", "amount": 1}'))
	  FROM generate_series(1, $actors) i;
}), "$actors\n$actors", "$actors actors spawned, one send each");
note sprintf('spawned and sent in %.1f s', time - $t0);

# 4 clients send to random actors while the machine is redefined
my $dir = PostgreSQL::Test::Utils::tempdir;
PostgreSQL::Test::Utils::append_to_file("$dir/send.sql", qq{\\set id random(1, $actors)
SELECT machine_send('e-' || :id, '{"_tag": "Add", "amount": 1}');
});
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port, '-c', '4', '-j', '2',
	  '-T', '15', '-f', "$dir/send.sql", 'postgres' ],
	'>', \$out, '2>', \$err,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));

sleep 3;
my $sent_before = $node->safe_psql('postgres',
	q{SELECT sum((state->>'total')::numeric) FROM machine.instances WHERE machine = 'evo'});
$t0 = time;
is($node->safe_psql('postgres', q{
	SELECT machine_define('evo', evo.def('evo.add2',
		'{"migrate": "evo.to_cents", "upcast": "evo.upcast"}'))}),
	'2', 'redefined with a migration while the clients send');
my $define_time = time - $t0;
note sprintf('the redefinition migrated %d actors in %.1f s', $actors, $define_time);
my $sent_after = $node->safe_psql('postgres',
	q{SELECT sum((state->>'total')::numeric) FROM machine.instances WHERE machine = 'evo'});
cmp_ok($sent_before, '>', $actors, 'the clients were sending before the redefinition');

$pgbench->finish;
note $out;
like($out, qr/number of failed transactions: 0 /, 'no send failed');
my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
ok(defined $processed && $processed > 0, "the clients sent ($processed)");
cmp_ok($node->safe_psql('postgres',
	q{SELECT sum((state->>'total')::numeric) FROM machine.instances WHERE machine = 'evo'}),
	'>', $sent_after, 'the clients went on sending after the redefinition');

# nothing lost
is($node->safe_psql('postgres',
	q{SELECT sum((state->>'total')::numeric) FROM machine.instances WHERE machine = 'evo'}),
	$actors + $processed, 'the totals count every send');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.events e JOIN machine.instances i USING (actor_id)
	 WHERE i.machine = 'evo' AND e.event->>'_tag' = 'Add'}),
	$actors + $processed, 'the journal holds every send');

# migrated once each, in step since
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE event->>'_tag' = '$migrate'),
	       count(DISTINCT actor_id) FILTER (WHERE event->>'_tag' = '$migrate'),
	       count(*) FILTER (WHERE event->>'_tag' = '$migrate' AND revision <> 2)
	  FROM machine.events WHERE actor_id LIKE 'e-%'}),
	"$actors|$actors|0", 'one $migrate row per actor, recorded by revision 2');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.events e
	  JOIN machine.events m ON m.actor_id = e.actor_id AND m.event->>'_tag' = '$migrate'
	 WHERE e.actor_id LIKE 'e-%'
	   AND ((e.version < m.version AND e.revision <> 1)
	        OR (e.version > m.version AND e.revision <> 2))}),
	'0', 'rows before the migration by revision 1, after it by revision 2');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.instances WHERE machine = 'evo'
	   AND ((state->>'cents')::numeric IS DISTINCT FROM 100 * (state->>'total')::numeric
	        OR (state->>'migrated_from')::int IS DISTINCT FROM 1)}),
	'0', 'every actor migrated, and its cents kept in step since');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.instances i
	 WHERE i.machine = 'evo'
	   AND NOT EXISTS (SELECT FROM machine.snapshots s
	                    JOIN machine.events m ON m.actor_id = s.actor_id AND m.version = s.version
	                   WHERE s.actor_id = i.actor_id AND m.event->>'_tag' = '$migrate')}),
	'0', 'every migration left a snapshot');

# every journal still folds to its live state
$t0 = time;
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.instances i
	 WHERE i.machine = 'evo'
	   AND (SELECT h.state FROM machine_history(i.actor_id) h
	         ORDER BY h.version DESC LIMIT 1) IS DISTINCT FROM i.state}),
	'0', "every actor's history folds to its live state");
note sprintf('%d histories folded in %.1f s', $actors, time - $t0);
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT version, event FROM machine_history('e-1')) h
	 WHERE h.event->>'_tag' = 'Add' AND h.version < (
	       SELECT version FROM machine.events WHERE actor_id = 'e-1' AND event->>'_tag' = '$migrate')
	   AND (h.event->>'upcast_from')::int IS DISTINCT FROM 1}),
	'0', 'the history shows the older events upcast');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine_check_define('evo', machine_definition('evo'))}),
	'0', 'the dry run of the current definition finds nothing wrong');

$node->stop;
done_testing();
