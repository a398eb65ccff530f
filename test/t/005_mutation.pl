# Hostile values at the SQL level, in the manner of pgvector's input
# mutation tests: valid machine definitions, events, spawn data and
# simulations are mutated at random (fixed seed, bounded counts) -- keys
# deleted, inserted, renamed and duplicated, values replaced by numbers,
# null, arrays, huge strings, deep nesting, unicode and escapes, states
# renamed, the text itself damaged -- and sent through machine_define,
# machine_spawn, machine_send, machine_simulate and the machine_assert_*
# helpers, each call in its own subtransaction and each item in its own
# transaction.  Then:
#   - the server is up, and its log has no crash, PANIC or leak warning;
#   - every error has a SQLSTATE other than XX000 and a message;
#   - nothing partial is left: each stored machine is the last definition
#     that succeeded under its name, at the revision that counts those
#     successes, and compiles again; every successful definition spawns;
#     a failed spawn leaves no rows; a failed send changes neither version
#     nor state; simulations change nothing; every actor is in a state of
#     its machine; journals and snapshots follow the schedules;
#   - the base machines still behave in the very backends that took the
#     hostile calls.

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MIME::Base64 qw(encode_base64);
use Encode qw(encode_utf8);

srand(42);

my $N_DEFINES = 2000;
my $N_SPAWNS = 1000;
my $N_SENDS = 2000;
my $N_SIMULATIONS = 1000;

my $node = PostgreSQL::Test::Cluster->new('mutation');
$node->init;
$node->append_conf('postgresql.conf', qq{
client_min_messages = warning
});
$node->start;

# ----------------------------------------------------------------------
# Functions the definitions may name, good and hostile
# ----------------------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE EXTENSION machine;
CREATE SCHEMA mut;
CREATE TABLE mut.effects (actor text, state_tag text, event_tag text);
CREATE FUNCTION mut.can_pay(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'amount')::numeric >= coalesce((state->>'total')::numeric, 0) $$;
CREATE FUNCTION mut.apply_payment(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('paid', event->'amount') $$;
CREATE FUNCTION mut.count_up(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1) $$;
CREATE FUNCTION mut.pick(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state || jsonb_build_object('_tag', event->'to') $$;
CREATE FUNCTION mut.echo(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT event $$;
CREATE FUNCTION mut.null_handler(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION mut.payload_handler(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT event->'payload' $$;
CREATE FUNCTION mut.raise_handler(state jsonb, event jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the handler refuses' USING ERRCODE = 'MX001'; END $$;
CREATE FUNCTION mut.null_guard(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT NULL::boolean $$;
CREATE FUNCTION mut.flag_guard(state jsonb, event jsonb) RETURNS boolean
LANGUAGE sql AS $$ SELECT (event->>'ok')::boolean $$;
CREATE FUNCTION mut.on_enter(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO mut.effects VALUES (actor_id, state->>'_tag', event->>'_tag') $$;
-- an effect that sends to its own actor (queued) what the event carries
CREATE FUNCTION mut.kick(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF event ? 'kick' THEN
		PERFORM machine_send(actor_id, event->'kick');
	END IF;
END $$;
-- an effect that sends to another actor (at once) what the event carries
CREATE FUNCTION mut.relay(actor_id text, state jsonb, event jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF event ? 'relay' THEN
		PERFORM machine_send(event->>'relay_to', event->'relay');
	END IF;
END $$;
-- things with the right argument types that are not plain functions
CREATE FUNCTION mut.agg_step(acc jsonb, state jsonb, event jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT coalesce(acc, '{}') || state $$;
CREATE AGGREGATE mut.agg_handler(jsonb, jsonb) (SFUNC = mut.agg_step, STYPE = jsonb);
CREATE FUNCTION mut.srf_handler(state jsonb, event jsonb) RETURNS SETOF jsonb
LANGUAGE sql AS $$ SELECT state UNION ALL SELECT event $$;
CREATE PROCEDURE mut.proc_effect(actor_id text, state jsonb, event jsonb)
LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION mut.defaults_handler(state jsonb, event jsonb, extra int DEFAULT 1) RETURNS jsonb
LANGUAGE sql AS $$ SELECT state $$;
});

# ----------------------------------------------------------------------
# JSON values in Perl: hashes, arrays, strings, undef (null), and Raw
# fragments emitted verbatim (numbers, true, false, odd escapes).  A hash
# key "\0DUP\0k" is emitted as a second "k": a duplicate key.
# ----------------------------------------------------------------------
sub raw { my $s = shift; return bless \$s, 'Raw'; }
sub T { raw('true') }
sub F { raw('false') }

sub enc_str
{
	my ($s) = @_;
	my $escape_unicode = length($s) < 200 && rand() < 0.3;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord($1))/ge;
	if ($escape_unicode)
	{
		$s =~ s/([^\x00-\x7f])/
		  my $o = ord($1);
		  $o > 0xffff
			? sprintf('\\u%04x\\u%04x', 0xd800 + (($o - 0x10000) >> 10),
				0xdc00 + (($o - 0x10000) & 0x3ff))
			: sprintf('\\u%04x', $o)/ge;
	}
	return qq{"$s"};
}

sub to_json
{
	my ($v) = @_;
	return 'null' unless defined $v;
	my $r = ref $v;
	return $$v if $r eq 'Raw';
	if ($r eq 'HASH')
	{
		my @members;
		foreach my $k (sort keys %$v)
		{
			my $name = $k;
			$name =~ s/^\0DUP\0//;
			push @members, enc_str($name) . ': ' . to_json($v->{$k});
		}
		return '{' . join(', ', @members) . '}';
	}
	if ($r eq 'ARRAY')
	{
		return '[' . join(', ', map { to_json($_) } @$v) . ']';
	}
	return enc_str($v);
}

sub clone
{
	my ($v) = @_;
	my $r = ref $v;
	return { map { $_ => clone($v->{$_}) } keys %$v } if $r eq 'HASH';
	return [ map { clone($_) } @$v ] if $r eq 'ARRAY';
	return $v;
}

sub pick { return $_[ int(rand(@_)) ]; }

sub weighted
{
	my @pairs = @_;
	my $total = 0;
	$total += $pairs[ 2 * $_ + 1 ] for 0 .. $#pairs / 2;
	my $x = rand($total);
	for (my $i = 0; $i < @pairs; $i += 2)
	{
		return $pairs[$i] if ($x -= $pairs[ $i + 1 ]) < 0;
	}
	return $pairs[-2];
}

# ----------------------------------------------------------------------
# Valid definitions and events
# ----------------------------------------------------------------------
my %base = (
	order => {
		initial => 'Pending',
		states => {
			Pending => {
				on => {
					Pay => [
						{ target => 'Paid', guard => 'mut.can_pay', handler => 'mut.apply_payment' },
						{ target => 'Rejected' } ],
					Cancel => 'Cancelled',
					Expire => 'Cancelled',
					Touch => { target => 'Pending', reenter => T },
					Note => { target => 'Pending', merge => T },
					Jump => { handler => 'mut.pick' },
				},
				entry => [ 'mut.on_enter', 'mut.kick', 'mut.relay' ],
				exit => [],
				after => [ { delay => '30 minutes', event => { _tag => 'Expire' } } ],
			},
			Paid => { on => { Ship => 'Shipped', Refund => { target => 'Pending', handler => 'mut.echo' } } },
			Shipped => { final => T },
			Cancelled => { final => T, entry => ['mut.on_enter'] },
			Rejected => { final => T },
		},
		any => { Cancel => 'Cancelled' },
		events => { Pay => { amount => 'number' }, Note => { text => 'string', by => 'string?' } },
		unhandled => 'error',
		notify => 'orders',
		persistence => { snapshotSchedule => 'forever', journalEvents => T, machineType => 'Order' },
	},
	counter => {
		initial => 'Even',
		description => 'counts up',
		states => {
			Even => {
				on => {
					Inc => { target => 'Odd', handler => 'mut.count_up' },
					Flip => [ { target => 'Odd', guard => 'mut.flag_guard' },
							  { target => 'Even', guard => 'mut.null_guard' } ],
					Boom => { target => 'Even', handler => 'mut.raise_handler' },
				}
			},
			Odd => {
				on => {
					Inc => { target => 'Even', handler => 'mut.count_up' },
					Null => { target => 'Even', handler => 'mut.null_handler' },
					Any => { handler => 'mut.payload_handler' },
				}
			},
		},
		persistence => { snapshotSchedule => 'every 4' },
	},
	router => {
		initial => 'A',
		unhandled => 'ignore',
		states => {
			A => {
				on => { Go => 'B', Jump => { handler => 'mut.pick' } },
				after => [ { delay => '1 hour', event => { _tag => 'Go', from => 'timer' } } ],
			},
			B => {
				on => { Back => 'A', Loop => { target => 'B', reenter => T }, Stay => 'B' },
				exit => ['mut.on_enter'],
				after => [ { delay => '90 seconds', event => { _tag => 'Back' } },
						   { delay => '2 days', event => { _tag => 'Loop' } } ],
			},
			C => { final => T },
		},
		any => { Halt => 'C' },
		events => { Go => { from => 'string?' } },
		persistence => { journalEvents => F, snapshotSchedule => 'recurs 3' },
	},
	doc => {
		initial => 'Draft',
		states => {
			Draft => { on => { Edit => { target => 'Draft', merge => T }, Publish => 'Published' } },
			Published => { final => T },
		},
		events => {
			Edit => { title => 'string?', body => 'any?', tags => 'array?', meta => 'object?',
					  n => 'number?', flag => 'boolean?' } },
		persistence => { snapshotSchedule => 'spaced 5 minutes' },
	},
);
my @base_names = sort keys %base;

my %base_events = (
	order => [
		{ _tag => 'Pay', amount => raw('12') }, { _tag => 'Pay', amount => raw('1') },
		{ _tag => 'Cancel' }, { _tag => 'Touch' },
		{ _tag => 'Touch', kick => { _tag => 'Note', text => 'kicked' } },
		{ _tag => 'Touch', relay_to => 'counter-1', relay => { _tag => 'Inc' } },
		{ _tag => 'Note', text => 'x', by => 'me' }, { _tag => 'Jump', to => 'Paid' },
		{ _tag => 'Ship' }, { _tag => 'Refund' }, { _tag => 'Expire' } ],
	counter => [
		{ _tag => 'Inc' }, { _tag => 'Inc' }, { _tag => 'Flip', ok => T }, { _tag => 'Flip', ok => F },
		{ _tag => 'Flip' }, { _tag => 'Boom' }, { _tag => 'Null' },
		{ _tag => 'Any', payload => { _tag => 'Even', n => raw('7') } } ],
	router => [
		{ _tag => 'Go' }, { _tag => 'Go', from => 'me' }, { _tag => 'Jump', to => 'B' },
		{ _tag => 'Jump', to => 'C' }, { _tag => 'Back' }, { _tag => 'Loop' }, { _tag => 'Stay' },
		{ _tag => 'Halt' }, { _tag => 'Nothing' } ],
	doc => [
		{ _tag => 'Edit', title => 't', n => raw('1') },
		{ _tag => 'Edit', tags => [ 'a', 'b' ], meta => { k => 'v' }, flag => T, body => undef },
		{ _tag => 'Edit' }, { _tag => 'Publish' } ],
);

my %base_data = (
	order => { total => raw('10') },
	counter => { n => raw('0') },
	router => {},
	doc => { title => 'untitled' },
);

# ----------------------------------------------------------------------
# Hostile values
# ----------------------------------------------------------------------
my @hostile_strings = (
	'', ' ', 'A', 'B', 'Pending', 'Paid', 'Even', 'Nowhere', '$init', '$restore', '$rewind',
	'$', '$x', '_tag', "\x{e9}", "\x{65e5}\x{672c}\x{8a9e}", "\x{1F642}", "\x{202E}gnp.exe",
	"a\x{301}", "\x{feff}bom", "\x{ffff}", "line\nbreak", "tab\there", 'quote"', 'back\\slash',
	'\\u0000', '\\ud800', '%s%s%s%n', '%d %x %p', "'; DROP TABLE machine.machines; --",
	'x' x 63, 'x' x 64, "\x{e9}" x 32, "\x{e9}" x 31 . 'x', 'y' x 1000, ' Pending ', 'pending',
	'PENDING', '30 minutes', 'every 2', 'null', 'true', '{}', '[]', '0', '-1',
);
my @numbers = (
	'0', '-1', '1', '2', '3.5', '-0', '1e308', '1e400', '-1e400', '1e-400', '0.1', '1E+2',
	'9223372036854775807', '9223372036854775808', '-9223372036854775809', '2147483648',
	'123456789012345678901234567890', '0.0000000000000000000000001',
);
my @function_names = (
	'mut.can_pay', 'mut.apply_payment', 'mut.count_up', 'mut.pick', 'mut.echo',
	'mut.null_handler', 'mut.payload_handler', 'mut.raise_handler', 'mut.null_guard',
	'mut.flag_guard', 'mut.on_enter', 'mut.kick', 'mut.relay', 'mut.agg_handler',
	'mut.srf_handler', 'mut.proc_effect', 'mut.defaults_handler', 'jsonb_concat',
	'pg_catalog.jsonb_concat', 'jsonb_contains', 'pg_catalog.jsonb_eq', 'MUT.CAN_PAY',
	'"mut".can_pay', 'mut."count_up"', 'mut.can_pay()', 'mut..can_pay', '.can_pay', 'mut.',
	'a.b.c', 'a.b.c.d', 'nosuch', 'pg_sleep', 'now', 'machine_send', 'machine_define',
	'count', 'sum', 'mut.can_pay(jsonb,jsonb)', '"weird name"', '"unterminated', '%s',
	"mut.can_pay\n", 'mut.' . ('f' x 70), ('s' x 70) . '.f', 'machine.machines',
);
my @intervals = (
	'30 minutes', '1 second', '0 seconds', '-1 hour', '1.5 hours', '1 day 2 hours',
	'99999999999 days', '9223372036854775807 microseconds', '1e308 seconds', 'NaN minutes',
	'inf days', 'infinity', '1 month', '2 years', '5 fortnights', 'P1D', '00:30:00',
	'1 minute ago', '', ' ', '5', 'minutes', '1  minute', '1 minutes 1 minutes',
	'every 2', 'recurs 3', 'recurs 0', 'recurs -1', 'every 99999999999999999999',
	'every 1e3', 'every 0x10', 'every  2', 'spaced 1 second', 'spaced 0 seconds',
	'spaced -5 minutes', 'spaced', 'forever', 'never', 'Forever', 'never ', 'every 2 3',
);
my @known_keys = qw(initial states on target guard handler merge reenter entry exit after
  delay event _tag final any events unhandled notify persistence snapshotSchedule
  journalEvents machineType adapter description);

sub deep_value
{
	my $depth = 20 + int(rand(300));
	my $v = pick('x', raw('1'), undef, {});
	for (1 .. $depth)
	{
		$v = rand() < 0.5 ? [$v] : { pick('_tag', 'a', 'on', 'states') => $v };
	}
	return $v;
}

sub huge_string { return pick('z', "\x{e9}", "\x{1F642}", 'ab"\\') x (5000 + int(rand(60000))); }

sub all_names
{
	my ($v, $acc) = @_;
	$acc //= {};
	if (ref $v eq 'HASH')
	{
		foreach my $k (keys %$v)
		{
			$acc->{$k} = 1;
			all_names($v->{$k}, $acc);
		}
	}
	elsif (ref $v eq 'ARRAY')
	{
		all_names($_, $acc) for @$v;
	}
	elsif (defined $v && !ref $v && length($v) < 100)
	{
		$acc->{$v} = 1;
	}
	return $acc;
}

# a random value; $context is a structure whose names may be reused
sub random_value
{
	my ($context, $level) = @_;
	$level //= 0;
	my $kind = weighted(
		string => 25, number => 10, literal => 8, empty => 8, array => ($level < 3 ? 8 : 0),
		object => ($level < 3 ? 8 : 0), fragment => 12, name => 12, function => 4,
		interval => 4, deep => 1, huge => 0.5);
	return pick(@hostile_strings) if $kind eq 'string';
	return raw(pick(@numbers)) if $kind eq 'number';
	return pick(T, F, undef) if $kind eq 'literal';
	return pick([], {}) if $kind eq 'empty';
	return [ map { random_value($context, $level + 1) } 1 .. 1 + int(rand(3)) ]
	  if $kind eq 'array';
	return { map { (pick(@known_keys, @hostile_strings) => random_value($context, $level + 1)) }
		  1 .. 1 + int(rand(3)) }
	  if $kind eq 'object';
	if ($kind eq 'fragment')
	{
		my $b = $base{ pick(@base_names) };
		my @nodes = subtrees($b);
		return clone(pick(@nodes));
	}
	return pick(sort keys %{ all_names($context) }) // 'A' if $kind eq 'name';
	return pick(@function_names) if $kind eq 'function';
	return pick(@intervals) if $kind eq 'interval';
	return deep_value() if $kind eq 'deep';
	return huge_string();
}

sub subtrees
{
	my ($v, $acc) = @_;
	$acc //= [];
	push @$acc, $v;
	if (ref $v eq 'HASH') { subtrees($v->{$_}, $acc) for sort keys %$v; }
	elsif (ref $v eq 'ARRAY') { subtrees($_, $acc) for @$v; }
	return @$acc;
}

# every place a value sits: [container, key or index]
sub slots
{
	my ($v, $acc) = @_;
	$acc //= [];
	if (ref $v eq 'HASH')
	{
		foreach my $k (sort keys %$v)
		{
			push @$acc, [ $v, $k ];
			slots($v->{$k}, $acc);
		}
	}
	elsif (ref $v eq 'ARRAY')
	{
		for my $i (0 .. $#$v)
		{
			push @$acc, [ $v, $i ];
			slots($v->[$i], $acc);
		}
	}
	return @$acc;
}

sub get_slot { my ($c, $k) = @{ $_[0] }; return ref $c eq 'HASH' ? $c->{$k} : $c->[$k]; }

sub set_slot
{
	my ($slot, $v) = @_;
	my ($c, $k) = @$slot;
	if (ref $c eq 'HASH') { $c->{$k} = $v; }
	else { $c->[$k] = $v; }
}

sub containers
{
	my ($root, $type) = @_;
	return grep { ref $_ eq $type } subtrees($root);
}

sub rename_everywhere
{
	my ($v, $from, $to) = @_;
	if (ref $v eq 'HASH')
	{
		foreach my $k (sort keys %$v)
		{
			my $child = rename_everywhere($v->{$k}, $from, $to);
			delete $v->{$k};
			$v->{ $k eq $from ? $to : $k } = $child;
		}
		return $v;
	}
	if (ref $v eq 'ARRAY')
	{
		$_ = rename_everywhere($_, $from, $to) for @$v;
		return $v;
	}
	return (defined $v && !ref $v && $v eq $from) ? $to : $v;
}

# one structural mutation; returns the (possibly new) root
sub mutate
{
	my ($root) = @_;
	my @slots = slots($root);
	my $op = weighted(
		replace => 30, delete => 14, insert => 14, rename_key => 8, duplicate => 5,
		swap => 5, wrap => 5, to_array => 3, tweak => 14, rename_state => 8, root => 2);
	$op = 'root' unless @slots;

	if ($op eq 'replace')
	{
		set_slot(pick(@slots), random_value($root));
	}
	elsif ($op eq 'delete')
	{
		my ($c, $k) = @{ pick(@slots) };
		if (ref $c eq 'HASH') { delete $c->{$k}; }
		else { splice(@$c, $k, 1); }
	}
	elsif ($op eq 'insert')
	{
		my @targets = (containers($root, 'HASH'), containers($root, 'ARRAY'));
		my $c = pick(@targets);
		if (ref $c eq 'HASH')
		{
			my $key = rand() < 0.6 ? pick(@known_keys) : pick((sort keys %{ all_names($root) }), @hostile_strings);
			$c->{$key} = random_value($root);
		}
		else
		{
			splice(@$c, int(rand(@$c + 1)), 0, random_value($root));
		}
	}
	elsif ($op eq 'rename_key')
	{
		my @hashes = grep { %$_ } containers($root, 'HASH');
		if (@hashes)
		{
			my $c = pick(@hashes);
			my $k = pick(sort keys %$c);
			my $v = delete $c->{$k};
			my $new = weighted(
				hostile => 4, known => 3, upper => 1, suffix => 1, dollar => 1);
			$new = $new eq 'hostile' ? pick(@hostile_strings)
			  : $new eq 'known' ? pick(@known_keys)
			  : $new eq 'upper' ? uc($k)
			  : $new eq 'suffix' ? $k . pick('2', ' ', '?', "\x{e9}")
			  : '$' . $k;
			$c->{$new} = $v;
		}
	}
	elsif ($op eq 'duplicate')
	{
		my @hashes = grep { %$_ } containers($root, 'HASH');
		if (@hashes)
		{
			my $c = pick(@hashes);
			my $k = pick(sort keys %$c);
			$c->{"\0DUP\0$k"} = rand() < 0.5 ? clone($c->{$k}) : random_value($root);
		}
	}
	elsif ($op eq 'swap')
	{
		if (@slots >= 2)
		{
			my ($a, $b) = (pick(@slots), pick(@slots));
			my ($va, $vb) = (get_slot($a), get_slot($b));
			# a subtree must not be put inside itself
			my %inside_a = map { $_ => 1 } grep { ref } subtrees($va);
			my %inside_b = map { $_ => 1 } grep { ref } subtrees($vb);
			unless ($inside_a{ $b->[0] } || $inside_b{ $a->[0] })
			{
				set_slot($a, $vb);
				set_slot($b, $va);
			}
		}
	}
	elsif ($op eq 'wrap')
	{
		my $slot = pick(@slots);
		my $v = get_slot($slot);
		set_slot($slot, rand() < 0.5 ? [$v] : { pick(@known_keys) => $v });
	}
	elsif ($op eq 'to_array')
	{
		my @hashes = grep { %$_ } containers($root, 'HASH');
		my @holders = grep { ref get_slot($_) eq 'HASH' } @slots;
		if (@holders)
		{
			my $slot = pick(@holders);
			my $h = get_slot($slot);
			set_slot($slot, [ map { $h->{$_} } sort keys %$h ]);
		}
	}
	elsif ($op eq 'tweak')
	{
		my @strings = grep { my $v = get_slot($_); defined $v && !ref $v } @slots;
		if (@strings)
		{
			my $slot = pick(@strings);
			my $s = get_slot($slot);
			my $how = int(rand(8));
			$s = $how == 0 ? substr($s, 0, int(rand(length($s) + 1)))
			  : $how == 1 ? $s . pick('?', ' ', 's', "\x{0}", "\x{e9}", '.x', '()')
			  : $how == 2 ? uc($s)
			  : $how == 3 ? " $s"
			  : $how == 4 ? ($s =~ s/\d+/pick('0', '-3', '99999999999999999999', '1.5', '1e9')/er)
			  : $how == 5 ? ($s =~ s/(minutes?|hours?|seconds?|days?)/pick('mins', 'fortnight', 'ms', 'weeks', 'years')/er)
			  : $how == 6 ? $s x (2 + int(rand(40)))
			  : '$' . $s;
			set_slot($slot, $s);
		}
	}
	elsif ($op eq 'rename_state')
	{
		my $states = ref $root eq 'HASH' ? $root->{states} : undef;
		if (ref $states eq 'HASH' && %$states)
		{
			my $from = pick(sort keys %$states);
			my $to = rand() < 0.5 ? $from . 'X' : pick(@hostile_strings);
			if (rand() < 0.6)
			{
				$root = rename_everywhere($root, $from, $to);
			}
			else
			{
				$states->{$to} = delete $states->{$from};
			}
		}
	}
	else
	{
		$root = pick(random_value($root), [$root], raw('null'), 'definition', raw('42'), []);
	}
	return $root;
}

# damage the text itself: most of these no longer parse as JSON
sub damage_text
{
	my ($t) = @_;
	for (1 .. 1 + int(rand(3)))
	{
		my $len = length($t);
		my $at = int(rand($len + 1));
		my $how = int(rand(6));
		if ($how == 0) { substr($t, $at, 1, '') if $at < $len; }
		elsif ($how == 1) { substr($t, $at, 0, pick('{', '}', '[', ']', '"', ':', ',', '\\', ' ', 'a', '0', "\x{e9}", "\x{1F642}")); }
		elsif ($how == 2) { substr($t, $at, 1, pick('{', '}', '[', ']', '"', 'x')) if $at < $len; }
		elsif ($how == 3) { $t =~ tr/{}[]/[]{}/ if rand() < 0.3; substr($t, $at, 1) =~ tr/{}[]/[]{}/ if $at < $len; }
		elsif ($how == 4) { $t = substr($t, 0, $at); }
		else { my $n = int(rand(20)); substr($t, $at, 0, substr($t, int(rand($len + 1)), $n)); }
	}
	return $t;
}

sub mutated_text
{
	my ($value, $max_mutations, $damage_rate) = @_;
	my $v = clone($value);
	$v = mutate($v) for 1 .. int(rand($max_mutations + 1));
	my $text = to_json($v);
	$text = damage_text($text) if rand() < $damage_rate;
	return $text;
}

# ----------------------------------------------------------------------
# Loading inputs: text travels as base64 of its UTF-8 bytes
# ----------------------------------------------------------------------
sub lit
{
	my ($s) = @_;
	return 'NULL' unless defined $s;
	return "convert_from(decode('" . encode_base64(encode_utf8($s), '') . "', 'base64'), 'UTF8')";
}

sub load
{
	my ($table, $columns, @rows) = @_;
	while (my @batch = splice(@rows, 0, 200))
	{
		$node->safe_psql('postgres',
			"INSERT INTO $table ($columns) VALUES "
			  . join(",\n", map { '(' . join(', ', @$_) . ')' } @batch));
	}
}

# ----------------------------------------------------------------------
# Base machines, a pool of actors, and the sanity check that the base
# machines still behave (run in the backend that took the hostile calls)
# ----------------------------------------------------------------------
foreach my $name (@base_names)
{
	$node->safe_psql('postgres',
		"SELECT machine_define('$name', " . lit(to_json($base{$name})) . '::jsonb)');
}
my @pool;
foreach my $name (@base_names)
{
	foreach my $i (1 .. 6)
	{
		push @pool, [ "$name-$i", $name ];
		$node->safe_psql('postgres',
			"SELECT machine_spawn('$name-$i', '$name', " . lit(to_json($base_data{$name})) . '::jsonb)');
	}
}
$node->safe_psql('postgres', q{
	SELECT machine_spawn('stopped-1', 'order', '{"total": 10}');
	SELECT machine_stop('stopped-1');
	CREATE TABLE mut.results (stage text, id int, outcome text, sqlstate text, message text,
	                          v0 bigint, v1 bigint, s0 jsonb, s1 jsonb, result jsonb, extra text,
	                          PRIMARY KEY (stage, id));

	CREATE FUNCTION mut.sanity(tag text) RETURNS text LANGUAGE plpgsql AS $$
	DECLARE
		out text;
	BEGIN
		PERFORM machine_spawn('sanity-o-' || tag, 'order', '{"total": 10}');
		PERFORM machine_send('sanity-o-' || tag, '{"_tag": "Note", "text": "hi"}');
		PERFORM machine_send('sanity-o-' || tag, '{"_tag": "Pay", "amount": 12}', 1);
		out := machine_send('sanity-o-' || tag, '{"_tag": "Ship"}')::text;
		PERFORM machine_spawn('sanity-c-' || tag, 'counter');
		PERFORM machine_send('sanity-c-' || tag, '{"_tag": "Inc"}') FROM generate_series(1, 3);
		out := out || ' ' || machine_state('sanity-c-' || tag)::text || ' '
			|| machine_version('sanity-c-' || tag) || ' '
			|| machine_replay_to('sanity-c-' || tag, 2)::text || ' '
			|| (SELECT string_agg(state->>'_tag', ',' ORDER BY step)
			      FROM machine_simulate('router', ARRAY['{"_tag": "Go"}', '{"_tag": "Nope"}',
			                                           '{"_tag": "Halt"}']::jsonb[]));
		PERFORM machine_delete('sanity-o-' || tag);
		PERFORM machine_delete('sanity-c-' || tag);
		RETURN out;
	END $$;
});
my $sane =
  '{"_tag": "Shipped", "paid": 12, "text": "hi", "total": 10} {"n": 3, "_tag": "Odd"} 3 {"n": 2, "_tag": "Even"} A,B,C';
is($node->safe_psql('postgres', "SELECT mut.sanity('0')"), $sane, 'the base machines behave');

# ----------------------------------------------------------------------
# Stage 1: mutated definitions through machine_define; each success
# spawns an actor; some items first delete the actors of that name
# ----------------------------------------------------------------------
my @machine_names = map { sprintf('x%02d', $_) } 0 .. 39;
{
	my @rows;
	foreach my $id (1 .. $N_DEFINES)
	{
		my $name = weighted(pool => 95, hostile => 5) eq 'pool'
		  ? pick(@machine_names)
		  : pick(undef, '', 'm' x 64, "\x{e9}" x 32, "\x{e9}" x 31 . 'mm', ' ', '%s', "a\nb", 'x' x 63);
		my $text = mutated_text($base{ pick(@base_names) }, 4, 0.12);
		push @rows, [ $id, lit($name), lit($text), rand() < 0.3 ? 'true' : 'false' ];
	}
	# and, systematically, every function name in every kind of slot
	my $id = $N_DEFINES;
	foreach my $i (0 .. $#function_names)
	{
		foreach my $kind (qw(guard handler effect))
		{
			my $def = clone($base{counter});
			if ($kind eq 'effect') { $def->{states}{Even}{entry} = [ $function_names[$i] ]; }
			else { $def->{states}{Even}{on}{Inc}{$kind} = $function_names[$i]; }
			push @rows, [ ++$id, lit("counter-fn-$kind-$i"), lit(to_json($def)), 'false' ];
		}
	}
	$node->safe_psql('postgres',
		'CREATE TABLE mut.defines (id int PRIMARY KEY, name text, txt text, reset boolean)');
	load('mut.defines', 'id, name, txt, reset', @rows);
}

$node->safe_psql('postgres', q{
CREATE PROCEDURE mut.run_defines() LANGUAGE plpgsql AS $$
DECLARE
	r record;
	def jsonb;
	failed boolean;
	st text;
	msg text;
	rev int;
	sst text;
	smsg text;
BEGIN
	FOR r IN SELECT * FROM mut.defines ORDER BY id LOOP
		failed := false;
		BEGIN
			def := r.txt::jsonb;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		IF failed THEN
			INSERT INTO mut.results (stage, id, outcome, sqlstate, message)
			VALUES ('define', r.id, 'cast', st, msg);
			COMMIT;
			CONTINUE;
		END IF;
		IF r.reset THEN
			PERFORM machine_delete(actor_id) FROM machine.instances WHERE machine = r.name;
		END IF;
		rev := NULL; st := NULL; msg := NULL; sst := NULL; smsg := NULL;
		BEGIN
			rev := machine_define(r.name, def);
		EXCEPTION WHEN OTHERS OR assert_failure THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
		END;
		IF rev IS NOT NULL THEN
			BEGIN
				PERFORM machine_spawn('d-' || r.id, r.name);
			EXCEPTION WHEN OTHERS OR assert_failure THEN
				GET STACKED DIAGNOSTICS sst = RETURNED_SQLSTATE, smsg = MESSAGE_TEXT;
			END;
		END IF;
		INSERT INTO mut.results (stage, id, outcome, sqlstate, message, result, extra)
		VALUES ('define', r.id, CASE WHEN rev IS NULL THEN 'error' ELSE 'ok' END, st, msg,
		        to_jsonb(rev), CASE WHEN sst IS NOT NULL THEN sst || ': ' || coalesce(smsg, '') END);
		COMMIT;
	END LOOP;
END $$;
});

sub run_stage
{
	my ($procedure, $tag) = @_;
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"CALL $procedure; SELECT mut.sanity('$tag');");
	is($ret, 0, "$procedure runs to its end");
	is($stdout, $sane, "after $procedure, the base machines behave in the same backend");
	diag($stderr) if $stderr ne '';
}

run_stage('mut.run_defines()', 'defines');

# ----------------------------------------------------------------------
# Stage 2: mutated spawn data (and ids, and machine names)
# ----------------------------------------------------------------------
my @defined = split /\n/, $node->safe_psql('postgres',
	q{SELECT name FROM machine.machines WHERE name NOT IN ('order', 'counter', 'router', 'doc') ORDER BY name});
my @hostile_ids = (undef, '', 'x' x 255, 'x' x 256, "\x{e9}" x 128, "\x{1F642}", ' ', 'order-1',
	'stopped-1', "a\nb", '%s', "\x{202E}", 'ghost');
{
	my @rows;
	foreach my $id (1 .. $N_SPAWNS)
	{
		my $machine = weighted(base => 70, defined => 20, hostile => 10);
		$machine = $machine eq 'base' ? pick(@base_names)
		  : ($machine eq 'defined' && @defined) ? pick(@defined)
		  : pick(undef, '', 'nosuch', 'ORDER', 'order ', 'x' x 64, '%s');
		my $actor = rand() < 0.9 ? "sp-$id" : pick(@hostile_ids);
		my $data = $base_data{ pick(@base_names) };
		my $text = rand() < 0.05 ? undef : mutated_text($data, 3, 0.08);
		push @rows, [ $id, lit($actor), lit($machine), lit($text) ];
	}
	$node->safe_psql('postgres',
		'CREATE TABLE mut.spawns (id int PRIMARY KEY, actor text, machine text, txt text)');
	load('mut.spawns', 'id, actor, machine, txt', @rows);
}

$node->safe_psql('postgres', q{
CREATE PROCEDURE mut.run_spawns() LANGUAGE plpgsql AS $$
DECLARE
	r record;
	data jsonb;
	failed boolean;
	st text;
	msg text;
	res jsonb;
	existed boolean;
BEGIN
	FOR r IN SELECT * FROM mut.spawns ORDER BY id LOOP
		failed := false;
		BEGIN
			data := r.txt::jsonb;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		IF failed THEN
			INSERT INTO mut.results (stage, id, outcome, sqlstate, message)
			VALUES ('spawn', r.id, 'cast', st, msg);
			COMMIT;
			CONTINUE;
		END IF;
		existed := EXISTS (SELECT FROM machine.instances WHERE actor_id = r.actor);
		res := NULL; st := NULL; msg := NULL;
		BEGIN
			res := machine_spawn(r.actor, r.machine, data);
		EXCEPTION WHEN OTHERS OR assert_failure THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		INSERT INTO mut.results (stage, id, outcome, sqlstate, message, result, extra)
		VALUES ('spawn', r.id, CASE WHEN failed THEN 'error' ELSE 'ok' END, st, msg, res,
		        CASE WHEN existed THEN 'existed' END);
		COMMIT;
	END LOOP;
END $$;
});
run_stage('mut.run_spawns()', 'spawns');

# ----------------------------------------------------------------------
# Stage 3: mutated events through machine_send, to the pool (finished
# actors are deleted and spawned again first), to the actors of mutated
# machines, to odd ids; sometimes with an expected version
# ----------------------------------------------------------------------
my @d_actors = split /\n/, $node->safe_psql('postgres',
	q{SELECT actor_id || ' ' || machine FROM machine.instances WHERE actor_id LIKE 'd-%' ORDER BY 1});
{
	my @rows;
	foreach my $id (1 .. $N_SENDS)
	{
		my ($actor, $machine);
		my $whom = weighted(pool => 80, defined => 12, odd => 8);
		if ($whom eq 'pool' || ($whom eq 'defined' && !@d_actors))
		{
			($actor, $machine) = @{ pick(@pool) };
		}
		elsif ($whom eq 'defined')
		{
			($actor, $machine) = split / /, pick(@d_actors);
			$machine = 'counter' if $machine =~ /^counter-fn-/;
			$machine = pick(@base_names) unless $base{$machine};
		}
		else
		{
			$actor = pick(@hostile_ids);
			$machine = pick(@base_names);
		}
		my $event = pick(@{ $base_events{$machine} });
		my $text = rand() < 0.03 ? undef
		  : rand() < 0.2 ? to_json($event)
		  : mutated_text($event, 3, 0.08);
		my $expected = weighted(
			none => 80, current => 8, stale => 4, number => 8);
		$expected = $expected eq 'number' ? pick('0', '-1', '1', '2', '5', '9223372036854775807', '-9223372036854775808')
		  : $expected;
		push @rows, [ $id, lit($actor), lit($text), lit($expected) ];
	}
	$node->safe_psql('postgres',
		'CREATE TABLE mut.sends (id int PRIMARY KEY, actor text, txt text, expected text)');
	load('mut.sends', 'id, actor, txt, expected', @rows);
}

$node->safe_psql('postgres', q{
CREATE PROCEDURE mut.run_sends() LANGUAGE plpgsql AS $$
DECLARE
	r record;
	ev jsonb;
	failed boolean;
	st text;
	msg text;
	res jsonb;
	v0 bigint;
	v1 bigint;
	s0 jsonb;
	s1 jsonb;
	ex bigint;
	m text;
	stat text;
	respawned text;
BEGIN
	FOR r IN SELECT * FROM mut.sends ORDER BY id LOOP
		-- keep the pool alive: a finished pool actor starts over
		respawned := NULL;
		SELECT machine, status INTO m, stat FROM machine.instances WHERE actor_id = r.actor;
		IF stat = 'done' AND r.actor ~ '^(order|counter|router|doc)-[0-9]$' THEN
			BEGIN
				PERFORM machine_delete(r.actor);
				PERFORM machine_spawn(r.actor, m,
					CASE m WHEN 'order' THEN '{"total": 10}'::jsonb ELSE '{}' END);
				respawned := 'respawned';
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
				respawned := 'respawn failed: ' || st || ': ' || msg;
			END;
			COMMIT;
		END IF;
		failed := false;
		BEGIN
			ev := r.txt::jsonb;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		IF failed THEN
			INSERT INTO mut.results (stage, id, outcome, sqlstate, message)
			VALUES ('send', r.id, 'cast', st, msg);
			COMMIT;
			CONTINUE;
		END IF;
		v0 := NULL; s0 := NULL;
		SELECT version, state INTO v0, s0 FROM machine.instances WHERE actor_id = r.actor;
		ex := CASE r.expected WHEN 'none' THEN NULL WHEN 'current' THEN v0
		                      WHEN 'stale' THEN v0 - 1 ELSE r.expected::bigint END;
		res := NULL; st := NULL; msg := NULL;
		BEGIN
			res := machine_send(r.actor, ev, ex);
		EXCEPTION WHEN OTHERS OR assert_failure THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		v1 := NULL; s1 := NULL;
		SELECT version, state INTO v1, s1 FROM machine.instances WHERE actor_id = r.actor;
		INSERT INTO mut.results (stage, id, outcome, sqlstate, message, v0, v1, s0, s1, result, extra)
		VALUES ('send', r.id, CASE WHEN failed THEN 'error' ELSE 'ok' END, st, msg,
		        v0, v1, s0, s1, res, respawned);
		COMMIT;
	END LOOP;
END $$;
});
run_stage('mut.run_sends()', 'sends');

# ----------------------------------------------------------------------
# Stage 4: machine_simulate and the machine_assert_* helpers with mutated
# event arrays, data and tags; nothing may change
# ----------------------------------------------------------------------
{
	my @rows;
	foreach my $id (1 .. $N_SIMULATIONS)
	{
		my $machine = weighted(base => 70, defined => 20, hostile => 10);
		$machine = $machine eq 'base' ? pick(@base_names)
		  : ($machine eq 'defined' && @defined) ? pick(@defined)
		  : pick(undef, '', 'nosuch', 'x' x 64, '%s');
		my $events_of = $base_events{ $base{$machine // ''} ? $machine
			: ($machine // '') =~ /^counter-fn-/ ? 'counter' : pick(@base_names) };
		my @events = map {
			rand() < 0.03 ? undef
			  : rand() < 0.4 ? to_json(pick(@$events_of))
			  : mutated_text(pick(@$events_of), 2, 0.03)
		} 1 .. int(rand(8));
		my $events = rand() < 0.03 ? 'NULL'
		  : 'ARRAY[' . join(', ', map { lit($_) } @events) . ']::text[]';
		my $data = rand() < 0.5 ? to_json($base_data{ pick(@base_names) })
		  : mutated_text($base_data{ pick(@base_names) }, 2, 0.03);
		my $tags = 'ARRAY[' . join(', ', map { lit(rand() < 0.7 ? pick('Pending', 'Paid', 'Even', 'Odd', 'A', 'B', 'C', 'Draft') : pick(@hostile_strings, undef)) } 0 .. int(rand(5))) . ']::text[]';
		push @rows, [ $id, lit($machine), $events, lit($data), $tags,
			lit(pick('simulate', 'simulate', 'simulate', 'path', 'reaches', 'never')) ];
	}
	$node->safe_psql('postgres',
		'CREATE TABLE mut.simulations (id int PRIMARY KEY, machine text, events text[], data text, tags text[], fn text)');
	load('mut.simulations', 'id, machine, events, data, tags, fn', @rows);
}

$node->safe_psql('postgres', q{
CREATE FUNCTION mut.fingerprint() RETURNS text LANGUAGE sql AS $$
	SELECT md5(concat_ws('|',
		(SELECT string_agg(concat_ws(',', actor_id, machine, status, version, state, state_tag,
		                             last_activity_at), ';' ORDER BY actor_id) FROM machine.instances),
		(SELECT string_agg(concat_ws(',', actor_id, version, event, state_tag), ';'
		                   ORDER BY actor_id, version) FROM machine.events),
		(SELECT string_agg(concat_ws(',', actor_id, version, state), ';'
		                   ORDER BY actor_id, version) FROM machine.snapshots),
		(SELECT string_agg(concat_ws(',', actor_id, armed_version, seq, event, due_at), ';'
		                   ORDER BY actor_id, armed_version, seq) FROM machine.timers),
		(SELECT string_agg(concat_ws(',', name, revision, definition), ';' ORDER BY name)
		   FROM machine.machines),
		(SELECT count(*) FROM mut.effects WHERE actor NOT LIKE 'sanity-%')))
$$;

CREATE PROCEDURE mut.run_simulations() LANGUAGE plpgsql AS $$
DECLARE
	r record;
	evs jsonb[];
	data jsonb;
	failed boolean;
	st text;
	msg text;
	n bigint;
	good boolean;
	res jsonb;
BEGIN
	FOR r IN SELECT * FROM mut.simulations ORDER BY id LOOP
		failed := false;
		BEGIN
			evs := r.events::jsonb[];
			data := r.data::jsonb;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		IF failed THEN
			INSERT INTO mut.results (stage, id, outcome, sqlstate, message)
			VALUES ('simulate', r.id, 'cast', st, msg);
			COMMIT;
			CONTINUE;
		END IF;
		st := NULL; msg := NULL; n := NULL; good := NULL; res := NULL;
		BEGIN
			IF r.fn = 'simulate' THEN
				SELECT count(*),
				       bool_and(jsonb_typeof(state) = 'object'
				                AND jsonb_typeof(state->'_tag') = 'string')
				       AND coalesce(max(step) + 1 = count(*), true)
				  INTO n, good
				  FROM machine_simulate(r.machine, evs, data);
			ELSIF r.fn = 'path' THEN
				PERFORM machine_assert_path(r.machine, evs, r.tags, data);
			ELSIF r.fn = 'reaches' THEN
				res := machine_assert_reaches(r.machine, evs, r.tags[1], data);
			ELSE
				PERFORM machine_assert_never_reaches(r.machine, evs, r.tags[1], data);
			END IF;
		EXCEPTION WHEN OTHERS OR assert_failure THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			failed := true;
		END;
		INSERT INTO mut.results (stage, id, outcome, sqlstate, message, v1, result, extra)
		VALUES ('simulate', r.id, CASE WHEN failed THEN 'error' ELSE 'ok' END, st, msg, n, res,
		        r.fn || CASE WHEN good = false THEN ' malformed' ELSE '' END);
		COMMIT;
	END LOOP;
END $$;
});
my $fingerprint = $node->safe_psql('postgres', 'SELECT mut.fingerprint()');
run_stage('mut.run_simulations()', 'simulations');
is($node->safe_psql('postgres', 'SELECT mut.fingerprint()'), $fingerprint,
	'simulations and assertions change nothing');

# ----------------------------------------------------------------------
# Stage 5: every timer the mutated machines armed comes due
# ----------------------------------------------------------------------
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
		UPDATE machine.timers SET due_at = now() - interval '1 day';
		SELECT * FROM machine_run_maintenance(100000);
		UPDATE machine.timers SET due_at = now() - interval '1 day';
		SELECT * FROM machine_run_maintenance(100000);
		UPDATE machine.snapshots SET taken_at = now() - interval '1 day';
		SELECT * FROM machine_run_maintenance(100000);
	});
	is($ret, 0, 'maintenance passes over the timers of mutated machines succeed');
	is($stderr, '', 'without complaint');
	note("maintenance: $stdout");
}

# ----------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|TRAP:|server process .* exited/,
	'the log shows no crash');
unlike($log, qr/leak|non-empty SPI stack|still referenced|not closed/,
	'the log shows no leak warning');

# SQLSTATE counts, reported
my $summary = $node->safe_psql('postgres', q{
	SELECT stage, outcome, coalesce(sqlstate, '-'), count(*)
	  FROM mut.results GROUP BY 1, 2, 3 ORDER BY 1, 2, 4 DESC, 3});
note("stage|outcome|sqlstate|count\n$summary");
note("an example message per SQLSTATE:\n" . $node->safe_psql('postgres', q{
	SELECT DISTINCT ON (sqlstate) sqlstate || ' ' || left(message, 150)
	  FROM mut.results WHERE outcome <> 'ok' ORDER BY sqlstate, length(message), message}));

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM mut.results
	 WHERE outcome <> 'ok' AND (sqlstate IS NULL OR sqlstate !~ '^[0-9A-Z]{5}$')}),
	'0', 'every error has a SQLSTATE');
is($node->safe_psql('postgres', q{
	SELECT string_agg(stage || ' ' || id || ': ' || message, E'\n')
	  FROM mut.results WHERE sqlstate = 'XX000'}),
	'', 'no error is an internal error (XX000)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM mut.results WHERE outcome <> 'ok' AND coalesce(message, '') = ''}),
	'0', 'every error has a message');
# most inputs reach the extension
foreach my $stage (qw(define spawn send simulate))
{
	my ($reached, $total) = split /\|/, $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE outcome <> 'cast'), count(*) FROM mut.results WHERE stage = '$stage'");
	cmp_ok($reached, '>=', 0.75 * $total,
		"$stage: most inputs reach the extension ($reached of $total)");
}
foreach my $stage (qw(define spawn send simulate))
{
	my ($ok, $err) = split /\|/, $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE outcome = 'ok'), count(*) FILTER (WHERE outcome = 'error')
		   FROM mut.results WHERE stage = '$stage'");
	cmp_ok($ok, '>', 0, "$stage: some inputs succeed ($ok)");
	cmp_ok($err, '>', 0, "$stage: some inputs fail ($err)");
}

# definitions: nothing partial is stored
is($node->safe_psql('postgres', q{
	SELECT string_agg(id || ': ' || extra, E'\n') FROM mut.results
	 WHERE stage = 'define' AND outcome = 'ok' AND extra IS NOT NULL}),
	'', 'every successful definition spawns an actor');
is($node->safe_psql('postgres', q{
	WITH ok AS (
		SELECT d.name, count(*) AS successes,
		       (array_agg(d.txt::jsonb ORDER BY d.id DESC))[1] AS last_definition,
		       array_agg(res.result::int ORDER BY d.id) AS revisions
		  FROM mut.results res JOIN mut.defines d ON d.id = res.id
		 WHERE res.stage = 'define' AND res.outcome = 'ok'
		 GROUP BY d.name)
	SELECT string_agg(coalesce(m.name, ok.name), ', ')
	  FROM ok FULL JOIN machine.machines m ON m.name = ok.name
	 WHERE coalesce(m.name, '') NOT IN ('order', 'counter', 'router', 'doc')
	   AND (m.name IS NULL OR ok.name IS NULL OR m.revision <> ok.successes
	        OR m.definition <> ok.last_definition
	        OR ok.revisions <> ARRAY(SELECT generate_series(1, ok.successes::int)))}),
	'', 'each stored machine is its last successful definition, at the revision counting the successes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.machines WHERE machine_definition(name) IS NULL}),
	'0', 'every stored machine has a definition');
$node->safe_psql('postgres', q{
CREATE FUNCTION mut.recompile() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m record;
	bad text := '';
BEGIN
	FOR m IN SELECT name FROM machine.machines ORDER BY name LOOP
		BEGIN
			PERFORM machine_define(m.name, machine_definition(m.name));
		EXCEPTION WHEN OTHERS THEN
			bad := bad || m.name || ': ' || SQLERRM || E'\n';
		END;
	END LOOP;
	RETURN bad;
END $$;
});
is($node->safe_psql('postgres', 'SELECT mut.recompile()'), '',
	'every stored machine compiles again from its stored definition');

# actors: consistent with their machines
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.instances i
	 WHERE NOT EXISTS (SELECT FROM machine.machines m WHERE m.name = i.machine)}),
	'0', 'no actor lacks its machine');
is($node->safe_psql('postgres', q{
	SELECT string_agg(i.actor_id, ', ') FROM machine.instances i JOIN machine.machines m ON m.name = i.machine
	 WHERE jsonb_typeof(i.state) <> 'object' OR i.state->>'_tag' IS DISTINCT FROM i.state_tag
	    OR NOT (m.definition->'states' ? i.state_tag)
	    OR (i.status = 'done') <> coalesce((m.definition->'states'->i.state_tag->>'final')::boolean, false)}),
	'', 'every actor is in a state of its machine, done exactly in a final state');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT s.actor, ', ')
	  FROM mut.results res JOIN mut.spawns s ON s.id = res.id
	 WHERE res.stage = 'spawn' AND res.outcome = 'error' AND res.extra IS NULL
	   AND s.actor IS NOT NULL
	   AND NOT EXISTS (SELECT FROM mut.results r2 JOIN mut.spawns s2 ON s2.id = r2.id
	                    WHERE r2.stage = 'spawn' AND r2.outcome = 'ok' AND s2.actor = s.actor)
	   AND NOT EXISTS (SELECT FROM mut.sends se WHERE se.actor = s.actor)
	   AND (EXISTS (SELECT FROM machine.instances WHERE actor_id = s.actor)
	        OR EXISTS (SELECT FROM machine.events WHERE actor_id = s.actor)
	        OR EXISTS (SELECT FROM machine.snapshots WHERE actor_id = s.actor)
	        OR EXISTS (SELECT FROM machine.timers WHERE actor_id = s.actor)
	        OR EXISTS (SELECT FROM mut.effects WHERE actor = s.actor))}),
	'', 'a failed spawn leaves no rows behind');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM mut.results res JOIN mut.spawns s ON s.id = res.id
	 WHERE res.stage = 'spawn' AND res.outcome = 'ok'
	   AND (res.extra IS NOT NULL OR res.result->>'_tag' IS NULL)}),
	'0', 'a successful spawn was of a new id, and returned a state');

# sends: a failure changes nothing
is($node->safe_psql('postgres', q{
	SELECT string_agg(id::text, ', ') FROM mut.results
	 WHERE stage = 'send' AND outcome = 'error'
	   AND (v0 IS DISTINCT FROM v1 OR s0 IS DISTINCT FROM s1)}),
	'', 'a failed send changes neither the version nor the state');
is($node->safe_psql('postgres', q{
	SELECT string_agg(id::text, ', ') FROM mut.results
	 WHERE stage = 'send' AND outcome = 'ok'
	   AND (v1 < v0 OR v1 IS NULL OR jsonb_typeof(result) <> 'object'
	        OR jsonb_typeof(result->'_tag') <> 'string')}),
	'', 'a successful send returns a state and never lowers the version');
is($node->safe_psql('postgres', q{
	SELECT string_agg(id::text, ', ') FROM mut.results
	 WHERE stage = 'send' AND outcome = 'ok' AND v1 = v0 AND s1 IS DISTINCT FROM s0}),
	'', 'a send that did not move the version did not change the state');
is($node->safe_psql('postgres', q{
	SELECT string_agg(r.id || ' ' || s.expected || ' ' || coalesce(r.sqlstate, 'ok'), ', ')
	  FROM mut.results r JOIN mut.sends s USING (id)
	 WHERE r.stage = 'send' AND r.v0 IS NOT NULL
	   AND ((s.expected = 'current' AND r.sqlstate = 'MA001')
	        OR (s.expected = 'stale' AND r.outcome = 'ok'))}),
	'', 'the expected version is honoured: the current one passes, a stale one never does');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM mut.results r JOIN mut.sends s USING (id)
	 WHERE r.stage = 'send' AND s.expected = 'current' AND r.outcome = 'ok'}) > 0 ? 1 : 0,
	1, 'some sends with the current expected version succeed');
is($node->safe_psql('postgres', q{
	SELECT string_agg(id::text, ', ') FROM mut.results
	 WHERE stage = 'simulate' AND extra LIKE '%malformed%'}),
	'', 'simulations return well-formed steps');

# journals and snapshots follow the schedules of the base machines
is($node->safe_psql('postgres', q{
	SELECT string_agg(i.actor_id, ', ')
	  FROM machine.instances i
	 WHERE i.machine IN ('order', 'counter')
	   AND (SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM machine.events e
	         WHERE e.actor_id = i.actor_id)
	       <> ARRAY(SELECT generate_series(1, i.version))}),
	'', 'journaled actors have one journal row per version');
is($node->safe_psql('postgres', q{
	SELECT string_agg(i.actor_id, ', ')
	  FROM machine.instances i
	 WHERE i.status <> 'stopped'
	   AND (SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM machine.snapshots s
	         WHERE s.actor_id = i.actor_id)
	       <> CASE i.machine
	            WHEN 'order' THEN ARRAY(SELECT generate_series(1, i.version))
	            WHEN 'counter' THEN ARRAY(SELECT v FROM generate_series(1, i.version) v WHERE v % 4 = 0)
	            WHEN 'router' THEN ARRAY(SELECT generate_series(1, least(i.version, 3)))
	            ELSE (SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM machine.snapshots s
	                   WHERE s.actor_id = i.actor_id)
	          END}),
	'', 'snapshots follow the schedules');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM machine.events e JOIN machine.instances i USING (actor_id)
	 WHERE i.machine = 'router'}),
	'0', 'an unjournaled machine has no journal');

is($node->safe_psql('postgres', "SELECT mut.sanity('end')"), $sane,
	'the base machines still behave at the end');

$node->stop('fast');
done_testing();
