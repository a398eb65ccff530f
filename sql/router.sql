-- machine_router: one router database in front of two shard databases of
-- this server.  Connection strings name this server's socket and port,
-- which change from run to run, so they are printed as "shard_a" and
-- "shard_b".
SELECT format('host=%s port=%s dbname=regress_shard_a',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port')) AS shard_a,
       format('host=%s port=%s dbname=regress_shard_b',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port')) AS shard_b \gset
CREATE DATABASE regress_shard_a;
CREATE DATABASE regress_shard_b;
CREATE DATABASE regress_router;
\c regress_shard_a
CREATE EXTENSION machine;
\c regress_shard_b
CREATE EXTENSION machine;
CREATE ROLE regress_router_nobody;
\c regress_router
SET client_min_messages = warning;
CREATE EXTENSION machine_router CASCADE;
RESET client_min_messages;

-- configuration: slices in equal contiguous ranges
SELECT machine_router_configure(ARRAY[:'shard_a', :'shard_b'], 8);
SELECT slice, replace(replace(shard, :'shard_a', 'shard_a'), :'shard_b', 'shard_b') AS shard
  FROM machine_router_slices();
SELECT srvname, array_length(srvoptions, 1) AS partitions FROM pg_foreign_server;
-- configuring again alters the server: its other options and user mappings stay
ALTER SERVER machine OPTIONS (ADD connection_lifetime '1800');
SELECT machine_router_configure(ARRAY[:'shard_a', :'shard_b'], 16);
SELECT srvname, array_length(srvoptions, 1) AS options, 'connection_lifetime=1800' = ANY (srvoptions) AS kept,
       (SELECT count(*) FROM pg_user_mappings WHERE srvname = 'machine') AS mappings
  FROM pg_foreign_server;
SELECT machine_router_configure(ARRAY[:'shard_a', :'shard_b'], 8);
SELECT srvname, array_length(srvoptions, 1) AS options FROM pg_foreign_server;
SELECT machine_router_configure(ARRAY[:'shard_a', :'shard_b'], 6);
SELECT machine_router_configure(ARRAY[:'shard_a', :'shard_b'], 1);
SELECT machine_router_configure(ARRAY['dbname=a', 'dbname=b', 'dbname=a'], 8);
SELECT machine_router_configure(ARRAY[['dbname=a'], ['dbname=b']], 8);
SELECT machine_router_configure(ARRAY[:'shard_a', ''], 8);
SELECT machine_router_configure(ARRAY[]::text[], 8);
SELECT machine_router_configure(NULL, 8);
-- a failed configuration leaves the one before
SELECT count(*) AS slices FROM machine_router_slices();

-- the same slices as on the shards
SELECT machine_slice_of('order-1'), machine_slice_of('order-1', 65536);

-- machines are defined on every shard
SELECT machine_define('counter', '{
  "initial": "Open",
  "states": {"Open": {"on": {"Add": {"target": "Open", "merge": true}, "Close": "Closed"}},
             "Closed": {"final": true}},
  "entity": {},
  "persistence": {"snapshotSchedule": "every 2"}
}');
SELECT * FROM machine_router_check();
SELECT machine_definition('counter') -> 'initial';

-- actors live on the shard of their slice
SELECT count(*) FROM (SELECT machine_spawn('c-' || i, 'counter') FROM generate_series(1, 40) AS i) AS s;
SELECT machine_send('c-1', '{"_tag": "Add", "n": 1}');
SELECT machine_send('c-1', '{"_tag": "Add", "n": 2}', 1);
SELECT machine_state('c-1'), machine_version('c-1'), machine_matches('c-1', 'Open'),
       machine_can('c-1', '{"_tag": "Close"}');
-- an idempotency key reaches the shard: the second send is answered, not applied
SELECT machine_send('c-2', '{"_tag": "Add", "n": 7}', NULL, 'key-1') ->> 'n',
       machine_send('c-2', '{"_tag": "Add", "n": 8}', NULL, 'key-1') ->> 'n',
       machine_version('c-2');
SELECT machine_send_entity('counter', 'e-1', '{"_tag": "Add", "n": 5}');
SELECT machine_send_entity('counter', 'e-1', '{"_tag": "Add", "n": 6}');
SELECT version, event FROM machine_history('c-1');
SELECT machine_replay_to('c-1', 1), machine_persist('c-1');
SELECT machine_rewind('c-1', 1);
SELECT count(*), min(machine_slice_of(id, 8)), max(machine_slice_of(id, 8)) FROM machine.actors;
-- revisions, the dry run of a redefinition and compaction, on every shard
SELECT machine_definition('counter', 1) = machine_definition('counter') AS first_is_latest;
SELECT * FROM machine_check_define('counter', machine_definition('counter'));
SELECT actor_id, version, problem FROM machine_check_define('counter',
	machine_definition('counter') #- '{states,Open,on,Add}') ORDER BY 1;
SELECT machine_compact('counter');
SELECT machine_compact('counter');
SELECT machine_replay_to('c-1', 3) = machine_state('c-1') AS folds_after;
\c regress_shard_a
SELECT count(*) > 0 AS some, bool_and(machine_slice_of(id, 8) < 4) AS all_in_range FROM machine.actors;
\c regress_shard_b
SELECT count(*) > 0 AS some, bool_and(machine_slice_of(id, 8) >= 4) AS all_in_range FROM machine.actors;
\c regress_router

-- restore: restore_many splits its ids by shard, restore_all asks every shard
SELECT bool_and(machine_stop('c-' || i)) FROM generate_series(1, 6) AS i;
SELECT actor_id, status, state ->> '_tag' AS tag, error
  FROM machine_restore_many(ARRAY['c-1', 'c-2', 'c-3', 'nobody']) ORDER BY actor_id;
SELECT actor_id, status FROM machine_restore_all('counter') ORDER BY actor_id;
SELECT machine_restore('c-4');

-- a shard's error keeps its SQLSTATE, message, detail and hint
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
SELECT machine_send('c-1', '{"_tag": "Add"}', 0);
SELECT machine_send('c-1', '{"_tag": "Nope"}');
SELECT machine_spawn('c-1', 'counter');
SET client_min_messages = warning;	-- how many connections a failed fan-out drops varies
SELECT call, pg_temp.sqlstate_of(stmt) FROM (VALUES
  ('conflict', $$SELECT machine_send('c-1', '{"_tag": "Add"}', 0)$$),
  ('unhandled', $$SELECT machine_send('c-1', '{"_tag": "Nope"}')$$),
  ('duplicate', $$SELECT machine_spawn('c-1', 'counter')$$),
  ('no machine', $$SELECT machine_spawn('x-1', 'nope')$$),
  ('bad define', $$SELECT machine_define('bad', '{"initial": "A"}')$$),
  ('null id', $$SELECT machine_send(NULL, '{"_tag": "Add"}')$$),
  ('null event', $$SELECT machine_send('c-1', NULL)$$)
  ) AS calls(call, stmt);
RESET client_min_messages;

-- moving a slice with its journal, snapshots and timers
SET client_min_messages = warning;	-- each shard's notice of timers without a worker
SELECT machine_define('ticker', '{"initial": "On", "states": {"On": {"on": {"Tick": "On"},
  "after": [{"delay": "1 hour", "event": {"_tag": "Tick"}}]}}, "persistence": {"snapshotSchedule": "every 1"}}');
RESET client_min_messages;
SELECT count(machine_spawn('t-' || i, 'ticker')) FROM generate_series(1, 30) AS i;
SELECT count(machine_send('t-' || i, '{"_tag": "Tick"}')) FROM generate_series(1, 30) AS i;
SELECT count(*) AS actors_in_slice_2,
       count(*) FILTER (WHERE machine = 'ticker') AS tickers_in_slice_2
  FROM machine.actors WHERE machine_slice_of(id, 8) = 2 \gset
SELECT machine_router_move(2, :'shard_b') = :actors_in_slice_2 AS moved_all;
SELECT slice, replace(replace(shard, :'shard_a', 'shard_a'), :'shard_b', 'shard_b') AS shard
  FROM machine_router_slices() WHERE slice = 2;
SELECT count(*) = :tickers_in_slice_2 AS all_listed, bool_and(version = 1) AS versions_kept
  FROM machine.actors WHERE machine_slice_of(id, 8) = 2 AND machine = 'ticker';
SELECT bool_and(machine_send(id, '{"_tag": "Tick"}') IS NOT NULL) AS sends_work,
       bool_and(machine_version(id) = 2) AS versions_go_on
  FROM machine.actors WHERE machine_slice_of(id, 8) = 2 AND machine = 'ticker';
\c regress_shard_a
SELECT count(*) AS left_on_a FROM machine.instances WHERE machine_slice_of(actor_id, 8) = 2;
SELECT count(*) AS journal_left_on_a FROM machine.events WHERE machine_slice_of(actor_id, 8) = 2;
\c regress_shard_b
SELECT count(*) > 0 AS timers_on_b FROM machine.timers WHERE machine_slice_of(actor_id, 8) = 2;
SELECT count(*) > 0 AS snapshots_on_b FROM machine.snapshots WHERE machine_slice_of(actor_id, 8) = 2;
SELECT bool_and(e.version <= i.version) AS journal_on_b
  FROM machine.events e JOIN machine.instances i USING (actor_id)
 WHERE machine_slice_of(actor_id, 8) = 2;
\c regress_router
-- and back
SELECT machine_router_move(2, :'shard_a') = :actors_in_slice_2 AS moved_back;
SELECT count(*) FILTER (WHERE machine_version(id) = 2) = :tickers_in_slice_2 AS versions_kept
  FROM machine.actors WHERE machine_slice_of(id, 8) = 2 AND machine = 'ticker';
-- bad moves change nothing
SELECT machine_router_move(2, :'shard_a');
SELECT machine_router_move(8, :'shard_b');
SELECT machine_router_move(-1, :'shard_b');
SELECT machine_router_move(NULL, :'shard_b');
SELECT machine_router_move(2, '');
BEGIN;
SELECT machine_router_move(2, :'shard_b');
ROLLBACK;
SELECT machine_drop('ticker', true);

-- (privileges through the router, which connects to the shards as the
-- calling role, are tested in test/t/011_scale_out.pl, whose servers let
-- every role log in)
-- grants go to every shard (from here on, PL/Proxy's notices of the
-- connections it drops after a fan-out failed vary with timing)
SET client_min_messages = warning;
SELECT machine_grant('counter', 'regress_router_nobody', 'read');
SELECT machine_has_privilege('counter', 'read');
\c regress_shard_b
SELECT machine_has_privilege('counter', 'read') AS superuser,
       (SELECT acl::text LIKE '%regress_router_nobody=r/%' FROM machine.definitions WHERE name = 'counter') AS granted_on_b;
\c regress_router
SELECT machine_revoke('counter', 'regress_router_nobody', 'read');
\c regress_shard_a
SELECT (SELECT coalesce(acl::text, '') LIKE '%regress_router_nobody%' FROM machine.definitions WHERE name = 'counter') AS still_on_a;
\c regress_router
SET client_min_messages = warning;
DO $$
BEGIN
	PERFORM machine_grant('counter', 'regress_router_nobody', 'everything');
EXCEPTION WHEN invalid_parameter_value THEN
	RAISE WARNING 'refused: %', regexp_replace(SQLERRM, 'regress_shard_[ab]', 'a shard');
END $$;
SELECT machine_grant('counter', 'no_such_role', 'read');
SET ROLE regress_router_nobody;
SELECT machine_router_configure(ARRAY['dbname=x'], 8);
SELECT machine_router_move(2, 'dbname=x');
RESET ROLE;

-- set-returning functions give shards' errors back as raised, too (both
-- shards refuse; the context would name the first to answer)
\set SHOW_CONTEXT never
SELECT * FROM machine_check_define('counter', '{"initial": "A"}');
\set SHOW_CONTEXT errors

-- delete, drop on every shard
SELECT machine_delete('c-1'), machine_state('c-1');
-- (both shards refuse; which one answers first varies)
DO $$
BEGIN
	PERFORM machine_drop('counter');
EXCEPTION WHEN dependent_objects_still_exist THEN
	RAISE WARNING 'refused: %', regexp_replace(SQLERRM, 'regress_shard_[ab]', 'a shard');
END $$;
SELECT machine_drop('counter', true);
SELECT count(*) FROM machine.actors;
SELECT machine_drop('counter', true);

\c contrib_regression
DROP DATABASE regress_router WITH (FORCE);
DROP DATABASE regress_shard_a WITH (FORCE);
DROP DATABASE regress_shard_b WITH (FORCE);
DROP ROLE regress_router_nobody;
