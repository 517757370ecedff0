//! How the hub reads the streams: at start, every membership and role
//! change of `AUDIT` and the last event of every task of `TASKS` into the
//! directory; then ordered consumers that hand each new message to the hub,
//! and a watch that tells the hub when `TASKS` lost the events it sent, or
//! `AUDIT` the membership changes its directory applied (a NATS server back
//! without its unsynced tail).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::Ordered;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::StreamExt;
use ractor::{ActorProcessingErr, ActorRef};
use taskflow_runtime::Platform;
use taskflow_schemas::feed::FeedCursor;
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM};

use crate::cursor;
use crate::directory::{self, SharedDirectory};
use crate::event::LiveEvent;
use crate::hub::HubMessage;

/// At start, the stream sent nothing for this long before the hub had read
/// what it held.
const STARTUP_STALL: Duration = Duration::from_secs(10);
/// After a reconnection, how far apart the hub asks `TASKS` for its head
/// until the server answers (first, and at most).
const REWIND_CHECK_PAUSE: Duration = Duration::from_millis(200);
const REWIND_CHECK_MAX_PAUSE: Duration = Duration::from_secs(2);

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
pub async fn read_directory(
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
        directory::write(directory).apply_audit(seq, &payload);
    }
    Ok(forward(messages, hub, HubMessage::Directory))
}

/// Places every task the stream still holds an event of in `directory`,
/// from the last event of each subject.
pub async fn place_tasks(
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
    let mut directory = directory::write(directory);
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
pub async fn follow(
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
/// head, and `AUDIT` its directory's, where the hub saw them, and tells the
/// hub if one does not.
pub fn watch_for_rewinds(
    platform: &Platform,
    hub: ActorRef<HubMessage>,
) -> tokio::task::JoinHandle<()> {
    let mut connections = platform.nats_connections.clone();
    let jetstream = platform.jetstream.clone();
    tokio::spawn(async move {
        connections.borrow_and_update();
        while connections.changed().await.is_ok() {
            let Ok(heads) = ractor::call!(hub, HubMessage::Heads) else {
                return;
            };
            for (stream, head) in [(TASKS_STREAM, heads.tasks), (AUDIT_STREAM, heads.directory)] {
                if head.check.is_some() && !still_there(&jetstream, stream, head).await {
                    let _ = hub.cast(HubMessage::StreamRewound(stream, head));
                    return;
                }
            }
        }
    })
}

/// Whether `stream` holds `head` where it was. The server may take a while
/// to serve its streams again (a stream's recovery from disk, a cluster's
/// election): asked until it answers, since a feed left on a rewound stream
/// would send events that are not there, or miss changes of access.
async fn still_there(
    jetstream: &async_nats::jetstream::Context,
    stream: &'static str,
    head: FeedCursor,
) -> bool {
    let mut pause = REWIND_CHECK_PAUSE;
    loop {
        match cursor::stored_at(jetstream, stream, head.seq).await {
            Ok(stored) => return stored == Some(head),
            Err(error) if pause == REWIND_CHECK_PAUSE => tracing::warn!(
                service = "livefeed",
                stream,
                error,
                "could not check a stream after a reconnection yet; asking again"
            ),
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(REWIND_CHECK_MAX_PAUSE);
    }
}
