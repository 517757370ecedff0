-- Effects outside the database (an email, a webhook), for consumers that
-- are effectors (taskflow_runtime::consumer::effector): each is recorded
-- here in the transaction of the event that asked for it, then performed
-- by the runtime after the commit, with retries and backoff. A lease
-- (next_attempt_at moved ahead while one instance performs it) keeps two
-- instances from performing it at once.
CREATE TABLE effect_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    consumer        TEXT NOT NULL,
    event_id        UUID NOT NULL,
    effect          JSONB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);
CREATE INDEX effect_deliveries_due ON effect_deliveries (consumer, next_attempt_at)
    WHERE status = 'pending';
