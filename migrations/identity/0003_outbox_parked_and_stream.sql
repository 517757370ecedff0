-- parked_reason: why a row was set aside instead of published (the server
-- can never take it); such a row is marked published so the relay moves on.
-- stream: where an acknowledged row was stored, with its stream_seq, so the
-- relay can check after a NATS restart that the stream still holds it.
ALTER TABLE outbox ADD COLUMN parked_reason TEXT, ADD COLUMN stream TEXT;
