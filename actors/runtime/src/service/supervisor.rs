//! The root actor of a service: it starts the relay, the consumers, the
//! command workers and the NATS listener as its children, answers questions
//! about them, and drains them on the way down.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use sqlx::PgPool;

use super::definition::{ServiceDefinition, ServiceParts};
use super::listener::{CommandListener, ListenerArgs, Next};
use super::pool::{KeyedPool, Queued};
use super::workers::{CommandWorker, MAILBOX_BOUND, dispatch_to};
use crate::Platform;
use crate::bus::client::{LocalCommands, LocalService};
use crate::bus::endpoints::{Endpoints, Job};
use crate::bus::{CommandContext, listener};
use crate::consumer::ConsumerMessage;
use crate::outbox::{OutboxRelay, RelayHandle, RelayMessage};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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

pub(crate) struct ServiceSupervisor<S>(std::marker::PhantomData<fn() -> S>);

impl<S> Default for ServiceSupervisor<S> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

pub(crate) struct SupervisorArgs<S: 'static> {
    pub definition: &'static ServiceDefinition<S>,
    pub platform: Platform,
    pub pool: PgPool,
}

pub(crate) struct SupervisorState {
    name: &'static str,
    local: LocalCommands,
    relay: Option<RelayHandle>,
    consumers: Vec<ActorRef<ConsumerMessage>>,
    service: Option<async_nats::service::Service>,
    listener: Option<ActorRef<Next>>,
    stopping: bool,
}

impl<S: Send + Sync + 'static> Actor for ServiceSupervisor<S> {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = SupervisorArgs<S>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMessage>,
        args: SupervisorArgs<S>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let definition = args.definition;
        let name = definition.name;
        let relay = match definition.outbox {
            true => Some(
                OutboxRelay::spawn_under(
                    myself.get_cell(),
                    name,
                    args.pool.clone(),
                    &args.platform,
                )
                .await?,
            ),
            false => None,
        };
        let parts = ServiceParts {
            pool: args.pool.clone(),
            relay: relay.clone(),
            directory: Default::default(),
        };
        let mut consumers = Vec::new();
        for starter in (definition.consumers)(&args.platform, &parts) {
            consumers.push(
                (starter.0)(myself.get_cell(), args.platform.clone(), args.pool.clone()).await?,
            );
        }
        for starter in (definition.actors)() {
            (starter.0)(myself.get_cell(), &args.platform, &parts).await?;
        }
        let state = Arc::new((definition.state)(&args.platform, parts));
        let endpoints = Arc::new((definition.endpoints)());
        let mut workers = Vec::with_capacity(definition.workers);
        for _ in 0..definition.workers {
            let queued = Queued::default();
            let worker = CommandWorker {
                service: name,
                queued: queued.clone(),
            };
            let (worker, _) = Actor::spawn_linked(None, worker, (), myself.get_cell()).await?;
            workers.push((worker, queued));
        }
        let workers = KeyedPool::new(workers, MAILBOX_BOUND);
        let (service, listener) = if endpoints.subjects().is_empty() {
            (None, None)
        } else {
            let (service, jobs) = listener::serve(
                &args.platform.nats,
                &format!("taskflow-{name}"),
                definition.description,
                endpoints.clone(),
                state.clone(),
            )
            .await?;
            let args = ListenerArgs {
                service: name,
                jobs,
                workers: workers.clone(),
            };
            let (listener, _) =
                Actor::spawn_linked(None, CommandListener, args, myself.get_cell()).await?;
            (Some(service), Some(listener))
        };
        tracing::info!(
            service = name,
            workers = definition.workers,
            "service started"
        );
        let local = LocalCommands(Arc::new(LocalDispatcher {
            name,
            state,
            endpoints,
            workers,
        }));
        Ok(SupervisorState {
            name,
            local,
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
                let _ = reply.send(state.local.clone());
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
        crash_only(state.name, &myself.get_cell(), &event, state.stopping);
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

/// The one supervision policy of the product, crash-only: a child that dies
/// unasked is counted in `taskflow_actor_failures_total` and takes its
/// supervisor (and so its service) down; whoever runs the process restarts
/// it, and the outbox and the streams make sure nothing committed is lost.
/// Restarting in place would hide the fault and could run two of a child.
pub fn crash_only(
    service: &'static str,
    supervisor: &ractor::ActorCell,
    event: &SupervisionEvent,
    stopping: bool,
) {
    let reason = match event {
        SupervisionEvent::ActorFailed(_, error) => format!("child failed: {error}"),
        SupervisionEvent::ActorTerminated(..) if !stopping => "child stopped unasked".to_owned(),
        _ => return,
    };
    metrics::counter!("taskflow_actor_failures_total", "service" => service).increment(1);
    tracing::error!(service, %reason, "an actor of the service died; stopping it");
    supervisor.stop(Some(reason));
}

impl SupervisorState {
    /// Takes no more commands: the listener is killed (it may be waiting
    /// for a request that will never come) and the NATS service stopped.
    async fn stop_serving(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.kill();
        }
        if let Some(service) = self.service.take() {
            let _ = service.stop().await;
        }
    }
}

/// A service's workers, reachable from inside the process without NATS.
struct LocalDispatcher<S> {
    name: &'static str,
    state: Arc<S>,
    endpoints: Arc<Endpoints<S>>,
    workers: KeyedPool<Job>,
}

impl<S: Send + Sync + 'static> LocalService for LocalDispatcher<S> {
    fn serves(&self, subject: &str) -> bool {
        self.endpoints.serves(subject)
    }

    fn dispatch(
        &self,
        subject: &'static str,
        context: CommandContext,
        request: Box<dyn Any + Send>,
        reply: Box<dyn Any + Send>,
    ) -> bool {
        match self
            .endpoints
            .job_from_local(&self.state, subject, context, request, reply)
        {
            Some(job) => dispatch_to(&self.workers, self.name, job),
            None => {
                tracing::error!(subject, "a local command of the wrong type");
                false
            }
        }
    }
}
