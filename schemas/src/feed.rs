//! The frames of the WebSocket live feed (`GET /ws`).

use serde::{Deserialize, Serialize};

use crate::envelope::EventEnvelope;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// The first frame, unless the token came as `?token=`; may carry the
    /// cursor to resume from.
    Authenticate {
        token: String,
        #[serde(default)]
        cursor: Option<u64>,
    },
    /// Replay everything after `cursor` (a `TASKS` stream sequence), then go on live.
    Resume { cursor: u64 },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authenticated, and the replay (if any) is over: live from here.
    Ready { cursor: u64 },
    /// A task event the user may see; `cursor` is its `TASKS` sequence.
    Event {
        cursor: u64,
        event: Box<EventEnvelope>,
    },
    /// One of the user's in-app notifications.
    Notification { notification: serde_json::Value },
    /// The asked cursor is older than what the stream holds: reload over
    /// REST, then continue from `cursor`.
    ResyncRequired { cursor: u64 },
    /// Bad input (or a slow client); the connection closes after it.
    Error { error: String, code: String },
}
