-- Who may read each task a service has heard of (taskflow_runtime::access),
-- in every service database: those the task names (its assignee and
-- observers, and its creator outside projects) and its project, whose
-- members read it too by the service's directory (0004). Kept from the
-- task's own events, the newest version winning; every list filters with
-- the one rule over this table.
CREATE TABLE task_readers (
    task_id    UUID PRIMARY KEY,
    named      UUID[] NOT NULL,
    project_id UUID,
    version    BIGINT NOT NULL
);
CREATE INDEX task_readers_by_name ON task_readers USING GIN (named);
CREATE INDEX task_readers_by_project ON task_readers (project_id) WHERE project_id IS NOT NULL;
