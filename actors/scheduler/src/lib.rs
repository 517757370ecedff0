//! The scheduler service: owns the `taskflow_scheduler` database, where every
//! pending reminder and every recurrence series is kept, and acts on time.
//!
//! Consumes: `TASKS` (durable `scheduler-tasks`, keyed by task): sets, moves
//! and cancels each task's reminder, and plans the next task of a recurring
//! one when it is completed; `AUDIT` `audit.user.>` (durable
//! `scheduler-users`): each user's time zone; `audit.user.>` and
//! `audit.project.>` (`scheduler-directory`): who may read what.
//! Answers: `ListSchedules`, `GetSchedule` (`taskflow.scheduler.*`): the
//! reminders and series of the tasks the user may read; admins see all.
//! Calls: `CreateNextOccurrence` on the tasks service, once per occurrence.
//! Publishes: `reminder.due` on `REMINDERS` (`reminders.due.<task_id>`),
//! through its outbox, caused by the task event that set the reminder.

pub mod planner;
pub mod queries;
pub mod recurrence;
pub mod reminders;
pub mod series;
pub mod timer;
pub mod users;

use sqlx::migrate::Migrator;
use taskflow_runtime::Platform;
use taskflow_runtime::bus::{CommandClient, Endpoints};
use taskflow_runtime::consumer::ConsumerSpec;
use taskflow_runtime::directory;
use taskflow_runtime::service::{ActorStarter, ConsumerStarter, ServiceDefinition, ServiceParts};
use taskflow_schemas::catalogue::{GetSchedule, ListSchedules};
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM};

use crate::planner::TaskPlanner;
use crate::queries::ScheduleQueries;
use crate::timer::{ReminderTimer, TimerArgs};
use crate::users::TimezoneProjection;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/scheduler");

pub static SERVICE: ServiceDefinition<ScheduleQueries> = ServiceDefinition {
    name: "scheduler",
    description: "Scheduler: reminders on time and the next task of each series",
    migrator: &MIGRATOR,
    workers: 4,
    outbox: true,
    publishes_directory: false,
    check_settings: |_| Ok(()),
    ops_addr: "127.0.0.1:9104",
    state: |_, parts| ScheduleQueries::new(parts.pool),
    endpoints,
    consumers,
    actors,
};

fn endpoints() -> Endpoints<ScheduleQueries> {
    Endpoints::<ScheduleQueries>::new()
        .on::<ListSchedules, _, _, _>(|schedules, _, request| async move {
            schedules.list(request.user(), request.body).await
        })
        .on::<GetSchedule, _, _, _>(|schedules, _, request| async move {
            schedules.get(request.user(), request.body).await
        })
}

fn consumers(platform: &Platform, parts: &ServiceParts) -> Vec<ConsumerStarter> {
    let tasks = ConsumerSpec {
        service: "scheduler",
        durable: "scheduler-tasks".into(),
        stream: TASKS_STREAM,
        subjects: vec!["tasks.>".into()],
        workers: 4,
    };
    let users = ConsumerSpec {
        service: "scheduler",
        durable: "scheduler-users".into(),
        stream: AUDIT_STREAM,
        subjects: vec!["audit.user.>".into()],
        workers: 1,
    };
    let planner = TaskPlanner {
        tasks: CommandClient::new(platform.nats.clone(), Vec::new()),
    };
    vec![
        ConsumerStarter::effector(tasks, planner),
        ConsumerStarter::new(users, TimezoneProjection),
        directory::consumer("scheduler", &parts.directory),
    ]
}

fn actors() -> Vec<ActorStarter> {
    vec![ActorStarter::new(ReminderTimer, |_, parts| TimerArgs {
        pool: parts.pool.clone(),
        relay: parts.relay(),
    })]
}
