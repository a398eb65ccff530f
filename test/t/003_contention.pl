# Many sessions on a few actors lose no update (README "Reliability").
#
# pgbench runs 8 clients for 10 seconds against 5 actors, mixing plain
# sends, expected_version sends, machine_persist, machine_stop followed by
# machine_restore, machine_rewind, and redefinitions of the machine
# (alternating between two equivalent definitions).  Each operation runs in a
# PL/pgSQL function that catches its error and records the SQLSTATE in
# "outcomes"; on success it records, in the same transaction, the version
# it produced in "acked".  Afterwards: only documented SQLSTATEs were raised;
# the acknowledged versions of each actor are exactly 1..version, one each
# (no lost update, no duplicate); the journal is contiguous; every live
# state, snapshot and rewind equals what an oracle of our own computes from
# the journal, and the fold machine_replay_to gives the live state; every
# persist and stop left its snapshot; the revision counts the redefinitions;
# nothing crashed.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('contention');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'machine'
machine.naptime = 100ms
log_statement = none
deadlock_timeout = 100ms
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION machine;
	CREATE FUNCTION bump(state jsonb, event jsonb) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1)
	$$;
	-- two equivalent definitions: the same states and transitions
	CREATE TABLE defs (k int PRIMARY KEY, d jsonb);
	INSERT INTO defs VALUES (0, '{
	  "initial": "A",
	  "states": {
	    "A": {"on": {"Next": {"target": "B", "handler": "bump"}}},
	    "B": {"on": {"Next": {"target": "C", "handler": "bump"}}},
	    "C": {"on": {"Next": {"target": "A", "handler": "bump"}}}
	  },
	  "persistence": {"snapshotSchedule": "every 3"}
	}');
	INSERT INTO defs SELECT 1, d || '{"unhandled": "error"}' FROM defs WHERE k = 0;
	SELECT machine_define('contended', d) FROM defs WHERE k = 0;
	SELECT machine_spawn('c-' || i, 'contended', jsonb_build_object('i', i))
	  FROM generate_series(1, 5) i;

	CREATE TABLE outcomes (op text, sqlstate text, message text);
	CREATE TABLE acked (actor text, op text, version bigint);

	-- one operation; its error is caught and recorded, its success is
	-- recorded in the same transaction as the operation
	CREATE FUNCTION attempt(op text, actor text) RETURNS void
	LANGUAGE plpgsql AS $$
	DECLARE
		v bigint;
		pick int := (random() < 0.5)::int;
		st text;
		msg text;
	BEGIN
		BEGIN
			CASE op
			WHEN 'send' THEN
				PERFORM machine_send(actor, '{"_tag": "Next"}');
				v := machine_version(actor);
			WHEN 'expected' THEN
				v := machine_version(actor);
				PERFORM machine_send(actor, '{"_tag": "Next"}', v);
				v := v + 1;
			WHEN 'persist' THEN
				v := machine_persist(actor);
			WHEN 'stop' THEN
				IF NOT machine_stop(actor) THEN
					-- not an error: another session stopped it first
					RAISE EXCEPTION USING ERRCODE = 'ZZ001', MESSAGE = 'already stopped (false)';
				END IF;
				v := machine_version(actor);
			WHEN 'restore' THEN
				IF machine_restore(actor) IS NULL THEN
					RAISE EXCEPTION USING ERRCODE = 'ZZ002', MESSAGE = 'machine_restore returned NULL';
				END IF;
				v := machine_version(actor);
			WHEN 'rewind' THEN
				PERFORM machine_rewind(actor, greatest(machine_version(actor) - 2, 0));
				v := machine_version(actor);
			WHEN 'redefine' THEN
				v := machine_define('contended', (SELECT d FROM defs WHERE k = pick));
			END CASE;
			INSERT INTO acked VALUES (actor, op, v);
			INSERT INTO outcomes VALUES (op, '00000', NULL);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			INSERT INTO outcomes VALUES (op, st, msg);
		END;
	END $$;

	-- an oracle of our own: n and the tag after each journaled event,
	-- computed from the journal alone (Next counts up and moves A->B->C->A;
	-- $rewind goes back to an earlier version's n and tag)
	CREATE FUNCTION oracle(actor text, OUT version bigint, OUT n bigint, OUT tag text,
	                       OUT rewind_ok boolean)
	RETURNS SETOF record
	LANGUAGE plpgsql AS $$
	DECLARE
		r record;
		ns bigint[] := '{0}';        -- ns[v + 1]: n at version v
		tags text[] := '{A}';
		nn bigint;
		tt text;
	BEGIN
		FOR r IN SELECT * FROM machine.events e WHERE e.actor_id = actor ORDER BY e.version
		LOOP
			IF r.version <> cardinality(ns) THEN
				RAISE EXCEPTION 'journal of % jumps to version %', actor, r.version;
			END IF;
			rewind_ok := NULL;
			IF r.event->>'_tag' = 'Next' THEN
				nn := ns[r.version] + 1;
				tt := CASE tags[r.version] WHEN 'A' THEN 'B' WHEN 'B' THEN 'C' ELSE 'A' END;
			ELSIF r.event->>'_tag' = '$rewind' THEN
				nn := ns[(r.event->>'version')::bigint + 1];
				tt := tags[(r.event->>'version')::bigint + 1];
				rewind_ok := coalesce((r.event->'state'->>'n')::bigint, 0) = nn
				             AND r.event->'state'->>'_tag' = tt;
			ELSE
				RAISE EXCEPTION 'unexpected event % in the journal of %', r.event, actor;
			END IF;
			ns := ns || nn;
			tags := tags || tt;
			version := r.version;
			n := nn;
			tag := tt;
			RETURN NEXT;
		END LOOP;
		version := 0; n := 0; tag := 'A'; rewind_ok := NULL;
		RETURN NEXT;
	END $$;
});

my $script = sub {
	my ($body) = @_;
	return "\\set id random(1, 5)\n$body\n";
};
my $t0 = time;
$node->pgbench(
	'-n -c 8 -j 2 -T 10',
	0,
	[ qr{number of transactions actually processed: [1-9]},
	  qr{number of failed transactions: 0 } ],
	[ qr{^$} ],
	'8 clients mix sends, expected_version sends, persist, stop/restore, rewind, redefinition',
	{
		'send.sql@10' => $script->(q{SELECT attempt('send', 'c-' || :id);}),
		'expected.sql@5' => $script->(q{SELECT attempt('expected', 'c-' || :id);}),
		'persist.sql@2' => $script->(q{SELECT attempt('persist', 'c-' || :id);}),
		'stoprestore.sql@1' => $script->(q{SELECT attempt('stop', 'c-' || :id);
\sleep 5 ms
SELECT attempt('restore', 'c-' || :id);}),
		'rewind.sql@1' => $script->(q{SELECT attempt('rewind', 'c-' || :id);}),
		'redefine.sql@1' => $script->(q{SELECT attempt('redefine', 'c-' || :id);}),
	});
note 'pgbench ran for ' . (time - $t0) . ' s';

# what happened
note $node->safe_psql('postgres', q{
	SELECT op, sqlstate, count(*),
	       string_agg(DISTINCT regexp_replace(message, '"c-\d"', '"c-N"'), ' | ')
	  FROM outcomes GROUP BY op, sqlstate ORDER BY op, sqlstate});

# only documented SQLSTATEs, and each where it belongs: MA001 for a stale
# expected_version; 55000 for an operation on a stopped actor or a restore of
# a running one; 40P01 only if a deadlock can happen
is($node->safe_psql('postgres', q{
	SELECT op, sqlstate, message FROM outcomes
	 WHERE NOT (sqlstate = '00000'
	         OR (sqlstate = 'MA001' AND op = 'expected')
	         OR (sqlstate = '55000' AND op IN ('send', 'expected', 'persist', 'rewind')
	             AND message ~ '^actor "c-\d" is stopped$')
	         OR (sqlstate = '55000' AND op = 'restore'
	             AND message ~ '^actor "c-\d" is not stopped$')
	         OR (sqlstate = 'ZZ001' AND op = 'stop')
	         OR sqlstate IN ('40P01', '40001'))
	 GROUP BY 1, 2, 3}),
	'', 'only the expected errors, each where it belongs');

# the mix did what it should: every operation succeeded at times, conflicts
# and stopped actors were met
is($node->safe_psql('postgres', q{
	SELECT string_agg(op, ',' ORDER BY op) FROM
	  (VALUES ('send'), ('expected'), ('persist'), ('stop'), ('restore'), ('rewind'),
	          ('redefine')) o(op)
	 WHERE NOT EXISTS (SELECT 1 FROM outcomes WHERE outcomes.op = o.op AND sqlstate = '00000')}),
	'', 'every operation succeeded at least once');
ok($node->safe_psql('postgres',
	"SELECT count(*) FROM outcomes WHERE sqlstate = 'MA001'") > 0,
	'stale expected_version sends met MA001');

# actors a stop left stopped (a restore came first) are restored now
$node->safe_psql('postgres', q{
	SELECT attempt('restore', actor_id) FROM machine.instances WHERE status = 'stopped'});
is($node->safe_psql('postgres',
	"SELECT count(*) FROM machine.instances WHERE status <> 'running'"),
	'0', 'every actor runs');

# no lost update and no duplicate: the versions acknowledged by sends and
# rewinds are exactly 1..version of each actor, one each
is($node->safe_psql('postgres', q{
	SELECT i.actor_id, i.version, a.c, a.d, a.hi
	  FROM machine.instances i
	  LEFT JOIN (SELECT actor, count(*) c, count(DISTINCT version) d, max(version) hi
	               FROM acked WHERE op IN ('send', 'expected', 'rewind')
	              GROUP BY actor) a ON a.actor = i.actor_id
	 WHERE a.c IS DISTINCT FROM i.version OR a.d IS DISTINCT FROM i.version
	    OR a.hi IS DISTINCT FROM i.version}),
	'', 'the acknowledged versions of each actor are 1..version, once each');
note $node->safe_psql('postgres',
	"SELECT actor_id, version FROM machine.instances ORDER BY actor_id");

# the primary keys hold: no version twice (read from the heap)
is($node->safe_psql('postgres', q{
	SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off;
	SELECT 'journal', actor_id, version, count(*) FROM machine.events
	 GROUP BY actor_id, version HAVING count(*) > 1
	UNION ALL
	SELECT 'snapshot', actor_id, version, count(*) FROM machine.snapshots
	 GROUP BY actor_id, version HAVING count(*) > 1}),
	'', 'no journal or snapshot version exists twice');

is($node->safe_psql('postgres', q{
	SELECT i.actor_id, i.version, e.c, e.lo, e.hi
	  FROM machine.instances i
	  LEFT JOIN (SELECT actor_id, count(*) c, min(version) lo, max(version) hi
	               FROM machine.events GROUP BY actor_id) e USING (actor_id)
	 WHERE coalesce(e.c, 0) <> i.version OR coalesce(e.hi, 0) <> i.version
	    OR coalesce(e.lo, 1) <> 1}),
	'', 'every journal runs 1..version without a gap');

is($node->safe_psql('postgres', q{
	SELECT actor_id, version, state, machine_replay_to(actor_id, version)
	  FROM machine.instances
	 WHERE machine_replay_to(actor_id, version) IS DISTINCT FROM state}),
	'', 'every live state equals machine_replay_to(id, version)');

# the oracle: the journal's state tags, the live states, the snapshots and
# the states the rewinds recorded
is($node->safe_psql('postgres', q{
	WITH o AS MATERIALIZED (SELECT i.actor_id, o.* FROM machine.instances i,
	                        LATERAL oracle(i.actor_id) o)
	SELECT 'journal', e.actor_id, e.version FROM machine.events e
	  LEFT JOIN o ON o.actor_id = e.actor_id AND o.version = e.version
	 WHERE o.version IS NULL OR e.state_tag <> o.tag OR NOT coalesce(o.rewind_ok, true)
	UNION ALL
	SELECT 'live', i.actor_id, i.version FROM machine.instances i
	  LEFT JOIN o ON o.actor_id = i.actor_id AND o.version = i.version
	 WHERE o.version IS NULL OR coalesce((i.state->>'n')::bigint, 0) <> o.n OR i.state->>'_tag' <> o.tag
	    OR i.state_tag <> o.tag OR (i.state->>'i')::int <> substr(i.actor_id, 3)::int
	UNION ALL
	SELECT 'snapshot', s.actor_id, s.version FROM machine.snapshots s
	  LEFT JOIN o ON o.actor_id = s.actor_id AND o.version = s.version
	 WHERE o.version IS NULL OR coalesce((s.state->>'n')::bigint, 0) <> o.n
	    OR s.state->>'_tag' <> o.tag OR s.state_tag <> o.tag
	    OR (s.state->>'i')::int <> substr(s.actor_id, 3)::int}),
	'', 'journal, live states, snapshots and rewinds agree with the oracle');

is($node->safe_psql('postgres', q{
	SELECT a.actor, a.op, a.version FROM acked a
	 WHERE a.op IN ('persist', 'stop')
	   AND NOT EXISTS (SELECT 1 FROM machine.snapshots s
	                    WHERE s.actor_id = a.actor AND s.version = a.version)}),
	'', 'every persist and stop left its snapshot');

is($node->safe_psql('postgres', q{
	SELECT (SELECT revision FROM machine.machines WHERE name = 'contended')
	       = 1 + count(*) AND count(*) = count(DISTINCT version)
	  FROM acked WHERE op = 'redefine'}),
	't', 'the revision counts the redefinitions, each got its own');

# everything still works
$node->safe_psql('postgres', q{SELECT attempt('send', 'c-1')});
is($node->safe_psql('postgres',
	"SELECT sqlstate FROM outcomes ORDER BY ctid DESC LIMIT 1"), '00000',
	'a send after the run succeeds');

my $log = slurp_file($node->logfile);
unlike($log, qr/PANIC|TRAP:|terminated by signal|server process .* exited with exit code/,
	'nothing crashed');
unlike($log, qr/ERROR:/, 'no error escaped the operations');

$node->stop('fast');
done_testing();
