-- Every list page is a bounded index scan, whatever its filter (issue:
-- reads that stay fast as data grows). Access is served by the runtime's
-- access tables (0003); the filters by these. The creator and observer
-- indexes served the access rule's old form and go, so a create writes
-- about as many index entries as before.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DROP INDEX tasks_by_creator;
DROP INDEX tasks_by_observer;
CREATE INDEX tasks_by_status ON tasks (status, id DESC);
CREATE INDEX tasks_by_priority ON tasks (priority, id DESC);
CREATE INDEX tasks_by_due_date ON tasks (due_date) WHERE due_date IS NOT NULL;
-- Search (`?q=`) is a substring match, as users type a part of a word:
-- trigram indexes serve ILIKE '%text%' from three characters on.
CREATE INDEX tasks_by_title_trigrams ON tasks USING GIN (title gin_trgm_ops);
CREATE INDEX tasks_by_description_trigrams ON tasks USING GIN (description gin_trgm_ops);
