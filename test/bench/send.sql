-- pgbench: one machine_send to a random actor :prefix || [:lo, :hi]
\set id random(:lo, :hi)
SELECT machine_send(:prefix::text || :id, '{"_tag":"Next"}');
