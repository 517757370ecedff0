//! The connections and signals every service of a process shares, and the
//! settings, logs, metrics and shutdown they are made with.

pub mod error;
pub mod metrics;
pub mod process;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;

use crate::{RuntimeError, Settings, Shutdown};

/// How long a starting process waits for nats-server to come up.
const NATS_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Platform {
    pub settings: Settings,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    /// Grows at every NATS (re)connection.
    pub nats_connections: watch::Receiver<u64>,
    pub shutdown: Shutdown,
}

impl Platform {
    /// Connects to NATS and creates or updates the contract's streams.
    pub async fn connect(
        settings: Settings,
        name: &str,
        shutdown: Shutdown,
    ) -> Result<Self, RuntimeError> {
        // Installed first, so that nothing recorded from here on is lost.
        crate::platform::metrics::handle();
        let (nats, nats_connections) = crate::bus::nats::connect(
            &settings.nats_url,
            settings.nats_creds_file.as_deref(),
            name,
            NATS_PATIENCE,
        )
        .await?;
        let jetstream = crate::bus::nats::jetstream(&nats);
        crate::bus::nats::ensure_streams(&jetstream).await?;
        Ok(Self {
            settings,
            nats,
            jetstream,
            nats_connections,
            shutdown,
        })
    }
}
