-- Who may read each task moves from the copies on reminders and series to
-- the runtime's task_readers, the table every service's lists filter by.
-- Version 0: the task's next event replaces it.
INSERT INTO task_readers (task_id, named, project_id, version)
SELECT DISTINCT ON (task_id) task_id, readers, project_id, 0
FROM (
    SELECT task_id, readers, project_id, updated_at FROM reminders
    UNION ALL
    SELECT current_task_id, readers, project_id, updated_at FROM series
) copies
ORDER BY task_id, updated_at DESC
ON CONFLICT (task_id) DO NOTHING;
ALTER TABLE reminders DROP COLUMN readers, DROP COLUMN project_id;
ALTER TABLE series DROP COLUMN readers, DROP COLUMN project_id;
