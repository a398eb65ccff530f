-- :n actors of machine cycle, s-1000000 .. (ids of equal length, so that
-- rows are generated in index order), each at version :per with journal
-- rows 1 .. :per: :n live rows and :n * :per journal rows written
-- set-based, consistently, instead of sent (psql; variables :n, :per).
INSERT INTO machine.instances
	(actor_id, machine, status, version, state, state_tag, initial_state)
SELECT 's-' || (1000000 + i), 'cycle', 'running', :per,
	   jsonb_build_object('_tag', (ARRAY['A', 'B', 'C'])[:per % 3 + 1]),
	   (ARRAY['A', 'B', 'C'])[:per % 3 + 1], '{"_tag": "A"}'
  FROM generate_series(0, :n - 1) i;
INSERT INTO machine.events (actor_id, version, event, state_tag)
SELECT 's-' || (1000000 + i), v, '{"_tag": "Next"}',
	   (ARRAY['A', 'B', 'C'])[v % 3 + 1]
  FROM generate_series(0, :n - 1) i, generate_series(1, :per) v;
VACUUM ANALYZE machine.instances, machine.events;
