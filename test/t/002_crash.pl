# Crashes under load lose no committed transition (README "Reliability").
#
# pgbench sends to 200 journaled actors of a three-state cycle whose third
# state arms a timer, while two psql clients send to actors of their own and
# print an acknowledgement after each send (or each two-send transaction)
# has committed.  The server is stopped with 'immediate' three times, then a
# backend is killed with SIGKILL once (a crash restart).  After each restart:
# every journal runs 1..version without a gap, no version twice; every live
# state is the fold of its journal (machine_replay_to) and carries the count
# of its Next events, and so does every snapshot; every acknowledged send is
# in the journal (and at most the one in flight beyond it); both sends of a
# transaction are there or neither; pending timers are still armed and fire
# exactly once, never early, each with its entry effect.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $actors = 200;     # a-1 .. a-200: the pgbench load, with timers
my $watched = 10;     # w-1 .. w-10: one send per acknowledged statement
my $pairs = 3;        # x-1-a/x-1-b .. : two sends per acknowledged transaction
my $script_len = 50000;    # statements per watcher script; never reached

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
# fsync stays off (PostgreSQL::Test::Cluster's default): the crashes here kill
# processes, not the machine, so what was written is in the OS cache
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'machine'
machine.naptime = 100ms
restart_after_crash = on
synchronous_commit = on
max_connections = 40
log_statement = none
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE FUNCTION bump(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1)
	$$;
	-- the entry effect of a timer's transition, keyed by the version it made
	CREATE TABLE fired (actor text, version bigint, at timestamptz DEFAULT clock_timestamp(),
	                    PRIMARY KEY (actor, version));
	CREATE FUNCTION on_entry(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$
		INSERT INTO fired SELECT actor_id, machine_version(actor_id)
		 WHERE event->>'_tag' = 'Timeout'
	$$;
	SELECT machine_define('cycle', '{
	  "initial": "A",
	  "states": {
	    "A": {"on": {"Next": {"target": "B", "handler": "bump"}}, "entry": ["on_entry"]},
	    "B": {"on": {"Next": {"target": "C", "handler": "bump"}}},
	    "C": {"on": {"Next": {"target": "A", "handler": "bump"}, "Timeout": "A"},
	          "after": [{"delay": "1 second", "event": {"_tag": "Timeout"}}]}
	  },
	  "persistence": {"snapshotSchedule": "every 5"}
	}');
	SELECT machine_define('watched', '{
	  "initial": "A",
	  "states": {
	    "A": {"on": {"Next": {"target": "B", "handler": "bump"}}},
	    "B": {"on": {"Next": {"target": "C", "handler": "bump"}}},
	    "C": {"on": {"Next": {"target": "A", "handler": "bump"}}}
	  },
	  "persistence": {}
	}');
});
$node->safe_psql('postgres', qq{
	SELECT count(machine_spawn('a-' || i, 'cycle')) FROM generate_series(1, $actors) i;
	SELECT count(machine_spawn('w-' || i, 'watched')) FROM generate_series(1, $watched) i;
	SELECT count(machine_spawn('x-' || i || '-' || s, 'watched'))
	  FROM generate_series(1, $pairs) i, unnest(ARRAY['a', 'b']) s;
});

# the scripts
my $dir = $node->basedir;
PostgreSQL::Test::Utils::append_to_file("$dir/load.sql", qq{\\set id random(1, $actors)
SELECT machine_send('a-' || :id, '{"_tag": "Next"}');
});
my ($single, $paired) = ('', '');
for my $i (0 .. $script_len - 1)
{
	my $w = $i % $watched + 1;
	$single .= qq{SELECT machine_send('w-$w', '{"_tag": "Next"}') \\gset\n\\echo ack w-$w\n};
	my $x = $i % $pairs + 1;
	$paired .= qq{BEGIN;
SELECT machine_send('x-$x-a', '{"_tag": "Next"}') \\gset
SELECT machine_send('x-$x-b', '{"_tag": "Next"}') \\gset
COMMIT;
\\echo ack x-$x
};
}
PostgreSQL::Test::Utils::append_to_file("$dir/single.sql", $single);
PostgreSQL::Test::Utils::append_to_file("$dir/paired.sql", $paired);

# what the watchers saw acknowledged, and what may have committed unseen
my (%acked, %in_flight);
$acked{"w-$_"} = $in_flight{"w-$_"} = 0 for 1 .. $watched;
$acked{"x-$_"} = $in_flight{"x-$_"} = 0 for 1 .. $pairs;

sub start_load
{
	my @conn = ('-h', $node->host, '-p', $node->port);
	my %run;
	local $ENV{PGAPPNAME} = 'load';
	$run{pgbench} = { out => '', err => '' };
	$run{pgbench}{h} = IPC::Run::start(
		[ 'pgbench', '-n', @conn, '-c', '4', '-j', '2', '-T', '60',
		  '-f', "$dir/load.sql", 'postgres' ],
		'>', \$run{pgbench}{out}, '2>', \$run{pgbench}{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	for my $w ('single', 'paired')
	{
		$run{$w} = { out => '', err => '' };
		$run{$w}{h} = IPC::Run::start(
			[ 'psql', '-XAtq', @conn, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1',
			  '-f', "$dir/$w.sql" ],
			'>', \$run{$w}{out}, '2>', \$run{$w}{err},
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	}
	return \%run;
}

# wait for the clients after the crash; count the acknowledgements
sub finish_load
{
	my ($run, $label) = @_;
	for my $c (values %$run)
	{
		$c->{h}->finish;
	}
	like($run->{pgbench}{out}, qr/number of transactions actually processed: [1-9]/,
		"$label: pgbench sent before the crash");
	unlike($run->{pgbench}{err}, qr/ERROR:/,
		"$label: no send of pgbench failed before the crash");
	note "$label: pgbench: ", $run->{pgbench}{out} =~ /(number of transactions actually processed: \d+)/;

	for my $w ([ 'single', 'w', $watched ], [ 'paired', 'x', $pairs ])
	{
		my ($name, $prefix, $n) = @$w;
		my $out = $run->{$name}{out};
		my @acks = $out =~ /^ack ($prefix-\d+)$/mg;
		ok(@acks > 0, "$label: the $name watcher had sends acknowledged");
		unlike($run->{$name}{err}, qr/ERROR:/,
			"$label: the $name watcher stopped on the crash only");
		$acked{$_}++ for @acks;
		# the statement after the last acknowledged one may have committed
		$in_flight{ $prefix . '-' . (@acks % $n + 1) }++;
		note "$label: $name watcher: " . scalar(@acks) . " acknowledged";
	}
}

# a query listing offenders: none expected
sub none
{
	my ($query, $name) = @_;
	my $got = $node->safe_psql('postgres', $query);
	is($got, '', $name);
}

sub check_all
{
	my ($label) = @_;

	none(q{
		SELECT i.actor_id, i.version, e.c, e.lo, e.hi
		  FROM machine.instances i
		  LEFT JOIN (SELECT actor_id, count(*) c, min(version) lo, max(version) hi
		               FROM machine.events GROUP BY actor_id) e USING (actor_id)
		 WHERE coalesce(e.c, 0) <> i.version OR coalesce(e.hi, 0) <> i.version
		    OR coalesce(e.lo, 1) <> 1
		UNION ALL
		SELECT actor_id, NULL, count(*), min(version), max(version) FROM machine.events
		 WHERE actor_id NOT IN (SELECT actor_id FROM machine.instances)
		 GROUP BY actor_id},
		"$label: every journal runs 1..version without a gap");

	# read from the heap: a duplicate would hide behind the primary key
	none(q{
		SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off;
		SELECT 'journal', actor_id, version FROM machine.events
		 GROUP BY actor_id, version HAVING count(*) > 1
		UNION ALL
		SELECT 'snapshot', actor_id, version FROM machine.snapshots
		 GROUP BY actor_id, version HAVING count(*) > 1},
		"$label: no journal or snapshot version exists twice");

	none(q{
		SELECT i.actor_id FROM machine.instances i
		  LEFT JOIN machine.events e ON e.actor_id = i.actor_id AND e.version = i.version
		 WHERE i.state->>'_tag' <> i.state_tag
		    OR (i.version > 0 AND e.state_tag IS DISTINCT FROM i.state_tag)},
		"$label: every live state tag is the one its last journal row recorded");

	# one transaction, so that the states and the folds are read together
	none(q{
		BEGIN ISOLATION LEVEL REPEATABLE READ;
		SELECT actor_id, version, state, machine_replay_to(actor_id, version)
		  FROM machine.instances
		 WHERE machine_replay_to(actor_id, version) IS DISTINCT FROM state;
		COMMIT},
		"$label: every live state equals machine_replay_to(id, version)");

	# an oracle of our own: n counts the Next events up to a version
	none(q{
		SELECT 'live', i.actor_id, i.version FROM machine.instances i
		 WHERE coalesce((i.state->>'n')::bigint, 0) <>
		       (SELECT count(*) FROM machine.events e
		         WHERE e.actor_id = i.actor_id AND e.event->>'_tag' = 'Next')
		UNION ALL
		SELECT 'snapshot', s.actor_id, s.version FROM machine.snapshots s
		 WHERE coalesce((s.state->>'n')::bigint, 0) <>
		       (SELECT count(*) FROM machine.events e
		         WHERE e.actor_id = s.actor_id AND e.version <= s.version
		           AND e.event->>'_tag' = 'Next')
		    OR s.state_tag <> (SELECT e.state_tag FROM machine.events e
		                        WHERE e.actor_id = s.actor_id AND e.version = s.version)},
		"$label: live states and snapshots count their Next events");

	none(q{
		SELECT i.actor_id, i.version, count(s.version)
		  FROM machine.instances i
		  LEFT JOIN machine.snapshots s USING (actor_id)
		 WHERE i.machine = 'cycle'
		 GROUP BY i.actor_id, i.version
		HAVING count(s.version) <> i.version / 5
		    OR bool_or(s.version % 5 <> 0 OR s.version > i.version)},
		"$label: snapshots of every multiple of 5 versions, and only those");

	# the watchers: every acknowledged send is in, at most the one in flight more
	my %version = split /[|\n]/, $node->safe_psql('postgres',
		q{SELECT actor_id, version FROM machine.instances WHERE machine = 'watched'});
	my @lost;
	for my $w (1 .. $watched)
	{
		my $v = $version{"w-$w"};
		push @lost, "w-$w at $v, acknowledged $acked{\"w-$w\"}, in flight $in_flight{\"w-$w\"}"
		  if $v < $acked{"w-$w"} || $v > $acked{"w-$w"} + $in_flight{"w-$w"};
	}
	for my $x (1 .. $pairs)
	{
		my ($va, $vb) = ($version{"x-$x-a"}, $version{"x-$x-b"});
		push @lost, "x-$x at $va/$vb, acknowledged $acked{\"x-$x\"}, in flight $in_flight{\"x-$x\"}"
		  if $va != $vb || $va < $acked{"x-$x"}
		  || $va > $acked{"x-$x"} + $in_flight{"x-$x"};
	}
	is(join("\n", @lost), '',
		"$label: every acknowledged send is journaled, both of a transaction or neither");

	# timers: every actor in C has its timer armed at its version, no other
	# timer is left; each Timeout followed a C at the version before, at
	# least a second later, and ran its entry effect once
	none(q{
		SELECT 'missing', i.actor_id, i.version FROM machine.instances i
		 WHERE i.machine = 'cycle' AND i.state_tag = 'C' AND i.status = 'running'
		   AND NOT EXISTS (SELECT 1 FROM machine.timers t
		                    WHERE t.actor_id = i.actor_id AND t.armed_version = i.version)
		UNION ALL
		SELECT 'stale', t.actor_id, t.armed_version FROM machine.timers t
		  LEFT JOIN machine.instances i USING (actor_id)
		 WHERE i.state_tag IS DISTINCT FROM 'C' OR t.armed_version <> i.version},
		"$label: pending timers are armed for exactly the actors waiting in C");

	# (recorded_at is the start of a transaction: the one that entered C
	# began before it armed the timer; the effect's clock_timestamp() is
	# after the worker found the timer due)
	none(q{
		SELECT e.actor_id, e.version, f.at - p.recorded_at
		  FROM machine.events e
		  LEFT JOIN machine.events p ON p.actor_id = e.actor_id AND p.version = e.version - 1
		  LEFT JOIN fired f ON f.actor = e.actor_id AND f.version = e.version
		 WHERE e.event->>'_tag' = 'Timeout'
		   AND (p.state_tag IS DISTINCT FROM 'C'
		        OR f.at - p.recorded_at < interval '1 second')},
		"$label: each timer fired for the state instance that armed it, not early");

	none(q{
		SELECT coalesce(e.actor_id, f.actor), coalesce(e.version, f.version),
		       e.actor_id IS NULL AS effect_only
		  FROM (SELECT actor_id, version FROM machine.events
		         WHERE event->>'_tag' = 'Timeout') e
		  FULL JOIN fired f ON f.actor = e.actor_id AND f.version = e.version
		 WHERE e.actor_id IS NULL OR f.actor IS NULL},
		"$label: each fired timer ran its entry effect, together with its transition");
}

check_all('before any crash');

my @rounds = (
	[ 'immediate stop 1', 2.0 ],
	[ 'immediate stop 2', 3.0 ],
	[ 'immediate stop 3', 2.5 ],
	[ 'SIGKILL of a backend', 2.5 ]);
my $total_waiting = 0;
for my $round (@rounds)
{
	my ($label, $seconds) = @$round;
	my $run = start_load();
	usleep($seconds * 1_000_000);

	if ($label =~ /SIGKILL/)
	{
		my $pid = $node->safe_psql('postgres', q{
			SELECT pid FROM pg_stat_activity
			 WHERE application_name = 'load' AND state = 'active' LIMIT 1});
		$pid = $node->safe_psql('postgres', q{
			SELECT pid FROM pg_stat_activity WHERE application_name = 'load' LIMIT 1})
		  if $pid eq '';
		ok($pid =~ /^\d+$/, "$label: found a pgbench backend");
		kill 'KILL', $pid;
		finish_load($run, $label);
		ok($node->poll_query_until('postgres', 'SELECT true'),
			"$label: the server restarts after the crash");
		ok($node->log_contains(qr/server process \(PID $pid\) was terminated by signal 9/),
			"$label: the postmaster saw the killed backend");
	}
	else
	{
		$node->stop('immediate');
		finish_load($run, $label);
		$node->start;
	}

	my $waiting = $node->safe_psql('postgres',
		"SELECT count(*) FROM machine.instances WHERE machine = 'cycle' AND state_tag = 'C'");
	note "$label: $waiting actors wait in C with a pending timer";
	$total_waiting += $waiting;
	check_all("after $label");
}
ok($total_waiting > 0, 'some timers were pending across the crashes');

# the timers pending after the last crash fire by themselves, each once
ok($node->poll_query_until('postgres', q{
	SELECT NOT EXISTS (SELECT 1 FROM machine.instances
	                    WHERE machine = 'cycle' AND state_tag = 'C')
	   AND NOT EXISTS (SELECT 1 FROM machine.timers)}),
	'every pending timer fires after the crashes');
check_all('after the timers fired');
my $fired = $node->safe_psql('postgres', 'SELECT count(*) FROM fired');
ok($fired > 0, "timers fired ($fired)");

# nothing crashed but what we crashed
my $log = slurp_file($node->logfile);
unlike($log, qr/PANIC|TRAP:/, 'no PANIC or assertion failure in the server log');
my @signals = $log =~ /was terminated by signal (\d+)/g;
is("@signals", '9', 'the only process terminated by a signal is the one killed');

$node->stop('fast');
done_testing();
