-- Every list page is a bounded index scan, whatever its filter: each
-- filter by its own index, in recording order. Access is served by the
-- runtime's access tables.
DROP INDEX audit_by_correlation;
CREATE INDEX audit_by_correlation ON audit_records (correlation_id, recorded_seq);
CREATE INDEX audit_by_event_type ON audit_records (event_type, recorded_seq);
CREATE INDEX audit_by_occurrence ON audit_records (occurred_at);
-- A reader's own records that concern no task.
CREATE INDEX audit_own_without_task ON audit_records (actor_id, recorded_seq) WHERE task_id IS NULL;
