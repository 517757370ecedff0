//! What the tasks service does with identity's and projects' events: keeps
//! its directory, and when a project is deleted, deletes its tasks, each
//! with its own `task.deleted` (caused by the `project.deleted`), so audit,
//! schedules and feeds follow.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError};
use taskflow_runtime::directory::{self, DirectoryChange, DirectoryUpdates};
use taskflow_runtime::outbox::{self, RelayHandle};
use taskflow_schemas::events::{self, Changes};

use crate::service::{Caller, event_record};
use crate::store;

pub struct TaskDirectory {
    pub relay: RelayHandle,
    pub updates: DirectoryUpdates,
}

impl EventHandler for TaskDirectory {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        // The tasks first, as every write of a task locks them before the
        // membership it relies on: the two never wait on each other.
        let doomed = directory::deleted_project(event);
        if let Some(project) = doomed {
            store::lock_project(&mut *tx, project).await?;
        }
        let change = directory::apply(&mut *tx, event).await?;
        let DirectoryChange::ProjectDeleted(project) = change else {
            return Ok(());
        };
        let deleted = store::delete_project(&mut *tx, project).await?;
        let envelope = &event.envelope;
        let Some(actor) = envelope.actor_id else {
            return Err(HandlerError::Reject(
                "project.deleted names no actor".into(),
            ));
        };
        let caller = Caller::acting_on(actor, envelope.correlation_id.clone(), envelope.event_id);
        let records = deleted
            .iter()
            .map(|task| event_record(&caller, events::TASK_DELETED, task, Changes::new()))
            .map(|made| made.map(|(_, record)| record))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| HandlerError::Reject(error.error))?;
        outbox::enqueue_records(tx, &records).await?;
        tracing::info!(
            service = "tasks",
            project_id = %project,
            tasks = deleted.len(),
            "a deleted project's tasks deleted"
        );
        Ok(())
    }

    fn committed(&self) {
        self.updates.changed();
        self.relay.wake();
    }
}
