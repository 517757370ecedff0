-- Who may read each task's records moves to the runtime's task_readers,
-- the table every service's lists filter by.
INSERT INTO task_readers (task_id, named, project_id, version)
SELECT task_id, readers, project_id, version FROM task_access
ON CONFLICT (task_id) DO NOTHING;
DROP TABLE task_access;
