-- One actor, replay-0 of machine cycle, with :n + 1 journaled events and
-- no snapshot (psql; variable :n), so that machine_replay_to('replay-0', n)
-- folds n events (at the live version it would return the live state).
-- Written straight into the tables, consistently: journal versions
-- 1 .. n + 1, each row with the state tag that version had, and the live
-- row at version n + 1.
INSERT INTO machine.instances
	(actor_id, machine, status, version, state, state_tag, initial_state)
SELECT 'replay-0', 'cycle', 'running', :n + 1,
	   jsonb_build_object('_tag', tags[(:n + 1) % 3 + 1]), tags[(:n + 1) % 3 + 1],
	   '{"_tag": "A"}'
  FROM (SELECT ARRAY['A', 'B', 'C'] AS tags) c;
INSERT INTO machine.events (actor_id, version, event, state_tag)
SELECT 'replay-0', v, '{"_tag": "Next"}', (ARRAY['A', 'B', 'C'])[v % 3 + 1]
  FROM generate_series(1, :n + 1) v;
VACUUM ANALYZE machine.instances, machine.events;
