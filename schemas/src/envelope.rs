//! The envelope every event on every stream is wrapped in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The only `schema_version` this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// One event, as published on JetStream with `Nats-Msg-Id = event_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventEnvelope {
    /// UUID v7, so ids sort by the time they were made.
    pub event_id: Uuid,
    /// `task.created`, `user.registered`, ...
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub task_id: Option<Uuid>,
    /// The user who caused it; null for events the system raised itself.
    pub actor_id: Option<Uuid>,
    /// The `X-Request-Id` of the HTTP request (or NATS command) at the root of it.
    pub correlation_id: String,
    /// The `event_id` of the event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl EventEnvelope {
    /// A new event of this process, stamped now with a fresh v7 id.
    pub fn new(
        event_type: impl Into<String>,
        task_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        correlation_id: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: SCHEMA_VERSION,
            occurred_at: Utc::now(),
            task_id,
            actor_id,
            correlation_id: correlation_id.into(),
            causation_id: None,
            payload,
        }
    }

    /// Why a decoded envelope cannot be taken in, if it cannot: the bounds
    /// every producer here keeps, checked again on what arrives from outside
    /// (an injected event), so no index or header downstream chokes on it.
    pub fn out_of_bounds(&self) -> Option<String> {
        use crate::limits::{MAX_EVENT_TYPE, REQUEST_ID_RULE, is_valid_request_id};
        if !is_valid_request_id(self.correlation_id.as_bytes()) {
            return Some(format!("correlation_id {REQUEST_ID_RULE}"));
        }
        if self.event_type.is_empty()
            || self.event_type.len() > MAX_EVENT_TYPE
            || !self.event_type.bytes().all(|b| b.is_ascii_graphic())
        {
            return Some(format!(
                "event_type must be 1 to {MAX_EVENT_TYPE} visible ASCII characters"
            ));
        }
        None
    }
}
