//! The hub: one actor per process that follows the `TASKS` stream from its
//! tail and fans each event out to the connected clients allowed to see it.
//!
//! A client registers and gets the hub's `head` (the last sequence it
//! handled); every event after `head` reaches the client through its channel,
//! every event up to `head` is the client's to replay from the stream. The
//! hub handles registrations between events, so the seam has no gap and no
//! duplicate.
//!
//! A client's channel is bounded: when it is full the hub drops the client
//! and cancels its token, and the session closes the socket with a reason.
//! The hub never waits for a client.

use std::collections::HashMap;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Deserialize;
use serde::de::IgnoredAny;
use taskflow_runtime::Platform;
use taskflow_schemas::envelope::SCHEMA_VERSION;
use taskflow_schemas::subjects::TASKS_STREAM;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Frames a client may have waiting before it counts as too slow.
pub const CLIENT_BUFFER: usize = 1024;

/// One event, serialized once for every client (each gets a reference to
/// the same bytes), with who may see it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub seq: u64,
    pub readers: Vec<Uuid>,
    pub frame: Utf8Bytes,
}

impl LiveEvent {
    /// `None` for a message that is not a task event envelope (the consumers
    /// deal with those; the feed only skips them). Reads only who may see
    /// it; the frame wraps the stored bytes as they are.
    pub fn decode(seq: u64, payload: &[u8]) -> Option<Self> {
        let peek: EnvelopePeek = serde_json::from_slice(payload).ok()?;
        if peek.schema_version != SCHEMA_VERSION {
            // Like every consumer: a version this build does not know is
            // counted and skipped, never shown half-understood.
            metrics::counter!("taskflow_consumer_skipped_total", "consumer" => "livefeed", "reason" => "unknown_schema_version")
                .increment(1);
            return None;
        }
        let envelope = std::str::from_utf8(payload).ok()?;
        let frame = format!(r#"{{"type":"event","cursor":{seq},"event":{envelope}}}"#);
        Some(Self {
            seq,
            readers: peek.payload.readers(),
            frame: Utf8Bytes::from(frame),
        })
    }

    pub fn visible_to(&self, client: &Viewer) -> bool {
        client.admin || self.readers.contains(&client.user)
    }
}

/// The parts of an envelope the feed needs; the required fields make sure
/// it is one.
#[derive(Deserialize)]
struct EnvelopePeek {
    #[allow(dead_code)]
    event_id: Uuid,
    #[allow(dead_code)]
    event_type: IgnoredAny,
    #[allow(dead_code)]
    occurred_at: IgnoredAny,
    schema_version: u32,
    #[serde(default)]
    payload: PayloadPeek,
}

#[derive(Deserialize, Default)]
struct PayloadPeek {
    #[serde(default)]
    task: TaskPeek,
    #[serde(default)]
    changes: ChangesPeek,
}

#[derive(Deserialize, Default)]
struct TaskPeek {
    creator_id: Option<Uuid>,
    assignee_id: Option<Uuid>,
    #[serde(default)]
    observer_ids: Vec<Uuid>,
}

#[derive(Deserialize, Default)]
struct ChangesPeek {
    assignee_id: Option<Old<Option<Uuid>>>,
    observer_ids: Option<Old<Vec<Uuid>>>,
}

#[derive(Deserialize)]
struct Old<T> {
    old: T,
}

impl PayloadPeek {
    /// Who may see a task event: the task's creator, assignee and observers
    /// after the change, and an assignee or observer the change removed (so
    /// their view can drop the task).
    fn readers(self) -> Vec<Uuid> {
        let mut readers: Vec<Uuid> = self
            .task
            .creator_id
            .into_iter()
            .chain(self.task.assignee_id)
            .collect();
        readers.extend(self.task.observer_ids);
        readers.extend(self.changes.assignee_id.and_then(|change| change.old));
        readers.extend(
            self.changes
                .observer_ids
                .map(|change| change.old)
                .unwrap_or_default(),
        );
        readers.sort();
        readers.dedup();
        readers
    }
}

/// The user behind a connection.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user: Uuid,
    pub admin: bool,
}

/// What a registration gets back.
pub struct Registration {
    pub client: u64,
    /// The last sequence the hub handled: replay up to here, live after.
    pub head: u64,
    pub frames: mpsc::Receiver<Utf8Bytes>,
    /// Cancelled when the hub dropped the client for being too slow.
    pub evicted: CancellationToken,
}

pub enum HubMessage {
    /// The next message of the stream, as stored.
    Message(u64, bytes::Bytes),
    Register(Viewer, RpcReplyPort<Registration>),
    Unregister(u64),
    Count(RpcReplyPort<usize>),
}

struct Client {
    viewer: Viewer,
    frames: mpsc::Sender<Utf8Bytes>,
    evicted: CancellationToken,
}

pub struct FeedHub;

pub struct HubState {
    head: u64,
    next_client: u64,
    clients: HashMap<u64, Client>,
    follower: tokio::task::JoinHandle<()>,
}

impl Actor for FeedHub {
    type Msg = HubMessage;
    type State = HubState;
    type Arguments = Platform;

    async fn pre_start(
        &self,
        myself: ActorRef<HubMessage>,
        platform: Platform,
    ) -> Result<HubState, ActorProcessingErr> {
        let mut stream = platform.jetstream.get_stream(TASKS_STREAM).await?;
        let head = stream.info().await?.state.last_sequence;
        // An ordered consumer recreates itself after a gap or a reconnection,
        // and starts right after the head, so nothing falls in between.
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: head + 1,
                },
                filter_subject: "tasks.>".into(),
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        let hub = myself.clone();
        let follower = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let Ok(message) = message else { continue };
                let Ok(info) = message.info() else { continue };
                let seq = info.stream_sequence;
                if hub
                    .cast(HubMessage::Message(seq, message.payload.clone()))
                    .is_err()
                {
                    return;
                }
            }
        });
        tracing::info!(service = "livefeed", head, "following TASKS");
        Ok(HubState {
            head,
            next_client: 0,
            clients: HashMap::new(),
            follower,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<HubMessage>,
        message: HubMessage,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HubMessage::Message(seq, payload) => state.fan_out(seq, &payload),
            HubMessage::Register(viewer, reply) => {
                let (sender, frames) = mpsc::channel(CLIENT_BUFFER);
                let evicted = CancellationToken::new();
                state.next_client += 1;
                let client = state.next_client;
                state.clients.insert(
                    client,
                    Client {
                        viewer,
                        frames: sender,
                        evicted: evicted.clone(),
                    },
                );
                metrics::gauge!("taskflow_ws_connections").set(state.clients.len() as f64);
                let _ = reply.send(Registration {
                    client,
                    head: state.head,
                    frames,
                    evicted,
                });
            }
            HubMessage::Unregister(client) => {
                state.clients.remove(&client);
                metrics::gauge!("taskflow_ws_connections").set(state.clients.len() as f64);
            }
            HubMessage::Count(reply) => {
                let _ = reply.send(state.clients.len());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<HubMessage>,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        state.follower.abort();
        for client in state.clients.values() {
            client.evicted.cancel();
        }
        Ok(())
    }
}

impl HubState {
    fn fan_out(&mut self, seq: u64, payload: &[u8]) {
        self.head = self.head.max(seq);
        // With nobody connected there is nothing to decode.
        if self.clients.is_empty() {
            return;
        }
        let Some(event) = LiveEvent::decode(seq, payload) else {
            return;
        };
        let mut too_slow = Vec::new();
        for (id, client) in &self.clients {
            if !event.visible_to(&client.viewer) {
                continue;
            }
            match client.frames.try_send(event.frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                // The session ended and will unregister itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if too_slow.is_empty() {
            return;
        }
        for id in too_slow {
            if let Some(client) = self.clients.remove(&id) {
                tracing::warn!(service = "livefeed", client = id, user = %client.viewer.user, "client too slow; closing it");
                metrics::counter!("taskflow_ws_evicted_total").increment(1);
                client.evicted.cancel();
            }
        }
        metrics::gauge!("taskflow_ws_connections").set(self.clients.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use taskflow_schemas::EventEnvelope;

    #[test]
    fn readers_include_who_a_change_removed() {
        let (ada, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let envelope = EventEnvelope::new(
            "task.updated",
            Some(Uuid::now_v7()),
            Some(ada),
            "r",
            json!({
                "task": {"creator_id": ada, "assignee_id": cy, "observer_ids": []},
                "changes": {"assignee_id": {"old": bob, "new": cy}}
            }),
        );
        let event = LiveEvent::decode(7, &serde_json::to_vec(&envelope).unwrap()).unwrap();
        for user in [ada, bob, cy] {
            assert!(event.visible_to(&Viewer { user, admin: false }));
        }
        let stranger = Viewer {
            user: Uuid::now_v7(),
            admin: false,
        };
        assert!(!event.visible_to(&stranger));
        assert!(event.visible_to(&Viewer {
            admin: true,
            ..stranger
        }));
        assert!(event.frame.contains(r#""cursor":7"#));
    }
}
