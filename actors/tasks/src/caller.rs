//! Who asks the tasks service for something, and what comes with the ask.

use std::time::SystemTime;

use taskflow_runtime::bus::CommandContext;
use taskflow_schemas::commands::Principal;
use uuid::Uuid;

/// Who asks, and under which request id (the events' correlation id).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whether they are an admin is the directory's to say, not the token's.
    pub user_id: Uuid,
    pub request_id: String,
    /// When the caller stops waiting: a write still blocked then is cancelled.
    pub deadline: Option<SystemTime>,
    /// `Idempotency-Key`: a create retried with it returns the first reply.
    pub idempotency_key: Option<String>,
    /// The event this command follows from (a completion, for the next
    /// occurrence of a series); its events name it as their cause.
    pub causation_id: Option<Uuid>,
}

impl Caller {
    pub fn new(context: CommandContext, user: Principal) -> Self {
        Self {
            user_id: user.id,
            request_id: context.request_id,
            deadline: context.deadline,
            idempotency_key: context.idempotency_key,
            causation_id: context.causation_id,
        }
    }

    /// `actor`, acting through an event of another service (`cause`), whose
    /// correlation id the consequences keep.
    pub fn acting_on(actor: Uuid, correlation_id: String, cause: Uuid) -> Self {
        Self {
            user_id: actor,
            request_id: correlation_id,
            deadline: None,
            idempotency_key: None,
            causation_id: Some(cause),
        }
    }
}
