//! A started service, as the process that runs it sees it.

use ractor::{Actor, ActorRef};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use super::definition::ServiceDefinition;
use super::supervisor::{ServiceSupervisor, SupervisorArgs, SupervisorMessage};
use crate::bus::client::LocalCommands;
use crate::{Platform, RuntimeError};

/// A running service: its supervisor and its database.
pub struct RunningService {
    pub name: &'static str,
    /// See [`ServiceDefinition::publishes_directory`].
    pub publishes_directory: bool,
    pub actor: ActorRef<SupervisorMessage>,
    pub pool: PgPool,
    /// Its own migrations, for readiness.
    pub migrator: &'static Migrator,
    /// Its workers, for an edge in the same process.
    pub local: LocalCommands,
    join: tokio::task::JoinHandle<()>,
}

impl RunningService {
    /// Connects to (creating and migrating) the service's database and starts its actors.
    pub async fn start<S: Send + Sync + 'static>(
        platform: Platform,
        definition: &'static ServiceDefinition<S>,
    ) -> Result<Self, RuntimeError> {
        (definition.check_settings)(&platform.settings)?;
        let pool = crate::store::postgres::connect(
            &platform.settings,
            definition.name,
            definition.migrator,
        )
        .await?;
        let args = SupervisorArgs {
            definition,
            platform,
            pool: pool.clone(),
        };
        let (actor, join) = Actor::spawn(None, ServiceSupervisor::<S>::default(), args).await?;
        let local = ractor::call!(actor, SupervisorMessage::Local)
            .map_err(|_| RuntimeError::Unresponsive(definition.name))?;
        Ok(Self {
            name: definition.name,
            publishes_directory: definition.publishes_directory,
            actor,
            pool,
            migrator: definition.migrator,
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
