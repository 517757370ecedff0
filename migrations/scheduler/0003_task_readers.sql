-- Who may read each task moves from the copies on reminders and series to
-- the runtime's access_tasks and access_named, the tables every service's
-- lists filter by. Version 0: the task's next event replaces it.
CREATE TEMPORARY TABLE newest_copies AS
SELECT DISTINCT ON (task_id) task_id, readers, project_id
FROM (
    SELECT task_id, readers, project_id, updated_at FROM reminders
    UNION ALL
    SELECT current_task_id, readers, project_id, updated_at FROM series
) copies
ORDER BY task_id, updated_at DESC;
INSERT INTO access_tasks (task_id, project_id, version)
SELECT task_id, project_id, 0 FROM newest_copies
ON CONFLICT (task_id) DO NOTHING;
INSERT INTO access_named (user_id, task_id)
SELECT DISTINCT reader, task_id FROM newest_copies, unnest(readers) AS reader
ON CONFLICT DO NOTHING;
DROP TABLE newest_copies;
ALTER TABLE reminders DROP COLUMN readers, DROP COLUMN project_id;
ALTER TABLE series DROP COLUMN readers, DROP COLUMN project_id;
