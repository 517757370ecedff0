-- Counts a user's profile versions: `user.registered` (1) and each
-- `user.updated` carry it, and the services that keep a copy of profiles
-- apply one only over an older one, whatever order two instances commit in.
ALTER TABLE users ADD COLUMN profile_version BIGINT NOT NULL DEFAULT 1;
