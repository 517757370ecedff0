//! The system-test harness: a real nats-server per test (its own port and
//! store), real Postgres databases under a unique prefix, and the real
//! services and edge, started the way the `taskflow` binary starts them.

pub mod api;
pub mod cluster;
pub mod fixtures;
pub mod nats_server;
pub mod postgres_server;
pub mod smtp;
pub mod system;
pub mod ws;

pub use api::{Api, Reply, User};
pub use nats_server::NatsServer;
pub use postgres_server::PostgresServer;
pub use smtp::SmtpCatcher;
pub use system::{StoredEvent, TestSystem, Transport, id_of};

use std::time::Duration;

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
