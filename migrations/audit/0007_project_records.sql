-- A project's own records (created, renamed, members added, roles changed,
-- members removed, deleted) belong to the project: its members read them,
-- as they read the records of its tasks. They have no task.
ALTER TABLE record_projects ALTER COLUMN task_id DROP NOT NULL;
INSERT INTO record_projects (recorded_seq, task_id, project_id)
SELECT recorded_seq, NULL, (payload -> 'project' ->> 'id')::uuid
FROM audit_records
WHERE task_id IS NULL AND event_type LIKE 'project.%'
  AND payload -> 'project' ->> 'id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
