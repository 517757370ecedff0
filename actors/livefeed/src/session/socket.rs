//! Writing to a client: frames with a deadline (a client that stops reading
//! is gone), batches flushed once, and closes that name their reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::SinkExt;
use taskflow_schemas::feed::ServerFrame;

use super::state::Refusal;

/// A frame the socket has not taken by then means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to answer our close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), ()> {
    let text = serde_json::to_string(frame).expect("frames serialize");
    send_text(socket, text.into()).await
}

/// Writes the frames and flushes once.
pub async fn send_batch(socket: &mut WebSocket, frames: Vec<Utf8Bytes>) -> Result<(), ()> {
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

pub async fn send_text(socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), ()> {
    let message = Message::Text(text);
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// An error frame, then a close naming the policy.
pub async fn refuse(socket: &mut WebSocket, Refusal(code, error): Refusal) {
    let frame = ServerFrame::Error {
        error: error.clone(),
        code,
    };
    let _ = send(socket, &frame).await;
    close(socket, close_code::POLICY, &error).await;
}

pub async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
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
