# A dump restores: pg_dump -Fc of a database with machines, actors,
# journal, snapshots, timers and privileges, restored with pg_restore into a
# new database of the same cluster and into a new cluster, keeps every
# actor's state, version, journal, snapshots and timers; sends, restores,
# privileges and the worker work there, and new timers do not collide with
# the restored ones.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my %conf = (
	'shared_preload_libraries' => "'machine'",
	'machine.naptime' => '100ms',
	'client_min_messages' => 'warning',
);

sub new_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = $conf{$_}\n" } sort keys %conf));
	$node->start;
	# roles are global: a user restores them first (pg_dumpall --globals-only)
	$node->safe_psql('postgres', q{
		CREATE ROLE dump_admin;
		CREATE ROLE dump_app;
		GRANT dump_app TO dump_admin;
	});
	return $node;
}

my $source = new_node('source');
$source->safe_psql('postgres', 'CREATE DATABASE shop');
$source->safe_psql('shop', q{
	CREATE EXTENSION machine;
	GRANT EXECUTE ON FUNCTION machine_define(text, jsonb) TO dump_admin;
	CREATE SCHEMA shop AUTHORIZATION dump_admin;
	GRANT USAGE ON SCHEMA shop TO dump_app;
	CREATE TABLE shop.fired (actor text);
	GRANT INSERT ON shop.fired TO dump_app;
	SET ROLE dump_admin;
	CREATE FUNCTION shop.add(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT state || jsonb_build_object('total',
		coalesce((state->>'total')::numeric, 0) + (event->>'amount')::numeric) $$;
	CREATE FUNCTION shop.record(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO shop.fired VALUES (actor_id) $$;
	SELECT machine_define('cart', '{
	  "initial": "Open",
	  "states": {
	    "Open": {"on": {"Add": {"target": "Open", "handler": "shop.add"}, "Close": "Closed",
	                    "Ring": "Rung"},
	             "after": [{"delay": "1 hour", "event": {"_tag": "Close"}}]},
	    "Soon": {"on": {"Ring": "Rung"},
	             "after": [{"delay": "2 seconds", "event": {"_tag": "Ring"}}]},
	    "Rung": {"entry": ["shop.record"]},
	    "Closed": {"final": true}
	  },
	  "any": {"Hurry": "Soon"},
	  "persistence": {"snapshotSchedule": "every 2"}
	}');
	SELECT machine_grant('cart', 'dump_app', 'send');
	RESET ROLE;
	SET ROLE dump_app;
	SELECT machine_spawn('cart-' || i, 'cart', '{"total": 0}') FROM generate_series(1, 20) i;
	SELECT machine_send('cart-' || i, jsonb_build_object('_tag', 'Add', 'amount', j))
	  FROM generate_series(1, 20) i, generate_series(1, i % 5) j;
	SELECT machine_stop('cart-' || i) FROM generate_series(1, 20, 4) i;
	SELECT machine_send('cart-' || i, '{"_tag": "Close"}') FROM generate_series(2, 20, 4) i;
	RESET ROLE;
});

# the state of everything, by key
my $rows = q{
SELECT 'machine ' || name || ' ' || revision || ' ' || definition || ' ' || functions::text
       || ' ' || owner || ' ' || defined_by || ' ' || coalesce(acl::text, '-')
  FROM machine.machines
UNION ALL SELECT 'actor ' || actor_id || ' ' || status || ' ' || version || ' ' || state
       || ' ' || initial_state || ' ' || created_at FROM machine.instances
UNION ALL SELECT 'event ' || actor_id || ' ' || version || ' ' || event || ' ' || recorded_at
  FROM machine.events
UNION ALL SELECT 'snapshot ' || actor_id || ' ' || version || ' ' || state FROM machine.snapshots
UNION ALL SELECT 'timer ' || timer_id || ' ' || actor_id || ' ' || armed_version || ' '
       || event || ' ' || due_at || ' ' || armed_by FROM machine.timers
ORDER BY 1
};
my $before = $source->safe_psql('shop', $rows);
like($before, qr/^timer /m, 'the source has timers');
like($before, qr/^snapshot /m, 'and snapshots');

my $dump = $PostgreSQL::Test::Utils::tmp_check . '/shop.dump';
$source->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $source->connstr('shop') ],
	'pg_dump -Fc');

sub check_restored
{
	my ($node, $db, $where) = @_;

	is($node->safe_psql($db, $rows), $before,
		"$where: machines, actors, journal, snapshots and timers are as dumped");
	is($node->safe_psql($db, q{
		SET ROLE dump_app;
		SELECT machine_send('cart-3', '{"_tag": "Add", "amount": 100}') ->> 'total'}),
		'106', "$where: the application role sends");
	is($node->safe_psql($db, q{
		SET ROLE dump_app;
		SELECT machine_restore('cart-5') ->> 'total'}),
		'0', "$where: a stopped actor restores");
	is($node->safe_psql($db, q{
		SET ROLE dump_app;
		SELECT min(s ->> '_tag') FROM (SELECT machine_spawn('new-' || i, 'cart') AS s
		                                 FROM generate_series(1, 3) i) spawned}),
		'Open', "$where: spawning into a timed state works (the timers' sequence came along)");
	is($node->safe_psql($db, q{
		SELECT count(*) = count(DISTINCT timer_id) FROM machine.timers}),
		't', "$where: no timer id is taken twice");
	is($node->safe_psql($db, q{
		SET ROLE dump_app;
		SELECT machine_send('cart-4', '{"_tag": "Hurry"}') ->> '_tag'}),
		'Soon', "$where: an actor enters a state with a short timer");
	ok($node->poll_query_until($db, q{SELECT count(*) = 1 FROM shop.fired WHERE actor = 'cart-4'}),
		"$where: the worker fires it");
	is($node->safe_psql($db, q{
		SET ROLE dump_app;
		SELECT count(*) FROM machine.actors}),
		'23', "$where: the application role sees its actors");
}

# into a new database of the same cluster
$source->safe_psql('postgres', 'CREATE DATABASE copy');
$source->command_ok([ 'pg_restore', '--exit-on-error', '-d', $source->connstr('copy'), $dump ],
	'pg_restore into a new database');
check_restored($source, 'copy', 'new database');

# into a new cluster
my $target = new_node('target');
$target->safe_psql('postgres', 'CREATE DATABASE shop');
$target->command_ok([ 'pg_restore', '--exit-on-error', '-d', $target->connstr('shop'), $dump ],
	'pg_restore into a new cluster');
check_restored($target, 'shop', 'new cluster');

$source->stop;
$target->stop;
done_testing();
