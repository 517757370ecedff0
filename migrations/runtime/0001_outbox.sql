-- The transactional outbox (taskflow_runtime::outbox), in every service
-- database: a write inserts its event here in its own transaction, and the
-- relay publishes the committed rows in `id` order.
--
-- Every row is inserted once and updated once (published), and each index
-- is written at both: only `id` and the unpublished rows are indexed. The
-- event_id is a UUID v7 made by the writer, and cleanup walks the primary
-- key from the oldest row.
-- stream, stream_seq: where an acknowledged row was stored, so the relay can
-- check after a NATS restart that the stream still holds it.
-- parked_reason: why a row was set aside instead of published (the server
-- can never take it); such a row is marked published so the relay moves on.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      UUID NOT NULL,
    subject       TEXT NOT NULL,
    body          BYTEA NOT NULL,
    request_id    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    stream        TEXT,
    stream_seq    BIGINT,
    parked_reason TEXT
) WITH (fillfactor = 90);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
