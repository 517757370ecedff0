//! A real WebSocket client of the live feed, with typed helpers.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct FeedClient {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// How a session ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// A close frame with this code and reason.
    Frame(u16, String),
    /// The connection ended without one.
    Dropped,
}

impl FeedClient {
    /// Connects to `ws://<edge>/ws<query>`.
    pub async fn connect(base_url: &str, query: &str) -> Self {
        let url = format!("{}/ws{query}", base_url.replacen("http://", "ws://", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the feed accepts the connection");
        Self { socket }
    }

    /// Connects with a tiny receive buffer, so that a client that stops
    /// reading pushes back on the server at once.
    pub async fn connect_with_small_buffer(base_url: &str, query: &str) -> Self {
        let address = base_url.trim_start_matches("http://");
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        let stream = socket
            .connect(address.parse().expect("an address"))
            .await
            .expect("connects");
        let url = format!("ws://{address}/ws{query}");
        let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("the feed accepts the connection");
        Self { socket }
    }

    /// Sends a text frame as it is, telling whether the server took it.
    pub async fn try_send_text(
        &mut self,
        text: String,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.socket.send(Message::Text(text.into())).await
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("the frame is sent");
    }

    /// The next JSON frame, skipping pings; panics after `limit`.
    pub async fn next_frame(&mut self, limit: Duration) -> Value {
        match self.next_or_close(limit).await {
            Ok(frame) => frame,
            Err(closed) => panic!("the feed closed: {closed:?}"),
        }
    }

    /// The next JSON frame, or how the connection closed.
    pub async fn next_or_close(&mut self, limit: Duration) -> Result<Value, Closed> {
        loop {
            let message = tokio::time::timeout(limit, self.socket.next())
                .await
                .expect("a frame within the limit");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("a JSON frame"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(frame) => Closed::Frame(frame.code.into(), frame.reason.to_string()),
                        None => Closed::Dropped,
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Closed::Dropped),
            }
        }
    }

    /// Frames until one of type `kind` (returned), collecting the others.
    pub async fn until(&mut self, kind: &str, limit: Duration) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let frame = self.next_frame(limit).await;
            if frame["type"] == kind {
                return (before, frame);
            }
            before.push(frame);
        }
    }

    /// Asserts that no frame arrives within `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(quiet, self.socket.next()).await
        {
            panic!("expected silence, got {text}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
