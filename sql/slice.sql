-- machine_slice_of: a fixed hash of the id's UTF-8 bytes.  These values are
-- part of the contract (a cluster's actors live where their slice says):
-- they must never change.
SELECT left(id, 10) AS id, length(id), machine_slice_of(id) AS slice_1024,
       machine_slice_of(id, 65536) AS slice_65536,
       machine_slice_of(id, 1) AS slice_1
  FROM (VALUES (''), ('a'), ('order-1'), ('order-2'), ('user:42'),
               ('héllo'), ('ключ'), (repeat('x', 255))) AS ids(id);
SELECT machine_slice_of(E'\u00e9\U0001F600', 65536);

-- the same slice for any number of slices, read at fewer bits
SELECT count(*) AS disagreeing
  FROM generate_series(1, 2000) AS i
 WHERE machine_slice_of('actor-' || i, 1024) <> machine_slice_of('actor-' || i, 65536) % 1024;

-- 100,000 ids over 16 slices: each slice within 5 % of even
SELECT min(n) >= 6250 * 0.95 AND max(n) <= 6250 * 1.05 AS even, count(*) AS slices
  FROM (SELECT machine_slice_of('order-' || i, 16) AS s, count(*) AS n
          FROM generate_series(1, 100000) AS i GROUP BY 1) AS per_slice;

-- a function the planner may fold and run in parallel
SELECT provolatile, proparallel, proisstrict FROM pg_proc
 WHERE oid = 'machine_slice_of(text, integer)'::regprocedure;

-- slices must be a power of two from 1 to 65536
SELECT machine_slice_of('a', 0);
SELECT machine_slice_of('a', 1000);
SELECT machine_slice_of('a', 131072);
SELECT machine_slice_of('a', -1024);
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
SELECT pg_temp.sqlstate_of($$SELECT machine_slice_of('a', 3)$$);
SELECT machine_slice_of(NULL), machine_slice_of('a', NULL);

-- moving slices: the rows of a slice, exported, imported and deleted
SELECT machine_define('sliced', '{"initial": "A", "states": {"A": {"on": {"Go": "A"}}},
                                  "persistence": {"snapshotSchedule": "every 1"}}');
SELECT count(machine_spawn('s-' || i, 'sliced')) FROM generate_series(1, 40) AS i;
SELECT count(machine_send('s-' || i, '{"_tag": "Go"}')) FROM generate_series(1, 40) AS i;
SELECT machine_slice_export(3, 8) AS data \gset
SELECT jsonb_array_length(:'data'::jsonb -> 'instances') AS instances,
       jsonb_array_length(:'data'::jsonb -> 'events') AS events,
       jsonb_array_length(:'data'::jsonb -> 'snapshots') AS snapshots;
-- a stale version refuses the delete; the right ones delete the slice
SELECT machine_slice_delete(3, 8, '{"s-nobody": 1}');
SELECT machine_slice_delete(3, 8, (SELECT jsonb_object_agg(i->>'actor_id', (i->>'version')::bigint)
                                     FROM jsonb_array_elements(:'data'::jsonb -> 'instances') AS i));
SELECT count(*) FROM machine.instances WHERE machine_slice_of(actor_id, 8) = 3;
-- importing brings them back with their journal and snapshots
SELECT machine_slice_import(:'data');
SELECT count(*) AS instances, sum(version) AS versions FROM machine.instances
 WHERE machine_slice_of(actor_id, 8) = 3;
SELECT count(*) AS journal FROM machine.events WHERE machine_slice_of(actor_id, 8) = 3;
-- a second import conflicts and writes nothing
SELECT machine_slice_import(:'data');
SELECT machine_slice_export(8, 8);
SELECT machine_slice_export(0, 6);
SELECT machine_slice_export(NULL, 8);
SELECT machine_slice_import(NULL);
SELECT machine_drop('sliced', true);
