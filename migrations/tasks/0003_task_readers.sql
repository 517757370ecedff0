-- The readers of every task move to the runtime's task_readers, which the
-- service keeps in each write's transaction from now on.
INSERT INTO task_readers (task_id, named, project_id, version)
SELECT id,
       ARRAY(SELECT DISTINCT reader FROM unnest(array_remove(
           ARRAY[assignee_id, CASE WHEN project_id IS NULL THEN creator_id END] || observer_ids,
           NULL)) AS reader ORDER BY reader),
       project_id, version
FROM tasks
ON CONFLICT (task_id) DO NOTHING;
