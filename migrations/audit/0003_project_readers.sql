-- The members of a task's project read its records too (from the service's
-- directory, migrations/runtime/0004_directory.sql).
ALTER TABLE task_access ADD COLUMN project_id UUID;
CREATE INDEX task_access_by_project ON task_access (project_id) WHERE project_id IS NOT NULL;
