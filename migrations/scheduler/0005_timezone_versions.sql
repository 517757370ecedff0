-- The profile version each time zone was last kept at (0: from events that
-- carried none): an older profile applied late changes nothing.
ALTER TABLE user_timezones ADD COLUMN profile_version BIGINT NOT NULL DEFAULT 0;
