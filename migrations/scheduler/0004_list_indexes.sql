-- Every list page is a bounded index scan: schedules are listed newest
-- first, and by task.
CREATE INDEX reminders_in_list_order ON reminders (created_at DESC, id DESC);
CREATE INDEX series_in_list_order ON series (created_at DESC, id DESC);
CREATE INDEX series_by_task ON series (current_task_id);
