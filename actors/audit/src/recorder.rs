//! Turns every consumed event into one audit record, and keeps who may read
//! each task's records up to date from the task events themselves (the audit
//! service never reads another service's database).

use serde::Deserialize;
use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError};
use taskflow_schemas::audit::AuditChange;
use taskflow_schemas::events::Changes;
use uuid::Uuid;

use crate::store;

pub struct AuditRecorder;

/// What the recorder needs of a task event's payload.
#[derive(Deserialize)]
struct TaskPayload {
    task: TaskReaders,
    #[serde(default)]
    changes: Changes,
}

#[derive(Deserialize)]
struct TaskReaders {
    creator_id: Uuid,
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
        let envelope = &event.envelope;
        let mut changes = Vec::new();
        if envelope.event_type.starts_with("task.") {
            let payload: TaskPayload =
                serde_json::from_value(envelope.payload.clone()).map_err(|error| {
                    HandlerError::Reject(format!("not a task event payload: {error}"))
                })?;
            let task_id = envelope
                .task_id
                .ok_or_else(|| HandlerError::Reject("a task event without task_id".into()))?;
            let readers = readers_of(&payload.task);
            store::set_task_readers(tx, task_id, &readers, payload.task.version).await?;
            changes = payload
                .changes
                .into_iter()
                .map(|(field, change)| AuditChange {
                    field,
                    old: change.old,
                    new: change.new,
                })
                .collect();
        }
        store::insert_record(tx, event, &changes).await?;
        Ok(())
    }
}

fn readers_of(task: &TaskReaders) -> Vec<Uuid> {
    let mut readers = vec![task.creator_id];
    readers.extend(task.assignee_id);
    readers.extend(task.observer_ids.iter().copied());
    readers.sort();
    readers.dedup();
    readers
}
