-- The members of a task's project read its reminders and series too (from
-- the service's directory, migrations/runtime/0004_directory.sql).
ALTER TABLE reminders ADD COLUMN project_id UUID;
ALTER TABLE series ADD COLUMN project_id UUID;
