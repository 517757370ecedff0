-- What the access rule (taskflow_runtime::access) needs of each task a
-- service has heard of, in every service database: its project, whose
-- members read it by the service's directory (0004), and who is named in it
-- (its assignee and observers, and its creator outside projects). Kept from
-- the task's own writes or events, the newest version winning; every list
-- filters with the one rule over these two tables.
CREATE TABLE access_tasks (
    task_id    UUID PRIMARY KEY,
    project_id UUID,
    version    BIGINT NOT NULL
);
-- A project's tasks, in task order: a member's page walks it.
CREATE INDEX access_tasks_by_project ON access_tasks (project_id, task_id)
    WHERE project_id IS NOT NULL;

-- A user's tasks, in task order: a reader's page walks it, and a page in
-- another order probes it.
CREATE TABLE access_named (
    user_id UUID NOT NULL,
    task_id UUID NOT NULL,
    PRIMARY KEY (user_id, task_id)
);
CREATE INDEX access_named_by_task ON access_named (task_id);
