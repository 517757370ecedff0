//! Group commit for the plain create (no project, no `Idempotency-Key`): the
//! creates that arrive while a group is being written wait, and go together
//! in the next group, as one statement and one commit. Each caller is
//! answered only once its group has committed.
//!
//! Under one caller a group is one create, written at once: nothing waits on
//! a timer. Under many, a group is what arrived during the last commit, so
//! the database does one round trip and one WAL flush for all of them.
//!
//! A group the database refuses is written again one create at a time, so
//! one bad create fails alone. A group whose outcome is unknown (the
//! connection broke) is answered as unavailable, as a single create would be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use taskflow_runtime::outbox::OutboxRecord;
use taskflow_runtime::store::postgres::{self, DatabaseErrorKind};
use taskflow_schemas::task::Task;
use taskflow_schemas::{ErrorBody, ErrorCode};
use tokio::sync::oneshot;

use crate::error::TasksError;
use crate::store;

/// The most creates in one statement.
const MAX_GROUP: usize = 128;
/// The most event bytes in one statement (one create may exceed it alone).
const MAX_GROUP_BYTES: usize = 1 << 20;

/// Where plain creates wait for their group. Cloned into every caller.
#[derive(Clone)]
pub struct CreateGroups {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    /// Bounded without a limit of its own: each command worker of the
    /// service waits for its create, so at most one per worker is here.
    waiting: Mutex<Vec<WaitingCreate>>,
    /// Set while a writer task runs: at most one group is written at a time.
    writing: AtomicBool,
}

struct WaitingCreate {
    task: Task,
    event: OutboxRecord,
    answer: oneshot::Sender<Result<(), TasksError>>,
}

impl CreateGroups {
    pub fn new(pool: PgPool) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                waiting: Mutex::new(Vec::new()),
                writing: AtomicBool::new(false),
            }),
        }
    }

    /// Inserts `task` and its `event` with the next group; returns once
    /// that group committed (or failed).
    pub async fn insert(&self, task: Task, event: OutboxRecord) -> Result<(), TasksError> {
        let (answer, answered) = oneshot::channel();
        self.shared.queue().push(WaitingCreate {
            task,
            event,
            answer,
        });
        if !self.shared.writing.swap(true, Ordering::AcqRel) {
            // Its own task: a caller that stops waiting cancels nothing.
            tokio::spawn(self.shared.clone().write_while_waiting());
        }
        answered.await.unwrap_or_else(|_| {
            Err(ErrorBody::new(ErrorCode::Internal, "the write of this task stopped").into())
        })
    }
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<WaitingCreate>> {
        // A panic while holding it cannot leave the queue half-changed.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn write_while_waiting(self: Arc<Self>) {
        loop {
            let writing = ClearOnDrop(&self.writing);
            loop {
                let group = self.next_group();
                if group.is_empty() {
                    break;
                }
                write(&self.pool, group).await;
            }
            drop(writing);
            // A create queued after the last look, but before the flag was
            // cleared, saw the flag set and left its writing to this task.
            if self.queue().is_empty() || self.writing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// The oldest waiting creates, at most [`MAX_GROUP`] of them and
    /// [`MAX_GROUP_BYTES`] of events (at least one).
    fn next_group(&self) -> Vec<WaitingCreate> {
        let mut waiting = self.queue();
        let (mut count, mut bytes) = (0, 0);
        for create in waiting.iter() {
            bytes += create.event.body.len();
            if count > 0 && (count == MAX_GROUP || bytes > MAX_GROUP_BYTES) {
                break;
            }
            count += 1;
        }
        waiting.drain(..count).collect()
    }
}

/// Clears the writing flag however the writer ends, a panic included, so a
/// later create starts a new writer.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn write(pool: &PgPool, group: Vec<WaitingCreate>) {
    let tasks: Vec<&Task> = group.iter().map(|create| &create.task).collect();
    let events: Vec<&OutboxRecord> = group.iter().map(|create| &create.event).collect();
    let outcome = store::insert_many_with_events(pool, &tasks, &events).await;
    metrics::histogram!("taskflow_tasks_create_group_size").record(group.len() as f64);
    let error = match outcome {
        Ok(()) => {
            for create in group {
                let _ = create.answer.send(Ok(()));
            }
            return;
        }
        Err(error) => error,
    };
    let group = match <[WaitingCreate; 1]>::try_from(group) {
        Ok([alone]) => {
            let _ = alone.answer.send(Err(error.into()));
            return;
        }
        Err(group) => group,
    };
    if postgres::classify(&error) == DatabaseErrorKind::Unavailable {
        let body = postgres::error_body("tasks", &error);
        for create in group {
            let _ = create.answer.send(Err(TasksError::Rejected(body.clone())));
        }
        return;
    }
    // Nothing of the group was written: find which create the database refuses.
    tracing::info!(%error, creates = group.len(), "a group of creates was refused; writing them one by one");
    for create in group {
        let alone = store::insert_with_event(pool, &create.task, &create.event, None).await;
        let _ = create.answer.send(alone.map_err(TasksError::from));
    }
}
