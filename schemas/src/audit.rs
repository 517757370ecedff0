//! Audit records and how to ask for them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// One event as the audit trail keeps it, for ever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub task_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub correlation_id: String,
    pub causation_id: Option<Uuid>,
    /// Each changed field with its old and new value (empty when the event
    /// reports none).
    pub changes: Vec<AuditChange>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub stream: String,
    pub stream_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditChange {
    pub field: String,
    #[schema(value_type = Value)]
    pub old: serde_json::Value,
    #[schema(value_type = Value)]
    pub new: serde_json::Value,
}

/// `GET /api/v1/audit` and `taskflow.audit.list`: oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 64, pattern = r"^[^\u0000]*$")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Uuid>,
    /// The `X-Request-Id` of the request at the root of the events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 128, pattern = r"^[^\u0000]*$")]
    pub correlation_id: Option<String>,
    /// Events that happened at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Events that happened before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// 1..=200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (422 for one this API did not give out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// `taskflow.audit.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRef {
    pub record_id: Uuid,
}
