-- The records of each project's tasks, in recording order: a project
-- member's page of the audit walks it rather than every record before the
-- project's first. A record's row follows its task to another project (the
-- records themselves never change); records of tasks in no project have none.
CREATE TABLE record_projects (
    recorded_seq BIGINT PRIMARY KEY,
    task_id      UUID NOT NULL,
    project_id   UUID NOT NULL
);
CREATE INDEX record_projects_in_order ON record_projects (project_id, recorded_seq);
CREATE INDEX record_projects_by_task ON record_projects (task_id);
INSERT INTO record_projects (recorded_seq, task_id, project_id)
SELECT r.recorded_seq, r.task_id, a.project_id
FROM audit_records r JOIN access_tasks a ON a.task_id = r.task_id
WHERE a.project_id IS NOT NULL;
