//! One WebSocket client: authenticate, replay from its cursor, then live,
//! with keepalive pings, until it leaves, resumes elsewhere, falls behind or
//! its token expires.
//!
//! A replay is read from the stream at the pace the client reads it, before
//! the session registers with the hub: a long history never fills the live
//! buffer. Only the last stretch (at most [`CATCH_UP`] events) is replayed
//! after registering, up to the hub's head, so the seam has no gap and no
//! duplicate. A replay that cannot reach its end says so with an error
//! frame; it never ends in `ready` over a gap.
//!
//! [`handshake`] says who the client is, [`replay`] reads what it missed,
//! [`live`] serves it once registered with the hub, [`socket`] writes to it,
//! and [`state`] holds the decisions between them, apart from any IO.

mod handshake;
mod live;
mod replay;
mod socket;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{WebSocket, close_code};
use ractor::ActorRef;
use taskflow_runtime::Shutdown;
use taskflow_runtime::http::tokens::Tokens;
use taskflow_schemas::feed::{FeedCursor, FeedErrorCode};
use tokio::time::Instant;

use crate::connections::{Connections, OpenSlot};
use crate::cursor;
use crate::directory::SharedDirectory;
use crate::hub::HubMessage;
pub use handshake::Handshake;
use handshake::{Session, authenticate};
use live::serve_registered;
use replay::{ReplayError, replay, replay_failed, stream_end};
use socket::{close, refuse};
use state::{RESUMES_PER_MINUTE, Refusal, ResumeBudget};

/// The largest frame or message a client may send; anything larger ends
/// the connection before it is read.
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// A replay comes this close to the stream's end before the session
/// registers and takes the rest live.
const CATCH_UP: u64 = 256;

/// What a session needs from the process.
#[derive(Clone)]
pub struct FeedContext {
    pub hub: ActorRef<HubMessage>,
    pub directory: SharedDirectory,
    pub jetstream: async_nats::jetstream::Context,
    pub tokens: Tokens,
    pub shutdown: Shutdown,
    pub keepalive: Keepalive,
    pub connections: Arc<Connections>,
}

/// How often the server pings, and how long a silent client is kept.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    pub ping_every: Duration,
    /// A client silent this long (no pong, no frame) is gone.
    pub idle_limit: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            ping_every: Duration::from_secs(20),
            idle_limit: Duration::from_secs(60),
        }
    }
}

enum Ending {
    Closed,
    Resume(u64),
}

pub async fn run(
    mut socket: WebSocket,
    context: FeedContext,
    _open: OpenSlot,
    handshake: Result<Handshake, String>,
) {
    let handshake = match handshake {
        Ok(handshake) => handshake,
        Err(error) => {
            let refusal = Refusal::new(FeedErrorCode::ValidationFailed, error);
            return refuse(&mut socket, refusal).await;
        }
    };
    let (mut session, mut cursor) = match authenticate(&mut socket, &context, handshake).await {
        Ok(authenticated) => authenticated,
        Err(refusal) => return refuse(&mut socket, refusal).await,
    };
    let Some(_user_slot) = context.connections.for_user(session.viewer.user) else {
        let refusal = Refusal::new(
            FeedErrorCode::TooManyConnections,
            "this user has too many live-feed connections open",
        );
        return refuse(&mut socket, refusal).await;
    };
    let mut resumes = ResumeBudget::default();
    loop {
        match serve(&mut socket, &context, &mut session, cursor).await {
            Ending::Resume(from) => {
                if !resumes.take(Instant::now()) {
                    let refusal = Refusal::new(
                        FeedErrorCode::TooManyResumes,
                        format!("at most {RESUMES_PER_MINUTE} resumes a minute"),
                    );
                    return refuse(&mut socket, refusal).await;
                }
                cursor = Some(from);
            }
            Ending::Closed => return,
        }
    }
}

/// Replays from `cursor` (if any), then serves live events until the
/// session ends or the client asks to resume.
async fn serve(
    socket: &mut WebSocket,
    context: &FeedContext,
    session: &mut Session,
    cursor: Option<u64>,
) -> Ending {
    let viewer = session.viewer;
    let mut replayed_to = match cursor.map(FeedCursor::from_wire) {
        Some(None) => {
            let refusal = Refusal::new(
                FeedErrorCode::ValidationFailed,
                "the cursor is not one this feed gave out",
            );
            refuse(socket, refusal).await;
            return Ending::Closed;
        }
        Some(Some(asked)) => Some(asked),
        None => None,
    };
    let mut resync = false;
    if let Some(asked) = replayed_to {
        let held = match stream_end(context).await {
            Ok(end) => cursor::still_holds(&context.jetstream, asked, end).await,
            Err(problem) => Err(problem),
        };
        match held {
            Ok(held) => resync = !held,
            Err(problem) => return replay_failed(socket, asked, problem).await,
        }
    }
    // Most of the history, at the client's pace, before registering.
    while let (Some(from), false) = (replayed_to, resync) {
        let end = match stream_end(context).await {
            Ok(end) => end,
            Err(problem) => return replay_failed(socket, from, problem).await,
        };
        if end <= from.seq + CATCH_UP {
            break;
        }
        match replay(socket, context, viewer, from, end).await {
            Ok(reached) => replayed_to = Some(reached),
            Err(ReplayError::TooOld) => {
                resync = true;
                break;
            }
            Err(ReplayError::Closed) => return Ending::Closed,
            Err(ReplayError::Failed(problem)) => return replay_failed(socket, from, problem).await,
        }
    }
    let Ok(registration) = ractor::call!(context.hub, HubMessage::Register, viewer) else {
        close(socket, close_code::AWAY, "the live feed is shutting down").await;
        return Ending::Closed;
    };
    let client = registration.client;
    let ending =
        serve_registered(socket, context, session, replayed_to, resync, registration).await;
    let _ = context.hub.cast(HubMessage::Unregister(client));
    ending
}
