# Every released version reaches the newest by ALTER EXTENSION UPDATE and
# keeps its actors.  For each version with an install script older than
# the control file's default_version: install it, fill it (machines with
# timers and every snapshot schedule; running, stopped and done actors;
# journal, snapshots, timers, privileges), update, and show that
#   - every row of every table is as it was;
#   - sends, restores, replays and timers work afterwards;
#   - the extension's objects equal those of a fresh install of the newest
#     version: each table's columns, constraints, indexes and triggers,
#     each function's definition, each view's query, comments, privileges
#     and the tables a dump includes.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $control = slurp_file("$sharedir/extension/machine.control");
my ($newest) = $control =~ /default_version\s*=\s*'([^']+)'/;
my @versions = sort { version_key($a) <=> version_key($b) }
  map { m{/machine--([0-9.]+)\.sql$} ? $1 : () }
  glob("$sharedir/extension/machine--*.sql");
my @older = grep { version_key($_) < version_key($newest) } @versions;

sub version_key
{
	my ($major, $minor) = split /\./, shift;
	return $major * 1000 + $minor;
}

ok(scalar(@older) >= 1, "there is a released version older than $newest (@older)");

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "client_min_messages = warning\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE upgrade_admin;
	CREATE ROLE upgrade_app;
	GRANT upgrade_app TO upgrade_admin;
});

# The extension's objects, described by name: what a fresh install and an
# upgraded one must agree on
my $catalog = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'machine'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT kind || ' ' || what FROM (
	SELECT 'object' AS kind, pg_describe_object(classid, objid, 0) AS what FROM members
	UNION ALL
	SELECT 'column', format('%s.%s %s %s %s %s', c.relname, a.attname, a.attnum,
	       format_type(a.atttypid, a.atttypmod), a.attnotnull,
	       pg_get_expr(ad.adbin, ad.adrelid))
	  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
	UNION ALL
	SELECT 'relation', format('%s %s %s %s %s', c.relname, c.relkind, c.reloptions,
	       c.relacl, obj_description(c.oid, 'pg_class'))
	  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
	UNION ALL
	SELECT 'constraint', format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(co.oid))
	  FROM members m JOIN pg_constraint co ON m.classid = 'pg_class'::regclass AND co.conrelid = m.objid
	UNION ALL
	SELECT 'index', pg_get_indexdef(i.indexrelid)
	  FROM members m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
	UNION ALL
	SELECT 'trigger', pg_get_triggerdef(t.oid)
	  FROM members m JOIN pg_trigger t ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid
	 WHERE NOT t.tgisinternal
	UNION ALL
	SELECT 'view', format('%s %s', c.relname, pg_get_viewdef(c.oid))
	  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
	 WHERE c.relkind = 'v'
	UNION ALL
	SELECT 'function', format('%s %s %s', pg_get_functiondef(p.oid), p.proacl,
	       obj_description(p.oid, 'pg_proc'))
	  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
	UNION ALL
	SELECT 'schema', format('%s %s %s', n.nspname, n.nspacl, obj_description(n.oid, 'pg_namespace'))
	  FROM members m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
	UNION ALL
	SELECT 'dumped', format('%s %s', c::regclass, cond)
	  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(c, cond)
	 WHERE e.extname = 'machine'
) o ORDER BY 1
};

# What the actors are: every row of every table, by key
my $rows = q{
SELECT 'machine ' || name || ' ' || revision || ' ' || definition || ' ' || functions::text
       || ' ' || machine_type || ' ' || coalesce(snapshot_spacing::text, '-')
       || ' ' || owner || ' ' || defined_by || ' ' || coalesce(acl::text, '-')
  FROM machine.machines
UNION ALL SELECT 'actor ' || actor_id || ' ' || machine || ' ' || status || ' ' || version
       || ' ' || state || ' ' || state_tag || ' ' || initial_state FROM machine.instances
UNION ALL SELECT 'event ' || actor_id || ' ' || version || ' ' || event || ' ' || state_tag
       || ' ' || recorded_at FROM machine.events
UNION ALL SELECT 'snapshot ' || actor_id || ' ' || version || ' ' || state || ' ' || state_tag
       || ' ' || taken_at FROM machine.snapshots
UNION ALL SELECT 'timer ' || timer_id || ' ' || actor_id || ' ' || armed_version || ' ' || seq
       || ' ' || state_tag || ' ' || event || ' ' || due_at || ' ' || armed_by FROM machine.timers
ORDER BY 1
};

$node->safe_psql('postgres', "CREATE DATABASE fresh");
# with the grant the filled databases get too
$node->safe_psql('fresh', q{
	CREATE EXTENSION machine;
	GRANT EXECUTE ON FUNCTION machine_define(text, jsonb) TO upgrade_admin;
});
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'machine'"),
	$newest, "a fresh install is at $newest");
my $fresh_catalog = $node->safe_psql('fresh', $catalog);

foreach my $old (@older)
{
	my $db = "from_" . ($old =~ s/\./_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
		CREATE EXTENSION machine VERSION '$old';
		GRANT EXECUTE ON FUNCTION machine_define(text, jsonb) TO upgrade_admin;
		CREATE SCHEMA shop AUTHORIZATION upgrade_admin;
		GRANT USAGE ON SCHEMA shop TO upgrade_app;
	});
	is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'machine'"),
		$old, "installed $old");

	# fill it: a machine per snapshot schedule, with timers, guards and handlers
	$node->safe_psql($db, q{
		SET ROLE upgrade_admin;
		CREATE FUNCTION shop.enough(state jsonb, event jsonb) RETURNS boolean
		LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= 10 $$;
		CREATE FUNCTION shop.add(state jsonb, event jsonb) RETURNS jsonb
		LANGUAGE sql AS $$ SELECT state || jsonb_build_object('total',
			coalesce((state->>'total')::numeric, 0) + (event->>'amount')::numeric) $$;
		SELECT machine_define('order_' || schedule, jsonb_build_object(
		  'initial', 'Pending',
		  'states', jsonb_build_object(
		    'Pending', jsonb_build_object('on', jsonb_build_object(
		        'Add', jsonb_build_object('target', 'Pending', 'handler', 'shop.add'),
		        'Pay', jsonb_build_array(jsonb_build_object('target', 'Paid', 'guard', 'shop.enough'),
		                                 jsonb_build_object('target', 'Pending'))),
		      'after', jsonb_build_array(jsonb_build_object('delay', '1 hour',
		                                 'event', jsonb_build_object('_tag', 'Expire')))),
		    'Paid', jsonb_build_object('on', jsonb_build_object('Ship', 'Shipped'),
		      'after', jsonb_build_array(jsonb_build_object('delay', '2 hours',
		                                 'event', jsonb_build_object('_tag', 'Expire')))),
		    'Shipped', jsonb_build_object('final', true)),
		  'any', jsonb_build_object('Expire', 'Shipped'),
		  'persistence', jsonb_build_object('snapshotSchedule', schedule)))
		  FROM unnest(ARRAY['forever', 'never', 'recurs 2', 'every 2', 'spaced 1 second']) AS schedule;
		SELECT machine_define('light', '{"initial": "Red", "states": {"Red": {"on": {"Next": "Green"}},
		  "Green": {"on": {"Next": "Red"}}}}');
		SELECT machine_grant(name, 'upgrade_app', 'send') FROM machine.definitions;
		RESET ROLE;
		SET ROLE upgrade_app;
		-- per machine: a running actor with a journal, a stopped one, a done one
		SELECT machine_spawn(m || '-run', m, '{"total": 0}'),
		       machine_send(m || '-run', '{"_tag": "Add", "amount": 4}'),
		       machine_send(m || '-run', '{"_tag": "Add", "amount": 5}'),
		       machine_send(m || '-run', '{"_tag": "Pay", "amount": 10}'),
		       machine_spawn(m || '-stop', m),
		       machine_send(m || '-stop', '{"_tag": "Add", "amount": 1}'),
		       machine_stop(m || '-stop'),
		       machine_spawn(m || '-done', m),
		       machine_send(m || '-done', '{"_tag": "Pay", "amount": 50}'),
		       machine_send(m || '-done', '{"_tag": "Ship"}')
		  FROM unnest(ARRAY['order_forever', 'order_never', 'order_recurs 2', 'order_every 2',
		                    'order_spaced 1 second']) AS m;
		SELECT machine_spawn('light-1', 'light'), machine_send('light-1', '{"_tag": "Next"}');
		RESET ROLE;
		SELECT * FROM machine_run_maintenance();
	});
	my $before = $node->safe_psql($db, $rows);
	my $timers = $node->safe_psql($db, "SELECT count(*) FROM machine.timers");
	cmp_ok($timers, '>=', 5, "$old: the filled database has timers ($timers)");
	cmp_ok($node->safe_psql($db, "SELECT count(*) FROM machine.snapshots"), '>=', 5,
		"$old: and snapshots");

	$node->safe_psql($db, 'ALTER EXTENSION machine UPDATE');
	is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'machine'"),
		$newest, "$old: ALTER EXTENSION machine UPDATE reaches $newest");
	is($node->safe_psql($db, $rows), $before,
		"$old: every machine, actor, journal row, snapshot and timer is as it was");
	my $upgraded_catalog = $node->safe_psql($db, $catalog);
	is($upgraded_catalog, $fresh_catalog,
		"$old: the extension's objects equal a fresh install of $newest")
	  or diag(catalog_diff($upgraded_catalog, $fresh_catalog));

	# the journal got positions in the order it was recorded
	my $journal = q{
		SELECT count(*) || ' ' || count(DISTINCT position) || ' '
		       || bool_and(position = n) || ' ' || min(txid)
		  FROM (SELECT position, txid,
		               row_number() OVER (ORDER BY recorded_at, actor_id, version) AS n
		          FROM machine.events) e};
	my ($rows_before) = split / /, $node->safe_psql($db, $journal);
	is($node->safe_psql($db, $journal), "$rows_before $rows_before true 0",
		"$old: journal rows have positions 1..n in the order recorded");

	# and it all still works, for the application role
	is($node->safe_psql($db, q{
		SET ROLE upgrade_app;
		SELECT machine_send('order_forever-run', '{"_tag": "Ship"}') ->> '_tag'}),
		'Shipped', "$old: a send after the update");
	is($node->safe_psql($db, q{
		SELECT position > (SELECT max(position) FROM machine.events e
		                    WHERE (e.actor_id, e.version) <> (x.actor_id, x.version))
		  FROM machine.events x ORDER BY position DESC LIMIT 1}),
		't', "$old: the new journal row comes after the old ones");
	is($node->safe_psql($db, q{
		SELECT (SELECT count(*) FROM machine.machines m JOIN machine.revisions r
		           ON r.machine = m.name AND r.revision = m.revision
		          AND r.definition = m.definition AND r.functions = m.functions)
		       = (SELECT count(*) FROM machine.machines)
		   AND (SELECT count(*) FROM machine.revisions) = (SELECT count(*) FROM machine.machines)
		   AND (SELECT revision FROM machine.events WHERE actor_id = 'order_forever-run'
		         ORDER BY version DESC LIMIT 1)
		       = (SELECT revision FROM machine.machines WHERE name = 'order_forever')
		   AND (SELECT bool_and(revision IS NULL) FROM machine.events
		         WHERE recorded_at < (SELECT max(recorded_at) FROM machine.events))}),
		't', "$old: the latest revision of each machine is kept; new journal rows record theirs");
	is($node->safe_psql($db, q{
		SET ROLE upgrade_app;
		SELECT string_agg(status, ',') FROM machine_restore_all('order_every 2')}),
		'restored', "$old: a restore after the update");
	is($node->safe_psql($db, q{
		SET ROLE upgrade_app;
		SELECT machine_state('order_every 2-stop') ->> 'total'}),
		'1', "$old: the restored actor has its state");
	is($node->safe_psql($db, q{
		SET ROLE upgrade_app;
		SELECT machine_replay_to('order_forever-run', 2) ->> 'total'}),
		'9', "$old: a replay after the update");
	$node->safe_psql($db, q{
		UPDATE machine.timers SET due_at = now() - interval '1 minute';
		SELECT * FROM machine_run_maintenance()});
	is($node->safe_psql($db, q{
		SELECT count(*) FROM machine.actors WHERE state_tag = 'Shipped' AND id LIKE '%-run'}),
		'5', "$old: the timers armed before the update fire after it");
	$node->safe_psql($db, q{
		SET ROLE upgrade_app;
		SELECT machine_spawn('after-1', 'order_never')});
	is($node->safe_psql($db, q{
		SELECT count(*) FROM machine.pending_timers WHERE actor_id = 'after-1'}),
		'1', "$old: spawning into a timed state arms its timer");
}

# The lines only one side has
sub catalog_diff
{
	my ($got, $want) = @_;
	my %want = map { $_ => 1 } split /\n/, $want;
	my %got = map { $_ => 1 } split /\n/, $got;
	return join("\n",
		(map { "only after the update: $_" } grep { !$want{$_} } split /\n/, $got),
		(map { "only in a fresh install: $_" } grep { !$got{$_} } split /\n/, $want));
}

$node->stop;
done_testing();
