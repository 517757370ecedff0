-- Every list page is a bounded index scan: a recipient's notifications,
-- newest first, by each filter, and those that concern no task (their own
-- branch of a page).
CREATE INDEX notifications_by_status ON notifications (recipient_id, status, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (recipient_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;
CREATE INDEX notifications_by_task ON notifications (recipient_id, task_id);
CREATE INDEX notifications_without_task ON notifications (recipient_id, created_at DESC, id DESC)
    WHERE task_id IS NULL;
