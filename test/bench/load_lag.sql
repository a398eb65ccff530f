-- The "lag" case: a subscription to machine type cycle from now on, and a
-- consumer that polls batches of up to 1,000 rows, acknowledges the last,
-- commits, and naps 10 ms when it found nothing, until a row appears in
-- bench_lag_stop.
SELECT machine_subscribe('bench_lag', 'cycle', from_start => false);
CREATE TABLE bench_lag_stop ();
CREATE PROCEDURE bench_lag_consume()
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	last bigint;
BEGIN
	LOOP
		EXIT WHEN EXISTS (SELECT FROM bench_lag_stop);
		SELECT p.n, p.position INTO n, last
		  FROM machine_poll('bench_lag', 1000) WITH ORDINALITY
			   AS p(position, actor_id, machine_type, version, event, state_tag, recorded_at, n)
		 ORDER BY p.n DESC LIMIT 1;
		IF n IS NULL THEN
			COMMIT;
			PERFORM pg_sleep(0.01);
		ELSE
			PERFORM machine_ack('bench_lag', last);
			COMMIT;
		END IF;
	END LOOP;
END $$;
