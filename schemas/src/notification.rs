//! Notifications: what a user is told, on which channel, and how that went.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Why a user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A reminder of a task you created or are assigned fell due.
    Reminder,
    /// Someone else assigned a task to you.
    Assigned,
    /// Someone else completed a task you created or observe.
    Completed,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reminder => "reminder",
            Self::Assigned => "assigned",
            Self::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Listed by the API and pushed to the user's open live-feed connections.
    InApp,
    /// Sent over SMTP, when the user enabled email and SMTP is configured.
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InApp => "in_app",
            Self::Email => "email",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Pending,
    Sent,
    Failed,
}

/// One notification on one channel: created once per source event,
/// recipient and channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub recipient_id: Uuid,
    pub task_id: Option<Uuid>,
    pub kind: NotificationKind,
    pub channel: Channel,
    pub status: NotificationStatus,
    /// Tries so far (email; an in-app notification is sent as it is made).
    pub attempts: i32,
    /// Why the last try failed.
    pub error: Option<String>,
    /// What it says, e.g. `Reminder: call the plumber`.
    pub message: String,
    /// The event that caused it (a `reminder.due`, a task event).
    pub source_event_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/notifications` and `taskflow.notifier.list`: your
/// notifications, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NotificationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    /// Only those not yet read (`true`), or only those read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<bool>,
    /// 1..=200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (422 for one this API did not give out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// `POST /api/v1/notifications/{id}/read` and `taskflow.notifier.read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRef {
    pub notification_id: Uuid,
}

/// Payload of `notification.sent` and `notification.failed` (on `AUDIT`):
/// the notification as it now stands. The live feed pushes in-app ones to
/// their recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotificationEventPayload {
    pub notification: Notification,
}
