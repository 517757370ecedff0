//! A registered session: the rest of its replay up to the hub's head,
//! `ready`, then the hub's frames as they come, keepalive pings, token
//! refreshes and resumes, until the client leaves, falls behind or its
//! token expires, or the feed stops.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, close_code};
use taskflow_schemas::feed::{FeedCursor, FeedErrorCode, ServerFrame};
use tokio::time::Instant;

use super::handshake::{Session, refresh};
use super::replay::{ReplayError, replay, replay_failed};
use super::socket::{close, refuse, send, send_batch};
use super::state::{ClientRequest, Refusal, is_fresh, live_from};
use super::{Ending, FeedContext, Keepalive};
use crate::event::LiveFrame;
use crate::hub::Registration;

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;

pub async fn serve_registered(
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
    let seen_to = live_from(replayed_to, resync, head);
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
                    code: FeedErrorCode::SlowConsumer,
                };
                let _ = send(socket, &frame).await;
                close(socket, close_code::AGAIN, "too slow: resume from your last cursor").await;
                return Ending::Closed;
            }
            _ = tokio::time::sleep_until(session.expires_at) => {
                let refusal = Refusal::new(
                    FeedErrorCode::TokenExpired,
                    "the token expired: send a fresh authenticate frame before it does",
                );
                refuse(socket, refusal).await;
                return Ending::Closed;
            }
            frame = frames.recv() => match frame {
                Some(frame) => {
                    // Whatever else is waiting goes out in the same write.
                    let fresh = |frame: &LiveFrame| is_fresh(frame.seq, seen_to);
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
                    // The hub dropped its clients: it is starting over, or going down.
                    let frame = ServerFrame::Error {
                        error: "the live feed is restarting: resume from your last cursor".into(),
                        code: FeedErrorCode::ServiceUnavailable,
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
                    Some(Ok(Message::Text(text))) => match ClientRequest::of(&text) {
                        ClientRequest::Resume(cursor) => return Ending::Resume(cursor),
                        ClientRequest::Refresh(token) => {
                            if let Err(refusal) = refresh(session, &context.tokens, &token) {
                                refuse(socket, refusal).await;
                                return Ending::Closed;
                            }
                        }
                        ClientRequest::Refused(refusal) => {
                            refuse(socket, refusal).await;
                            return Ending::Closed;
                        }
                    },
                    Some(Ok(Message::Binary(_))) => {
                        let refusal = Refusal::new(FeedErrorCode::BadFrame, "client frames are JSON text, not binary");
                        refuse(socket, refusal).await;
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
