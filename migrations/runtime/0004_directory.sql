-- The directory (taskflow_runtime::directory), in every service database:
-- who exists, who is an admin and who holds which role in which project, as
-- identity's and projects' events on AUDIT tell it. Each service decides
-- access from its own copy; none asks another service or reads its database.

CREATE TABLE directory_users (
    user_id   UUID PRIMARY KEY,
    is_admin  BOOLEAN NOT NULL DEFAULT false,
    -- The stream sequence of the role change applied last: an older one
    -- delivered again changes nothing.
    role_seq  BIGINT NOT NULL DEFAULT 0
);

-- A deleted project stays as a tombstone, so a membership event delivered
-- late cannot bring it back.
CREATE TABLE directory_projects (
    project_id UUID PRIMARY KEY,
    deleted    BOOLEAN NOT NULL DEFAULT false
);

-- A removed member keeps a row with no role, for the same reason.
CREATE TABLE directory_members (
    project_id UUID NOT NULL,
    user_id    UUID NOT NULL,
    role       TEXT CHECK (role IN ('owner', 'member', 'viewer')),
    seq        BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

-- A user's projects: what every reader filter asks.
CREATE INDEX directory_members_by_user ON directory_members (user_id, project_id)
    WHERE role IS NOT NULL;
