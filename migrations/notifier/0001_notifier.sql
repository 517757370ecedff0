-- Notifications, one row per source event, recipient and channel, and the
-- recipients the notifier knows from identity's events (it never reads
-- identity's database).

CREATE TABLE notifications (
    id              UUID PRIMARY KEY,
    recipient_id    UUID NOT NULL,
    task_id         UUID,
    kind            TEXT NOT NULL CHECK (kind IN ('reminder', 'assigned', 'completed')),
    channel         TEXT NOT NULL CHECK (channel IN ('in_app', 'email')),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    message         TEXT NOT NULL,
    source_event_id UUID NOT NULL,
    correlation_id  TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    read_at         TIMESTAMPTZ,
    UNIQUE (source_event_id, recipient_id, channel)
);

-- A user's list, newest first.
CREATE INDEX notifications_by_recipient ON notifications (recipient_id, created_at DESC, id DESC);

CREATE TABLE recipients (
    user_id             UUID PRIMARY KEY,
    email               TEXT NOT NULL,
    name                TEXT NOT NULL,
    email_notifications BOOLEAN NOT NULL
);
