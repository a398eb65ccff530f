-- pgbench: the set-based plain-SQL twin of send_many.sql.  One UPDATE over
-- unnest of the same array of actor ids moves each of them one version on
-- the cycle A -> B -> C -> A, one INSERT writes their journal rows, and the
-- statement returns a row per actor with its new state.
\set quarter ((:hi - :lo + 1) / 4)
\set base :lo + (:client_id % 4) * :quarter + random(0, :quarter - 100)
WITH u AS (
	UPDATE twin.instances t
	   SET status = 'running',
		   version = t.version + 1,
		   state = jsonb_set(t.state, '{_tag}',
							 to_jsonb(CASE t.state_tag WHEN 'A' THEN 'B'
									  WHEN 'B' THEN 'C' ELSE 'A' END)),
		   state_tag = CASE t.state_tag WHEN 'A' THEN 'B'
					   WHEN 'B' THEN 'C' ELSE 'A' END,
		   last_activity_at = now()
	  FROM unnest(ARRAY(SELECT :prefix::text || (:base + i)
						  FROM generate_series(0, 99) i)) AS b (actor_id)
	 WHERE t.actor_id = b.actor_id
	RETURNING t.actor_id, t.version, t.state, t.state_tag
), e AS (
	INSERT INTO twin.events (actor_id, version, event, state_tag)
	SELECT actor_id, version, '{"_tag":"Next"}', state_tag FROM u
)
SELECT count(*) FROM (SELECT actor_id, state FROM u) r;
