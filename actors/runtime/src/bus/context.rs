//! What a command carries besides its request: who to blame in the logs,
//! when its caller stops waiting, and the key that makes a retry safe. On
//! NATS these are headers, never body fields.

use std::time::{Duration, SystemTime};

use taskflow_schemas::ErrorBody;
use taskflow_schemas::limits::{
    IDEMPOTENCY_KEY_RULE, REQUEST_ID_RULE, is_valid_idempotency_key, is_valid_request_id,
};
use taskflow_schemas::subjects::{
    CAUSATION_ID_HEADER, DEADLINE_HEADER, IDEMPOTENCY_KEY_HEADER, REQUEST_ID_HEADER,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The caller's `X-Request-Id`, or a fresh id when it sent none; the
    /// events a command writes carry it as their correlation id.
    pub request_id: String,
    /// When the caller stops waiting for the reply (`Taskflow-Deadline`,
    /// Unix milliseconds); none for a caller that waits as long as it takes.
    pub deadline: Option<SystemTime>,
    /// `Idempotency-Key`, for the commands that honour one.
    pub idempotency_key: Option<String>,
    /// `Taskflow-Causation-Id`: the event that made a service send this
    /// command (the scheduler's completion); the events it writes name it.
    pub causation_id: Option<uuid::Uuid>,
}

impl CommandContext {
    pub fn new(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            deadline: None,
            idempotency_key: None,
            causation_id: None,
        }
    }

    pub fn caused_by(mut self, event_id: uuid::Uuid) -> Self {
        self.causation_id = Some(event_id);
        self
    }

    pub fn with_idempotency_key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key;
        self
    }

    /// Whether the caller has given up waiting: its work would be a write
    /// nobody is told about.
    pub fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| SystemTime::now() >= deadline)
    }

    /// Read from a NATS request's headers; an `X-Request-Id` out of bounds
    /// is refused by name, a missing one is made up.
    pub(crate) fn from_headers(headers: Option<&async_nats::HeaderMap>) -> Result<Self, ErrorBody> {
        let header = |name: &str| headers.and_then(|headers| headers.get(name));
        let request_id = match header(REQUEST_ID_HEADER) {
            None => uuid::Uuid::now_v7().to_string(),
            Some(value) if is_valid_request_id(value.as_str().as_bytes()) => {
                value.as_str().to_owned()
            }
            Some(_) => return Err(ErrorBody::invalid(REQUEST_ID_HEADER, REQUEST_ID_RULE)),
        };
        let deadline = header(DEADLINE_HEADER)
            .and_then(|value| value.as_str().parse::<u64>().ok())
            .and_then(|millis| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis)));
        let idempotency_key = match header(IDEMPOTENCY_KEY_HEADER) {
            None => None,
            Some(key) if is_valid_idempotency_key(key.as_str().as_bytes()) => {
                Some(key.as_str().to_owned())
            }
            Some(_) => {
                return Err(ErrorBody::invalid(
                    IDEMPOTENCY_KEY_HEADER,
                    IDEMPOTENCY_KEY_RULE,
                ));
            }
        };
        let causation_id = match header(CAUSATION_ID_HEADER) {
            None => None,
            Some(value) => match value.as_str().parse() {
                Ok(id) => Some(id),
                Err(_) => return Err(ErrorBody::invalid(CAUSATION_ID_HEADER, "must be a UUID")),
            },
        };
        Ok(Self {
            request_id,
            deadline,
            idempotency_key,
            causation_id,
        })
    }

    pub(crate) fn to_headers(&self) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, self.request_id.as_str());
        if let Some(deadline) = self.deadline {
            let millis = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            headers.insert(DEADLINE_HEADER, millis.to_string().as_str());
        }
        if let Some(key) = &self.idempotency_key {
            headers.insert(IDEMPOTENCY_KEY_HEADER, key.as_str());
        }
        if let Some(cause) = self.causation_id {
            headers.insert(CAUSATION_ID_HEADER, cause.to_string().as_str());
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_reads_back_from_the_headers_it_wrote() {
        let sent = CommandContext {
            request_id: "req-1".into(),
            deadline: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            idempotency_key: Some("key-1".into()),
            causation_id: Some(uuid::Uuid::now_v7()),
        };
        let read = CommandContext::from_headers(Some(&sent.to_headers())).unwrap();
        assert_eq!(read, sent);
        let bare = CommandContext::from_headers(None).unwrap();
        assert_eq!((bare.deadline, bare.idempotency_key), (None, None));
        assert!(!bare.request_id.is_empty());
    }

    #[test]
    fn a_request_id_out_of_bounds_is_refused_by_name() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, "x".repeat(500).as_str());
        let refused = CommandContext::from_headers(Some(&headers)).unwrap_err();
        assert_eq!(refused.field.as_deref(), Some(REQUEST_ID_HEADER));
    }
}
