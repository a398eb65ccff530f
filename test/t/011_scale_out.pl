# Scale-out: one router database (machine_router, PL/Proxy) in front of four
# shard servers (machine), each a server of its own on this machine.
#
# 10,000 actors spawned through the router spread within 10 % of even over
# the shards, and each lives on exactly the shard its slice maps to.
# Sends, entities, restore_many (split by shard), restore_all and the view
# (fan-out) work through the router; a shard's errors keep their SQLSTATE,
# message, detail and hint;
# privileges are the shards', for the role that calls the router; the same
# application script gives the same output against a single database and
# against the router; machine_router_check finds a machine whose revisions
# differ.  A shard that is stopped fails only the calls routed to it, with
# an error naming it, and serves again once started.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Run;

my $started = time;
my $nshards = 4;
my $nactors = 10000;

sub small_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_buffers = 16MB
max_connections = 30
log_statement = none
log_min_messages = warning
});
	$node->start;
	return $node;
}

# shards: a database "shardN" with machine on server N
my @shards;
my @connstrs;
for my $i (1 .. $nshards)
{
	my $node = small_node("shard$i");
	$node->safe_psql('postgres', "CREATE DATABASE shard$i");
	$node->safe_psql("shard$i", q{
		CREATE EXTENSION machine;
		CREATE ROLE app LOGIN;
		CREATE ROLE stranger LOGIN;
	});
	push @shards, $node;
	push @connstrs, 'host=' . $node->host . ' port=' . $node->port . " dbname=shard$i";
}
my $shard_array = 'ARRAY[' . join(', ', map { "'$_'" } @connstrs) . ']';

my $router = small_node('router');
$router->safe_psql('postgres', qq{
	SET client_min_messages = warning;
	CREATE EXTENSION machine_router CASCADE;
	CREATE ROLE app LOGIN;
	CREATE ROLE stranger LOGIN;
	SELECT machine_router_configure($shard_array);
});
is($router->safe_psql('postgres', q{
	SELECT string_agg(format('%s-%s', lo, hi), ' ' ORDER BY lo)
	  FROM (SELECT shard, min(slice) AS lo, max(slice) AS hi
			  FROM machine_router_slices() GROUP BY shard) AS r}),
	'0-255 256-511 512-767 768-1023',
	'four shards keep equal contiguous ranges of 1024 slices');

sub on_shard
{
	my ($i, $sql) = @_;
	return $shards[$i - 1]->safe_psql("shard$i", $sql);
}

# a machine defined through the router exists on every shard
$router->safe_psql('postgres', q{
	SELECT machine_define('acct', '{
	  "initial": "Open",
	  "states": {"Open": {"on": {"Add": {"target": "Open", "merge": true},
	                             "Close": "Closed"}},
	             "Closed": {"final": true}},
	  "entity": {},
	  "persistence": {"snapshotSchedule": "every 3"}
	}')});
is(join(',', map { on_shard($_, "SELECT revision FROM machine.definitions WHERE name = 'acct'") } 1 .. $nshards),
	'1,1,1,1', 'machine_define runs on every shard');
is($router->safe_psql('postgres', 'SELECT count(*) FROM machine_router_check()'), '0',
	'machine_router_check: the shards agree');

# 10,000 actors through the router
my $t0 = time;
is($router->safe_psql('postgres',
	"SELECT count(machine_spawn('a-' || i, 'acct', jsonb_build_object('i', i))) FROM generate_series(1, $nactors) AS i"),
	$nactors, "$nactors actors spawned through the router");
note(sprintf('spawned %d actors through the router in %.1f s', $nactors, time - $t0));

my @counts = map { on_shard($_, 'SELECT count(*) FROM machine.instances') } 1 .. $nshards;
note("actors per shard: @counts");
my $even = $nactors / $nshards;
ok((grep { $_ >= $even * 0.9 && $_ <= $even * 1.1 } @counts) == $nshards,
	"every shard keeps within 10 % of $even actors (@counts)");
for my $i (1 .. $nshards)
{
	my ($lo, $hi) = (($i - 1) * 256, $i * 256 - 1);
	is(on_shard($i, "SELECT count(*) FROM machine.instances
					  WHERE machine_slice_of(actor_id) NOT BETWEEN $lo AND $hi"),
		'0', "shard $i keeps only actors of slices $lo-$hi");
}

# sends and entities through the router
$router->safe_psql('postgres', q{
	SELECT count(machine_send('a-' || i, jsonb_build_object('_tag', 'Add', 'n', 1)))
	  FROM generate_series(1, 1000) AS i;
	SELECT count(machine_send('a-' || i, jsonb_build_object('_tag', 'Add', 'n', 2), 1))
	  FROM generate_series(1, 1000) AS i;
	SELECT count(machine_send_entity('acct', 'e-' || i, jsonb_build_object('_tag', 'Add', 'n', i)))
	  FROM generate_series(1, 200) AS i;
});
is($router->safe_psql('postgres', q{
	SELECT count(*), sum(version), count(*) FILTER (WHERE id LIKE 'e-%')
	  FROM machine.actors}),
	($nactors + 200) . '|' . (2000 + 200) . '|200',
	'the view fans out to every shard: every actor with its version');
is($router->safe_psql('postgres', q{
	SELECT machine_state('a-7') ->> 'n', machine_version('a-7'),
		   (SELECT string_agg(version::text, ',') FROM machine_history('a-7'))}),
	'2|2|1,2', 'state, version and history come from the actor\'s shard');
is(join(',', map { on_shard($_, "SELECT count(*) FROM machine.instances WHERE actor_id LIKE 'e-%' AND machine_slice_of(actor_id) / 256 <> $_ - 1") } 1 .. $nshards),
	'0,0,0,0', 'entities are spawned on the shard of their slice');

# restore_many splits its ids by shard; restore_all asks every shard
$router->safe_psql('postgres',
	"SELECT count(machine_stop('a-' || i)) FROM generate_series(1, 150) AS i");
is($router->safe_psql('postgres', q{
	SELECT status, count(*) FROM machine_restore_many(
		ARRAY(SELECT 'a-' || i FROM generate_series(1, 100) AS i)) GROUP BY status}),
	'restored|100', 'machine_restore_many restores 100 actors spread over the shards');
is($router->safe_psql('postgres', q{
	SELECT status, count(*), count(DISTINCT machine_slice_of(actor_id) / 256)
	  FROM machine_restore_all('acct') GROUP BY status}),
	'restored|50|4', 'machine_restore_all restores the other 50, from all four shards');

# errors keep the shard's SQLSTATE
$router->safe_psql('postgres', q{
	CREATE FUNCTION sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE stmt;
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE;
	END $$;
});
is($router->safe_psql('postgres', q{
	SELECT string_agg(sqlstate_of(s), ',') FROM unnest(ARRAY[
		$$SELECT machine_send('a-1', '{"_tag": "Add"}', 0)$$,
		$$SELECT machine_send('a-1', '{"_tag": "Nope"}')$$,
		$$SELECT machine_spawn('a-1', 'acct')$$,
		$$SELECT machine_send('nobody', '{"_tag": "Add"}')$$]) AS s}),
	'MA001,MA002,42710,42704', 'errors keep the shard\'s SQLSTATE');
my ($rc, $out, $err) = $router->psql('postgres',
	q{SELECT machine_send('a-1', '{"_tag": "Add"}', 0)});
like($err, qr/ERROR:  version conflict on actor "a-1"\nDETAIL:  Expected version 0, but the actor is at version \d+\.\nHINT:  Read the actor's state again and retry\.\nCONTEXT:  on shard "shard\d"/,
	'the message, detail and hint are the shard\'s, and the context names the shard');

# privileges are the shards', for the role that calls the router
for my $i (1 .. $nshards)
{
	on_shard($i, q{SELECT machine_grant('acct', 'app', 'send')});
}
is($router->safe_psql('postgres', q{
	SET ROLE app;
	SELECT machine_send('a-2', '{"_tag": "Add", "by": "app"}') ->> 'by';
	SELECT count(*) FROM machine.actors;
}), "app\n" . ($nactors + 200), 'a role granted send on the shards sends and reads through the router');
is($router->safe_psql('postgres', q{
	SET ROLE stranger;
	SELECT sqlstate_of($$SELECT machine_send('a-2', '{"_tag": "Add"}')$$),
		   (SELECT count(*) FROM machine.actors);
}), '42501|0', 'a role without privileges gets 42501 and sees no actor');

# the same application script against one database and against the router
my $app = q{
	SELECT machine_define('cart', '{"initial": "Open", "states": {"Open": {"on": {"Add": {"target": "Open", "merge": true}, "Pay": "Paid"}}, "Paid": {"final": true}}, "entity": {}, "persistence": {"snapshotSchedule": "every 2"}}');
	SELECT machine_spawn('cart-1', 'cart', '{"items": 0}');
	SELECT machine_send('cart-1', '{"_tag": "Add", "items": 1}');
	SELECT machine_send('cart-1', '{"_tag": "Add", "items": 2}', 1);
	SELECT machine_send_entity('cart', 'cart-2', '{"_tag": "Add", "items": 5}');
	SELECT machine_send_entity('cart', 'cart-3', '{"_tag": "Pay"}');
	SELECT machine_state('cart-1'), machine_version('cart-1'), machine_matches('cart-2', 'Open');
	SELECT machine_persist('cart-1'), machine_stop('cart-1');
	SELECT machine_restore('cart-1');
	SELECT * FROM machine_restore_many(ARRAY['cart-2', 'cart-9']);
	SELECT machine_replay_to('cart-1', 1), machine_rewind('cart-1', 1);
	SELECT version, event FROM machine_history('cart-1') ORDER BY version;
	SELECT id, machine, version, state_tag, status FROM machine.actors WHERE machine = 'cart' ORDER BY id;
	SELECT machine_delete('cart-2');
	SELECT machine_drop('cart', true);
};
$shards[0]->safe_psql('postgres', 'CREATE DATABASE single');
$shards[0]->safe_psql('single', 'CREATE EXTENSION machine');
my $single = $shards[0]->safe_psql('single', $app);
my $routed = $router->safe_psql('postgres', $app);
is($routed, $single, 'an application script gives the same output against the router as against one database');

# a machine whose revision differs between shards
on_shard(3, q{SELECT machine_define('acct', machine_definition('acct'))});
is($router->safe_psql('postgres',
	q{SELECT string_agg(format('%s:%s', split_part(shard, 'dbname=', 2), revision), ' ' ORDER BY shard)
		FROM machine_router_check() WHERE machine = 'acct'}),
	"shard1:1 shard2:1 shard3:2 shard4:1", 'machine_router_check lists every shard\'s revision of a machine that differs');

# a slice moved under load: 20 actors of one slice take sends from four
# clients while the slice moves from shard 2 to 3, to 1 and to 3; a send that
# met a move is retried by its client.  Each acknowledged send is in the
# journal once, the journal has no gap, and the state is its fold.
for my $i (1 .. $nshards)
{
	on_shard($i, q{
		CREATE FUNCTION bump(state jsonb, event jsonb) RETURNS jsonb LANGUAGE sql AS $$
			SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1,
											   'tok', event->'tok') $$;
	});
}
$router->safe_psql('postgres', q{
	SELECT machine_define('mover', '{"initial": "A", "states": {"A": {"on": {"Add": {"target": "A", "handler": "bump"}}}},
									 "persistence": {"snapshotSchedule": "every 5"}}');
	CREATE TABLE movers (k int PRIMARY KEY, id text);
	INSERT INTO movers
		SELECT row_number() OVER (ORDER BY i), 'mv-' || i
		  FROM generate_series(1, 100000) AS i
		 WHERE machine_slice_of('mv-' || i) = 300
		 ORDER BY i LIMIT 20;
	SELECT count(machine_spawn(id, 'mover')) FROM movers;
	CREATE SEQUENCE tok;
	CREATE TABLE acked (id text, tok bigint);
	CREATE TABLE retried (id text);
	CREATE FUNCTION send_retry(a int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		actor text := (SELECT id FROM movers WHERE k = a);
		t bigint := nextval('tok');
		tries int := 0;
	BEGIN
		LOOP
			BEGIN
				PERFORM machine_send(actor, jsonb_build_object('_tag', 'Add', 'tok', t));
				INSERT INTO acked VALUES (actor, t);
				INSERT INTO retried SELECT actor FROM generate_series(1, tries);
				RETURN;
			EXCEPTION WHEN serialization_failure THEN
				tries := tries + 1;
				IF tries > 200 THEN RAISE; END IF;
				PERFORM pg_sleep(0.01);
			END;
		END LOOP;
	END $$;
});
is($router->safe_psql('postgres', 'SELECT count(*) FROM movers'), '20', '20 actors of slice 300');
my $in300 = $router->safe_psql('postgres',
	'SELECT count(*) FROM machine.actors WHERE machine_slice_of(id) = 300');
my $script = "$PostgreSQL::Test::Utils::tmp_check/send_retry.sql";
PostgreSQL::Test::Utils::append_to_file($script, "\\set a random(1, 20)\nSELECT send_retry(:a);\n");
my ($pgb_out, $pgb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '6', '-f', $script,
	  '-h', $router->host, '-p', $router->port, 'postgres' ],
	'>', \$pgb_out, '2>', \$pgb_err);
my @moves;
for my $to (3, 1, 3)
{
	sleep 1.2;
	push @moves, $router->safe_psql('postgres',
		"SELECT machine_router_move(300, '$connstrs[$to - 1]')");
}
$pgbench->finish;
note("moves carried @moves actors; pgbench: " . join(' ', grep { /tps|processed/ } split /\n/, $pgb_out));
is($?, 0, 'the clients finished without an error') or diag($pgb_err);
is("@moves", "$in300 $in300 $in300", "each move carried the slice's $in300 actors");
is($router->safe_psql('postgres', q{SELECT split_part(shard, 'dbname=', 2) FROM machine_router_slices() WHERE slice = 300}),
	'shard3', 'slice 300 is routed to its last shard');
is(join(',', map { on_shard($_, q{SELECT count(*) FROM machine.instances WHERE machine_slice_of(actor_id) = 300}) } 1 .. $nshards),
	"0,0,$in300,0", 'its actors are on that shard only');
is(join(',', map { on_shard($_, q{SELECT count(*) FROM machine.events WHERE machine_slice_of(actor_id) = 300}) } 1, 2, 4),
	'0,0,0', 'and so is their journal');
my $acked = $router->safe_psql('postgres', 'SELECT count(*) FROM acked');
note("acknowledged sends: $acked; retried after meeting a move: " . $router->safe_psql('postgres', 'SELECT count(*) FROM retried'));
ok($acked > 50, 'sends went on during the moves');
is($router->safe_psql('postgres', q{
	WITH journal AS (
		SELECT m.id, h.version, (h.event ->> 'tok')::bigint AS tok
		  FROM movers AS m, LATERAL machine_history(m.id) AS h)
	SELECT (SELECT count(*) FROM journal),
		   (SELECT count(DISTINCT tok) FROM journal),
		   (SELECT count(*) FROM journal j FULL JOIN acked a USING (id, tok) WHERE j.tok IS NULL OR a.tok IS NULL),
		   (SELECT count(*) FROM movers m
			 WHERE machine_version(m.id) <> (SELECT count(*) FROM journal j WHERE j.id = m.id)
				OR machine_version(m.id) <> coalesce((SELECT max(version) FROM journal j WHERE j.id = m.id), 0)),
		   (SELECT count(*) FROM movers m
			 WHERE (machine_state(m.id) ->> 'n')::bigint IS DISTINCT FROM nullif(machine_version(m.id), 0)
				OR machine_state(m.id) -> 'tok' IS DISTINCT FROM
				   (SELECT event -> 'tok' FROM machine_history(m.id) ORDER BY version DESC LIMIT 1))
}), "$acked|$acked|0|0|0",
	'every acknowledged send is in the journal exactly once, without gaps, and each state is the fold of its journal');

# a shard that is down fails only its own actors' calls, naming it
my $on2 = $router->safe_psql('postgres',
	q{SELECT id FROM machine.actors WHERE machine_slice_of(id) BETWEEN 256 AND 511 ORDER BY id LIMIT 1});
my $on1 = $router->safe_psql('postgres',
	q{SELECT id FROM machine.actors WHERE machine_slice_of(id) < 256 ORDER BY id LIMIT 1});
$shards[1]->stop;
my $port2 = $shards[1]->port;
($rc, $out, $err) = $router->psql('postgres',
	qq{SELECT machine_send('$on2', '{"_tag": "Add", "n": 9}')});
isnt($rc, 0, 'a send to an actor of the stopped shard fails');
note("the error: $err");
like($err, qr/could not reach shard "shard2".*DETAIL:  .*(?:$port2|connection)/s, 'its error names the shard');
is($router->safe_psql('postgres',
	qq{SELECT sqlstate_of(\$\$SELECT machine_send('$on2', '{"_tag": "Add"}')\$\$)}),
	'08006', 'as a connection failure');
is($router->safe_psql('postgres',
	qq{SELECT machine_send('$on1', '{"_tag": "Add", "n": 9}') ->> 'n'}),
	'9', 'the other shards keep working');
($rc, $out, $err) = $router->psql('postgres', 'SELECT count(*) FROM machine.actors');
isnt($rc, 0, 'the fan-out fails while a shard is down');
like($err, qr/could not reach shard "shard2"/, 'and says which shard failed');
$shards[1]->start;
is($router->safe_psql('postgres',
	qq{SET client_min_messages = warning;
	   SELECT machine_send('$on2', '{"_tag": "Add", "n": 9}') ->> 'n'}),
	'9', 'once the shard is back, its actors are served again');
is($router->safe_psql('postgres',
	'SET client_min_messages = warning; SELECT count(*) FROM machine.actors'),
	$nactors + 200 + 20, 'and the view sees every shard again');

note(sprintf('011_scale_out took %.1f s', time - $started));
$_->stop for ($router, @shards);
done_testing();
