//! The tasks service: owns the `taskflow_tasks` database and the task model.
//!
//! Answers: `CreateTask`, `GetTask`, `ListTasks`, `UpdateTask`,
//! `CompleteTask`, `DeleteTask`, and the scheduler's `CreateNextOccurrence`
//! (`taskflow.tasks.*`, NATS service `taskflow-tasks`).
//! Consumes: `AUDIT` `audit.user.>` and `audit.project.>` (durable
//! `tasks-directory`): its directory of users and memberships, which access
//! is decided from; a deleted project's tasks are deleted.
//! Publishes: `task.created`, `task.updated`, `task.completed`, `task.deleted`
//! on `TASKS` as `tasks.<verb>.<task_id>`, through its transactional outbox.

pub mod access;
pub mod caller;
pub mod error;
mod grace;
pub mod group_commit;
mod idempotency;
pub mod projects;
pub mod rules;
pub mod service;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::bus::Endpoints;
use taskflow_runtime::directory;
use taskflow_runtime::service::{ConsumerStarter, ServiceDefinition};
use taskflow_schemas::catalogue::{
    CompleteTask, CreateNextOccurrence, CreateTask, DeleteTask, GetTask, ListTasks, UpdateTask,
};

use crate::projects::TaskDirectory;
use crate::service::{Caller, TasksService};

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/tasks");

pub static SERVICE: ServiceDefinition<TasksService> = ServiceDefinition {
    name: "tasks",
    description: "Tasks: create, read, list, change, complete and delete tasks",
    migrator: &MIGRATOR,
    // Enough to keep the database busy; one task's commands share a worker.
    workers: 16,
    outbox: true,
    publishes_directory: false,
    check_settings: |_| Ok(()),
    ops_addr: "127.0.0.1:9101",
    state: |_, parts| TasksService::new(parts.pool.clone(), parts.relay(), parts.directory),
    endpoints,
    consumers: |_, parts| {
        let directory = TaskDirectory {
            relay: parts.relay(),
            updates: parts.directory.clone(),
        };
        vec![ConsumerStarter::new(directory::spec("tasks"), directory)]
    },
    actors: Vec::new,
};

/// Each command calls the method of its name as the user who sent it.
macro_rules! as_caller {
    ($method:ident) => {
        |tasks, context, request| async move {
            let caller = Caller::new(context, request.user());
            tasks.$method(&caller, request.body).await
        }
    };
}

fn endpoints() -> Endpoints<TasksService> {
    Endpoints::<TasksService>::new()
        .on::<CreateTask, _, _, _>(as_caller!(create))
        .on::<CreateNextOccurrence, _, _, _>(as_caller!(create_next_occurrence))
        .on::<GetTask, _, _, _>(as_caller!(get))
        .on::<ListTasks, _, _, _>(as_caller!(list))
        .on::<UpdateTask, _, _, _>(as_caller!(update))
        .on::<CompleteTask, _, _, _>(as_caller!(complete))
        .on::<DeleteTask, _, _, _>(as_caller!(delete))
}
