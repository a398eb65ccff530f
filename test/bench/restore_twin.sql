-- The twin of machine_restore_all('cycle_restore'): copy the latest
-- snapshot of each of the actors into a table.
INSERT INTO twin.restored (actor_id, version, state, state_tag)
SELECT DISTINCT ON (actor_id) actor_id, version, state, state_tag
  FROM machine.snapshots
 WHERE actor_id LIKE 'r-%'
 ORDER BY actor_id, version DESC;
