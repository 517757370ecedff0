-- Users and the outbox their events (user.registered, ...) leave through.

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

CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    event_id     UUID NOT NULL UNIQUE,
    subject      TEXT NOT NULL,
    body         BYTEA NOT NULL,
    request_id   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ,
    stream_seq   BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
