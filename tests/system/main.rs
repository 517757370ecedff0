//! System tests: the real services against a real nats-server and Postgres.
//! One binary, a module per area.

mod access;
mod audit;
mod binary;
mod consistency;
mod consumers;
mod feed_limits;
mod group_commit;
mod hostile;
mod hot_plans;
mod identity;
mod layout;
mod list_plans;
mod livefeed;
mod nats_commands;
mod notifications;
mod openapi;
mod outbox;
mod project_tasks;
mod projects;
mod scheduler;
mod smoke;
mod tasks_api;
