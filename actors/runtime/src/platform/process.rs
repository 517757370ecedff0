//! The start and stop of a TaskFlow process, shared by every binary:
//! settings → logs → signal → NATS and streams; then, after the binary has
//! started its services, wait for a signal (or a service that died) and drain.

use std::process::ExitCode;

use crate::http::ops::Readiness;
use crate::service::{RunningService, Service};
use crate::{Platform, RuntimeError, Settings, Shutdown};

/// Reads the settings, starts the logs and connects; a failure prints one
/// line naming what is wrong and exits.
pub async fn boot(process: &str) -> Result<Platform, ExitCode> {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{process}: bad setting {error}");
            return Err(ExitCode::from(2));
        }
    };
    crate::platform::telemetry::init();
    if settings.jwt_secret_is_default {
        tracing::warn!("TASKFLOW_JWT_SECRET is not set: using the development secret");
    }
    let shutdown = crate::platform::shutdown::on_signal();
    Platform::connect(settings, process, shutdown)
        .await
        .map_err(|error| fail(process, error))
}

/// The whole life of a binary that runs one service: boot, start it, serve
/// its `/health`, `/health/ready` and `/metrics` (on `TASKFLOW_OPS_ADDR`,
/// else the definition's address), wait for the signal, drain.
pub async fn run_service(service: &'static dyn Service) -> ExitCode {
    // Named for the whole life of the process, as its binary is.
    let process: &'static str = Box::leak(format!("taskflow-{}", service.name()).into_boxed_str());
    let platform = match boot(process).await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let running = match service.start(&platform).await {
        Ok(running) => running,
        Err(error) => return fail(process, error),
    };
    let running = vec![running];
    let readiness = Readiness::of(process, &platform, &running);
    let addr = match platform.settings.ops_addr {
        Some(addr) => addr,
        None => match service.ops_addr().parse() {
            Ok(addr) => addr,
            Err(_) => {
                return fail(
                    process,
                    RuntimeError::Setting {
                        name: "TASKFLOW_OPS_ADDR",
                        problem: format!("default {} is not an address", service.ops_addr()),
                    },
                );
            }
        },
    };
    if let Err(error) = crate::http::ops::serve(addr, readiness, platform.shutdown.clone()).await {
        return fail(process, error.into());
    }
    run_until_shutdown(&platform.shutdown, running).await
}

/// Starts `services` in order; the first that cannot start stops the others.
pub async fn start_all(
    platform: &Platform,
    services: &[&'static dyn Service],
) -> Result<Vec<RunningService>, RuntimeError> {
    let mut running: Vec<RunningService> = Vec::with_capacity(services.len());
    for service in services {
        match service.start(platform).await {
            Ok(service) => running.push(service),
            Err(error) => {
                for started in running {
                    started.stop().await;
                }
                return Err(error);
            }
        }
    }
    Ok(running)
}

/// Prints why the process cannot go on; the exit code to return.
pub fn fail(process: &str, error: RuntimeError) -> ExitCode {
    let kind = error.kind();
    tracing::error!(%error, ?kind, "cannot start");
    eprintln!("{process}: {error}");
    ExitCode::from(kind.exit_code())
}

/// Waits for the shutdown signal or for any service to stop by itself, then
/// drains every service. A service that died makes the exit code a failure.
pub async fn run_until_shutdown(shutdown: &Shutdown, services: Vec<RunningService>) -> ExitCode {
    run_until_shutdown_or(shutdown, services, std::future::pending()).await
}

/// [`run_until_shutdown`], also watching `other`: a part of the process that
/// is not a service (the live feed) and resolves if it dies.
pub async fn run_until_shutdown_or(
    shutdown: &Shutdown,
    mut services: Vec<RunningService>,
    other: impl std::future::Future<Output = ()>,
) -> ExitCode {
    let died = {
        let any_service = async {
            if services.is_empty() {
                std::future::pending::<()>().await;
            }
            futures::future::select_all(
                services
                    .iter_mut()
                    .map(|service| Box::pin(service.stopped())),
            )
            .await;
        };
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = any_service => true,
            _ = other => true,
        }
    };
    if died {
        tracing::error!("a part of the process stopped unasked; shutting down");
    }
    shutdown.cancel();
    for service in services {
        service.stop().await;
    }
    tracing::info!("stopped");
    if died {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
