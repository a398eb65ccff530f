-- pgbench: one machine_send_many of 100 events, one to each of 100
-- consecutive actors of this client's own quarter of :prefix || [:lo, :hi]
-- (4 clients; the quarters keep batches of different clients apart, as
-- the twin, which takes its row locks in no set order, needs)
\set quarter ((:hi - :lo + 1) / 4)
\set base :lo + (:client_id % 4) * :quarter + random(0, :quarter - 100)
SELECT count(*) FROM machine_send_many(
	ARRAY(SELECT :prefix::text || (:base + i) FROM generate_series(0, 99) i),
	array_fill('{"_tag":"Next"}'::jsonb, ARRAY[100]));
