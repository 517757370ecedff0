//! What each task event means for time: its reminder is set, moved or
//! cancelled, and the completion of a recurring task plans the next one.
//! The next task is an effect: recorded in the event's transaction, then
//! asked of the tasks service (`CreateNextOccurrence`) with retries, under
//! an `Idempotency-Key` naming the occurrence, so it is made exactly once.

use serde::Deserialize;
use sqlx::PgConnection;
use taskflow_runtime::access::{self, TaskReaders};
use taskflow_runtime::bus::{CommandClient, CommandContext};
use taskflow_runtime::consumer::effector::{EffectError, Effector};
use taskflow_runtime::consumer::{ConsumedEvent, HandlerError, created_task};
use taskflow_schemas::catalogue::CreateNextOccurrence;
use taskflow_schemas::commands::{AsUser, NextOccurrence, Principal};
use taskflow_schemas::events::{TASK_DELETED, TaskEventPayload};
use taskflow_schemas::task::Task;
use taskflow_schemas::user::Role;
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::reminders;
use crate::series::{self, NextTask};

pub struct TaskPlanner {
    pub tasks: CommandClient,
}

impl Effector for TaskPlanner {
    type Effect = NextTask;

    // A completed occurrence must get its next task, however long the tasks
    // service or NATS is away: only a refusal ends the delivery.
    const MAX_ATTEMPTS: i32 = i32::MAX;

    async fn plan(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<Vec<NextTask>, HandlerError> {
        let envelope = &event.envelope;
        let payload = TaskEventPayload::deserialize(&envelope.payload)
            .map_err(|error| HandlerError::Reject(format!("not a task event payload: {error}")))?;
        let task = payload.task;
        if envelope.task_id != Some(task.id) {
            return Err(HandlerError::Reject(
                "the envelope's task_id is not its task's id".into(),
            ));
        }
        let deleted = envelope.event_type == TASK_DELETED;
        let newest = access::newest(tx, task.id, task.version).await?;
        access::keep(tx, &[TaskReaders::of(&task)]).await?;
        // An older version than one applied (another instance committed it
        // first) leaves the reminder to the newer one; a deletion (which
        // keeps its task's version) always cancels.
        if newest || deleted {
            let wanted = reminders::fire_time(&task, deleted);
            reminders::reconcile(tx, &task, wanted, envelope).await?;
        }
        let next = series::follow(tx, &task, deleted, envelope).await?;
        Ok(next.into_iter().collect())
    }

    fn ignores(&self, event: &ConsumedEvent) -> bool {
        created_task(event).is_some_and(|payload| keeps_nothing_of(&payload.task))
    }

    async fn perform(&self, _delivery: i64, next: &NextTask) -> Result<(), EffectError> {
        let context = CommandContext::new(next.correlation_id.clone())
            .with_idempotency_key(Some(format!("occurrence-{}", next.occurrence_id)))
            .caused_by(next.causation_id);
        let creator = Principal {
            id: next.creator_id,
            role: Role::Member,
        };
        let request = AsUser::new(
            creator,
            NextOccurrence {
                previous_task_id: next.previous_task_id,
                due_date: next.due_date,
            },
        );
        match self
            .tasks
            .call::<CreateNextOccurrence>(&context, request)
            .await
        {
            Ok(task) => {
                tracing::info!(
                    service = "scheduler",
                    series_id = %next.series_id,
                    task_id = %task.id,
                    due_date = %next.due_date,
                    "next occurrence created"
                );
                Ok(())
            }
            Err(error) => Err(effect_error(error)),
        }
    }
}

/// A refusal that will not change (the task is gone, the series is no longer
/// recurring) fails the delivery; the rest is retried.
fn effect_error(error: ErrorBody) -> EffectError {
    match error.code {
        ErrorCode::ServiceUnavailable
        | ErrorCode::IdempotencyKeyInFlight
        | ErrorCode::RateLimited
        | ErrorCode::Internal => EffectError::Retry(error.error),
        _ => EffectError::Permanent(format!("{}: {}", error.code.as_str(), error.error)),
    }
}

/// A new task with no reminder and no series: the scheduler keeps nothing
/// of it (there is no earlier reminder to cancel), until an event gives it one.
fn keeps_nothing_of(created: &Task) -> bool {
    reminders::fire_time(created, false).is_none() && created.series_id.is_none()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::keeps_nothing_of;
    use crate::reminders::tests::task;

    #[test]
    fn a_new_task_without_reminder_or_series_is_nothing_to_the_scheduler() {
        assert!(keeps_nothing_of(&task()));
        let mut reminded = task();
        reminded.reminder_time = Some(Utc::now());
        assert!(!keeps_nothing_of(&reminded));
        let mut recurring = task();
        recurring.series_id = Some(recurring.id);
        assert!(!keeps_nothing_of(&recurring));
    }
}
