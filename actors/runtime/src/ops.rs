//! `/health`, `/health/ready` and `/metrics`, served by the edge and by every
//! service binary.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

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
    /// `Err(part)` names the first part that is not in place.
    pub async fn check(&self) -> Result<(), &'static str> {
        if self.nats.connection_state() != async_nats::connection::State::Connected {
            return Err("nats");
        }
        if crate::nats::missing_stream(&crate::nats::jetstream(&self.nats))
            .await
            .is_some()
        {
            return Err("streams");
        }
        for (pool, migrator) in &self.databases {
            crate::postgres::is_ready(pool, migrator).await?;
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
        crate::metrics::handle().render(),
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

/// Serves `app` on `addr` until shutdown; returns the bound address (for
/// port 0) and the server's task, which ends once open requests finished.
pub async fn serve_app(
    addr: std::net::SocketAddr,
    app: Router,
    shutdown: Shutdown,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "http server stopped");
        }
    });
    tracing::info!(addr = %bound, "listening");
    Ok((bound, server))
}
