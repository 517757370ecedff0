//! Serving a service's commands with the NATS service API, so that
//! `nats micro ls` lists them and any number of instances share the load
//! (the API's queue group).

use async_nats::service::{Service, ServiceExt};
use bytes::Bytes;
use futures::stream::{BoxStream, SelectAll, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskflow_schemas::commands::Reply;
use taskflow_schemas::subjects::REQUEST_ID_HEADER;
use taskflow_schemas::{ErrorBody, decode};

use crate::RuntimeError;

/// One command as it arrived, with what is needed to answer it.
pub struct CommandRequest {
    /// The endpoint subject, e.g. `taskflow.tasks.create`.
    pub subject: &'static str,
    /// The caller's `X-Request-Id`, or a fresh id when it sent none.
    pub request_id: String,
    request: async_nats::service::Request,
}

impl CommandRequest {
    pub fn payload(&self) -> &[u8] {
        &self.request.message.payload
    }

    /// Decodes the body; a failure names the field.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ErrorBody> {
        decode::json(self.payload())
    }

    /// Sends `{"ok": ...}` or the error shape back to the caller.
    pub async fn reply<T: Serialize>(&self, result: Result<T, ErrorBody>) {
        let reply: Reply<T> = result.into();
        let body = serde_json::to_vec(&reply).expect("replies serialize");
        if let Err(error) = self.request.respond(Ok(Bytes::from(body))).await {
            tracing::warn!(subject = self.subject, %error, "could not send a command reply");
        }
    }
}

/// Registers `endpoints` under the service `name` and returns the service
/// (keep it alive) and one stream of every request to any endpoint.
pub async fn serve(
    client: &async_nats::Client,
    name: &str,
    description: &str,
    endpoints: &'static [&'static str],
) -> Result<(Service, BoxStream<'static, CommandRequest>), RuntimeError> {
    let service = client
        .service_builder()
        .description(description)
        .start(name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(RuntimeError::nats)?;
    let mut streams = SelectAll::new();
    for subject in endpoints {
        let short = subject.rsplit('.').next().unwrap_or(subject);
        let endpoint = service
            .endpoint_builder()
            .name(short)
            .add(*subject)
            .await
            .map_err(RuntimeError::nats)?;
        streams.push(endpoint.map(move |request| CommandRequest {
            subject,
            request_id: request_id_of(&request.message),
            request,
        }));
    }
    Ok((service, streams.boxed()))
}

fn request_id_of(message: &async_nats::Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(REQUEST_ID_HEADER))
        .map(|value| value.as_str().to_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

impl CommandRequest {
    /// Decodes the body as `B`, runs `command` on it and replies with the result.
    pub async fn run<B, T, E, F, Fut>(&self, command: F)
    where
        B: DeserializeOwned,
        T: Serialize,
        E: Into<ErrorBody>,
        F: FnOnce(B) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let result = match self.decode::<B>() {
            Ok(body) => command(body).await.map_err(Into::into),
            Err(error) => Err(error),
        };
        self.reply(result).await;
    }

    /// Like [`CommandRequest::run`] for a command that names its actor.
    pub async fn run_as_actor<B, T, E, F, Fut>(&self, command: F)
    where
        B: DeserializeOwned,
        T: Serialize,
        E: Into<ErrorBody>,
        F: FnOnce(uuid::Uuid, B) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let result = match decode::command::<B>(self.payload()) {
            Ok(decoded) => command(decoded.actor_id, decoded.body)
                .await
                .map_err(Into::into),
            Err(error) => Err(error),
        };
        self.reply(result).await;
    }
}
