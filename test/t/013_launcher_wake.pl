# The launcher and its settings: a database that gets the extension is
# served within one machine.naptime (its worker is started at once, not
# after the back-off of a worker that found no extension), so a timer armed
# right after CREATE EXTENSION fires on time; machine.databases is checked
# when it is set, and a bad value leaves the previous one in force.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('wake');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'machine'
machine.naptime = 1s
});
$node->start;

ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'machine launcher'"),
	'the launcher runs');

# A database without the extension: the launcher tries a worker there at
# its next scan, which finds no extension and stops; before the wake-up,
# the next try came only after a back-off of 10 s.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
sleep(3);

$node->safe_psql('fresh', q{
	CREATE EXTENSION machine;
	CREATE TABLE fired (at timestamptz DEFAULT clock_timestamp());
	CREATE TABLE armed (at timestamptz);
	CREATE FUNCTION record_fire(actor_id text, state jsonb, event jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO fired DEFAULT VALUES $$;
	SELECT machine_define('offer', '{
	  "initial": "Open",
	  "states": {
	    "Open": {"on": {"Expire": "Expired"},
	             "after": [{"delay": "1 second", "event": {"_tag": "Expire"}}]},
	    "Expired": {"final": true, "entry": ["record_fire"]}
	  }
	}');
	INSERT INTO armed VALUES (clock_timestamp());
	SELECT machine_spawn('offer-1', 'offer');
});
ok($node->poll_query_until('fresh', 'SELECT count(*) = 1 FROM fired'),
	'the timer fires');
my $late = $node->safe_psql('fresh',
	"SELECT extract(epoch FROM (SELECT at FROM fired) - (SELECT at FROM armed))");
# due after 1 s; served within one naptime (1 s), with room for a busy machine
cmp_ok($late, '<', 4, "a 1-second timer armed right after CREATE EXTENSION fires within the naptime (after $late s)");

# machine.databases is checked when it is set
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET machine.databases = 'postgres,,fresh'});
isnt($ret, 0, 'ALTER SYSTEM refuses a list with an empty name');
like($stderr, qr/ERROR:  invalid value for parameter "machine.databases": "postgres,,fresh"/,
	'the error names the setting and the value');
like($stderr, qr/DETAIL:  List syntax is invalid\./, 'its detail says why');
like($stderr, qr/HINT:  Separate database names with commas/, 'its hint says how');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET machine.databases = '"unterminated'});
isnt($ret, 0, 'ALTER SYSTEM refuses an unterminated quoted name');
ok(!-s $node->data_dir . '/postgresql.auto.conf'
	  || slurp_file($node->data_dir . '/postgresql.auto.conf') !~ /machine\.databases/,
	'nothing was written');

$node->safe_psql('postgres', q{ALTER SYSTEM SET machine.databases = 'postgres, "Other DB"'});
$node->reload;
ok($node->poll_query_until('postgres',
	q{SELECT current_setting('machine.databases') = 'postgres, "Other DB"'}),
	'a valid list is taken on reload');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'fresh'}),
	'a database left out is no longer served');

# a bad value in the configuration file is refused on reload, once, and the
# previous value stays in force
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', q{machine.databases = 'a,,b'});
$node->safe_psql('postgres', 'ALTER SYSTEM RESET machine.databases');
$node->reload;
ok($node->wait_for_log(qr/invalid value for parameter "machine.databases": "a,,b"/, $offset),
	'a bad value in the configuration file is reported on reload');
is($node->safe_psql('postgres', q{SELECT current_setting('machine.databases')}),
	'postgres, "Other DB"', 'the previous value stays in force');
sleep(2);
my $log = slurp_file($node->logfile, $offset);
my $reports = () = $log =~ /invalid value for parameter "machine\.databases"/g;
is($reports, 1, 'reported once, not by every worker at every naptime');

$node->append_conf('postgresql.conf', q{machine.databases = ''});
$node->reload;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'machine worker' AND datname = 'fresh'}),
	'with the list emptied again, every database is served');

$node->stop;
done_testing();
