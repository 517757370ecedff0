//! The system-test harness: a real nats-server per test (its own port and
//! store), real Postgres databases under a unique prefix, and the real
//! services and edge, started the way the `taskflow` binary starts them.

pub mod api;
pub mod cluster;
pub mod fixtures;
pub mod nats_server;
pub mod postgres_server;
pub mod service_databases;
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

/// Waits until every one of `services` has finished every message its
/// consumers were given, or panics with `what` after `limit`.
pub async fn caught_up(
    what: &str,
    limit: Duration,
    services: &[&taskflow_runtime::service::RunningService],
) {
    wait_until(what, limit, || async {
        for service in services {
            if service.consumer_lag().await != 0 {
                return None;
            }
        }
        Some(())
    })
    .await
}

/// What the durable consumers of the event streams whose names start with
/// `prefix` (a service's name, or "" for all) have pending or not yet
/// acknowledged; `None` when NATS cannot say.
pub async fn consumer_backlog(js: &async_nats::jetstream::Context, prefix: &str) -> Option<u64> {
    use futures::StreamExt;
    let mut backlog = 0;
    for stream in ["TASKS", "REMINDERS", "AUDIT"] {
        let handle = js.get_stream(stream).await.ok()?;
        let mut names = handle.consumer_names();
        while let Some(name) = names.next().await {
            let name = name.ok()?;
            if !name.starts_with(prefix) {
                continue;
            }
            let mut consumer = handle
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            if info.config.durable_name.is_some() {
                backlog += info.num_pending + info.num_ack_pending as u64;
            }
        }
    }
    Some(backlog)
}

/// Sends `signal` (`TERM`, `INT`) to process `pid`; whether it was sent.
pub fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// A property test runner of system tests: as many cases as the variable
/// `cases_from` says (`default` without it), no failure files written.
pub fn property_runner(cases_from: &str, default: u32) -> proptest::test_runner::TestRunner {
    let cases = std::env::var(cases_from)
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}
