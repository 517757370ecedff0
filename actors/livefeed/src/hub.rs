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
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::access::Participants;
use taskflow_schemas::envelope::SCHEMA_VERSION;
use taskflow_schemas::events::NOTIFICATION_SENT;
use taskflow_schemas::feed::ServerFrame;
use taskflow_schemas::notification::{Channel, NotificationEventPayload};
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM, audit_subject};
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
    pub task_id: Option<Uuid>,
    /// Who may read the task once this event happened.
    pub readers: Vec<Uuid>,
    /// Who could read the task before this event and no longer can: they get
    /// a `revoked` frame instead of the event, and nothing of it after.
    pub revoked: Vec<Uuid>,
    pub frame: Utf8Bytes,
}

/// What one event means for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Event,
    Revoked(Uuid),
    Nothing,
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
        let (readers, revoked) = peek.payload.access();
        Some(Self {
            seq,
            task_id: peek.task_id,
            readers,
            revoked,
            frame: Utf8Bytes::from(frame),
        })
    }

    /// The event for its readers (every event for an admin), `revoked` for
    /// whom it removed.
    pub fn delivery_to(&self, viewer: &Viewer) -> Delivery {
        if viewer.admin || self.readers.contains(&viewer.user) {
            Delivery::Event
        } else if let (Some(task_id), true) = (self.task_id, self.revoked.contains(&viewer.user)) {
            Delivery::Revoked(task_id)
        } else {
            Delivery::Nothing
        }
    }
}

/// The recipient of an in-app `notification.sent` envelope and its
/// `{"type":"notification","notification":{...}}` frame; `None` for
/// anything else.
pub fn notification_frame(payload: &[u8]) -> Option<(Uuid, Utf8Bytes)> {
    let envelope: EventEnvelope = serde_json::from_slice(payload).ok()?;
    if envelope.schema_version != SCHEMA_VERSION {
        return None;
    }
    let event: NotificationEventPayload = serde_json::from_value(envelope.payload).ok()?;
    let notification = event.notification;
    if notification.channel != Channel::InApp {
        return None;
    }
    let recipient = notification.recipient_id;
    let frame = ServerFrame::Notification {
        notification: serde_json::to_value(notification).ok()?,
    };
    let text = serde_json::to_string(&frame).ok()?;
    Some((recipient, Utf8Bytes::from(text)))
}

/// `{"type":"revoked","task_id":...}`.
pub fn revoked_frame(task_id: Uuid) -> Utf8Bytes {
    Utf8Bytes::from(format!(r#"{{"type":"revoked","task_id":"{task_id}"}}"#))
}

/// The parts of an envelope the feed needs; the required fields make sure
/// it is one.
#[derive(Deserialize)]
struct EnvelopePeek {
    #[allow(dead_code)]
    event_id: Uuid,
    #[serde(default)]
    task_id: Option<Uuid>,
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
    project_id: Option<Uuid>,
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
    /// Who may read the task after the change (its creator, assignee and
    /// observers), and whom the change removed (an old assignee or observer
    /// who is none of those now).
    fn access(self) -> (Vec<Uuid>, Vec<Uuid>) {
        let readers = match self.task.creator_id {
            Some(creator) => Participants {
                creator,
                project: self.task.project_id,
                assignee: self.task.assignee_id,
                observers: &self.task.observer_ids,
            }
            .readers(),
            None => Vec::new(),
        };
        let mut revoked: Vec<Uuid> = self
            .changes
            .assignee_id
            .and_then(|change| change.old)
            .into_iter()
            .chain(
                self.changes
                    .observer_ids
                    .map(|change| change.old)
                    .unwrap_or_default(),
            )
            .filter(|user| readers.binary_search(user).is_err())
            .collect();
        revoked.sort();
        revoked.dedup();
        (readers, revoked)
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
    /// A `notification.sent` from `AUDIT`, as stored.
    Notification(bytes::Bytes),
    /// A stream follower stopped: the feed would freeze, so the hub fails.
    FollowerEnded,
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
    followers: [tokio::task::JoinHandle<()>; 2],
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
        let events = follow(
            &platform,
            TASKS_STREAM,
            "tasks.>",
            DeliverPolicy::ByStartSequence {
                start_sequence: head + 1,
            },
            myself.clone(),
            HubMessage::Message,
        )
        .await?;
        // Notifications are live only: their history is the REST API's.
        let notifications = follow(
            &platform,
            AUDIT_STREAM,
            &audit_subject(NOTIFICATION_SENT),
            DeliverPolicy::New,
            myself.clone(),
            |_, payload| HubMessage::Notification(payload),
        )
        .await?;
        tracing::info!(
            service = "livefeed",
            head,
            "following TASKS and notifications"
        );
        Ok(HubState {
            head,
            next_client: 0,
            clients: HashMap::new(),
            followers: [events, notifications],
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
            HubMessage::Notification(payload) => state.push_notification(&payload),
            HubMessage::FollowerEnded => return Err("a stream follower ended".into()),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<HubMessage>,
        state: &mut HubState,
    ) -> Result<(), ActorProcessingErr> {
        for follower in &state.followers {
            follower.abort();
        }
        // Dropping the clients' senders tells each session the hub is gone.
        state.clients.clear();
        Ok(())
    }
}

/// Follows `subject` of `stream` with an ordered consumer from `from`,
/// handing each message to the hub as `message(seq, payload)`; tells the hub
/// if it ever stops.
async fn follow(
    platform: &Platform,
    stream: &str,
    subject: &str,
    from: DeliverPolicy,
    hub: ActorRef<HubMessage>,
    message: fn(u64, bytes::Bytes) -> HubMessage,
) -> Result<tokio::task::JoinHandle<()>, ActorProcessingErr> {
    let consumer = platform
        .jetstream
        .get_stream(stream)
        .await?
        .create_consumer(OrderedConfig {
            deliver_policy: from,
            filter_subject: subject.into(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    Ok(tokio::spawn(async move {
        while let Some(next) = messages.next().await {
            let Ok(next) = next else { continue };
            let Ok(info) = next.info() else { continue };
            let seq = info.stream_sequence;
            if hub.cast(message(seq, next.payload.clone())).is_err() {
                return;
            }
        }
        let _ = hub.cast(HubMessage::FollowerEnded);
    }))
}

impl HubState {
    /// Sends an in-app notification to its recipient's connections.
    fn push_notification(&mut self, payload: &[u8]) {
        let Some((recipient, frame)) = notification_frame(payload) else {
            return;
        };
        let mut too_slow = Vec::new();
        for (id, client) in &self.clients {
            if client.viewer.user != recipient {
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = client.frames.try_send(frame.clone()) {
                too_slow.push(*id);
            }
        }
        self.evict(too_slow);
    }

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
            let frame = match event.delivery_to(&client.viewer) {
                Delivery::Event => event.frame.clone(),
                Delivery::Revoked(task_id) => revoked_frame(task_id),
                Delivery::Nothing => continue,
            };
            match client.frames.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                // The session ended and will unregister itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        self.evict(too_slow);
    }

    /// Drops clients whose buffer is full; their sessions close them.
    fn evict(&mut self, too_slow: Vec<u64>) {
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
    fn a_change_that_removes_a_reader_revokes_it_and_shows_the_event_to_the_rest() {
        let (ada, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let task_id = Uuid::now_v7();
        let envelope = EventEnvelope::new(
            "task.updated",
            Some(task_id),
            Some(ada),
            "r",
            json!({
                "task": {"creator_id": ada, "assignee_id": cy, "observer_ids": []},
                "changes": {"assignee_id": {"old": bob, "new": cy}}
            }),
        );
        let event = LiveEvent::decode(7, &serde_json::to_vec(&envelope).unwrap()).unwrap();
        let viewer = |user| Viewer { user, admin: false };
        assert_eq!(event.delivery_to(&viewer(ada)), Delivery::Event);
        assert_eq!(event.delivery_to(&viewer(cy)), Delivery::Event);
        assert_eq!(event.delivery_to(&viewer(bob)), Delivery::Revoked(task_id));
        let stranger = viewer(Uuid::now_v7());
        assert_eq!(event.delivery_to(&stranger), Delivery::Nothing);
        assert_eq!(
            event.delivery_to(&Viewer {
                admin: true,
                ..stranger
            }),
            Delivery::Event
        );
        assert!(event.frame.contains(r#""cursor":7"#));
    }
}
