-- pgbench: the plain-SQL twin of send.sql.  It writes what machine_send
-- writes for a journaled machine without snapshots: the live row (status,
-- version, state, state_tag, last_activity_at) and one journal row, and
-- returns the new state.  The next tag of the cycle A -> B -> C -> A comes
-- from the current one, as the machine's transition does.
\set id random(:lo, :hi)
WITH u AS (
	UPDATE twin.instances
	   SET status = 'running',
		   version = version + 1,
		   state = jsonb_set(state, '{_tag}',
							 to_jsonb(CASE state_tag WHEN 'A' THEN 'B'
									  WHEN 'B' THEN 'C' ELSE 'A' END)),
		   state_tag = CASE state_tag WHEN 'A' THEN 'B'
					   WHEN 'B' THEN 'C' ELSE 'A' END,
		   last_activity_at = now()
	 WHERE actor_id = :prefix::text || :id
	RETURNING actor_id, version, state, state_tag
), e AS (
	INSERT INTO twin.events (actor_id, version, event, state_tag)
	SELECT actor_id, version, '{"_tag":"Next"}', state_tag FROM u
)
SELECT state FROM u;
