//! Serving a service's commands with the NATS service API, so that
//! `nats micro ls` lists them and any number of instances share the load
//! (the API's queue group). A command can also arrive from inside the
//! process ([`CommandRequest::local`]): the all-in-one binary's edge hands
//! commands to its co-located services that way, so the same workers answer
//! and writes go on while NATS is down.

use std::sync::Mutex;
use std::time::SystemTime;

use async_nats::service::{Service, ServiceExt};
use bytes::Bytes;
use futures::stream::{BoxStream, SelectAll, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskflow_schemas::commands::{Principal, Reply};
use taskflow_schemas::limits::{REQUEST_ID_RULE, is_valid_request_id};
use taskflow_schemas::subjects::{DEADLINE_HEADER, REQUEST_ID_HEADER};
use taskflow_schemas::{ErrorBody, decode};
use tokio::sync::oneshot;

use crate::RuntimeError;

/// One command as it arrived, with what is needed to answer it.
pub struct CommandRequest {
    /// The endpoint subject, e.g. `taskflow.tasks.create`.
    pub subject: &'static str,
    /// The caller's `X-Request-Id`, or a fresh id when it sent none.
    pub request_id: String,
    /// When the caller stops waiting for the reply (`Taskflow-Deadline`);
    /// none for a caller that waits as long as it takes.
    pub deadline: Option<SystemTime>,
    payload: Bytes,
    responder: Responder,
}

enum Responder {
    Nats(Box<async_nats::service::Request>),
    Local(Mutex<Option<oneshot::Sender<Bytes>>>),
}

impl CommandRequest {
    /// A command from inside the process; the reply comes back on the receiver.
    pub fn local(
        subject: &'static str,
        request_id: String,
        deadline: SystemTime,
        payload: Bytes,
    ) -> (Self, oneshot::Receiver<Bytes>) {
        let (sender, receiver) = oneshot::channel();
        let request = Self {
            subject,
            request_id,
            deadline: Some(deadline),
            payload,
            responder: Responder::Local(Mutex::new(Some(sender))),
        };
        (request, receiver)
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether the caller has given up waiting: its work would be a write
    /// nobody is told about.
    pub fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| SystemTime::now() >= deadline)
    }

    /// Decodes the body; a failure names the field.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ErrorBody> {
        decode::json(self.payload())
    }

    /// Sends `{"ok": ...}` or the error shape back to the caller.
    pub async fn reply<T: Serialize>(&self, result: Result<T, ErrorBody>) {
        let reply: Reply<T> = result.into();
        let body = Bytes::from(serde_json::to_vec(&reply).expect("replies serialize"));
        match &self.responder {
            Responder::Nats(request) => {
                if let Err(error) = request.respond(Ok(body)).await {
                    tracing::warn!(subject = self.subject, %error, "could not send a command reply");
                }
            }
            Responder::Local(sender) => {
                let sender = sender
                    .lock()
                    .expect("a reply lock is never poisoned")
                    .take();
                if let Some(sender) = sender {
                    let _ = sender.send(body);
                }
            }
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
        let requests = endpoint.filter_map(move |request| async move {
            let request_id = match request_id_of(&request.message) {
                Ok(id) => id,
                Err(error) => {
                    let reply = Reply::<()>::Err(error);
                    let body = serde_json::to_vec(&reply).expect("replies serialize");
                    let _ = request.respond(Ok(body.into())).await;
                    return None;
                }
            };
            Some(CommandRequest {
                subject,
                request_id,
                deadline: deadline_of(&request.message),
                payload: request.message.payload.clone(),
                responder: Responder::Nats(Box::new(request)),
            })
        });
        streams.push(requests.boxed());
    }
    Ok((service, streams.boxed()))
}

/// The `Taskflow-Deadline` header, if it holds Unix milliseconds.
fn deadline_of(message: &async_nats::Message) -> Option<SystemTime> {
    let millis: u64 = message
        .headers
        .as_ref()?
        .get(DEADLINE_HEADER)?
        .as_str()
        .parse()
        .ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(millis))
}

/// The caller's `X-Request-Id` within bounds, a fresh one when it sent none,
/// or the error that names the header.
fn request_id_of(message: &async_nats::Message) -> Result<String, ErrorBody> {
    let sent = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(REQUEST_ID_HEADER));
    match sent {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(value) if is_valid_request_id(value.as_str().as_bytes()) => {
            Ok(value.as_str().to_owned())
        }
        Some(_) => Err(ErrorBody::invalid(REQUEST_ID_HEADER, REQUEST_ID_RULE)),
    }
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
        F: FnOnce(Principal, B) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let result = match decode::command::<B>(self.payload()) {
            Ok(decoded) => command(decoded.actor(), decoded.body)
                .await
                .map_err(Into::into),
            Err(error) => Err(error),
        };
        self.reply(result).await;
    }
}
