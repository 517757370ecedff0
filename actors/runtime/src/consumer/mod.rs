//! The one way a service consumes a stream. A [`StreamConsumer`] actor owns
//! a durable pull consumer and hands what it pulls to its workers, split by
//! task id: one task's events always reach the same worker, in stream order,
//! while other tasks' events go on in parallel. A worker applies its events
//! with the service's [`EventHandler`] inside a database transaction that
//! also records their ids (the inbox), and acks only after that commit.
//!
//! - A redelivered or re-injected event finds its id recorded and changes
//!   nothing (`consumed_events`, a runtime migration in every service database).
//! - An unknown `schema_version` is logged, counted, acked and skipped; so
//!   is an event the handler says it has nothing to do with
//!   ([`EventHandler::ignores`]), without a transaction.
//! - A message that is not an envelope, a handler that rejects an event, and
//!   an event that failed `MAX_DELIVER` times go to `DLQ` as
//!   `dlq.<consumer>`, with the reason and the original subject, stream and
//!   sequence in headers; then the message is terminated. One bad message
//!   never holds up the ones behind it for longer than its retries.
//! - A retryable failure (the database is down) is answered with a nak and a
//!   growing delay.
//!
//! A handler whose effect lies outside the database (an email, a webhook)
//! is an [`effector::Effector`]: it records a delivery in the transaction,
//! and the runtime performs it afterwards with its own retries.
//!
//! Any number of instances may run the same consumer: the server spreads the
//! messages over them, and the recorded ids keep effects single.

mod applier;
mod dlq;
pub mod effector;
mod inbox;
mod stream;

use serde::Deserialize;
use sqlx::PgConnection;
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::events::{TASK_CREATED, TaskEventPayload};

use crate::store::postgres::DatabaseErrorKind;

pub use dlq::dlq_headers;
pub use stream::{ACK_WAIT, ConsumerArgs, ConsumerMessage, StreamConsumer};

/// Deliveries before an event that keeps failing goes to the DLQ.
pub const MAX_DELIVER: i64 = 5;

/// A durable consumer: its name (also the DLQ subject's last token), stream
/// and subjects, and how many workers apply its events.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub service: &'static str,
    pub durable: String,
    pub stream: &'static str,
    pub subjects: Vec<String>,
    /// Workers applying events at once, each with its own transaction; the
    /// events of one task always go to the same one. At least 1.
    pub workers: usize,
}

/// One event, decoded, with where it came from.
#[derive(Debug, Clone)]
pub struct ConsumedEvent {
    pub envelope: EventEnvelope,
    pub subject: String,
    pub stream: String,
    pub stream_seq: u64,
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Something it depends on failed; the same event may succeed later.
    #[error("retryable: {0}")]
    Retry(String),
    /// The event can never be applied (it contradicts what the handler
    /// needs); it goes to the DLQ at once.
    #[error("rejected: {0}")]
    Reject(String),
}

impl From<sqlx::Error> for HandlerError {
    /// Data the handler's tables refuse fails the same way every time: it
    /// goes to the DLQ. Everything else may succeed on a later delivery.
    fn from(error: sqlx::Error) -> Self {
        match crate::store::postgres::classify(&error) {
            DatabaseErrorKind::Refused | DatabaseErrorKind::Constraint { .. } => {
                Self::Reject(error.to_string())
            }
            DatabaseErrorKind::Unavailable | DatabaseErrorKind::Internal => {
                Self::Retry(error.to_string())
            }
        }
    }
}

/// The profile a `user.registered` or `user.updated` event carries, for the
/// services that keep a projection of users; `None` for other events. A
/// payload that is not a profile is rejected (the DLQ).
pub fn user_profile(
    event: &ConsumedEvent,
) -> Result<Option<taskflow_schemas::events::UserEventPayload>, HandlerError> {
    taskflow_schemas::events::UserEventPayload::of(&event.envelope)
        .transpose()
        .map_err(|error| HandlerError::Reject(format!("not a user event payload: {error}")))
}

/// The payload of a well-formed `task.created` (one about the task its
/// envelope names); `None` for any other event, and for one that is not
/// well-formed, which the handler's `apply` rejects.
pub fn created_task(event: &ConsumedEvent) -> Option<TaskEventPayload> {
    let envelope = &event.envelope;
    if envelope.event_type != TASK_CREATED {
        return None;
    }
    TaskEventPayload::deserialize(&envelope.payload)
        .ok()
        .filter(|payload| envelope.task_id == Some(payload.task.id))
}

/// What a service does with each event of one consumer.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` inside `tx`; the runtime has recorded its id in the
    /// same transaction and commits both, or neither.
    fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether `event` changes nothing here, whenever and however often it
    /// is applied: such an event is acked without a transaction, and without
    /// an inbox record, which only guards effects. Most task events concern
    /// few services; a transaction for each costs every service a commit.
    /// An event that may not be understood (a payload to reject) is not
    /// ignored: it goes through [`EventHandler::apply`] to the DLQ.
    fn ignores(&self, event: &ConsumedEvent) -> bool {
        let _ = event;
        false
    }

    /// Applies several events, in order, inside one transaction. The default
    /// applies them one at a time; a handler that can write them together
    /// (multi-row statements) should.
    fn apply_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&ConsumedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for event in events {
                self.apply(tx, event).await?;
            }
            Ok(())
        }
    }

    /// Called after a transaction that applied events committed (an
    /// effector wakes its deliveries here).
    fn committed(&self) {}
}
