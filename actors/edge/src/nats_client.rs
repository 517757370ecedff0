//! Sending a command to a service and reading its reply: over NATS, or
//! straight to the service's workers when it runs in this process.

use std::time::{Duration, SystemTime};

use async_nats::RequestErrorKind;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use taskflow_runtime::service::LocalCommands;
use taskflow_schemas::subjects::{DEADLINE_HEADER, REQUEST_ID_HEADER};
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::error::ApiError;

/// A service that has not answered by then is treated as down.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than the deadline it sends the edge waits for a reply: a
/// service cancels a write still running at the deadline, and the reply
/// saying so (or the commit that beat it) arrives within this margin, so
/// the client never gets 503 for a write that happened.
const REPLY_GRACE: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct CommandClient {
    nats: async_nats::Client,
    local: Vec<LocalCommands>,
}

impl CommandClient {
    /// Commands go to `local` services directly and to all others over NATS.
    pub fn new(nats: async_nats::Client, local: Vec<LocalCommands>) -> Self {
        Self { nats, local }
    }

    /// Sends `body` to `subject`, passing the request id along, and decodes the reply.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        subject: &'static str,
        request_id: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let ok = self.send_raw(subject, request_id, body).await?;
        serde_json::from_str(ok.get()).map_err(|error| {
            tracing::error!(subject, %error, "unreadable command reply");
            ApiError::from(ErrorBody::new(ErrorCode::Internal, "internal error"))
        })
    }

    /// Like [`CommandClient::send`], but hands back the reply's `ok` JSON as
    /// it came, for a handler that passes it on unchanged.
    pub async fn send_raw<B: Serialize>(
        &self,
        subject: &'static str,
        request_id: &str,
        body: &B,
    ) -> Result<Box<RawValue>, ApiError> {
        let service = subject.split('.').nth(1).unwrap_or("a service");
        let unavailable = || ApiError::unavailable(&format!("the {service} service"));
        let payload = Bytes::from(serde_json::to_vec(body).expect("commands serialize"));
        // The service drops the command if it only gets to it after we gave up.
        let deadline = SystemTime::now() + COMMAND_TIMEOUT;
        let reply = match self.local.iter().find(|local| local.serves(subject)) {
            Some(local) => {
                let request = local.request(subject, request_id.to_owned(), deadline, payload);
                match tokio::time::timeout(COMMAND_TIMEOUT + REPLY_GRACE, request).await {
                    Ok(Some(reply)) => reply,
                    _ => return Err(unavailable()),
                }
            }
            None => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(REQUEST_ID_HEADER, request_id);
                let millis = deadline
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                headers.insert(DEADLINE_HEADER, millis.to_string().as_str());
                let request = self.nats.request_with_headers(subject, headers, payload);
                match tokio::time::timeout(COMMAND_TIMEOUT + REPLY_GRACE, request).await {
                    Ok(Ok(message)) => message.payload,
                    Err(_) => return Err(unavailable()),
                    Ok(Err(error)) => {
                        return Err(match error.kind() {
                            RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => {
                                unavailable()
                            }
                            RequestErrorKind::MaxPayloadExceeded => ApiError::new(
                                ErrorCode::PayloadTooLarge,
                                "the request is too large",
                            ),
                            RequestErrorKind::InvalidSubject | RequestErrorKind::Other => {
                                ApiError::unavailable("the message bus")
                            }
                        });
                    }
                }
            }
        };
        let reply: RawReply = serde_json::from_slice(&reply).map_err(|error| {
            tracing::error!(subject, %error, "unreadable command reply");
            ApiError::from(ErrorBody::new(ErrorCode::Internal, "internal error"))
        })?;
        match reply {
            RawReply { ok: Some(ok), .. } => Ok(ok),
            RawReply {
                error: Some(error),
                code: Some(code),
                field,
                ..
            } => Err(ApiError::from(ErrorBody { error, code, field })),
            _ => {
                tracing::error!(subject, "a command reply with neither ok nor error");
                Err(ApiError::from(ErrorBody::new(
                    ErrorCode::Internal,
                    "internal error",
                )))
            }
        }
    }
}

/// `{"ok": ...}` or `{"error", "code", "field"?}`, read without buffering
/// the `ok` value (serde's untagged enums would).
#[derive(Deserialize)]
struct RawReply {
    ok: Option<Box<RawValue>>,
    error: Option<String>,
    code: Option<ErrorCode>,
    field: Option<String>,
}
