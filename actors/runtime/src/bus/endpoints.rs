//! The commands a service answers, each registered once with its typed
//! handler: `Endpoints::new().on::<CreateTask, _, _, _>(..)`. A request is
//! decoded once, where it enters the service (from NATS bytes) or not at
//! all (a value from inside the process), and becomes a [`Job`] that one of
//! the service's workers runs: jobs with the same routing key (a task's id)
//! share a worker and run in order.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Serialize;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{Command, WireRequest};
use taskflow_schemas::commands::Reply;
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use super::CommandContext;

/// The reply an in-process caller waits for.
pub(crate) type LocalReply<R> = oneshot::Sender<Result<R, ErrorBody>>;

/// A command ready to run: its request decoded, its reply address captured.
pub(crate) struct Job {
    pub subject: &'static str,
    pub context: CommandContext,
    /// Jobs with the same key run on one worker, in order.
    pub key: Option<Uuid>,
    /// Runs the handler and replies; or, given an error, only replies it.
    work: Box<dyn FnOnce(Option<ErrorBody>) -> BoxFuture<'static, ()> + Send>,
}

impl Job {
    pub async fn run(self) {
        (self.work)(None).await
    }

    /// Answers `error` without running the command (the workers are full).
    pub async fn refuse(self, error: ErrorBody) {
        (self.work)(Some(error)).await
    }
}

/// Where a reply goes.
enum ReplyTo<R> {
    Nats(Box<async_nats::service::Request>),
    Local(LocalReply<R>),
}

impl<R: Serialize> ReplyTo<R> {
    async fn send(self, result: Result<R, ErrorBody>) {
        match self {
            ReplyTo::Nats(request) => {
                if let Err(error) = request.respond(Ok(encode_reply(result))).await {
                    tracing::warn!(%error, "could not send a command reply");
                }
            }
            // A caller that stopped waiting dropped its receiver; nothing to do.
            ReplyTo::Local(sender) => drop(sender.send(result)),
        }
    }
}

/// `{"ok": ...}` or the error shape, as bytes.
pub(crate) fn encode_reply<R: Serialize>(result: Result<R, ErrorBody>) -> Bytes {
    let reply: Reply<R> = result.into();
    Bytes::from(serde_json::to_vec(&reply).expect("replies serialize"))
}

/// One registered command, its types erased so a service holds them together.
trait Route<S>: Send + Sync {
    /// A request from NATS; a body that does not decode is refused here.
    fn job_from_nats(
        &self,
        service: &Arc<S>,
        context: CommandContext,
        request: Box<async_nats::service::Request>,
    ) -> Result<Job, (Box<async_nats::service::Request>, ErrorBody)>;

    /// A request from inside the process: the request and the reply sender
    /// as the command's own types (anything else is a caller's bug: `None`).
    fn job_from_local(
        &self,
        service: &Arc<S>,
        context: CommandContext,
        request: Box<dyn Any + Send>,
        reply: Box<dyn Any + Send>,
    ) -> Option<Job>;
}

/// Whether a handler runs on its worker or on a task of its own.
#[derive(Clone, Copy)]
enum Runs {
    /// On the worker, before the next job with its key: the usual kind.
    InOrder,
    /// Handed to a task of its own, freeing the worker at once: for a
    /// command that waits on something slow with its own bound (a
    /// password hash) and needs no order.
    Detached,
}

struct TypedRoute<C, F> {
    handler: Arc<F>,
    runs: Runs,
    command: std::marker::PhantomData<fn() -> C>,
}

impl<C, F> TypedRoute<C, F> {
    fn job<S, Fut, E>(
        &self,
        service: &Arc<S>,
        context: CommandContext,
        request: C::Request,
        reply: ReplyTo<C::Reply>,
    ) -> Job
    where
        C: Command,
        S: Send + Sync + 'static,
        F: Fn(Arc<S>, CommandContext, C::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, E>> + Send + 'static,
        E: Into<ErrorBody>,
    {
        let handler = self.handler.clone();
        let service = service.clone();
        let runs = self.runs;
        let key = C::routing_key(&request);
        let handler_context = context.clone();
        Job {
            subject: C::SUBJECT,
            context,
            key,
            work: Box::new(move |refusal| {
                Box::pin(async move {
                    if let Some(error) = refusal {
                        return reply.send(Err(error)).await;
                    }
                    let answer = async move {
                        let result = handler(service, handler_context, request).await;
                        reply.send(result.map_err(Into::into)).await;
                    };
                    match runs {
                        Runs::InOrder => answer.await,
                        Runs::Detached => drop(tokio::spawn(answer.in_current_span())),
                    }
                })
            }),
        }
    }
}

impl<S, C, F, Fut, E> Route<S> for TypedRoute<C, F>
where
    S: Send + Sync + 'static,
    C: Command,
    F: Fn(Arc<S>, CommandContext, C::Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C::Reply, E>> + Send + 'static,
    E: Into<ErrorBody>,
{
    fn job_from_nats(
        &self,
        service: &Arc<S>,
        context: CommandContext,
        request: Box<async_nats::service::Request>,
    ) -> Result<Job, (Box<async_nats::service::Request>, ErrorBody)> {
        match C::Request::decode(&request.message.payload) {
            Ok(decoded) => Ok(self.job(service, context, decoded, ReplyTo::Nats(request))),
            Err(error) => Err((request, error)),
        }
    }

    fn job_from_local(
        &self,
        service: &Arc<S>,
        context: CommandContext,
        request: Box<dyn Any + Send>,
        reply: Box<dyn Any + Send>,
    ) -> Option<Job> {
        let request = request.downcast::<C::Request>().ok()?;
        let reply = reply.downcast::<LocalReply<C::Reply>>().ok()?;
        Some(self.job(service, context, *request, ReplyTo::Local(*reply)))
    }
}

/// The commands of a service whose handlers share the state `S`.
pub struct Endpoints<S> {
    routes: HashMap<&'static str, Arc<dyn Route<S>>>,
}

impl<S: Send + Sync + 'static> Default for Endpoints<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Send + Sync + 'static> Endpoints<S> {
    pub fn new() -> Self {
        Self {
            routes: HashMap::new(),
        }
    }

    /// Answers `C` with `handler`, on the worker of the request's key.
    pub fn on<C, F, Fut, E>(self, handler: F) -> Self
    where
        C: Command,
        F: Fn(Arc<S>, CommandContext, C::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, E>> + Send + 'static,
        E: Into<ErrorBody>,
    {
        self.route::<C, F, Fut, E>(handler, Runs::InOrder)
    }

    /// Answers `C` with `handler` on a task of its own, so the worker goes
    /// on at once: for a slow command that bounds its own concurrency.
    pub fn on_detached<C, F, Fut, E>(self, handler: F) -> Self
    where
        C: Command,
        F: Fn(Arc<S>, CommandContext, C::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, E>> + Send + 'static,
        E: Into<ErrorBody>,
    {
        self.route::<C, F, Fut, E>(handler, Runs::Detached)
    }

    fn route<C, F, Fut, E>(mut self, handler: F, runs: Runs) -> Self
    where
        C: Command,
        F: Fn(Arc<S>, CommandContext, C::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, E>> + Send + 'static,
        E: Into<ErrorBody>,
    {
        let route = TypedRoute::<C, F> {
            handler: Arc::new(handler),
            runs,
            command: std::marker::PhantomData,
        };
        let earlier = self.routes.insert(C::SUBJECT, Arc::new(route));
        assert!(earlier.is_none(), "{} is registered twice", C::SUBJECT);
        self
    }

    /// Every subject registered, sorted.
    pub fn subjects(&self) -> Vec<&'static str> {
        let mut subjects: Vec<_> = self.routes.keys().copied().collect();
        subjects.sort_unstable();
        subjects
    }

    pub(crate) fn serves(&self, subject: &str) -> bool {
        self.routes.contains_key(subject)
    }

    pub(crate) fn job_from_nats(
        &self,
        service: &Arc<S>,
        subject: &str,
        context: CommandContext,
        request: Box<async_nats::service::Request>,
    ) -> Result<Job, (Box<async_nats::service::Request>, ErrorBody)> {
        match self.routes.get(subject) {
            Some(route) => route.job_from_nats(service, context, request),
            None => Err((
                request,
                ErrorBody::new(taskflow_schemas::ErrorCode::NotFound, "no such command"),
            )),
        }
    }

    pub(crate) fn job_from_local(
        &self,
        service: &Arc<S>,
        subject: &str,
        context: CommandContext,
        request: Box<dyn Any + Send>,
        reply: Box<dyn Any + Send>,
    ) -> Option<Job> {
        self.routes
            .get(subject)?
            .job_from_local(service, context, request, reply)
    }
}
