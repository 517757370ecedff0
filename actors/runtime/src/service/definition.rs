//! What a service is made of, declared once in its crate.

use std::sync::Arc;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use super::RunningService;
use crate::bus::Endpoints;
use crate::consumer::effector::{Deliveries, Effector, Recorder};
use crate::consumer::{ConsumerArgs, ConsumerMessage, ConsumerSpec, EventHandler, StreamConsumer};
use crate::directory::DirectoryUpdates;
use crate::outbox::RelayHandle;
use crate::{Platform, RuntimeError};

/// A service: the runtime creates and migrates its database, starts its
/// relay (with an outbox), its consumers and its command workers, and
/// registers its commands with the NATS service API.
pub struct ServiceDefinition<S> {
    /// `tasks`: the log field, the database suffix, the metrics label.
    pub name: &'static str,
    /// Shown by `nats micro info`.
    pub description: &'static str,
    /// Its own tables (the runtime adds the outbox and the inbox).
    pub migrator: &'static Migrator,
    /// Commands run at once; those with one routing key always share a worker.
    pub workers: usize,
    /// Whether it publishes events through an outbox (and so runs a relay).
    pub outbox: bool,
    /// Whether its events on `AUDIT` build every service's directory (who
    /// exists, who is an admin, who holds which role): what decides access
    /// waits for its outbox.
    pub publishes_directory: bool,
    /// Reads its own settings (`Settings::source`), so that a bad one
    /// stops the process at start, naming it.
    pub check_settings: fn(&crate::Settings) -> Result<(), RuntimeError>,
    /// Where a binary running it alone serves `/health`, `/health/ready`
    /// and `/metrics` unless `TASKFLOW_OPS_ADDR` says otherwise.
    pub ops_addr: &'static str,
    /// The state its command handlers share, made from its database and relay.
    pub state: fn(&Platform, ServiceParts) -> S,
    /// The commands it answers.
    pub endpoints: fn() -> Endpoints<S>,
    /// The streams it consumes.
    pub consumers: fn(&Platform, &ServiceParts) -> Vec<ConsumerStarter>,
    /// Actors of its own beside consumers and commands (the scheduler's
    /// timer), started under its supervisor after the relay.
    pub actors: fn() -> Vec<ActorStarter>,
}

/// What a service's command state is made from.
pub struct ServiceParts {
    pub pool: PgPool,
    /// Present when the definition says `outbox: true`.
    pub relay: Option<RelayHandle>,
    /// Told by the service's directory consumer, if it has one, after each
    /// change it commits.
    pub directory: DirectoryUpdates,
}

impl ServiceParts {
    /// The relay of a service defined with an outbox.
    pub fn relay(&self) -> RelayHandle {
        self.relay
            .clone()
            .expect("a service that publishes is defined with `outbox: true`")
    }
}

/// A [`ServiceDefinition`] whatever its state type, so services of every
/// kind go in one list.
pub trait Service: Sync {
    fn name(&self) -> &'static str;
    fn ops_addr(&self) -> &'static str;
    fn publishes_directory(&self) -> bool;
    fn migrator(&self) -> &'static Migrator;
    /// Connects to (creating and migrating) its database and starts its actors.
    fn start(
        &'static self,
        platform: &Platform,
    ) -> BoxFuture<'static, Result<RunningService, RuntimeError>>;
}

impl<S: Send + Sync + 'static> Service for ServiceDefinition<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ops_addr(&self) -> &'static str {
        self.ops_addr
    }

    fn publishes_directory(&self) -> bool {
        self.publishes_directory
    }

    fn migrator(&self) -> &'static Migrator {
        self.migrator
    }

    fn start(
        &'static self,
        platform: &Platform,
    ) -> BoxFuture<'static, Result<RunningService, RuntimeError>> {
        Box::pin(RunningService::start(platform.clone(), self))
    }
}

type SpawnedConsumer = BoxFuture<'static, Result<ActorRef<ConsumerMessage>, SpawnErr>>;
type SpawnedActor = BoxFuture<'static, Result<ActorCell, SpawnErr>>;
type StartActor = dyn FnOnce(ActorCell, &Platform, &ServiceParts) -> SpawnedActor + Send;

/// Starts one of a service's own actors under its supervisor, which watches
/// it as it watches the rest: if it dies, the service stops (crash-only).
pub struct ActorStarter(pub(crate) Box<StartActor>);

impl ActorStarter {
    /// `actor`, started with the arguments `arguments` makes from the
    /// platform and the service's database and relay.
    pub fn new<A: Actor>(
        actor: A,
        arguments: impl FnOnce(&Platform, &ServiceParts) -> A::Arguments + Send + 'static,
    ) -> Self {
        Self(Box::new(move |supervisor, platform, parts| {
            let args = arguments(platform, parts);
            Box::pin(async move {
                let (actor, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
                Ok(actor.get_cell())
            })
        }))
    }
}

/// Starts one stream consumer under the service's supervisor.
pub struct ConsumerStarter(
    pub(crate) Box<dyn FnOnce(ActorCell, Platform, PgPool) -> SpawnedConsumer + Send>,
);

impl ConsumerStarter {
    /// A consumer that applies events with `handler`, in the event's transaction.
    pub fn new<E: EventHandler>(spec: ConsumerSpec, handler: E) -> Self {
        Self(Box::new(move |supervisor, platform, pool| {
            Box::pin(spawn_consumer(spec, handler, supervisor, platform, pool))
        }))
    }

    /// A consumer whose effects lie outside the database: `effector` plans
    /// them in the event's transaction, and the runtime performs them after.
    pub fn effector<E: Effector>(spec: ConsumerSpec, effector: E) -> Self {
        Self(Box::new(move |supervisor, platform, pool| {
            Box::pin(async move {
                let effector = Arc::new(effector);
                let deliveries = Deliveries::spawn_under(
                    supervisor.clone(),
                    spec.durable.clone(),
                    pool.clone(),
                    effector.clone(),
                )
                .await?;
                let recorder = Recorder {
                    consumer: spec.durable.clone(),
                    effector,
                    deliveries,
                };
                spawn_consumer(spec, recorder, supervisor, platform, pool).await
            })
        }))
    }
}

async fn spawn_consumer<E: EventHandler>(
    spec: ConsumerSpec,
    handler: E,
    supervisor: ActorCell,
    platform: Platform,
    pool: PgPool,
) -> Result<ActorRef<ConsumerMessage>, SpawnErr> {
    let args = ConsumerArgs {
        spec,
        platform,
        pool,
        handler,
    };
    let (consumer, _) =
        Actor::spawn_linked(None, StreamConsumer::<E>::default(), args, supervisor).await?;
    Ok(consumer)
}
