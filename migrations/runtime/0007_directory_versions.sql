-- The directory orders a project's membership changes by the project's
-- version and a user's role changes by the user's role version, both
-- assigned by the producer under its row lock. The AUDIT sequence cannot
-- order them: a server that lost its unsynced tail gives lower sequences
-- to the events republished and written after it than to rows already
-- applied. Rows applied before carry version 0; events from before
-- versions existed carry 0 too and are ordered among themselves by `seq`.
ALTER TABLE directory_users ADD COLUMN role_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE directory_members ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
