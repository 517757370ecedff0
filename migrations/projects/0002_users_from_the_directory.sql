-- Which users exist now comes from the runtime's directory
-- (migrations/runtime/0004_directory.sql), which the service keeps anyway
-- for who is an admin. The durable `projects-users` of older builds is no
-- longer read; `nats consumer rm AUDIT projects-users` removes it.
DROP TABLE known_users;
