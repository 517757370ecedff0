//! `/health`, `/health/ready` and `/metrics`, served by the edge and by every
//! service binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::Shutdown;

/// What "ready" means for one process: its NATS connection, its streams and,
/// for a service with a database, that database and its migrations.
#[derive(Clone)]
pub struct Readiness {
    pub service: &'static str,
    pub nats: async_nats::Client,
    pub databases: Vec<(PgPool, &'static Migrator)>,
}

impl Readiness {
    /// Ready when NATS, the streams and the databases of `services` are.
    pub fn of(
        service: &'static str,
        platform: &crate::Platform,
        services: &[crate::service::RunningService],
    ) -> Self {
        Self {
            service,
            nats: platform.nats.clone(),
            databases: services
                .iter()
                .map(|running| (running.pool.clone(), running.migrator))
                .collect(),
        }
    }

    /// `Err(part)` names the first part that is not in place.
    pub async fn check(&self) -> Result<(), &'static str> {
        if self.nats.connection_state() != async_nats::connection::State::Connected {
            return Err("nats");
        }
        if crate::bus::nats::missing_stream(&crate::bus::nats::jetstream(&self.nats))
            .await
            .is_some()
        {
            return Err("streams");
        }
        for (pool, migrator) in &self.databases {
            crate::store::migrations::check(pool, migrator).await?;
        }
        Ok(())
    }
}

/// The three operational routes, to be merged into a bigger router or served alone.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/health", get(alive))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(readiness))
}

async fn alive(State(readiness): State<Arc<Readiness>>) -> Response {
    axum::Json(json!({"status": "ok", "service": readiness.service})).into_response()
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> Response {
    match readiness.check().await {
        Ok(()) => {
            axum::Json(json!({"status": "ready", "service": readiness.service})).into_response()
        }
        Err(part) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": format!("{part} is not ready"),
                "code": "service_unavailable",
                "failing": part,
            })),
        )
            .into_response(),
    }
}

async fn metrics() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::platform::metrics::handle().render(),
    )
        .into_response()
}

/// Serves the operational routes on `addr` until shutdown; returns the bound address.
pub async fn serve(
    addr: std::net::SocketAddr,
    readiness: Readiness,
    shutdown: Shutdown,
) -> std::io::Result<std::net::SocketAddr> {
    serve_app(addr, router(readiness), shutdown)
        .await
        .map(|(bound, _)| bound)
}

/// How long a client may take to send a request's head, and how long a
/// kept-alive connection may sit idle before its next request: a client that
/// trickles its headers (slowloris) is cut off instead of holding a
/// connection for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a request's head (request line and headers) may weigh; a larger
/// one is refused by the HTTP layer (431) before anything reads it.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `app` on `addr` until shutdown; returns the bound address (for
/// port 0) and the server's task, which ends once open requests finished.
/// Each request carries the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_app(
    addr: SocketAddr,
    app: Router,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(
                        stream,
                        peer,
                        app.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(error) => {
                    // Out of file descriptors, say: wait, rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        connections.close();
        connections.wait().await;
    });
    tracing::info!(addr = %bound, "listening");
    Ok((bound, server))
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
