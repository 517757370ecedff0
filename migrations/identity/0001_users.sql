-- Users; their events (user.registered, ...) leave through the runtime's
-- outbox (migrations/runtime).

CREATE TABLE users (
    id                  UUID PRIMARY KEY,
    email               TEXT NOT NULL,
    name                TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    timezone            TEXT NOT NULL DEFAULT 'UTC',
    email_notifications BOOLEAN NOT NULL DEFAULT true,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
-- Emails are stored lower-cased; the index makes them unique.
CREATE UNIQUE INDEX users_by_email ON users (email);
