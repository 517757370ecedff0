//! A real WebSocket client of the live feed, with typed helpers.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The `TASKS` sequence of a frame's cursor (its check bits left out).
pub fn seq_of(frame: &Value) -> u64 {
    let cursor = frame["cursor"].as_u64().expect("a cursor");
    taskflow_schemas::feed::FeedCursor::from_wire(cursor)
        .expect("a cursor the feed gives out")
        .seq
}

/// Notification frames arrive whenever the notifier makes one; the helpers
/// set them aside so that tests of task events read those alone, and
/// `until("notification")` hands them out in order.
pub struct FeedClient {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    notifications: Vec<Value>,
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
        Self {
            socket,
            notifications: Vec::new(),
        }
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
        Self {
            socket,
            notifications: Vec::new(),
        }
    }

    /// Sends any message as it is: binary, a raw frame, ...
    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("the frame is sent");
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

    /// The next JSON frame other than a notification, or how the
    /// connection closed.
    pub async fn next_or_close(&mut self, limit: Duration) -> Result<Value, Closed> {
        loop {
            let frame = self.read(limit).await?;
            if frame["type"] == "notification" {
                self.notifications.push(frame);
                continue;
            }
            return Ok(frame);
        }
    }

    /// The next JSON frame of any type, skipping pings.
    async fn read(&mut self, limit: Duration) -> Result<Value, Closed> {
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
        if kind == "notification" && !self.notifications.is_empty() {
            return (Vec::new(), self.notifications.remove(0));
        }
        let mut before = Vec::new();
        loop {
            let frame = match self.read(limit).await {
                Ok(frame) => frame,
                Err(closed) => panic!("the feed closed: {closed:?}"),
            };
            if frame["type"] == "notification" && kind != "notification" {
                self.notifications.push(frame);
                continue;
            }
            if frame["type"] == kind {
                return (before, frame);
            }
            before.push(frame);
        }
    }

    /// Asserts that no frame other than a notification arrives within
    /// `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        let until = tokio::time::Instant::now() + quiet;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, self.socket.next()).await {
            let Message::Text(text) = message else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
            if frame["type"] != "notification" {
                panic!("expected silence, got {text}");
            }
            self.notifications.push(frame);
        }
    }

    /// Notification frames received and not yet handed out by `until`.
    pub fn set_aside_notifications(&self) -> &[Value] {
        &self.notifications
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
