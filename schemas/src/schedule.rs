//! What the scheduler has in hand, and how to ask for it: pending reminders
//! and recurrence series, each with when it next fires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::task::Recurrence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// A task's reminder: fires once, at `next_fire_at`.
    Reminder,
    /// A recurrence series: its next task is made when the current one is
    /// completed, due at `next_fire_at`.
    Series,
}

/// A reminder or a series, as the scheduler keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// The reminder's id (stable for one task and one fire time) or the
    /// series' id (the tasks' `series_id`).
    pub id: Uuid,
    pub kind: ScheduleKind,
    /// The reminder's task, or the series' current task.
    pub task_id: Uuid,
    /// The task's title when the scheduler last heard of it.
    pub title: String,
    /// A pending reminder, or a series that goes on.
    pub is_active: bool,
    /// `pending`, `fired` or `cancelled` for a reminder; `active` or
    /// `ended` for a series.
    pub status: String,
    /// When it fires next: a pending reminder's time; the due date of a
    /// series' next task (null when it cannot be known before the
    /// completion, with `anchor: completion`, and for what no longer fires).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// A fired reminder's firing time.
    pub fired_at: Option<DateTime<Utc>>,
    /// A series' rule.
    pub recurrence: Option<Recurrence>,
    /// The time zone a series counts in (its creator's).
    pub timezone: Option<String>,
    /// A series' current task's due date.
    pub current_due: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/schedules` and `taskflow.scheduler.list`: newest first, of
/// the tasks the user may read (admins: all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Only pending reminders and going series (`true`), or only the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    /// 1..=200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (422 for one this API did not give out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// `GET /api/v1/schedules/{id}` and `taskflow.scheduler.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRef {
    pub schedule_id: Uuid,
}
