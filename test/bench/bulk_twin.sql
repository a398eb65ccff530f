-- The set-based twin of
--	 SELECT count(machine_send('a-' || (i % :nactors), '{"_tag":"Next"}'))
--	   FROM generate_series(1, :nactors * :k) i
-- (psql; variables :nactors, :k): one UPDATE ... FROM moves each of the
-- actors a-0 .. a-(nactors-1) :k versions on, one INSERT ... SELECT writes
-- the :k journal rows of each, with the state tag each version had.
WITH u AS (
	UPDATE twin.instances t
	   SET status = 'running',
		   version = t.version + :k,
		   state = jsonb_set(t.state, '{_tag}', to_jsonb(c.tags[
				(array_position(c.tags, t.state_tag) - 1 + :k) % 3 + 1])),
		   state_tag = c.tags[
				(array_position(c.tags, t.state_tag) - 1 + :k) % 3 + 1],
		   last_activity_at = now()
	  FROM generate_series(0, :nactors - 1) g (i),
		   (SELECT ARRAY['A', 'B', 'C'] AS tags) c
	 WHERE t.actor_id = 'a-' || g.i
	RETURNING t.actor_id, t.version, t.state_tag, c.tags
)
INSERT INTO twin.events (actor_id, version, event, state_tag)
SELECT u.actor_id, u.version - :k + s.s, '{"_tag":"Next"}',
	   u.tags[((array_position(u.tags, u.state_tag) - 1 - :k + s.s) % 3 + 3) % 3 + 1]
  FROM u, generate_series(1, :k) s (s);
