//! Event types and their payloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::task::Task;

pub const TASK_CREATED: &str = "task.created";
pub const TASK_UPDATED: &str = "task.updated";
pub const TASK_COMPLETED: &str = "task.completed";
pub const TASK_DELETED: &str = "task.deleted";
pub const USER_REGISTERED: &str = "user.registered";
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

/// Payload of `user.registered` (on `AUDIT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserRegisteredPayload {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
}
