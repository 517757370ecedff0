//! Sending a typed command and reading its typed reply: over NATS, or
//! straight to the service's workers, as values, when the service runs in
//! this process. The edge sends every API call through it; any service may
//! send commands to another the same way.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::RequestErrorKind;
use serde::Deserialize;
use taskflow_schemas::catalogue::{Command, WireRequest};
use taskflow_schemas::{ErrorBody, ErrorCode};

use super::CommandContext;
use super::endpoints::LocalReply;

/// A service that has not answered by then is treated as down.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than the deadline it sends the client waits for a
/// reply: a service cancels a write still running at the deadline, and the
/// reply saying so (or the commit that beat it) arrives within this margin,
/// so a caller never hears "unavailable" about a write that happened.
const REPLY_GRACE: Duration = Duration::from_millis(500);

/// A service running in this process, reachable without NATS.
pub trait LocalService: Send + Sync {
    fn serves(&self, subject: &str) -> bool;

    /// Hands the request (a boxed `C::Request`) and its reply sender (a
    /// boxed [`LocalReply`]) to the service's workers; `false` when they
    /// are gone. A full worker answers "overloaded" through the sender.
    fn dispatch(
        &self,
        subject: &'static str,
        context: CommandContext,
        request: Box<dyn Any + Send>,
        reply: Box<dyn Any + Send>,
    ) -> bool;
}

/// A handle on a [`LocalService`].
#[derive(Clone)]
pub struct LocalCommands(pub(crate) Arc<dyn LocalService>);

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

    /// Sends `request` as `C` and waits for the reply, at most
    /// [`COMMAND_TIMEOUT`] (or until the context's own deadline, if
    /// sooner): the service drops the command if it only gets to it after
    /// that. An unreachable service is `service_unavailable`.
    pub async fn call<C: Command>(
        &self,
        context: &CommandContext,
        request: C::Request,
    ) -> Result<C::Reply, ErrorBody> {
        // A caller that has a deadline of its own passes on the sooner one.
        let ours = SystemTime::now() + COMMAND_TIMEOUT;
        let context = CommandContext {
            deadline: Some(context.deadline.map_or(ours, |theirs| theirs.min(ours))),
            ..context.clone()
        };
        match self.local.iter().find(|local| local.0.serves(C::SUBJECT)) {
            Some(local) => self.call_local::<C>(local, context, request).await,
            None => self.call_nats::<C>(context, request).await,
        }
    }

    async fn call_local<C: Command>(
        &self,
        local: &LocalCommands,
        context: CommandContext,
        request: C::Request,
    ) -> Result<C::Reply, ErrorBody> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let reply: LocalReply<C::Reply> = sender;
        if !local
            .0
            .dispatch(C::SUBJECT, context, Box::new(request), Box::new(reply))
        {
            return Err(unavailable::<C>());
        }
        match tokio::time::timeout(COMMAND_TIMEOUT + REPLY_GRACE, receiver).await {
            Ok(Ok(result)) => result,
            // Dropped unanswered: the workers stopped, or the deadline passed.
            _ => Err(unavailable::<C>()),
        }
    }

    async fn call_nats<C: Command>(
        &self,
        context: CommandContext,
        request: C::Request,
    ) -> Result<C::Reply, ErrorBody> {
        let sent = self.nats.request_with_headers(
            C::SUBJECT,
            context.to_headers(),
            request.encode().into(),
        );
        let message = match tokio::time::timeout(COMMAND_TIMEOUT + REPLY_GRACE, sent).await {
            Ok(Ok(message)) => message,
            Err(_) => return Err(unavailable::<C>()),
            Ok(Err(error)) => {
                return Err(match error.kind() {
                    RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => {
                        unavailable::<C>()
                    }
                    RequestErrorKind::MaxPayloadExceeded => {
                        ErrorBody::new(ErrorCode::PayloadTooLarge, "the request is too large")
                    }
                    RequestErrorKind::InvalidSubject | RequestErrorKind::Other => ErrorBody::new(
                        ErrorCode::ServiceUnavailable,
                        "the message bus is unavailable, try again shortly",
                    ),
                });
            }
        };
        decode_reply::<C>(&message.payload)
    }
}

/// `{"ok": ...}` or `{"error", "code", "field"?}`, read in one pass (serde's
/// untagged enums would buffer the reply first).
#[derive(Deserialize)]
struct WireReply<T> {
    ok: Option<T>,
    error: Option<String>,
    code: Option<ErrorCode>,
    field: Option<String>,
}

fn decode_reply<C: Command>(payload: &[u8]) -> Result<C::Reply, ErrorBody> {
    let unreadable = |problem: &dyn std::fmt::Display| {
        tracing::error!(subject = C::SUBJECT, %problem, "unreadable command reply");
        ErrorBody::new(ErrorCode::Internal, "internal error")
    };
    match serde_json::from_slice::<WireReply<C::Reply>>(payload) {
        Ok(WireReply { ok: Some(ok), .. }) => Ok(ok),
        Ok(WireReply {
            error: Some(error),
            code: Some(code),
            field,
            ..
        }) => Err(ErrorBody { error, code, field }),
        Ok(_) => Err(unreadable(&"neither ok nor error")),
        Err(error) => Err(unreadable(&error)),
    }
}

fn unavailable<C: Command>() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::ServiceUnavailable,
        format!(
            "the {} service is unavailable, try again shortly",
            C::service()
        ),
    )
}
