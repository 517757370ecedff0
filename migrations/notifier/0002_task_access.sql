-- Who may read each task, as of the newest event the notifier saw of it: a
-- notification about a task is listed only while its recipient may read
-- the task (named in it, or a member of its project by the service's
-- directory, migrations/runtime/0004_directory.sql).
CREATE TABLE task_access (
    task_id    UUID PRIMARY KEY,
    readers    UUID[] NOT NULL,
    project_id UUID,
    version    BIGINT NOT NULL
);
