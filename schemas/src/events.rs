//! Event types and their payloads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::task::Task;

pub const TASK_CREATED: &str = "task.created";
pub const TASK_UPDATED: &str = "task.updated";
pub const TASK_COMPLETED: &str = "task.completed";
pub const TASK_DELETED: &str = "task.deleted";
pub const REMINDER_DUE: &str = "reminder.due";
pub const NOTIFICATION_SENT: &str = "notification.sent";
pub const NOTIFICATION_FAILED: &str = "notification.failed";
pub const PROJECT_CREATED: &str = "project.created";
pub const PROJECT_UPDATED: &str = "project.updated";
pub const PROJECT_DELETED: &str = "project.deleted";
pub const PROJECT_MEMBER_ADDED: &str = "project.member_added";
pub const PROJECT_MEMBER_ROLE_CHANGED: &str = "project.member_role_changed";
pub const PROJECT_MEMBER_REMOVED: &str = "project.member_removed";
pub const USER_REGISTERED: &str = "user.registered";
pub const USER_UPDATED: &str = "user.updated";
pub const USER_ROLE_CHANGED: &str = "user.role_changed";

/// One changed field of a task: its value before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    #[schema(value_type = Value)]
    pub old: serde_json::Value,
    #[schema(value_type = Value)]
    pub new: serde_json::Value,
}

/// Field name → change; ordered so the same change always reads the same.
pub type Changes = BTreeMap<String, FieldChange>;

/// Payload of `task.created`, `task.updated`, `task.completed`, `task.deleted`:
/// the task after the change, and for updates what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskEventPayload {
    pub task: Task,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: Changes,
}

/// Payload of `reminder.due` (on `REMINDERS`, `reminders.due.<task_id>`):
/// which reminder fired, when it was due, and the task as the change that
/// set it left it (its title, and who is told: see the notifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReminderDuePayload {
    /// Stable for one task and one fire time: a reminder fires once.
    pub reminder_id: Uuid,
    pub fire_at: DateTime<Utc>,
    pub task: Task,
}

/// Payload of `user.registered` and `user.updated` (on `AUDIT`): the profile
/// after the change, and for updates what changed. Other services keep their
/// own projection of it (the scheduler the time zone, the notifier the email
/// and its setting) rather than read identity's database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserEventPayload {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    /// IANA time zone; events from before it was carried mean `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default = "enabled")]
    pub email_notifications: bool,
    /// The user's profile version (1 at registration, one more with each
    /// change; 0 in events from before it was carried): a copy of the
    /// profile is kept only from a version at least as new as its own.
    #[serde(default)]
    pub version: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: Changes,
}

impl UserEventPayload {
    /// The profile a `user.registered` or `user.updated` event carries;
    /// `None` for any other event type.
    pub fn of(envelope: &crate::EventEnvelope) -> Option<Result<Self, serde_json::Error>> {
        (envelope.event_type == USER_REGISTERED || envelope.event_type == USER_UPDATED)
            .then(|| serde_json::from_value(envelope.payload.clone()))
    }
}

fn utc() -> String {
    "UTC".into()
}

fn enabled() -> bool {
    true
}

/// Payload of `user.role_changed` (on `AUDIT`): the role a user holds from
/// now on, granted by `make-admin` or taken back by `revoke-admin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoleChangePayload {
    pub user_id: Uuid,
    pub role: crate::user::Role,
    /// Counts the user's role changes: a directory applies this one only
    /// over an older one. 0 in events from before it was counted.
    #[serde(default)]
    pub version: i64,
}
