//! Turns every consumed event into one audit record, and keeps who may read
//! each task's records up to date from the task events themselves (the audit
//! service never reads another service's database).

use serde::Deserialize;
use sqlx::PgConnection;
use taskflow_runtime::access::{self, TaskReaders};
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError};
use taskflow_schemas::access::Participants;
use taskflow_schemas::audit::AuditChange;
use taskflow_schemas::events::Changes;
use uuid::Uuid;

use crate::store;

pub struct AuditRecorder;

/// What the recorder needs of a task event's payload.
#[derive(Deserialize)]
struct TaskPayload {
    task: TaskPeople,
    #[serde(default)]
    changes: Changes,
}

#[derive(Deserialize)]
struct TaskPeople {
    creator_id: Uuid,
    #[serde(default)]
    project_id: Option<Uuid>,
    assignee_id: Option<Uuid>,
    #[serde(default)]
    observer_ids: Vec<Uuid>,
    version: i64,
}

impl EventHandler for AuditRecorder {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        self.apply_batch(tx, &[event]).await
    }

    /// One multi-row statement for the records and one for the readers,
    /// whatever the number of events (and two more when tasks moved to
    /// another project: their records move with them).
    async fn apply_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&ConsumedEvent],
    ) -> Result<(), HandlerError> {
        let mut records = Vec::with_capacity(events.len());
        let mut readers = Vec::new();
        let mut moved = Vec::new();
        for event in events {
            let (changes, task_readers) = examine(event)?;
            if let Some(task) = &task_readers
                && changes.iter().any(|change| change.field == "project_id")
            {
                moved.push(task.task_id);
            }
            readers.extend(task_readers);
            records.push((*event, changes));
        }
        access::keep(tx, &readers).await?;
        store::place_moved(tx, &moved).await?;
        store::insert_records(tx, &records).await?;
        Ok(())
    }
}

/// The changes an event reports, and for a task event who may read its task.
type Examined = (Vec<AuditChange>, Option<TaskReaders>);

fn examine(event: &ConsumedEvent) -> Result<Examined, HandlerError> {
    let envelope = &event.envelope;
    if !envelope.event_type.starts_with("task.") {
        return Ok((Vec::new(), None));
    }
    let payload = TaskPayload::deserialize(&envelope.payload)
        .map_err(|error| HandlerError::Reject(format!("not a task event payload: {error}")))?;
    let task_id = envelope
        .task_id
        .ok_or_else(|| HandlerError::Reject("a task event without task_id".into()))?;
    let changes = payload
        .changes
        .into_iter()
        .map(|(field, change)| AuditChange {
            field,
            old: change.old,
            new: change.new,
        })
        .collect();
    Ok((changes, Some(readers_of(task_id, &payload.task))))
}

/// Who may read the task's records, as of this event.
fn readers_of(task_id: Uuid, task: &TaskPeople) -> TaskReaders {
    let participants = Participants {
        creator: task.creator_id,
        project: task.project_id,
        assignee: task.assignee_id,
        observers: &task.observer_ids,
    };
    TaskReaders {
        task_id,
        access: participants.read_access(),
        version: task.version,
    }
}
