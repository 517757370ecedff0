-- The inbox (taskflow_runtime::consumer), in every service database: the
-- events each consumer has applied, recorded in the transaction of their
-- effect, so a redelivered or re-injected event changes nothing.
CREATE TABLE consumed_events (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    consumed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
