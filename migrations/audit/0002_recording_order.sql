-- Lists follow the order records were recorded in, not the order their
-- events happened in: a record consumed late (a stream caught up after an
-- outage) would otherwise land behind a client's cursor and never be seen.
-- A record is listed once every transaction that started before it has
-- ended (its xid is below the snapshot's xmin), so a record committed late
-- by a concurrent writer cannot slip in behind a cursor either.
ALTER TABLE audit_records ADD COLUMN recorded_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE audit_records ADD COLUMN recorded_seq BIGINT GENERATED ALWAYS AS IDENTITY;
DROP INDEX audit_by_task;
DROP INDEX audit_by_actor;
CREATE INDEX audit_in_recording_order ON audit_records (recorded_xid, recorded_seq);
CREATE INDEX audit_by_task ON audit_records (task_id, recorded_xid, recorded_seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_by_actor ON audit_records (actor_id, recorded_xid, recorded_seq);
