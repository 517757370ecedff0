-- The access rule's inputs of every task move to the runtime's
-- access_tasks and access_named, which the service keeps in each write's
-- transaction from now on.
INSERT INTO access_tasks (task_id, project_id, version)
SELECT id, project_id, version FROM tasks
ON CONFLICT (task_id) DO NOTHING;
INSERT INTO access_named (user_id, task_id)
SELECT DISTINCT reader, id
FROM tasks, unnest(array_remove(
    ARRAY[assignee_id, CASE WHEN project_id IS NULL THEN creator_id END] || observer_ids,
    NULL)) AS reader
ON CONFLICT DO NOTHING;
