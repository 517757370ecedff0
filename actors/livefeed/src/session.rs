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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Ordered;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::{SinkExt, StreamExt};
use ractor::ActorRef;
use serde::Deserialize;
use taskflow_runtime::Shutdown;
use taskflow_runtime::http::tokens::Tokens;
use taskflow_schemas::feed::{ClientFrame, FeedCursor, ServerFrame};
use taskflow_schemas::subjects::TASKS_STREAM;
use tokio::time::Instant;
use uuid::Uuid;

use crate::connections::{Connections, OpenSlot};
use crate::cursor;
use crate::directory::SharedDirectory;
use crate::hub::{
    self, Delivery, HubMessage, LiveEvent, LiveFrame, Registration, Viewer, revoked_frame,
};

/// How long a client has to send its authenticate frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest frame or message a client may send; anything larger ends
/// the connection before it is read.
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// A frame the socket has not taken by then means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to answer our close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// The stream sent nothing for this long before the replay reached its end.
const REPLAY_STALL: Duration = Duration::from_secs(5);
/// A replay comes this close to the stream's end before the session
/// registers and takes the rest live.
const CATCH_UP: u64 = 256;
/// Resumes one connection may ask for in a minute.
const RESUMES_PER_MINUTE: usize = 10;

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

/// `?token=` and `?cursor=` of `GET /ws`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    pub token: Option<String>,
    pub cursor: Option<u64>,
}

enum Ending {
    Closed,
    Resume(u64),
}

/// Why a session ends early: a code for the error frame and a message.
struct Refusal(&'static str, String);

/// Who is connected, and until when their token is good.
struct Session {
    viewer: Viewer,
    expires_at: Instant,
}

impl Session {
    fn from_token(tokens: &Tokens, token: &str) -> Result<Self, Refusal> {
        let claims = tokens
            .verify(token)
            .map_err(|_| Refusal("unauthorized", "invalid or expired token".into()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let left = (claims.exp - now).max(0) as u64;
        Ok(Self {
            viewer: Viewer { user: claims.sub },
            expires_at: Instant::now() + Duration::from_secs(left),
        })
    }
}

pub async fn run(
    mut socket: WebSocket,
    context: FeedContext,
    _open: OpenSlot,
    handshake: Result<Handshake, String>,
) {
    let handshake = match handshake {
        Ok(handshake) => handshake,
        Err(error) => return refuse(&mut socket, Refusal("validation_failed", error)).await,
    };
    let (mut session, mut cursor) = match authenticate(&mut socket, &context, handshake).await {
        Ok(authenticated) => authenticated,
        Err(refusal) => return refuse(&mut socket, refusal).await,
    };
    let Some(_user_slot) = context.connections.for_user(session.viewer.user) else {
        let refusal = Refusal(
            "too_many_connections",
            "this user has too many live-feed connections open".into(),
        );
        return refuse(&mut socket, refusal).await;
    };
    let mut resumes: Vec<Instant> = Vec::new();
    loop {
        match serve(&mut socket, &context, &mut session, cursor).await {
            Ending::Resume(from) => {
                resumes.retain(|at| at.elapsed() < Duration::from_secs(60));
                if resumes.len() >= RESUMES_PER_MINUTE {
                    let refusal = Refusal(
                        "too_many_resumes",
                        format!("at most {RESUMES_PER_MINUTE} resumes a minute"),
                    );
                    return refuse(&mut socket, refusal).await;
                }
                resumes.push(Instant::now());
                cursor = Some(from);
            }
            Ending::Closed => return,
        }
    }
}

async fn authenticate(
    socket: &mut WebSocket,
    context: &FeedContext,
    handshake: Handshake,
) -> Result<(Session, Option<u64>), Refusal> {
    let (token, cursor) = match handshake.token {
        Some(token) => (token, handshake.cursor),
        None => {
            let text = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                // Larger than MAX_CLIENT_FRAME, say: refused before it was read.
                Ok(Some(Err(error))) => {
                    return Err(Refusal("bad_frame", format!("unreadable frame: {error}")));
                }
                Ok(Some(Ok(Message::Binary(_)))) => {
                    return Err(Refusal(
                        "bad_first_frame",
                        r#"the first frame must be {"type":"authenticate","token":"..."} as JSON text"#.into(),
                    ));
                }
                _ => {
                    return Err(Refusal(
                        "unauthorized",
                        format!("no authenticate frame came within {AUTH_TIMEOUT:?}"),
                    ));
                }
            };
            match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Authenticate { token, cursor }) => {
                    (token, cursor.or(handshake.cursor))
                }
                _ => {
                    return Err(Refusal(
                        "bad_first_frame",
                        r#"the first frame must be {"type":"authenticate","token":"..."}"#.into(),
                    ));
                }
            }
        }
    };
    Ok((Session::from_token(&context.tokens, &token)?, cursor))
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
            let refusal = Refusal(
                "validation_failed",
                "the cursor is not one this feed gave out".into(),
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

async fn serve_registered(
    socket: &mut WebSocket,
    context: &FeedContext,
    session: &mut Session,
    mut replayed_to: Option<FeedCursor>,
    mut resync: bool,
    registration: Registration,
) -> Ending {
    let Registration {
        head,
        mut frames,
        evicted,
        ..
    } = registration;
    if let (Some(from), false) = (replayed_to, resync) {
        match replay(socket, context, session.viewer, from, head.seq).await {
            Ok(reached) => replayed_to = Some(reached),
            Err(ReplayError::TooOld) => resync = true,
            Err(ReplayError::Closed) => return Ending::Closed,
            Err(ReplayError::Failed(problem)) => return replay_failed(socket, from, problem).await,
        }
    }
    if resync
        && send(
            socket,
            &ServerFrame::ResyncRequired {
                cursor: head.to_wire(),
            },
        )
        .await
        .is_err()
    {
        return Ending::Closed;
    }
    // The replay may have read past the hub's head (a hub still catching
    // up after a restart of NATS): what it sent is not sent again.
    let seen_to = match (replayed_to, resync) {
        (Some(replayed), false) if replayed.seq > head.seq => replayed,
        _ => head,
    };
    if send(
        socket,
        &ServerFrame::Ready {
            cursor: seen_to.to_wire(),
        },
    )
    .await
    .is_err()
    {
        return Ending::Closed;
    }
    let mut last_heard = Instant::now();
    let Keepalive {
        ping_every,
        idle_limit,
    } = context.keepalive;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            biased;
            _ = context.shutdown.cancelled() => {
                close(socket, close_code::AWAY, "the server is shutting down; resume from your last cursor").await;
                return Ending::Closed;
            }
            _ = evicted.cancelled() => {
                let frame = ServerFrame::Error {
                    error: "too slow: resume from your last cursor".into(),
                    code: "slow_consumer".into(),
                };
                let _ = send(socket, &frame).await;
                close(socket, close_code::AGAIN, "too slow: resume from your last cursor").await;
                return Ending::Closed;
            }
            _ = tokio::time::sleep_until(session.expires_at) => {
                let refusal = Refusal(
                    "token_expired",
                    "the token expired: send a fresh authenticate frame before it does".into(),
                );
                refuse(socket, refusal).await;
                return Ending::Closed;
            }
            frame = frames.recv() => match frame {
                Some(frame) => {
                    // Whatever else is waiting goes out in the same write.
                    let fresh = |frame: &LiveFrame| frame.seq == 0 || frame.seq > seen_to.seq;
                    let mut batch: Vec<Utf8Bytes> = fresh(&frame).then_some(frame.text).into_iter().collect();
                    while batch.len() < WRITE_BATCH {
                        match frames.try_recv() {
                            Ok(frame) if fresh(&frame) => batch.push(frame.text),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    let sent = batch.len() as u64;
                    if send_batch(socket, batch).await.is_err() {
                        return Ending::Closed;
                    }
                    metrics::counter!("taskflow_ws_events_sent_total").increment(sent);
                }
                None => {
                    // The hub stopped: the feed is going down, to be restarted.
                    let frame = ServerFrame::Error {
                        error: "the live feed is restarting: resume from your last cursor".into(),
                        code: "service_unavailable".into(),
                    };
                    let _ = send(socket, &frame).await;
                    close(socket, close_code::AGAIN, "the live feed is restarting").await;
                    return Ending::Closed;
                }
            },
            incoming = socket.recv() => {
                last_heard = Instant::now();
                match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ending::Closed,
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientFrame>(&text) {
                        Ok(ClientFrame::Resume { cursor }) => return Ending::Resume(cursor),
                        Ok(ClientFrame::Authenticate { token, .. }) => {
                            if let Err(refusal) = refresh(session, &context.tokens, &token) {
                                refuse(socket, refusal).await;
                                return Ending::Closed;
                            }
                        }
                        Err(error) => {
                            refuse(socket, Refusal("bad_frame", format!("not a client frame: {error}"))).await;
                            return Ending::Closed;
                        }
                    },
                    Some(Ok(Message::Binary(_))) => {
                        refuse(socket, Refusal("bad_frame", "client frames are JSON text, not binary".into())).await;
                        return Ending::Closed;
                    }
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_limit {
                    close(socket, close_code::AWAY, "no pong").await;
                    return Ending::Closed;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return Ending::Closed;
                }
            }
        }
    }
}

/// A fresh token for the same user extends the session.
fn refresh(session: &mut Session, tokens: &Tokens, token: &str) -> Result<(), Refusal> {
    let fresh = Session::from_token(tokens, token)?;
    if fresh.viewer.user != session.viewer.user {
        return Err(Refusal(
            "unauthorized",
            "a token for another user; open another connection".into(),
        ));
    }
    session.expires_at = fresh.expires_at;
    Ok(())
}

/// Why a replay did not reach its end.
enum ReplayError {
    /// The stream no longer holds what comes after the cursor.
    TooOld,
    /// The client is gone.
    Closed,
    /// The stream could not be read to the end.
    Failed(String),
}

/// The last sequence the stream holds.
async fn stream_end(context: &FeedContext) -> Result<u64, String> {
    let mut stream = context
        .jetstream
        .get_stream(TASKS_STREAM)
        .await
        .map_err(|error| error.to_string())?;
    let info = stream.info().await.map_err(|error| error.to_string())?;
    Ok(info.state.last_sequence)
}

/// Sends the events after `from` up to `to` as the viewer may see them now:
/// an event of a task they can no longer read is left out (the `revoked`
/// frame at the change that removed them stands for it). Gives the cursor
/// it reached.
async fn replay(
    socket: &mut WebSocket,
    context: &FeedContext,
    viewer: Viewer,
    from: FeedCursor,
    to: u64,
) -> Result<FeedCursor, ReplayError> {
    if from.seq >= to {
        return Ok(from);
    }
    let from = from.seq;
    // Who may read each task at the end of the range, by the directory as it
    // is now: a first pass reads only who may see each event.
    let mut last_seen: HashMap<Uuid, LiveEvent> = HashMap::new();
    let mut range = StreamRange::open(context, from, to).await?;
    while let Some((seq, payload)) = range.next().await? {
        if let Some(event) = LiveEvent::decode(seq, &payload)
            && let Some(task_id) = event.task_id
        {
            last_seen.insert(task_id, event);
        }
    }
    let readable_now: HashMap<Uuid, bool> = {
        let directory = hub::read(&context.directory);
        last_seen
            .into_iter()
            .map(|(task, last)| {
                let reads = directory.reads(viewer.user, &last.access);
                (task, reads)
            })
            .collect()
    };
    let mut range = StreamRange::open(context, from, to).await?;
    let mut replayed = 0u64;
    let mut reached = FeedCursor::unchecked(from);
    while let Some((seq, payload)) = range.next().await? {
        let Some(event) = LiveEvent::decode(seq, &payload) else {
            reached = cursor::of_message(seq, &payload);
            continue;
        };
        reached = event.cursor;
        let now = event
            .task_id
            .and_then(|task| readable_now.get(&task).copied())
            .unwrap_or(true);
        let delivery = event.delivery_to(viewer.user, &hub::read(&context.directory));
        let frame = match delivery {
            Delivery::Event if now => event.frame,
            Delivery::Revoked(task_id) if !now => revoked_frame(task_id),
            _ => continue,
        };
        send_text(socket, frame)
            .await
            .map_err(|()| ReplayError::Closed)?;
        replayed += 1;
    }
    metrics::counter!("taskflow_ws_events_replayed_total").increment(replayed);
    Ok(reached)
}

/// The messages of `TASKS` after `from` up to `to`, each sequence in turn:
/// a missing one (deleted since) or a stream that stops answering ends the
/// range with an error rather than with a silent gap.
struct StreamRange {
    messages: Ordered,
    next: u64,
    to: u64,
}

impl StreamRange {
    async fn open(context: &FeedContext, from: u64, to: u64) -> Result<Self, ReplayError> {
        let failed = |error: &dyn std::fmt::Display| ReplayError::Failed(error.to_string());
        let mut stream = context
            .jetstream
            .get_stream(TASKS_STREAM)
            .await
            .map_err(|e| failed(&e))?;
        let first = stream
            .info()
            .await
            .map_err(|e| failed(&e))?
            .state
            .first_sequence;
        if from + 1 < first {
            return Err(ReplayError::TooOld);
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from + 1,
                },
                filter_subject: "tasks.>".into(),
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&e))?;
        let messages = consumer.messages().await.map_err(|e| failed(&e))?;
        Ok(Self {
            messages,
            next: from + 1,
            to,
        })
    }

    async fn next(&mut self) -> Result<Option<(u64, bytes::Bytes)>, ReplayError> {
        if self.next > self.to {
            return Ok(None);
        }
        let message = match tokio::time::timeout(REPLAY_STALL, self.messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(ReplayError::Failed(error.to_string())),
            Ok(None) => return Err(ReplayError::Failed("the stream ended".into())),
            Err(_) => {
                return Err(ReplayError::Failed(format!(
                    "the stream sent nothing for {REPLAY_STALL:?}"
                )));
            }
        };
        let seq = message
            .info()
            .map_err(|error| ReplayError::Failed(error.to_string()))?
            .stream_sequence;
        if seq != self.next {
            // Deleted since the range was opened: what the client missed is gone.
            return Err(ReplayError::TooOld);
        }
        self.next += 1;
        Ok(Some((seq, message.payload.clone())))
    }
}

/// The replay could not finish: say so and where to resume from, and close.
async fn replay_failed(socket: &mut WebSocket, from: FeedCursor, problem: String) -> Ending {
    tracing::warn!(
        service = "livefeed",
        from = from.seq,
        problem,
        "replay failed"
    );
    let from = from.to_wire();
    metrics::counter!("taskflow_ws_replays_failed_total").increment(1);
    let refusal = Refusal(
        "replay_failed",
        format!("the replay could not complete ({problem}); resume later from cursor {from}"),
    );
    refuse(socket, refusal).await;
    Ending::Closed
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), ()> {
    let text = serde_json::to_string(frame).expect("frames serialize");
    send_text(socket, text.into()).await
}

/// Writes the frames and flushes once.
async fn send_batch(socket: &mut WebSocket, frames: Vec<Utf8Bytes>) -> Result<(), ()> {
    let write = async {
        for frame in frames {
            socket.feed(Message::Text(frame)).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(SEND_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn send_text(socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), ()> {
    let message = Message::Text(text);
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// An error frame, then a close naming the policy.
async fn refuse(socket: &mut WebSocket, Refusal(code, error): Refusal) {
    let frame = ServerFrame::Error {
        error: error.clone(),
        code: code.into(),
    };
    let _ = send(socket, &frame).await;
    close(socket, close_code::POLICY, &error).await;
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close reason is at most 123 bytes.
    let reason: String = reason.chars().take(100).collect();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let handshake = async {
        socket.send(Message::Close(Some(frame))).await.ok()?;
        // The closing handshake: wait for the client's close before hanging up.
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        Some(())
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, handshake).await;
}
