-- Lists follow the order records were recorded in, not the order their
-- events happened in: a record consumed late (a stream caught up after an
-- outage) would otherwise land behind a client's cursor and never be seen.
-- Writers take a transaction lock before they insert, so the sequence
-- values become visible in order: every reader sees a prefix.
ALTER TABLE audit_records ADD COLUMN recorded_seq BIGINT GENERATED ALWAYS AS IDENTITY;
DROP INDEX audit_by_task;
DROP INDEX audit_by_actor;
CREATE UNIQUE INDEX audit_in_recording_order ON audit_records (recorded_seq);
CREATE INDEX audit_by_task ON audit_records (task_id, recorded_seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_by_actor ON audit_records (actor_id, recorded_seq);
