-- :n stopped actors of machine cycle_restore, r-1000000 .. (ids of equal
-- length, so that they are generated in index order), each at version
-- :per with journal rows 1 .. :per and a snapshot at version :snap: a
-- restore takes the snapshot and folds the (:per - :snap) events after it
-- (psql; variables :n, :per, :snap).
INSERT INTO machine.instances
	(actor_id, machine, status, version, state, state_tag, initial_state)
SELECT 'r-' || (1000000 + i), 'cycle_restore', 'stopped', :per,
	   jsonb_build_object('_tag', (ARRAY['A', 'B', 'C'])[:per % 3 + 1]),
	   (ARRAY['A', 'B', 'C'])[:per % 3 + 1], '{"_tag": "A"}'
  FROM generate_series(0, :n - 1) i;
INSERT INTO machine.events (actor_id, version, event, state_tag)
SELECT 'r-' || (1000000 + i), v, '{"_tag": "Next"}',
	   (ARRAY['A', 'B', 'C'])[v % 3 + 1]
  FROM generate_series(0, :n - 1) i, generate_series(1, :per) v;
INSERT INTO machine.snapshots (actor_id, version, state, state_tag)
SELECT 'r-' || (1000000 + i), :snap,
	   jsonb_build_object('_tag', (ARRAY['A', 'B', 'C'])[:snap % 3 + 1]),
	   (ARRAY['A', 'B', 'C'])[:snap % 3 + 1]
  FROM generate_series(0, :n - 1) i;
VACUUM ANALYZE machine.instances, machine.events, machine.snapshots;
