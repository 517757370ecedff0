-- Who may read each task's records moves to the runtime's access_tasks and
-- access_named, the tables every service's lists filter by.
INSERT INTO access_tasks (task_id, project_id, version)
SELECT task_id, project_id, version FROM task_access
ON CONFLICT (task_id) DO NOTHING;
INSERT INTO access_named (user_id, task_id)
SELECT DISTINCT reader, task_id FROM task_access, unnest(readers) AS reader
ON CONFLICT DO NOTHING;
DROP TABLE task_access;
