-- Fewer indexes on the outbox: every row is inserted once and updated once
-- (published), and each index is written at both. event_id is a UUID v7 made
-- by the writer, and cleanup walks the primary key from the oldest row.
ALTER TABLE outbox DROP CONSTRAINT outbox_event_id_key;
DROP INDEX outbox_published_at;
ALTER TABLE outbox SET (fillfactor = 90);
