-- The scheduler's own view of time, built from the events it consumes: the
-- database is the source of truth for every reminder and every series; the
-- timer keeps only the next wake-up in memory.

-- A reminder fires once: its id is derived from its task and its fire time,
-- and a task has at most one pending reminder.
CREATE TABLE reminders (
    id             UUID PRIMARY KEY,
    task_id        UUID NOT NULL,
    fire_at        TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'fired', 'cancelled')),
    -- The task as the event that set the reminder left it: the event's payload.
    task           JSONB NOT NULL,
    readers        UUID[] NOT NULL,
    cause_event_id UUID NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    fired_at       TIMESTAMPTZ
);

CREATE UNIQUE INDEX reminders_one_pending_per_task ON reminders (task_id) WHERE status = 'pending';
-- The timer's only question: what is due next.
CREATE INDEX reminders_due ON reminders (fire_at) WHERE status = 'pending';
CREATE INDEX reminders_by_task ON reminders (task_id);
CREATE INDEX reminders_by_reader ON reminders USING GIN (readers);

-- A recurrence series, named by the tasks' series_id. Its anchor (day of the
-- month and wall-clock time of its first due date) keeps clamping and DST
-- adjustments of one occurrence from drifting into the next.
CREATE TABLE series (
    id              UUID PRIMARY KEY,
    current_task_id UUID NOT NULL,
    title           TEXT NOT NULL,
    recurrence      JSONB NOT NULL,
    anchor_day      SMALLINT NOT NULL CHECK (anchor_day BETWEEN 1 AND 31),
    anchor_time     TIME NOT NULL,
    timezone        TEXT NOT NULL,
    is_active       BOOLEAN NOT NULL,
    -- The due date of the current occurrence, and of the one after it once
    -- the current one is completed.
    current_due     TIMESTAMPTZ NOT NULL,
    next_due        TIMESTAMPTZ,
    readers         UUID[] NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX series_by_reader ON series USING GIN (readers);

-- Each user's time zone, from identity's user.registered and user.updated.
CREATE TABLE user_timezones (
    user_id  UUID PRIMARY KEY,
    timezone TEXT NOT NULL
);
