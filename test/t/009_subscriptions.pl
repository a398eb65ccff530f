# A subscription's consumers that crash see every event exactly once
# (README "Subscriptions").
#
# pgbench sends with 8 clients to 200 journaled actors, half of its
# transactions taking their transaction id first and sending to two actors
# after a pause, so that positions commit out of order.  Three consumer
# members of one subscription run the README's consumer loop (poll, write
# a projection row per event, acknowledge, commit), pausing between rows so
# that a kill lands in the middle of a batch.  Consumers are terminated
# (pg_terminate_backend) during the sending and restarted; between two
# sending rounds, during a backlog, one consumer's backend is killed with
# SIGKILL (a crash restart of the server) and every consumer restarted.  At the end the
# projection holds every journal row exactly once, each actor's rows at one
# member and in version order.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $members = 3;

my $node = PostgreSQL::Test::Cluster->new('subscriptions');
$node->init;
$node->append_conf('postgresql.conf', qq{
log_statement = none
restart_after_crash = on
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	SELECT machine_define('account', '{
	  "initial": "Open",
	  "states": {"Open": {"on": {"Deposit": {"target": "Open", "merge": true}}}},
	  "persistence": {}
	}');
	SELECT count(machine_spawn('acct-' || i, 'account')) FROM generate_series(1, 200) i;
	-- another type, which the subscription must pass over
	SELECT machine_define('other', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
	                                 "persistence": {}}');
	SELECT machine_spawn('other-1', 'other');
	SELECT machine_subscribe('projection', 'account');

	CREATE TABLE proj (position bigint, actor_id text, version bigint, event jsonb, member int);
	CREATE TABLE proj_last (actor_id text PRIMARY KEY, version bigint NOT NULL);
	CREATE TABLE out_of_order (actor_id text, version bigint, previous bigint);
	CREATE TABLE stop_consumers ();

	CREATE PROCEDURE consume(m int, members int)
	LANGUAGE plpgsql AS $$
	DECLARE
		r record;
		last bigint;
		prev bigint;
	BEGIN
		LOOP
			EXIT WHEN EXISTS (SELECT FROM stop_consumers);
			last := NULL;
			FOR r IN SELECT * FROM machine_poll('projection', 40, m, members) LOOP
				SELECT version INTO prev FROM proj_last WHERE actor_id = r.actor_id;
				IF coalesce(prev, 0) <> r.version - 1 THEN
					INSERT INTO out_of_order VALUES (r.actor_id, r.version, prev);
				END IF;
				INSERT INTO proj_last VALUES (r.actor_id, r.version)
				ON CONFLICT (actor_id) DO UPDATE SET version = excluded.version;
				INSERT INTO proj VALUES (r.position, r.actor_id, r.version, r.event, m);
				last := r.position;
				PERFORM pg_sleep(0.0005);
			END LOOP;
			IF last IS NOT NULL THEN
				PERFORM machine_ack('projection', last, m);
			END IF;
			COMMIT;
			IF last IS NULL THEN
				PERFORM pg_sleep(0.02);
			END IF;
		END LOOP;
	END $$;
});

my $dir = PostgreSQL::Test::Utils::tempdir;
PostgreSQL::Test::Utils::append_to_file("$dir/single.sql", q{
\set a random(1, 200)
SELECT machine_send('acct-' || :a, jsonb_build_object('_tag', 'Deposit', 'amount', :a));
});
# the transaction id first, the sends after a pause: positions drawn later
# than those of younger transactions; actors in one order (other-1, then
# ascending), so that two such transactions never deadlock
PostgreSQL::Test::Utils::append_to_file("$dir/paired.sql", q{
\set a random(1, 190)
\set b :a + random(1, 10)
BEGIN;
SELECT pg_current_xact_id();
SELECT pg_sleep(random() * 0.01);
SELECT machine_send('other-1', jsonb_build_object('_tag', 'Go'));
SELECT machine_send('acct-' || :a, jsonb_build_object('_tag', 'Deposit', 'amount', 1));
SELECT machine_send('acct-' || :b, jsonb_build_object('_tag', 'Deposit', 'amount', 2));
END;
});

my %consumer;

sub start_consumer
{
	my ($m) = @_;
	my $c = { out => '', err => '' };
	local $ENV{PGAPPNAME} = "consumer-$m";
	$c->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-h', $node->host, '-p', $node->port, '-d', 'postgres',
		  '-c', "CALL consume($m, $members)" ],
		'>', \$c->{out}, '2>', \$c->{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$consumer{$m} = $c;
}

# wait for a consumer's psql to end; returns its stderr
sub reap_consumer
{
	my ($m) = @_;
	my $c = $consumer{$m};
	eval { $c->{h}->finish; };
	delete $consumer{$m};
	return $c->{err};
}

# the backend of a consumer, once it is in the middle of a batch
sub consumer_pid
{
	my ($m) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE application_name = 'consumer-$m' AND wait_event = 'PgSleep'
		   AND backend_xid IS NOT NULL}) &&
	  $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity WHERE application_name = 'consumer-$m'});
}

sub pgbench
{
	my ($seconds) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGAPPNAME} = 'senders';
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port, '-c', '8', '-j', '4',
		  '-T', $seconds, '-R', '400', '-f', "$dir/single.sql\@1", '-f', "$dir/paired.sql\@1",
		  'postgres' ],
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return { h => $h, out => \$out, err => \$err };
}

my $t0 = time;
start_consumer($_) for 0 .. $members - 1;

# round 1: sending, while two consumers are terminated mid-batch and
# restarted
my $load = pgbench(8);
my $terminated = 0;
for my $round (1 .. 4)
{
	my $m = $round % $members;
	my $pid = consumer_pid($m);
	ok($pid, "round 1: consumer $m is in the middle of a batch");
	$terminated += $node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)") eq 't';
	like(reap_consumer($m), qr/terminating connection/, "consumer $m was terminated");
	start_consumer($m);
	usleep(700_000);
}
$load->{h}->finish;
note 'round 1 done after ' . (time - $t0) . ' s';
like(${ $load->{out} }, qr/number of transactions actually processed: [1-9]/,
	'round 1: pgbench sent');
unlike(${ $load->{err} }, qr/ERROR|abort/, 'round 1: no send failed');
is($terminated, 4, 'four consumers were terminated in the middle of their batches');

# a backlog of 3,000 events in one transaction; one consumer's backend
# is killed with SIGKILL while it works through it: the server restarts,
# every connection with it
$node->safe_psql('postgres', q{
	SELECT count(machine_send('acct-' || (i % 200 + 1),
	                          jsonb_build_object('_tag', 'Deposit', 'amount', i)))
	  FROM generate_series(1, 3000) i});
my $pid = consumer_pid(1);
ok($pid, 'consumer 1 is in the middle of a batch before the crash');
ok(kill('KILL', $pid), 'SIGKILL to the backend of consumer 1');
reap_consumer($_) for 0 .. $members - 1;
$node->poll_query_until('postgres', 'SELECT true')
  or die 'the server did not come back';
like(PostgreSQL::Test::Utils::slurp_file($node->logfile),
	qr/terminated by signal 9/, 'the server restarted after the crash');
start_consumer($_) for 0 .. $members - 1;
note 'restarted after ' . (time - $t0) . ' s';

# round 2: sending again, one more termination
$load = pgbench(5);
usleep(1_500_000);
my $m0 = consumer_pid(0);
ok($m0, 'round 2: consumer 0 is in the middle of a batch');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($m0)");
reap_consumer(0);
start_consumer(0);
$load->{h}->finish;
like(${ $load->{out} }, qr/number of transactions actually processed: [1-9]/,
	'round 2: pgbench sent');
unlike(${ $load->{err} }, qr/ERROR|abort/, 'round 2: no send failed');

note 'round 2 done after ' . (time - $t0) . ' s';

# the consumers catch up, then stop
ok($node->poll_query_until('postgres', q{
	SELECT bool_and(lag_rows = 0) AND count(*) = 3 FROM machine.subscriptions
	 WHERE name = 'projection'}),
	'every member caught up');
note 'caught up after ' . (time - $t0) . ' s';
$node->safe_psql('postgres', 'INSERT INTO stop_consumers DEFAULT VALUES');
for my $m (0 .. $members - 1)
{
	is(reap_consumer($m), '', "consumer $m stopped without an error");
}

# the journal really had rows whose positions committed out of order
cmp_ok($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT txid < max(txid) OVER (ORDER BY position
		                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS behind
		  FROM machine.events) e WHERE behind}),
	'>', 0, 'some rows have a lower txid than rows of lower positions');

my $journal = q{
	SELECT count(*) FROM machine.events e JOIN machine.instances i USING (actor_id)
	 WHERE i.machine = 'account'};
my $rows = $node->safe_psql('postgres', $journal);
cmp_ok($rows, '>', 1000, "the journal has $rows rows of the subscribed type");
is($node->safe_psql('postgres', 'SELECT count(*) FROM proj'), $rows,
	'the projection has as many rows');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT actor_id, version FROM proj
	                       GROUP BY actor_id, version HAVING count(*) > 1) d}),
	'0', 'no event was delivered twice');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		(SELECT position, actor_id, version, event FROM machine.events e
		  WHERE actor_id LIKE 'acct-%'
		 EXCEPT SELECT position, actor_id, version, event FROM proj)
		UNION ALL
		(SELECT position, actor_id, version, event FROM proj
		 EXCEPT SELECT position, actor_id, version, event FROM machine.events)) x}),
	'0', 'the projection equals the journal, row for row');
is($node->safe_psql('postgres', 'SELECT count(*) FROM out_of_order'), '0',
	'each actor\'s events arrived in version order');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT actor_id FROM proj GROUP BY actor_id
	                       HAVING count(DISTINCT member) > 1) x}),
	'0', 'each actor\'s events went to one member');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT member) FROM proj}), $members, 'every member had events');
is($node->safe_psql('postgres', q{
	SELECT bool_and(checkpoint = (SELECT p.position FROM proj p JOIN machine.events e USING (position)
	                               WHERE p.member = s.member
	                               ORDER BY e.txid DESC, e.position DESC LIMIT 1))
	  FROM machine.subscriptions s WHERE name = 'projection'}),
	't', 'each checkpoint is at the last row of its member');

note 'took ' . (time - $t0) . ' s';
$node->stop('fast');
done_testing();
