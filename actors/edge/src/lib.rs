//! The HTTP edge: authenticates requests, decodes and checks their shape,
//! and sends each one as a typed command to the service that owns it. It
//! keeps no state of its own; any number of edges may run.
//!
//! Serves: `/api/v1/{auth,users,tasks,projects,audit,schedules,notifications}`, `/api/v1/openapi.json`,
//! `/health`, `/health/ready`, `/metrics`, and under the same layers the
//! routes of a live feed the binary mounts ([`LiveFeedRoutes`]: `/ws`).
//! Sends: the identity, tasks, projects, audit, scheduler and notifier commands of the catalogue, with the
//! request's `X-Request-Id` (and `Idempotency-Key`) in headers.

pub mod auth;
pub mod consistency;
pub mod error;
pub mod extract;
mod http_metrics;
mod openapi;
mod rate_limit;
mod request_id;
mod routes;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use futures::future::BoxFuture;
use taskflow_runtime::bus::CommandClient;
use taskflow_runtime::bus::client::LocalCommands;
use taskflow_runtime::http::ops::Readiness;
use taskflow_runtime::http::tokens::Tokens;
use taskflow_runtime::{Platform, Shutdown};
use taskflow_schemas::ErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
pub use crate::settings::EdgeSettings;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Bodies above this are refused with 413.
const BODY_LIMIT: usize = 1024 * 1024;
/// A request still running after this gets 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What every handler shares; cloned per request, so one `Arc` inside.
#[derive(Clone)]
pub struct EdgeState(Arc<Shared>);

pub struct Shared {
    pub commands: CommandClient,
    /// For consistency tokens: where a write's event is, what a consumer applied.
    pub jetstream: async_nats::jetstream::Context,
    pub tasks_progress: consistency::TasksProgress,
    pub tokens: Tokens,
    pub connections: ConnectionCount,
    pub limits: Arc<rate_limit::Limits>,
}

/// How many live-feed clients this process serves now.
pub type ConnectionCount = Arc<dyn Fn() -> BoxFuture<'static, usize> + Send + Sync>;

/// A live feed the edge serves without owning it: its routes (`/ws`),
/// mounted under the edge's layers, and its client count for
/// `GET /api/v1/connections`.
pub struct LiveFeedRoutes {
    pub routes: Router,
    pub connections: ConnectionCount,
}

impl std::ops::Deref for EdgeState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "TaskFlow", description = "Event-driven tasks: REST API of the edge."),
    tags((name = "auth"), (name = "users"), (name = "tasks"), (name = "projects"), (name = "audit"), (name = "schedules"), (name = "notifications"), (name = "operations"))
)]
struct ApiDoc;

/// The API routes and their OpenAPI document.
pub fn api() -> (Router<EdgeState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::tasks::router())
        .merge(routes::projects::router())
        .merge(routes::audit::router())
        .merge(routes::schedules::router())
        .merge(routes::notifications::router())
        .merge(routes::connections::router())
        .split_for_parts();
    utoipa::Modify::modify(&openapi::Shared, &mut openapi);
    (router, openapi)
}

/// The whole edge: API, OpenAPI document, the live feed's routes,
/// operational routes, layers. Commands for the services in `local` skip
/// NATS (the all-in-one process).
pub fn app(
    platform: &Platform,
    settings: &EdgeSettings,
    readiness: Readiness,
    local: Vec<LocalCommands>,
    feed: LiveFeedRoutes,
) -> Router {
    let limits = rate_limit::Limits::start(&settings.rate_limits);
    let state = EdgeState(Arc::new(Shared {
        commands: CommandClient::new(platform.nats.clone(), local),
        jetstream: platform.jetstream.clone(),
        tasks_progress: consistency::TasksProgress::default(),
        tokens: Tokens::new(&platform.settings.jwt_secret),
        connections: feed.connections,
        limits: limits.clone(),
    }));
    let (api, openapi) = api();
    let openapi = serde_json::to_value(&openapi).expect("the OpenAPI document serializes");
    api.route(
        "/api/v1/openapi.json",
        axum::routing::get(move || async move { axum::Json(openapi) }),
    )
    .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
    .method_not_allowed_fallback(|| async {
        ApiError::new(ErrorCode::MethodNotAllowed, "this method is not allowed on this route")
    })
    .with_state(state)
    .merge(taskflow_runtime::http::ops::router(readiness))
    .merge(feed.routes)
    .layer(axum::middleware::from_fn_with_state(
        limits,
        rate_limit::per_address,
    ))
    .layer(axum::middleware::from_fn(http_metrics::record))
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .layer(axum::middleware::from_fn(within_time))
    .layer(cors(&settings.cors_origins))
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("http", service = "edge", method = %request.method(), path = %request.uri().path(), request_id)
    }))
    .layer(SetRequestIdLayer::new(REQUEST_ID, request_id::NewRequestId))
    .layer(axum::middleware::from_fn(request_id::check))
}

/// A request still running after [`REQUEST_TIMEOUT`] is answered 503, in
/// the error shape like every other refusal.
async fn within_time(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!("the request took longer than {REQUEST_TIMEOUT:?}; try again shortly"),
        )),
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            REQUEST_ID,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("prefer"),
            consistency::TOKEN,
        ])
        .expose_headers([
            header::ETAG,
            REQUEST_ID,
            consistency::TOKEN,
            HeaderName::from_static("preference-applied"),
        ])
}

/// Serves the edge on `addr` until shutdown; returns the bound address and
/// the server's task.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    taskflow_runtime::http::ops::serve_app(addr, app, shutdown).await
}
