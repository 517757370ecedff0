//! Sending a command to a service and reading its reply.

use std::time::Duration;

use async_nats::RequestErrorKind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskflow_schemas::commands::Reply;
use taskflow_schemas::subjects::REQUEST_ID_HEADER;
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::error::ApiError;

/// A service that has not answered by then is treated as down.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CommandClient {
    nats: async_nats::Client,
}

impl CommandClient {
    pub fn new(nats: async_nats::Client) -> Self {
        Self { nats }
    }

    /// Requests `subject` with `body`, passing the request id along.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        subject: &'static str,
        request_id: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let service = subject.split('.').nth(1).unwrap_or("a service");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, request_id);
        let payload = serde_json::to_vec(body).expect("commands serialize");
        let request = self
            .nats
            .request_with_headers(subject, headers, payload.into());
        let message = match tokio::time::timeout(COMMAND_TIMEOUT, request).await {
            Err(_) => return Err(ApiError::unavailable(&format!("the {service} service"))),
            Ok(Err(error)) => {
                return Err(match error.kind() {
                    RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => {
                        ApiError::unavailable(&format!("the {service} service"))
                    }
                    RequestErrorKind::MaxPayloadExceeded => {
                        ApiError::new(ErrorCode::PayloadTooLarge, "the request is too large")
                    }
                    RequestErrorKind::InvalidSubject | RequestErrorKind::Other => {
                        ApiError::unavailable("the message bus")
                    }
                });
            }
            Ok(Ok(message)) => message,
        };
        let reply: Reply<T> = serde_json::from_slice(&message.payload).map_err(|error| {
            tracing::error!(subject, %error, "unreadable command reply");
            ApiError(ErrorBody::new(ErrorCode::Internal, "internal error"))
        })?;
        Result::<T, ErrorBody>::from(reply).map_err(ApiError)
    }
}
