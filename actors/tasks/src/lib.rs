//! The tasks service: owns the `taskflow_tasks` database and the task model.
//!
//! Consumes: the commands `taskflow.tasks.{create,get,list,update,complete,delete}`
//! (NATS service `taskflow-tasks`).
//! Publishes: `task.created`, `task.updated`, `task.completed`, `task.deleted`
//! on `TASKS` as `tasks.<verb>.<task_id>`, through its transactional outbox.

pub mod commands;
pub mod error;
mod handler;
pub mod rules;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::service::{RunningService, ServiceSpec};
use taskflow_runtime::{Platform, RuntimeError};
use taskflow_schemas::subjects::commands::tasks;

use crate::commands::TaskCommands;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/tasks");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "tasks",
    description: "Tasks: create, read, list, change, complete and delete tasks",
    endpoints: &[
        tasks::CREATE,
        tasks::GET,
        tasks::LIST,
        tasks::UPDATE,
        tasks::COMPLETE,
        tasks::DELETE,
    ],
    // Enough to keep the database busy; one task's commands share a worker.
    workers: 16,
    outbox: true,
};

/// Starts the tasks service: database, outbox relay, command workers.
pub async fn start(platform: &Platform) -> Result<RunningService, RuntimeError> {
    RunningService::start(platform, SPEC, &MIGRATOR, Vec::new(), |parts| {
        let relay = parts.relay.expect("SPEC has an outbox");
        TaskCommands::new(parts.pool, relay)
    })
    .await
}
