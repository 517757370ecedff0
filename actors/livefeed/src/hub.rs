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
//!
//! How it reads the streams is [`crate::follow`]; what an event means for
//! each client is [`crate::event`].

use std::collections::HashMap;

use async_nats::jetstream::consumer::DeliverPolicy;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use taskflow_runtime::Platform;
use taskflow_schemas::events::NOTIFICATION_SENT;
use taskflow_schemas::feed::FeedCursor;
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM, audit_subject};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cursor;
use crate::directory::{FeedDirectory, Lost, SharedDirectory, read, write};
use crate::event::{Delivery, LiveEvent, LiveFrame, notification_frame, revoked_frame};
use crate::follow::{follow, place_tasks, read_directory, watch_for_rewinds};

/// Frames a client may have waiting before it counts as too slow.
pub const CLIENT_BUFFER: usize = 1024;

/// The user behind a connection; whether they are an admin is the
/// directory's to say, not their token's.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user: Uuid,
}

/// The last event the hub handled on `TASKS`, and the last membership or
/// role change its directory applied on `AUDIT`.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub tasks: FeedCursor,
    pub directory: FeedCursor,
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
    /// Where the hub is on each stream it follows.
    Heads(RpcReplyPort<Heads>),
    /// After NATS came back, a stream no longer holds where the hub was:
    /// `TASKS` its head (clients were sent events that are gone or moved),
    /// or `AUDIT` the last membership change its directory applied (changes
    /// published again may sit before it, where its follower never looks).
    /// The server lost its unsynced tail; the hub starts over, in place,
    /// from the streams as they are now.
    StreamRewound(&'static str, FeedCursor),
}

struct Client {
    viewer: Viewer,
    frames: mpsc::Sender<LiveFrame>,
    evicted: CancellationToken,
}

pub struct FeedHub;

pub struct HubState {
    platform: Platform,
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
        HubState::start(platform, directory, myself).await
    }

    async fn handle(
        &self,
        myself: ActorRef<HubMessage>,
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
            HubMessage::Heads(reply) => {
                let _ = reply.send(Heads {
                    tasks: state.head,
                    directory: read(&state.directory).head(),
                });
            }
            HubMessage::StreamRewound(stream, head) => {
                metrics::counter!("taskflow_ws_stream_rewinds_total", "stream" => stream)
                    .increment(1);
                tracing::error!(
                    service = "livefeed",
                    stream,
                    head = head.seq,
                    "the stream no longer holds what the feed read up to there (the NATS server lost its unsynced tail); the feed starts over"
                );
                state.restart(myself).await?;
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

impl HubState {
    /// Reads the directory (memberships and roles, every task's place) into
    /// `directory`, then follows `TASKS` from its end.
    async fn start(
        platform: Platform,
        directory: SharedDirectory,
        myself: ActorRef<HubMessage>,
    ) -> Result<HubState, ActorProcessingErr> {
        // Memberships and roles up to now, then every task's place, before
        // the first event goes out.
        let memberships = read_directory(&platform, &directory, myself.clone()).await?;
        let mut stream = platform.jetstream.get_stream(TASKS_STREAM).await?;
        let last = stream.info().await?.state.last_sequence;
        let head = cursor::stored_at(&platform.jetstream, TASKS_STREAM, last)
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
            platform,
            head,
            next_client: 0,
            clients: HashMap::new(),
            directory,
            followers: [events, notifications, memberships, rewinds],
        })
    }

    /// Starts over from the streams as they are now, in place, so the
    /// process (and the API beside the feed) keeps running: the clients are
    /// dropped (their sessions tell them to resume, and a cursor of the lost
    /// history gets `resync_required`), and the directory is rebuilt beside
    /// the one sessions read, then put in its place.
    async fn restart(&mut self, myself: ActorRef<HubMessage>) -> Result<(), ActorProcessingErr> {
        for follower in &self.followers {
            follower.abort();
        }
        self.clients.clear();
        metrics::gauge!("taskflow_ws_connections").set(0.0);
        let rebuilt = FeedDirectory::shared();
        let mut started = HubState::start(self.platform.clone(), rebuilt.clone(), myself).await?;
        *write(&self.directory) = std::mem::take(&mut *write(&rebuilt));
        started.directory = self.directory.clone();
        started.next_client = self.next_client;
        *self = started;
        Ok(())
    }

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
