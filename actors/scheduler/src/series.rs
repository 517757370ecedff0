//! The series table: each recurring task's series follows its newest task,
//! and the completion of that task plans the next one.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::task::{Task, TaskStatus};
use uuid::Uuid;

use crate::recurrence::{self, Anchor};

/// The next task of a series, to ask the tasks service for once the
/// completion that planned it is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextTask {
    pub series_id: Uuid,
    pub previous_task_id: Uuid,
    /// Who the next task is made as: the series' creator.
    pub creator_id: Uuid,
    pub due_date: DateTime<Utc>,
    /// Stable for one series and one due date; names the request, so the
    /// tasks service makes it once however often it is asked.
    pub occurrence_id: Uuid,
    pub correlation_id: String,
    pub causation_id: Uuid,
}

/// The id of the occurrence of `series` due at `due`.
pub fn occurrence_id(series: Uuid, due: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(&series, &due.timestamp_micros().to_be_bytes())
}

#[derive(sqlx::FromRow)]
struct SeriesRow {
    current_task_id: Uuid,
    anchor_day: i16,
    anchor_time: NaiveTime,
    next_due: Option<DateTime<Utc>>,
}

/// Follows `task` (as the event `cause` left it) into its series: the
/// series tracks its newest task; when that task was just completed, the
/// next due date is worked out and returned to be created. Events of an
/// older task of the series change nothing.
pub async fn follow(
    tx: &mut PgConnection,
    task: &Task,
    deleted: bool,
    cause: &EventEnvelope,
) -> Result<Option<NextTask>, sqlx::Error> {
    let Some(series_id) = task.series_id else {
        return Ok(None);
    };
    let (Some(rule), Some(due)) = (&task.recurrence, task.due_date) else {
        // The recurrence was removed from its newest task: the series ends.
        end(tx, series_id, task.id).await?;
        return Ok(None);
    };
    if deleted {
        if task.status != TaskStatus::Complete {
            end(tx, series_id, task.id).await?;
        }
        return Ok(None);
    }
    let zone = timezone_of(tx, task.creator_id).await?;
    let anchor = Anchor::of(due, zone);
    let row: Option<SeriesRow> = sqlx::query_as(
        "INSERT INTO series (id, current_task_id, recurrence, anchor_day, anchor_time, timezone, \
           is_active, current_due, title, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, true, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET \
           current_task_id = EXCLUDED.current_task_id, recurrence = EXCLUDED.recurrence, \
           title = EXCLUDED.title, \
           timezone = EXCLUDED.timezone, is_active = true, current_due = EXCLUDED.current_due, \
           updated_at = now(), \
           next_due = CASE WHEN series.current_task_id = EXCLUDED.current_task_id \
             THEN series.next_due END \
         WHERE series.current_task_id <= EXCLUDED.current_task_id \
         RETURNING current_task_id, anchor_day, anchor_time, next_due",
    )
    .bind(series_id)
    .bind(task.id)
    .bind(serde_json::to_value(rule).expect("a rule serializes"))
    .bind(anchor.day as i16)
    .bind(anchor.time)
    .bind(zone.name())
    .bind(due)
    .bind(&task.title)
    // Listed newest first by when its first task was made, not by when
    // this consumer's transaction began (two at once would tie).
    .bind(task.created_at)
    .fetch_optional(&mut *tx)
    .await?;
    // None: an event of an older task of the series.
    let Some(series) = row else {
        return Ok(None);
    };
    let just_completed = task.status == TaskStatus::Complete && series.next_due.is_none();
    if !just_completed {
        return Ok(None);
    }
    let anchor = Anchor {
        day: series.anchor_day as u32,
        time: series.anchor_time,
    };
    let completed_at = task.completed_at.unwrap_or(cause.occurred_at);
    let Some(next_due) = recurrence::next_due(rule, zone, anchor, Some(due), completed_at) else {
        end(tx, series_id, series.current_task_id).await?;
        return Ok(None);
    };
    sqlx::query("UPDATE series SET next_due = $2, updated_at = now() WHERE id = $1")
        .bind(series_id)
        .bind(next_due)
        .execute(&mut *tx)
        .await?;
    Ok(Some(NextTask {
        series_id,
        previous_task_id: task.id,
        creator_id: task.creator_id,
        due_date: next_due,
        occurrence_id: occurrence_id(series_id, next_due),
        correlation_id: cause.correlation_id.clone(),
        causation_id: cause.event_id,
    }))
}

/// Ends `series` if `task_id` is still its newest task.
async fn end(tx: &mut PgConnection, series: Uuid, task_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE series SET is_active = false, updated_at = now() \
         WHERE id = $1 AND current_task_id = $2",
    )
    .bind(series)
    .bind(task_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The user's time zone, as identity last announced it; UTC until then.
async fn timezone_of(tx: &mut PgConnection, user: Uuid) -> Result<Tz, sqlx::Error> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT timezone FROM user_timezones WHERE user_id = $1")
            .bind(user)
            .fetch_optional(tx)
            .await?;
    Ok(name.and_then(|name| name.parse().ok()).unwrap_or(Tz::UTC))
}

/// Keeps a user's time zone from identity's `user.registered` and
/// `user.updated` as of `profile_version`, unless a newer profile was kept
/// already (two instances may commit a user's events out of order).
pub async fn set_timezone(
    tx: &mut PgConnection,
    user: Uuid,
    timezone: &str,
    profile_version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO user_timezones (user_id, timezone, profile_version) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET timezone = EXCLUDED.timezone, \
           profile_version = EXCLUDED.profile_version \
         WHERE user_timezones.profile_version <= EXCLUDED.profile_version",
    )
    .bind(user)
    .bind(timezone)
    .bind(profile_version)
    .execute(tx)
    .await?;
    Ok(())
}
