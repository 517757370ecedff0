-- Why a row was set aside instead of published (the server can never take
-- it); such a row is marked published so the relay moves past it.
ALTER TABLE outbox ADD COLUMN parked_reason TEXT;
