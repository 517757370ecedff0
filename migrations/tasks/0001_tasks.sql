-- Tasks and their idempotency keys; their events leave through the
-- runtime's outbox (migrations/runtime).

CREATE TABLE tasks (
    id                      UUID PRIMARY KEY,
    project_id              UUID,
    title                   TEXT NOT NULL,
    description             TEXT,
    status                  TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'complete')),
    priority                TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    labels                  TEXT[] NOT NULL DEFAULT '{}',
    creator_id              UUID NOT NULL,
    assignee_id             UUID,
    observer_ids            UUID[] NOT NULL DEFAULT '{}',
    due_date                TIMESTAMPTZ,
    reminder_time           TIMESTAMPTZ,
    reminder_offset_minutes INTEGER,
    recurrence              JSONB,
    series_id               UUID,
    version                 BIGINT NOT NULL CHECK (version > 0),
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    completed_at            TIMESTAMPTZ
);

-- Lists are newest first (UUID v7 ids sort by creation time) per reader.
CREATE INDEX tasks_by_creator ON tasks (creator_id, id DESC);
CREATE INDEX tasks_by_assignee ON tasks (assignee_id, id DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX tasks_by_observer ON tasks USING GIN (observer_ids);
CREATE INDEX tasks_by_project ON tasks (project_id, id DESC) WHERE project_id IS NOT NULL;

-- Idempotency-Key per user: the request it came with and, once committed,
-- the response it got. A row without a response is in flight.
CREATE TABLE idempotency_keys (
    user_id      UUID NOT NULL,
    key          TEXT NOT NULL,
    request      JSONB NOT NULL,
    response     JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, key)
);
