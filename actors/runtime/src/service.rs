//! The shape every service shares: a supervisor actor that owns the
//! service's outbox relay (if it publishes), its stream consumers (if it
//! consumes), a pool of command workers and the NATS service feeding them (if
//! it serves commands). A service supplies its [`CommandHandler`] and its
//! [`EventHandler`](crate::consumer::EventHandler)s.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use taskflow_schemas::{ErrorBody, ErrorCode};
use tracing::Instrument;
use uuid::Uuid;

use crate::commands::CommandRequest;
use crate::consumer::{ConsumerArgs, ConsumerMessage, ConsumerSpec, EventHandler, StreamConsumer};
use crate::outbox::{OutboxRelay, RelayHandle, RelayMessage};
use crate::pool::{KeyedPool, Queued, Refused};
use crate::{Platform, RuntimeError};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands waiting per worker, at most; more are refused as overloaded.
const MAILBOX_BOUND: usize = 64;

/// Answers the commands of one service; one call per request. The call
/// owns the request, so a command that waits on something slow (a password
/// hash) may move it to a task of its own and free the worker.
pub trait CommandHandler: Send + Sync + 'static {
    fn handle(&self, request: CommandRequest) -> impl Future<Output = ()> + Send;
}

/// What a service is called and what it serves.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// `tasks`: the log field, the database suffix, the metrics label.
    pub name: &'static str,
    pub description: &'static str,
    pub endpoints: &'static [&'static str],
    /// Commands run at once; those about one task always share a worker.
    pub workers: usize,
    /// Whether it publishes events through an outbox (and so runs a relay).
    pub outbox: bool,
}

/// What a service's command handler is made from.
pub struct ServiceParts {
    pub pool: PgPool,
    /// Present when the spec says `outbox: true`.
    pub relay: Option<RelayHandle>,
}

type SpawnedConsumer = BoxFuture<'static, Result<ActorRef<ConsumerMessage>, SpawnErr>>;

/// Starts one stream consumer under the service's supervisor.
pub struct ConsumerStarter(Box<dyn FnOnce(ActorCell, Platform, PgPool) -> SpawnedConsumer + Send>);

impl ConsumerStarter {
    pub fn new<E: EventHandler>(spec: ConsumerSpec, handler: E) -> Self {
        Self(Box::new(move |supervisor, platform, pool| {
            Box::pin(async move {
                let args = ConsumerArgs {
                    spec,
                    platform,
                    pool,
                    handler,
                };
                let (consumer, _) =
                    Actor::spawn_linked(None, StreamConsumer::<E>::default(), args, supervisor)
                        .await?;
                Ok(consumer)
            })
        }))
    }
}

impl ServiceSpec {
    fn micro_name(&self) -> String {
        format!("taskflow-{}", self.name)
    }
}

pub enum SupervisorMessage {
    /// Stop taking commands, finish those in hand, publish what is committed.
    Drain(RpcReplyPort<()>),
    /// The workers, for callers inside the process.
    Local(RpcReplyPort<LocalCommands>),
    /// How many events wait in the outbox (0 without one).
    OutboxBacklog(RpcReplyPort<i64>),
    /// How many messages the service's consumers have yet to finish, together.
    ConsumerLag(RpcReplyPort<u64>),
}

type MakeHandler<H> = Box<dyn FnOnce(ServiceParts) -> H + Send>;

pub struct CommandSupervisor<H>(PhantomData<fn() -> H>);

pub struct SupervisorArgs<H> {
    pub spec: ServiceSpec,
    pub platform: Platform,
    pub pool: PgPool,
    pub make_handler: MakeHandler<H>,
    pub consumers: Vec<ConsumerStarter>,
}

pub struct SupervisorState {
    spec: ServiceSpec,
    workers: KeyedPool<CommandRequest>,
    relay: Option<RelayHandle>,
    consumers: Vec<ActorRef<ConsumerMessage>>,
    service: Option<async_nats::service::Service>,
    listener: Option<tokio::task::JoinHandle<()>>,
    stopping: bool,
}

impl<H: CommandHandler> Actor for CommandSupervisor<H> {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = SupervisorArgs<H>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMessage>,
        args: SupervisorArgs<H>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let spec = args.spec;
        let relay = match spec.outbox {
            true => Some(
                OutboxRelay::spawn_under(
                    myself.get_cell(),
                    spec.name,
                    args.pool.clone(),
                    &args.platform,
                )
                .await?,
            ),
            false => None,
        };
        let mut consumers = Vec::with_capacity(args.consumers.len());
        for ConsumerStarter(start) in args.consumers {
            consumers
                .push(start(myself.get_cell(), args.platform.clone(), args.pool.clone()).await?);
        }
        let handler = Arc::new((args.make_handler)(ServiceParts {
            pool: args.pool,
            relay: relay.clone(),
        }));
        let mut workers = Vec::with_capacity(spec.workers);
        for _ in 0..spec.workers {
            let queued = Queued::default();
            let worker = CommandWorker {
                service: spec.name,
                handler: handler.clone(),
                queued: queued.clone(),
            };
            let (worker, _) = Actor::spawn_linked(None, worker, (), myself.get_cell()).await?;
            workers.push((worker, queued));
        }
        let workers = KeyedPool::new(workers, MAILBOX_BOUND);
        let (service, listener) = if spec.endpoints.is_empty() {
            (None, None)
        } else {
            let (service, requests) = crate::commands::serve(
                &args.platform.nats,
                &spec.micro_name(),
                spec.description,
                spec.endpoints,
            )
            .await?;
            let dispatch = workers.clone();
            let listener = tokio::spawn(requests.for_each(move |request| {
                dispatch_to(&dispatch, spec.name, request);
                futures::future::ready(())
            }));
            (Some(service), Some(listener))
        };
        tracing::info!(
            service = spec.name,
            workers = spec.workers,
            "service started"
        );
        Ok(SupervisorState {
            spec,
            workers,
            relay,
            consumers,
            service,
            listener,
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMessage>,
        message: SupervisorMessage,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::Drain(reply) => {
                state.stopping = true;
                state.stop_serving().await;
                myself.drain_children_and_wait(Some(DRAIN_TIMEOUT)).await;
                let _ = reply.send(());
            }
            SupervisorMessage::Local(reply) => {
                let _ = reply.send(LocalCommands {
                    spec: state.spec,
                    workers: state.workers.clone(),
                });
            }
            SupervisorMessage::OutboxBacklog(reply) => {
                let backlog = match &state.relay {
                    Some(relay) => {
                        ractor::call!(relay.actor(), RelayMessage::Backlog).unwrap_or(-1)
                    }
                    None => 0,
                };
                let _ = reply.send(backlog);
            }
            SupervisorMessage::ConsumerLag(reply) => {
                let mut lag = 0u64;
                for consumer in &state.consumers {
                    let one = ractor::call!(consumer, ConsumerMessage::Lag).unwrap_or(u64::MAX);
                    lag = lag.saturating_add(one);
                }
                let _ = reply.send(lag);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMessage>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Crash-only: a child that dies unasked takes the service down and
        // whoever runs the process restarts it; the outbox and the streams
        // make sure nothing committed is lost.
        let service = state.spec.name;
        match &event {
            SupervisionEvent::ActorFailed(_, error) => {
                tracing::error!(service, %error, "an actor failed");
                myself.stop(Some(format!("child failed: {error}")));
            }
            SupervisionEvent::ActorTerminated(..) if !state.stopping => {
                tracing::error!(service, "an actor stopped unasked");
                myself.stop(Some("child stopped".into()));
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<SupervisorMessage>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_serving().await;
        Ok(())
    }
}

impl SupervisorState {
    async fn stop_serving(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
        if let Some(service) = self.service.take() {
            let _ = service.stop().await;
        }
    }
}

/// Hands the request to its worker; a worker with a full mailbox has the
/// request answered as overloaded at once. `false` when the workers are gone.
fn dispatch_to(
    workers: &KeyedPool<CommandRequest>,
    service: &'static str,
    request: CommandRequest,
) -> bool {
    match workers.try_send(task_id_of(request.payload()), request) {
        Ok(()) => true,
        Err(Refused::Full(request)) => {
            metrics::counter!("taskflow_commands_refused_total", "service" => service, "reason" => "overloaded")
                .increment(1);
            let overloaded = ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                format!("the {service} service is overloaded, try again shortly"),
            );
            tokio::spawn(async move { request.reply::<()>(Err(overloaded)).await });
            true
        }
        Err(Refused::Gone) => {
            tracing::error!(service, "the command workers are gone");
            false
        }
    }
}

/// A service's workers, reachable from inside the process without NATS.
#[derive(Clone)]
pub struct LocalCommands {
    spec: ServiceSpec,
    workers: KeyedPool<CommandRequest>,
}

impl LocalCommands {
    /// True when `subject` is one of this service's commands.
    pub fn serves(&self, subject: &str) -> bool {
        self.spec.endpoints.contains(&subject)
    }

    /// Runs the command on the service's workers; `None` when they are gone,
    /// or when they dropped it because `deadline` had passed.
    pub async fn request(
        &self,
        subject: &'static str,
        request_id: String,
        deadline: SystemTime,
        payload: Bytes,
    ) -> Option<Bytes> {
        let (request, reply) = CommandRequest::local(subject, request_id, deadline, payload);
        if !dispatch_to(&self.workers, self.spec.name, request) {
            return None;
        }
        reply.await.ok()
    }
}

/// Peeks at `task_id` so that one task's commands reach one worker, in order.
fn task_id_of(payload: &[u8]) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Peek {
        task_id: Option<Uuid>,
    }
    serde_json::from_slice::<Peek>(payload)
        .ok()
        .and_then(|peek| peek.task_id)
}

/// Runs one command at a time and answers it.
struct CommandWorker<H> {
    service: &'static str,
    handler: Arc<H>,
    /// Counted down after each command, so the pool knows the mailbox's length.
    queued: Queued,
}

impl<H: CommandHandler> Actor for CommandWorker<H> {
    type Msg = CommandRequest;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<CommandRequest>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<CommandRequest>,
        request: CommandRequest,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let span = tracing::info_span!(
            "command",
            service = self.service,
            subject = request.subject,
            request_id = %request.request_id
        );
        if request.expired() {
            // Its caller already answered its client (503): running it now
            // would be a write nobody was told about.
            metrics::counter!("taskflow_commands_refused_total", "service" => self.service, "reason" => "expired")
                .increment(1);
            span.in_scope(|| tracing::warn!("command dropped: its caller gave up waiting"));
        } else {
            self.handler.handle(request).instrument(span).await;
        }
        self.queued.done();
        Ok(())
    }
}

/// A running command service: its supervisor and its database.
pub struct RunningService {
    pub actor: ActorRef<SupervisorMessage>,
    pub pool: PgPool,
    /// Its workers, for an edge in the same process.
    pub local: LocalCommands,
    join: tokio::task::JoinHandle<()>,
}

impl RunningService {
    /// Connects to (creating and migrating) the service's database and starts its actors.
    pub async fn start<H: CommandHandler>(
        platform: &Platform,
        spec: ServiceSpec,
        migrator: &'static Migrator,
        consumers: Vec<ConsumerStarter>,
        make_handler: impl FnOnce(ServiceParts) -> H + Send + 'static,
    ) -> Result<Self, RuntimeError> {
        let pool = crate::postgres::connect(&platform.settings, spec.name, migrator).await?;
        let args = SupervisorArgs {
            spec,
            platform: platform.clone(),
            pool: pool.clone(),
            make_handler: Box::new(make_handler),
            consumers,
        };
        let (actor, join) = Actor::spawn(None, CommandSupervisor::<H>(PhantomData), args).await?;
        let local = ractor::call!(actor, SupervisorMessage::Local)
            .map_err(|error| RuntimeError::Actor(error.to_string()))?;
        Ok(Self {
            actor,
            pool,
            local,
            join,
        })
    }

    /// How many events wait in the outbox.
    pub async fn outbox_backlog(&self) -> i64 {
        ractor::call!(self.actor, SupervisorMessage::OutboxBacklog).unwrap_or(-1)
    }

    /// How many messages its consumers have yet to finish.
    pub async fn consumer_lag(&self) -> u64 {
        ractor::call!(self.actor, SupervisorMessage::ConsumerLag).unwrap_or(u64::MAX)
    }

    /// Finishes the commands in hand, then stops.
    pub async fn stop(self) {
        let _ = ractor::call!(self.actor, SupervisorMessage::Drain);
        self.actor.stop(None);
        if !self.join.is_finished() {
            let _ = self.join.await;
        }
        self.pool.close().await;
    }

    /// Resolves when the actor system has stopped, asked or not.
    pub async fn stopped(&mut self) {
        if !self.join.is_finished() {
            let _ = (&mut self.join).await;
        }
    }
}
