-- The audit trail: one record per event, never changed, never removed.

CREATE TABLE audit_records (
    id             UUID PRIMARY KEY,
    event_id       UUID NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    task_id        UUID,
    actor_id       UUID,
    correlation_id TEXT NOT NULL,
    causation_id   UUID,
    changes        JSONB NOT NULL,
    payload        JSONB NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    stream         TEXT NOT NULL,
    stream_seq     BIGINT NOT NULL
);
-- event_id is a UUID v7: its order is the order the events happened in.
CREATE INDEX audit_by_task ON audit_records (task_id, event_id) WHERE task_id IS NOT NULL;
CREATE INDEX audit_by_actor ON audit_records (actor_id, event_id);
CREATE INDEX audit_by_correlation ON audit_records (correlation_id);

CREATE FUNCTION audit_records_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are immutable (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_records_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_are_immutable();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_are_immutable();

-- Who may read each task's records: its readers as of the newest event seen.
CREATE TABLE task_access (
    task_id UUID PRIMARY KEY,
    readers UUID[] NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX task_access_by_reader ON task_access USING GIN (readers);
