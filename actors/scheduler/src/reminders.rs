//! The reminders table: what a task event means for its reminder, and the
//! firing of those that came due.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use taskflow_runtime::outbox::{self, OutboxRecord};
use taskflow_schemas::events::{REMINDER_DUE, ReminderDuePayload};
use taskflow_schemas::subjects::reminder_subject;
use taskflow_schemas::task::{Task, TaskStatus};
use taskflow_schemas::{ErrorBody, EventEnvelope};
use uuid::Uuid;

/// The channel a commit that added a pending reminder notifies, so every
/// scheduler instance's timer looks again at what is due next.
pub const CHANNEL: &str = "taskflow_reminders";

/// When `task`'s reminder should fire, if it should: an absolute
/// `reminder_time`, or `reminder_offset_minutes` before the due date, for a
/// task that is neither complete nor deleted.
pub fn fire_time(task: &Task, deleted: bool) -> Option<DateTime<Utc>> {
    if deleted || task.status == TaskStatus::Complete {
        return None;
    }
    task.reminder_time.or_else(|| {
        let offset = task.reminder_offset_minutes?;
        Some(task.due_date? - Duration::minutes(i64::from(offset)))
    })
}

/// One reminder per task and fire time: the same reminder set again is the
/// same row, so it never fires twice.
pub fn reminder_id(task_id: Uuid, fire_at: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(&task_id, &fire_at.timestamp_micros().to_be_bytes())
}

/// Brings `task`'s reminder in line with the event `cause`: a pending
/// reminder at another time is cancelled; one at the wanted time is
/// created (or taken back from cancelled), unless it already fired.
pub async fn reconcile(
    tx: &mut PgConnection,
    task: &Task,
    wanted: Option<DateTime<Utc>>,
    cause: &EventEnvelope,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reminders SET status = 'cancelled', updated_at = now() \
         WHERE task_id = $1 AND status = 'pending' AND fire_at IS DISTINCT FROM $2",
    )
    .bind(task.id)
    .bind(wanted)
    .execute(&mut *tx)
    .await?;
    let Some(fire_at) = wanted else {
        return Ok(());
    };
    let snapshot = serde_json::to_value(task).expect("a task serializes");
    // A pending or fired reminder keeps the event that set it as its cause;
    // its copy of the task (the title) follows the task.
    let pending: Option<bool> = sqlx::query_scalar(
        "INSERT INTO reminders (id, task_id, fire_at, status, task, cause_event_id, correlation_id, \
           created_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET \
           task = EXCLUDED.task, updated_at = now(), \
           status = CASE WHEN reminders.status = 'cancelled' THEN 'pending' ELSE reminders.status END, \
           cause_event_id = CASE WHEN reminders.status = 'cancelled' \
             THEN EXCLUDED.cause_event_id ELSE reminders.cause_event_id END, \
           correlation_id = CASE WHEN reminders.status = 'cancelled' \
             THEN EXCLUDED.correlation_id ELSE reminders.correlation_id END \
         RETURNING status = 'pending'",
    )
    .bind(reminder_id(task.id, fire_at))
    .bind(task.id)
    .bind(fire_at)
    .bind(&snapshot)
    .bind(cause.event_id)
    .bind(&cause.correlation_id)
    // Listed newest first by when the change that set it happened, not by
    // when this consumer's transaction began (two at once would tie).
    .bind(cause.occurred_at)
    .fetch_optional(&mut *tx)
    .await?;
    if pending == Some(true) {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A reminder the timer fired.
#[derive(sqlx::FromRow)]
struct Fired {
    id: Uuid,
    task_id: Uuid,
    fire_at: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    task: serde_json::Value,
    cause_event_id: Uuid,
    correlation_id: String,
}

/// Fires up to `limit` reminders due at `now`, in one transaction with their
/// `reminder.due` events (the outbox): each row is claimed with
/// `FOR UPDATE SKIP LOCKED`, so two instances never fire the same one.
/// Returns how late each fired.
pub async fn fire_due(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Duration>, sqlx::Error> {
    let fired: Vec<Fired> = sqlx::query_as(
        "WITH due AS ( \
           SELECT id FROM reminders WHERE status = 'pending' AND fire_at <= $1 \
           ORDER BY fire_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE reminders r SET status = 'fired', fired_at = clock_timestamp(), updated_at = now() \
         FROM due WHERE r.id = due.id \
         RETURNING r.id, r.task_id, r.fire_at, r.fired_at, r.task, r.cause_event_id, r.correlation_id",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut records = Vec::with_capacity(fired.len());
    let mut lateness = Vec::with_capacity(fired.len());
    for reminder in &fired {
        match due_event(reminder) {
            Ok(record) => records.push(record),
            // A task stored too large to publish again: nobody can be told;
            // the row stays fired rather than block the ones behind it.
            Err(error) => tracing::error!(
                service = "scheduler",
                task_id = %reminder.task_id,
                error = %error.error,
                "a reminder could not be published"
            ),
        }
        lateness.push(reminder.fired_at - reminder.fire_at);
    }
    outbox::enqueue_records(tx, &records).await?;
    Ok(lateness)
}

fn due_event(reminder: &Fired) -> Result<OutboxRecord, ErrorBody> {
    let task: Task = serde_json::from_value(reminder.task.clone())
        .map_err(|error| ErrorBody::invalid("task", error.to_string()))?;
    let payload = ReminderDuePayload {
        reminder_id: reminder.id,
        fire_at: reminder.fire_at,
        task,
    };
    let mut event = EventEnvelope::new(
        REMINDER_DUE,
        Some(reminder.task_id),
        None,
        reminder.correlation_id.clone(),
        serde_json::to_value(payload).expect("a payload serializes"),
    );
    event.causation_id = Some(reminder.cause_event_id);
    OutboxRecord::new(reminder_subject(reminder.task_id), &event)
}

/// Whether a pending reminder is due at `now`, and when the first one after
/// `now` is.
pub async fn due_and_next(
    connection: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<(bool, Option<DateTime<Utc>>), sqlx::Error> {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM reminders WHERE status = 'pending' AND fire_at <= $1), \
                (SELECT min(fire_at) FROM reminders WHERE status = 'pending' AND fire_at > $1)",
    )
    .bind(now)
    .fetch_one(connection)
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn task() -> Task {
        let now = Utc::now();
        Task {
            id: Uuid::now_v7(),
            project_id: None,
            title: "t".into(),
            description: None,
            status: TaskStatus::Pending,
            priority: Default::default(),
            labels: vec![],
            creator_id: Uuid::now_v7(),
            assignee_id: None,
            observer_ids: vec![],
            due_date: None,
            reminder_time: None,
            reminder_offset_minutes: None,
            recurrence: None,
            series_id: None,
            version: 1,
            created_at: now,
            updated_at: now,
            completed_at: None,
        }
    }

    #[test]
    fn a_reminder_is_absolute_or_counted_back_from_the_due_date() {
        let due: DateTime<Utc> = "2026-12-24T18:00:00Z".parse().unwrap();
        let mut relative = task();
        relative.due_date = Some(due);
        relative.reminder_offset_minutes = Some(90);
        assert_eq!(
            fire_time(&relative, false),
            Some("2026-12-24T16:30:00Z".parse().unwrap())
        );
        let mut absolute = task();
        absolute.reminder_time = Some(due);
        assert_eq!(fire_time(&absolute, false), Some(due));
        assert_eq!(fire_time(&absolute, true), None, "deleted");
        absolute.status = TaskStatus::Complete;
        assert_eq!(fire_time(&absolute, false), None, "complete");
        assert_eq!(fire_time(&task(), false), None, "none set");
    }

    #[test]
    fn one_task_and_time_make_one_reminder_id() {
        let id = Uuid::now_v7();
        let at = Utc::now();
        assert_eq!(reminder_id(id, at), reminder_id(id, at));
        assert_ne!(
            reminder_id(id, at),
            reminder_id(id, at + Duration::seconds(1))
        );
    }
}
