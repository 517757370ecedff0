//! The hub: one actor per process that follows the `TASKS` stream from its
//! tail and fans each event out to the connected clients allowed to see it.
//! It keeps the feed's directory (see [`crate::directory`]): at start it reads
//! every membership and role change of `AUDIT` and the last event of every
//! task, then follows both; a member who loses a project gets a `revoked`
//! frame for each of its tasks they are not named in.
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
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Ordered;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Deserialize;
use serde::de::IgnoredAny;
use taskflow_runtime::Platform;
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::access::{Participants, ReadAccess};
use taskflow_schemas::envelope::SCHEMA_VERSION;
use taskflow_schemas::events::{NOTIFICATION_SENT, TASK_DELETED};
use taskflow_schemas::feed::{FeedCursor, ServerFrame};
use taskflow_schemas::notification::{Channel, NotificationEventPayload};
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM, audit_subject};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cursor;
use crate::directory::{self, FeedDirectory, Lost, SharedDirectory};

/// Frames a client may have waiting before it counts as too slow.
pub const CLIENT_BUFFER: usize = 1024;
/// At start, the stream sent nothing for this long before the hub had read
/// what it held.
const STARTUP_STALL: Duration = Duration::from_secs(10);
/// After a reconnection, how often and how far apart the hub asks `TASKS`
/// for its head before it gives up checking.
const REWIND_CHECK_TRIES: usize = 50;
const REWIND_CHECK_PAUSE: Duration = Duration::from_millis(200);

/// One event, serialized once for every client (each gets a reference to
/// the same bytes), with who may see it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub cursor: FeedCursor,
    pub task_id: Option<Uuid>,
    /// Who may read the task once this event happened.
    pub access: ReadAccess,
    /// The project the change moved the task out of: its members who do not
    /// read it where it is now get a `revoked` frame.
    pub previous_project: Option<Uuid>,
    pub deleted: bool,
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
        let cursor = FeedCursor::of_event(seq, &peek.event_id);
        let frame = format!(
            r#"{{"type":"event","cursor":{},"event":{envelope}}}"#,
            cursor.to_wire()
        );
        let project = peek.payload.task.project_id;
        let previous_project = peek
            .payload
            .changes
            .project_id
            .as_ref()
            .and_then(|change| change.old)
            .filter(|previous| Some(*previous) != project);
        let (named, revoked) = peek.payload.access();
        Some(Self {
            cursor,
            task_id: peek.task_id,
            access: ReadAccess { named, project },
            previous_project,
            deleted: peek.event_type == TASK_DELETED,
            revoked,
            frame: Utf8Bytes::from(frame),
        })
    }

    /// The event for whoever may read its task (admins, those named in it,
    /// the members of its project), `revoked` for whom it removed: an old
    /// assignee or observer, or a member of the project it left.
    pub fn delivery_to(&self, user: Uuid, directory: &FeedDirectory) -> Delivery {
        if directory.reads(user, &self.access) {
            return Delivery::Event;
        }
        let left = self.revoked.contains(&user)
            || self
                .previous_project
                .is_some_and(|previous| directory.is_member(previous, user));
        match (self.task_id, left) {
            (Some(task_id), true) => Delivery::Revoked(task_id),
            _ => Delivery::Nothing,
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

/// A frame for a client, with the `TASKS` sequence it stands for (0 for a
/// frame that is not in the stream's order: a notification, a `revoked` of
/// a membership change). A session drops the stream frames it replayed
/// already: the hub may be behind the stream a replay read to.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    pub seq: u64,
    pub text: Utf8Bytes,
}

/// `{"type":"revoked","task_id":...}`.
pub fn revoked_frame(task_id: Uuid) -> Utf8Bytes {
    Utf8Bytes::from(format!(r#"{{"type":"revoked","task_id":"{task_id}"}}"#))
}

/// The parts of an envelope the feed needs; the required fields make sure
/// it is one.
#[derive(Deserialize)]
struct EnvelopePeek {
    event_id: Uuid,
    #[serde(default)]
    task_id: Option<Uuid>,
    event_type: String,
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
    #[serde(default)]
    project_id: Option<Uuid>,
    assignee_id: Option<Uuid>,
    #[serde(default)]
    observer_ids: Vec<Uuid>,
}

#[derive(Deserialize, Default)]
struct ChangesPeek {
    assignee_id: Option<Old<Option<Uuid>>>,
    project_id: Option<Old<Option<Uuid>>>,
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

/// The user behind a connection; whether they are an admin is the
/// directory's to say, not their token's.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user: Uuid,
}

/// What a registration gets back.
pub struct Registration {
    pub client: u64,
    /// The last event the hub handled: replay up to here, live after.
    pub head: FeedCursor,
    pub frames: mpsc::Receiver<LiveFrame>,
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
    /// A membership or role change from `AUDIT`, as stored.
    Directory(u64, bytes::Bytes),
    /// A stream follower stopped: the feed would freeze, so the hub fails.
    FollowerEnded,
    /// The last event the hub handled.
    Head(RpcReplyPort<FeedCursor>),
    /// After NATS came back, `TASKS` no longer holds the hub's head where
    /// the hub saw it: the server lost its unsynced tail, and clients were
    /// sent events that are gone or moved. The hub fails so that the feed
    /// starts over from the stream as it is now.
    StreamRewound(FeedCursor),
}

struct Client {
    viewer: Viewer,
    frames: mpsc::Sender<LiveFrame>,
    evicted: CancellationToken,
}

pub struct FeedHub;

pub struct HubState {
    head: FeedCursor,
    next_client: u64,
    clients: HashMap<u64, Client>,
    directory: SharedDirectory,
    followers: [tokio::task::JoinHandle<()>; 4],
}

impl Actor for FeedHub {
    type Msg = HubMessage;
    type State = HubState;
    type Arguments = (Platform, SharedDirectory);

    async fn pre_start(
        &self,
        myself: ActorRef<HubMessage>,
        (platform, directory): (Platform, SharedDirectory),
    ) -> Result<HubState, ActorProcessingErr> {
        // Memberships and roles up to now, then every task's place, before
        // the first event goes out.
        let memberships = read_directory(&platform, &directory, myself.clone()).await?;
        let mut stream = platform.jetstream.get_stream(TASKS_STREAM).await?;
        let last = stream.info().await?.state.last_sequence;
        let head = cursor::stored_at(&platform.jetstream, last)
            .await?
            .unwrap_or(FeedCursor::unchecked(last));
        place_tasks(&platform, &directory).await?;
        // An ordered consumer recreates itself after a gap or a reconnection,
        // and starts right after the head, so nothing falls in between.
        let events = follow(
            &platform,
            TASKS_STREAM,
            "tasks.>",
            DeliverPolicy::ByStartSequence {
                start_sequence: head.seq + 1,
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
        let rewinds = watch_for_rewinds(&platform, myself.clone());
        tracing::info!(
            service = "livefeed",
            head = head.seq,
            "following TASKS and notifications"
        );
        Ok(HubState {
            head,
            next_client: 0,
            clients: HashMap::new(),
            directory,
            followers: [events, notifications, memberships, rewinds],
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
            HubMessage::Directory(seq, payload) => state.apply_directory(seq, &payload),
            HubMessage::FollowerEnded => return Err("a stream follower ended".into()),
            HubMessage::Head(reply) => {
                let _ = reply.send(state.head);
            }
            HubMessage::StreamRewound(head) => {
                metrics::counter!("taskflow_ws_stream_rewinds_total").increment(1);
                tracing::error!(
                    service = "livefeed",
                    head = head.seq,
                    "TASKS no longer holds the events the feed sent up to its head (the NATS server lost its unsynced tail); the feed starts over"
                );
                return Err("TASKS lost events the feed had sent".into());
            }
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

/// The messages of `subjects` of `stream` from `from`, through an ordered
/// consumer, and how many it held when it was made.
async fn ordered(
    platform: &Platform,
    stream: &str,
    subjects: &[&str],
    from: DeliverPolicy,
) -> Result<(Ordered, u64), ActorProcessingErr> {
    let mut consumer = platform
        .jetstream
        .get_stream(stream)
        .await?
        .create_consumer(OrderedConfig {
            deliver_policy: from,
            filter_subjects: subjects.iter().map(|subject| subject.to_string()).collect(),
            ..Default::default()
        })
        .await?;
    let pending = consumer.info().await?.num_pending;
    Ok((consumer.messages().await?, pending))
}

/// The next `count` messages of `messages`, as (sequence, payload).
async fn take(
    messages: &mut Ordered,
    count: u64,
) -> Result<Vec<(u64, bytes::Bytes)>, ActorProcessingErr> {
    let mut taken = Vec::with_capacity(count as usize);
    while (taken.len() as u64) < count {
        let next = tokio::time::timeout(STARTUP_STALL, messages.next())
            .await
            .map_err(|_| format!("the stream sent nothing for {STARTUP_STALL:?}"))?
            .ok_or("the stream ended")??;
        taken.push((next.info()?.stream_sequence, next.payload.clone()));
    }
    Ok(taken)
}

/// Reads every membership and role change up to now into `directory`, then
/// follows the rest for the hub.
async fn read_directory(
    platform: &Platform,
    directory: &SharedDirectory,
    hub: ActorRef<HubMessage>,
) -> Result<tokio::task::JoinHandle<()>, ActorProcessingErr> {
    let (mut messages, pending) = ordered(
        platform,
        AUDIT_STREAM,
        &directory::SUBJECTS,
        DeliverPolicy::All,
    )
    .await?;
    for (seq, payload) in take(&mut messages, pending).await? {
        write(directory).apply_audit(seq, &payload);
    }
    Ok(forward(messages, hub, HubMessage::Directory))
}

/// Places every task the stream still holds an event of in `directory`,
/// from the last event of each subject.
async fn place_tasks(
    platform: &Platform,
    directory: &SharedDirectory,
) -> Result<(), ActorProcessingErr> {
    let (mut messages, pending) = ordered(
        platform,
        TASKS_STREAM,
        &["tasks.>"],
        DeliverPolicy::LastPerSubject,
    )
    .await?;
    let events = take(&mut messages, pending).await?;
    let mut directory = write(directory);
    for (seq, payload) in events {
        if let Some(event) = LiveEvent::decode(seq, &payload) {
            directory.apply_task(&event);
        }
    }
    Ok(())
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
    let (messages, _) = ordered(platform, stream, &[subject], from).await?;
    Ok(forward(messages, hub, message))
}

fn forward(
    mut messages: Ordered,
    hub: ActorRef<HubMessage>,
    message: fn(u64, bytes::Bytes) -> HubMessage,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(next) = messages.next().await {
            let Ok(next) = next else { continue };
            let Ok(info) = next.info() else { continue };
            let seq = info.stream_sequence;
            if hub.cast(message(seq, next.payload.clone())).is_err() {
                return;
            }
        }
        let _ = hub.cast(HubMessage::FollowerEnded);
    })
}

/// After each NATS reconnection, checks that `TASKS` still holds the hub's
/// head where the hub saw it, and tells the hub if it does not.
fn watch_for_rewinds(
    platform: &Platform,
    hub: ActorRef<HubMessage>,
) -> tokio::task::JoinHandle<()> {
    let mut connections = platform.nats_connections.clone();
    let jetstream = platform.jetstream.clone();
    tokio::spawn(async move {
        connections.borrow_and_update();
        while connections.changed().await.is_ok() {
            let Ok(head) = ractor::call!(hub, HubMessage::Head) else {
                return;
            };
            if head.check == 0 {
                continue;
            }
            // The server may take a moment to serve its streams again.
            let mut stored = Err(String::new());
            for _ in 0..REWIND_CHECK_TRIES {
                stored = cursor::stored_at(&jetstream, head.seq).await;
                if stored.is_ok() {
                    break;
                }
                tokio::time::sleep(REWIND_CHECK_PAUSE).await;
            }
            match stored {
                Ok(Some(found)) if found == head => {}
                Ok(_) => {
                    let _ = hub.cast(HubMessage::StreamRewound(head));
                    return;
                }
                Err(error) => {
                    tracing::warn!(
                        service = "livefeed",
                        error,
                        "could not check TASKS after a reconnection"
                    );
                }
            }
        }
    })
}

/// The directory to read; a writer that panicked left it as it was.
pub fn read(directory: &SharedDirectory) -> std::sync::RwLockReadGuard<'_, FeedDirectory> {
    directory
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(directory: &SharedDirectory) -> std::sync::RwLockWriteGuard<'_, FeedDirectory> {
    directory
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            let frame = LiveFrame {
                seq: 0,
                text: frame.clone(),
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = client.frames.try_send(frame) {
                too_slow.push(*id);
            }
        }
        self.evict(too_slow);
    }

    /// Applies a membership or role change; whoever lost a project gets a
    /// `revoked` frame for each of its tasks they are not named in.
    fn apply_directory(&mut self, seq: u64, payload: &[u8]) {
        let lost = write(&self.directory).apply_audit(seq, payload);
        let mut too_slow = Vec::new();
        for Lost { user, tasks } in lost {
            if read(&self.directory).is_admin(user) {
                continue;
            }
            for (id, client) in &self.clients {
                if client.viewer.user != user {
                    continue;
                }
                for task in &tasks {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        client.frames.try_send(LiveFrame {
                            seq: 0,
                            text: revoked_frame(*task),
                        })
                    {
                        too_slow.push(*id);
                        break;
                    }
                }
            }
        }
        self.evict(too_slow);
    }

    fn fan_out(&mut self, seq: u64, payload: &[u8]) {
        let event = LiveEvent::decode(seq, payload);
        if seq > self.head.seq {
            self.head = event
                .as_ref()
                .map_or(FeedCursor::unchecked(seq), |event| event.cursor);
        }
        let Some(event) = event else {
            return;
        };
        write(&self.directory).apply_task(&event);
        if self.clients.is_empty() {
            return;
        }
        let directory = read(&self.directory);
        let mut too_slow = Vec::new();
        for (id, client) in &self.clients {
            let frame = match event.delivery_to(client.viewer.user, &directory) {
                Delivery::Event => event.frame.clone(),
                Delivery::Revoked(task_id) => revoked_frame(task_id),
                Delivery::Nothing => continue,
            };
            match client.frames.try_send(LiveFrame { seq, text: frame }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                // The session ended and will unregister itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        drop(directory);
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
    use serde_json::{Value, json};

    use taskflow_schemas::EventEnvelope;

    fn bytes(event_type: &str, task_id: Option<Uuid>, payload: Value) -> Vec<u8> {
        let envelope = EventEnvelope::new(event_type, task_id, None, "r", payload);
        serde_json::to_vec(&envelope).unwrap()
    }

    fn project_event(event_type: &str, project: Uuid, member: Uuid, role: &str) -> Vec<u8> {
        let now = chrono::Utc::now();
        bytes(
            event_type,
            None,
            json!({
                "project": {"id": project, "name": "p", "description": null, "created_by": member,
                            "version": 1, "created_at": now, "updated_at": now},
                "member": {"project_id": project, "user_id": member, "role": role, "added_at": now}
            }),
        )
    }

    #[test]
    fn a_change_that_removes_a_reader_revokes_it_and_shows_the_event_to_the_rest() {
        let (ada, bob, cy, root) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let task_id = Uuid::now_v7();
        let payload = bytes(
            "task.updated",
            Some(task_id),
            json!({
                "task": {"creator_id": ada, "assignee_id": cy, "observer_ids": []},
                "changes": {"assignee_id": {"old": bob, "new": cy}}
            }),
        );
        let event = LiveEvent::decode(7, &payload).unwrap();
        let mut directory = FeedDirectory::default();
        directory.apply_audit(
            0,
            &bytes(
                "user.role_changed",
                None,
                json!({"user_id": root, "role": "admin"}),
            ),
        );
        assert_eq!(event.delivery_to(ada, &directory), Delivery::Event);
        assert_eq!(event.delivery_to(cy, &directory), Delivery::Event);
        assert_eq!(
            event.delivery_to(bob, &directory),
            Delivery::Revoked(task_id)
        );
        assert_eq!(
            event.delivery_to(Uuid::now_v7(), &directory),
            Delivery::Nothing
        );
        assert_eq!(event.delivery_to(root, &directory), Delivery::Event);
        let cursor = event.cursor.to_wire();
        assert_eq!(FeedCursor::from_wire(cursor).unwrap().seq, 7);
        assert!(event.frame.contains(&format!(r#""cursor":{cursor}"#)));
    }

    #[test]
    fn project_members_see_its_tasks_until_they_leave_or_the_task_does() {
        let (ada, bob, eve) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (launch, elsewhere) = (Uuid::now_v7(), Uuid::now_v7());
        let mut directory = FeedDirectory::default();
        directory.apply_audit(0, &project_event("project.created", launch, ada, "owner"));
        directory.apply_audit(
            0,
            &project_event("project.member_added", launch, bob, "viewer"),
        );
        let (planned, assigned) = (Uuid::now_v7(), Uuid::now_v7());
        for (seq, id, assignee) in [(1, planned, None), (2, assigned, Some(bob))] {
            let payload = json!({"task": {"id": id, "creator_id": ada, "project_id": launch,
                                          "assignee_id": assignee, "observer_ids": []}});
            let event = LiveEvent::decode(seq, &bytes("task.created", Some(id), payload)).unwrap();
            directory.apply_task(&event);
            assert_eq!(event.delivery_to(bob, &directory), Delivery::Event);
            assert_eq!(event.delivery_to(eve, &directory), Delivery::Nothing);
        }
        // Bob leaves: he loses the task he is not named in.
        let lost = directory.apply_audit(
            0,
            &project_event("project.member_removed", launch, bob, "viewer"),
        );
        assert_eq!(
            lost,
            vec![Lost {
                user: bob,
                tasks: vec![planned]
            }]
        );
        // Ada moves a task elsewhere, where she is nobody: she gets `revoked`.
        let moved = bytes(
            "task.updated",
            Some(planned),
            json!({"task": {"creator_id": ada, "project_id": elsewhere, "observer_ids": []},
                   "changes": {"project_id": {"old": launch, "new": elsewhere}}}),
        );
        let event = LiveEvent::decode(3, &moved).unwrap();
        directory.apply_task(&event);
        assert_eq!(
            event.delivery_to(ada, &directory),
            Delivery::Revoked(planned)
        );
        // A deleted project takes its members' access to every task with it.
        let lost =
            directory.apply_audit(0, &project_event("project.deleted", launch, ada, "owner"));
        assert_eq!(
            lost,
            vec![Lost {
                user: ada,
                tasks: vec![assigned]
            }]
        );
    }
}
