-- Rows a stream lost go out again in the order the stream had them (their
-- old sequence, kept in lost_seq), before any row never published, so the
-- stream after a power loss holds the same events in the same order: a
-- feed client's history and cursors stay true. Publishing them in id order
-- instead swapped events of different tasks whose commits had crossed.
ALTER TABLE outbox ADD COLUMN lost_seq BIGINT;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (lost_seq, id) WHERE published_at IS NULL;
