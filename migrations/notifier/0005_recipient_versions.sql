-- The profile version each recipient was last kept at (0: from events that
-- carried none): an older profile applied late changes nothing.
ALTER TABLE recipients ADD COLUMN profile_version BIGINT NOT NULL DEFAULT 0;
