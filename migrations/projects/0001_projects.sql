-- Projects and their members, and the users the service knows exist (from
-- identity's events: it never reads identity's database).

CREATE TABLE projects (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    created_by  UUID NOT NULL,
    version     BIGINT NOT NULL CHECK (version > 0),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    added_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

-- A user's projects, newest first.
CREATE INDEX memberships_by_user ON memberships (user_id, project_id DESC);

CREATE TABLE known_users (
    user_id UUID PRIMARY KEY
);
