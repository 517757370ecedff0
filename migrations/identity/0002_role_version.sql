-- Counts a user's role changes: `user.role_changed` carries it, and every
-- service's directory applies a role change only over an older one.
ALTER TABLE users ADD COLUMN role_version BIGINT NOT NULL DEFAULT 0;
