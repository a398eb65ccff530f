-- After the sending cases: the machine's tables and the twin's must both
-- hold consistent histories of the actors a-* and p-* (psql; variable
-- :schema).  Every state tag is the one the cycle gives that version, the
-- journal of each actor runs 1 .. its live version without a gap, and
-- each p-* actor has a snapshot of every version after 0.  Prints the
-- number of actors that break a rule: 0.
SELECT count(*) AS broken
  FROM :schema.instances i
  LEFT JOIN LATERAL (SELECT count(*) AS n, max(version) AS last,
							bool_and(state_tag = (ARRAY['A', 'B', 'C'])[version % 3 + 1]
									 AND event = '{"_tag": "Next"}') AS tags_ok
					   FROM :schema.events e
					  WHERE e.actor_id = i.actor_id) e ON true
  LEFT JOIN LATERAL (SELECT count(*) AS n,
							bool_and(state_tag = (ARRAY['A', 'B', 'C'])[version % 3 + 1]
									 AND state->>'_tag' = state_tag) AS tags_ok
					   FROM :schema.snapshots s
					  WHERE s.actor_id = i.actor_id) s ON true
 WHERE (i.actor_id LIKE 'a-%' OR i.actor_id LIKE 'p-%')
   AND NOT (i.state_tag = (ARRAY['A', 'B', 'C'])[i.version % 3 + 1]
			AND i.state->>'_tag' = i.state_tag
			AND i.status = 'running'
			AND e.n = i.version
			AND coalesce(e.last, 0) = i.version
			AND coalesce(e.tags_ok, true)
			AND coalesce(s.tags_ok, true)
			AND s.n = CASE WHEN i.actor_id LIKE 'p-%' THEN i.version ELSE 0 END);
