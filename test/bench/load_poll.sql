-- A backlog for the "poll" case (psql; variables :actors, :per): machine
-- cycle_poll, of its own machine type, with :actors actors and :per
-- journal rows each, written straight into the tables (positions and
-- txids from the columns' defaults); a subscription to that type from the
-- start; and the consumer that reads it.
SELECT machine_define('cycle_poll',
	'{"initial": "A", "states": {"A": {"on": {"Next": "B"}}, "B": {"on": {"Next": "C"}},
	  "C": {"on": {"Next": "A"}}}, "persistence": {}}');
INSERT INTO machine.instances
	(actor_id, machine, status, version, state, state_tag, initial_state)
SELECT 'poll-' || a, 'cycle_poll', 'running', :per,
	   jsonb_build_object('_tag', (ARRAY['A', 'B', 'C'])[:per % 3 + 1]),
	   (ARRAY['A', 'B', 'C'])[:per % 3 + 1], '{"_tag": "A"}'
  FROM generate_series(1, :actors) a;
INSERT INTO machine.events (actor_id, version, event, state_tag)
SELECT 'poll-' || a, v, '{"_tag": "Next"}', (ARRAY['A', 'B', 'C'])[v % 3 + 1]
  FROM generate_series(1, :per) v, generate_series(1, :actors) a
 ORDER BY v, a;
VACUUM ANALYZE machine.instances, machine.events;

-- a consumer without a projection: poll a batch, acknowledge its last row
-- (the last in the order returned), commit; until the backlog is read.
-- The rows read are counted in bench_poll_read.
CREATE TABLE bench_poll_read (n bigint);
CREATE PROCEDURE bench_consume(batch integer)
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	total bigint := 0;
	last bigint;
BEGIN
	LOOP
		SELECT p.n, p.position INTO n, last
		  FROM machine_poll('bench_poll', batch) WITH ORDINALITY
			   AS p(position, actor_id, machine_type, version, event, state_tag, recorded_at, n)
		 ORDER BY p.n DESC LIMIT 1;
		EXIT WHEN n IS NULL;
		PERFORM machine_ack('bench_poll', last);
		total := total + n;
		COMMIT;
	END LOOP;
	INSERT INTO bench_poll_read VALUES (total);
END $$;
