//! The live feed: `GET /ws` shows every tab each task event it may see as it
//! happens, and replays what a reconnecting client missed.
//!
//! Consumes: `TASKS`, from its tail, with an ordered consumer per process
//! (it keeps consuming with no client connected); a resuming client replays
//! from the stream itself, from its cursor (the `TASKS` sequence) up to the
//! hub's head, then goes live with no gap and no duplicate at the seam.
//! `AUDIT` `audit.project.>` and `audit.user.role_changed`, from the start:
//! who may see which project's tasks, and who is an admin (in memory, see
//! [`directory`]).
//! Publishes: nothing. Any number of processes serve their own clients.
//!
//! The edge mounts [`router`] so that `/ws` is served beside the API.

pub mod connections;
pub mod cursor;
pub mod directory;
pub mod event;
pub mod follow;
pub mod hub;
pub mod session;
pub mod settings;
pub mod supervisor;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use futures::future::BoxFuture;
use std::sync::Arc;

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ractor::{Actor, ActorRef};
use taskflow_runtime::http::tokens::Tokens;
use taskflow_runtime::{Platform, RuntimeError, Shutdown};

use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::connections::Connections;
use crate::directory::{FeedDirectory, SharedDirectory};
use crate::hub::HubMessage;
pub use crate::session::Keepalive;
use crate::session::{FeedContext, Handshake, MAX_CLIENT_FRAME};
pub use crate::settings::FeedSettings;
use crate::supervisor::{FeedMessage, FeedSupervisor};

/// A running live feed: its supervisor and the hub under it.
pub struct LiveFeed {
    supervisor: ActorRef<FeedMessage>,
    pub hub: ActorRef<HubMessage>,
    directory: SharedDirectory,
    keepalive: Keepalive,
    connections: Arc<Connections>,
    join: tokio::task::JoinHandle<()>,
}

impl LiveFeed {
    /// Starts following `TASKS` from its current end.
    pub async fn start(platform: &Platform) -> Result<Self, RuntimeError> {
        Self::start_with(platform, Keepalive::default()).await
    }

    /// With other keepalive timings (tests use short ones).
    pub async fn start_with(
        platform: &Platform,
        keepalive: Keepalive,
    ) -> Result<Self, RuntimeError> {
        let settings = FeedSettings::read(&platform.settings)?;
        let directory = FeedDirectory::shared();
        let arguments = (platform.clone(), directory.clone());
        let (supervisor, join) = Actor::spawn(None, FeedSupervisor, arguments).await?;
        let hub = ractor::call!(supervisor, FeedMessage::Hub)
            .map_err(|_| RuntimeError::Unresponsive("livefeed"))?;
        Ok(Self {
            supervisor,
            hub,
            directory,
            keepalive,
            connections: Connections::new(settings.max_connections, settings.max_per_user),
            join,
        })
    }

    /// The `AUDIT` sequence of the last membership or role change the feed
    /// applied.
    pub fn directory_applied(&self) -> u64 {
        directory::read(&self.directory).applied()
    }

    /// The last `TASKS` sequence the hub handled, if it answers.
    pub async fn head(&self) -> Option<u64> {
        ractor::call!(self.hub, HubMessage::Heads)
            .ok()
            .map(|heads| heads.tasks.seq)
    }

    /// Connected clients.
    pub async fn connections(&self) -> usize {
        self.handle().connections().await
    }

    pub fn handle(&self) -> FeedHandle {
        FeedHandle(self.hub.clone())
    }

    /// Counts the feed's clients, for an edge that serves the count.
    pub fn counter(&self) -> Arc<dyn Fn() -> BoxFuture<'static, usize> + Send + Sync> {
        let handle = self.handle();
        Arc::new(move || {
            let handle = handle.clone();
            Box::pin(async move { handle.connections().await })
        })
    }

    /// Resolves when the feed has stopped, asked or not.
    pub async fn stopped(&mut self) {
        if !self.join.is_finished() {
            let _ = (&mut self.join).await;
        }
    }

    /// Stops following the stream; connected sessions close.
    pub async fn stop(self) {
        let _ = ractor::call!(self.supervisor, FeedMessage::Stop);
        self.supervisor.stop(None);
        if !self.join.is_finished() {
            let _ = self.join.await;
        }
    }
}

/// A cheap handle on the feed, to count its clients.
#[derive(Clone)]
pub struct FeedHandle(ActorRef<HubMessage>);

impl FeedHandle {
    /// Connected clients of this process.
    pub async fn connections(&self) -> usize {
        ractor::call!(self.0, HubMessage::Count).unwrap_or(0)
    }
}

/// `GET /ws`; sessions close when `shutdown` is cancelled.
pub fn router(feed: &LiveFeed, platform: &Platform, shutdown: Shutdown) -> Router {
    let context = FeedContext {
        hub: feed.hub.clone(),
        directory: feed.directory.clone(),
        jetstream: platform.jetstream.clone(),
        tokens: Tokens::new(&platform.settings.jwt_secret),
        shutdown,
        keepalive: feed.keepalive,
        connections: feed.connections.clone(),
    };
    Router::new().route("/ws", get(upgrade)).with_state(context)
}

/// How much of a client's stream is read at a time.
const READ_BUFFER: usize = 4 * 1024;

async fn upgrade(
    State(context): State<FeedContext>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(open) = context.connections.open() else {
        let body = ErrorBody::new(
            ErrorCode::ServiceUnavailable,
            "the live feed holds all the connections it can; try again shortly",
        );
        let headers = [(header::RETRY_AFTER, "5")];
        return (StatusCode::SERVICE_UNAVAILABLE, headers, axum::Json(body)).into_response();
    };
    let handshake = taskflow_schemas::decode::query::<Handshake>(uri.query().unwrap_or_default())
        .map_err(|error| error.error);
    // Clients send a few small frames: the default 128 KiB read buffer,
    // allocated for every connection, was most of a client's memory.
    upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| session::run(socket, context, open, handshake))
}
