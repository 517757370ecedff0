//! One WebSocket client: authenticate, replay from its cursor, then live,
//! with keepalive pings, until it leaves, resumes elsewhere or falls behind.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::{SinkExt, StreamExt};
use ractor::ActorRef;
use serde::Deserialize;
use taskflow_runtime::Shutdown;
use taskflow_runtime::tokens::Tokens;
use taskflow_schemas::feed::{ClientFrame, ServerFrame};
use taskflow_schemas::subjects::TASKS_STREAM;
use taskflow_schemas::user::Role;
use tokio::time::Instant;

use crate::hub::{HubMessage, LiveEvent, Registration, Viewer};

/// How long a client has to send its authenticate frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// A frame the socket has not taken by then means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to answer our close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// A replay that sees no message for this long has reached the stream's end.
const REPLAY_STALL: Duration = Duration::from_secs(2);

/// What a session needs from the process.
#[derive(Clone)]
pub struct FeedContext {
    pub hub: ActorRef<HubMessage>,
    pub jetstream: async_nats::jetstream::Context,
    pub tokens: Tokens,
    pub shutdown: Shutdown,
    pub keepalive: Keepalive,
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

pub async fn run(
    mut socket: WebSocket,
    context: FeedContext,
    handshake: Result<Handshake, String>,
) {
    let handshake = match handshake {
        Ok(handshake) => handshake,
        Err(error) => return refuse(&mut socket, Refusal("validation_failed", error)).await,
    };
    let (viewer, mut cursor) = match authenticate(&mut socket, &context, handshake).await {
        Ok(authenticated) => authenticated,
        Err(refusal) => return refuse(&mut socket, refusal).await,
    };
    loop {
        let Ok(registration) = ractor::call!(context.hub, HubMessage::Register, viewer) else {
            return close(
                &mut socket,
                close_code::AWAY,
                "the live feed is shutting down",
            )
            .await;
        };
        let client = registration.client;
        let ending = serve(&mut socket, &context, viewer, cursor, registration).await;
        let _ = context.hub.cast(HubMessage::Unregister(client));
        match ending {
            Ending::Resume(from) => cursor = Some(from),
            Ending::Closed => return,
        }
    }
}

async fn authenticate(
    socket: &mut WebSocket,
    context: &FeedContext,
    handshake: Handshake,
) -> Result<(Viewer, Option<u64>), Refusal> {
    let (token, cursor) = match handshake.token {
        Some(token) => (token, handshake.cursor),
        None => {
            let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
            let Ok(Some(Ok(Message::Text(text)))) = first else {
                return Err(Refusal("unauthorized", "no authenticate frame came".into()));
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
    let claims = context
        .tokens
        .verify(&token)
        .map_err(|_| Refusal("unauthorized", "invalid or expired token".into()))?;
    let viewer = Viewer {
        user: claims.sub,
        admin: claims.role == Role::Admin,
    };
    Ok((viewer, cursor))
}

async fn serve(
    socket: &mut WebSocket,
    context: &FeedContext,
    viewer: Viewer,
    cursor: Option<u64>,
    registration: Registration,
) -> Ending {
    let Registration {
        head,
        mut frames,
        evicted,
        ..
    } = registration;
    if let Some(cursor) = cursor
        && replay(socket, context, viewer, cursor, head).await.is_err()
    {
        return Ending::Closed;
    }
    if send(socket, &ServerFrame::Ready { cursor: head })
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
            frame = frames.recv() => match frame {
                Some(frame) => {
                    // Whatever else is waiting goes out in the same write.
                    let mut batch = vec![frame];
                    while batch.len() < WRITE_BATCH {
                        match frames.try_recv() {
                            Ok(frame) => batch.push(frame),
                            Err(_) => break,
                        }
                    }
                    let sent = batch.len() as u64;
                    if send_batch(socket, batch).await.is_err() {
                        return Ending::Closed;
                    }
                    metrics::counter!("taskflow_ws_events_sent_total").increment(sent);
                }
                None => return Ending::Closed,
            },
            incoming = socket.recv() => {
                last_heard = Instant::now();
                match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ending::Closed,
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientFrame>(&text) {
                        Ok(ClientFrame::Resume { cursor }) => return Ending::Resume(cursor),
                        Ok(ClientFrame::Authenticate { .. }) => {}
                        Err(error) => {
                            refuse(socket, Refusal("bad_frame", format!("not a client frame: {error}"))).await;
                            return Ending::Closed;
                        }
                    },
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

/// Sends every event after `cursor` up to `head` that the viewer may see,
/// or `resync_required` when the stream no longer holds them all.
async fn replay(
    socket: &mut WebSocket,
    context: &FeedContext,
    viewer: Viewer,
    cursor: u64,
    head: u64,
) -> Result<(), ()> {
    if cursor >= head {
        return Ok(());
    }
    let Ok(mut stream) = context.jetstream.get_stream(TASKS_STREAM).await else {
        return Err(());
    };
    let first = stream.info().await.map_err(|_| ())?.state.first_sequence;
    if cursor + 1 < first {
        return send(socket, &ServerFrame::ResyncRequired { cursor: head }).await;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: cursor + 1,
            },
            filter_subject: "tasks.>".into(),
            ..Default::default()
        })
        .await
        .map_err(|_| ())?;
    let mut messages = consumer.messages().await.map_err(|_| ())?;
    let mut replayed = 0u64;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(REPLAY_STALL, messages.next()).await {
        let Ok(info) = message.info() else { continue };
        let seq = info.stream_sequence;
        if seq > head {
            break;
        }
        if let Some(event) = LiveEvent::decode(seq, &message.payload)
            && event.visible_to(&viewer)
        {
            send_text(socket, event.frame).await?;
            replayed += 1;
        }
        if seq == head {
            break;
        }
    }
    metrics::counter!("taskflow_ws_events_replayed_total").increment(replayed);
    Ok(())
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
