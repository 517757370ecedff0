//! Replaying what a client missed: the events of `TASKS` after its cursor,
//! read from the stream at the pace the client reads them, as the viewer
//! may see them now. A range that cannot be read to its end says so; it
//! never ends over a gap.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Ordered;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::extract::ws::WebSocket;
use futures::StreamExt;
use taskflow_schemas::feed::{FeedCursor, FeedErrorCode};
use taskflow_schemas::subjects::TASKS_STREAM;
use uuid::Uuid;

use super::socket::{refuse, send_text};
use super::state::{self, Refusal, Replayed};
use super::{Ending, FeedContext};
use crate::cursor;
use crate::directory;
use crate::event::{LiveEvent, revoked_frame};
use crate::hub::Viewer;

/// The stream sent nothing for this long before the replay reached its end.
const REPLAY_STALL: Duration = Duration::from_secs(5);

/// Why a replay did not reach its end.
pub enum ReplayError {
    /// The stream no longer holds what comes after the cursor.
    TooOld,
    /// The client is gone.
    Closed,
    /// The stream could not be read to the end.
    Failed(String),
}

/// The last sequence the stream holds.
pub async fn stream_end(context: &FeedContext) -> Result<u64, String> {
    let mut stream = context
        .jetstream
        .get_stream(TASKS_STREAM)
        .await
        .map_err(|error| error.to_string())?;
    let info = stream.info().await.map_err(|error| error.to_string())?;
    Ok(info.state.last_sequence)
}

/// Sends the events after `from` up to `to` as the viewer may see them now:
/// an event of a task they can no longer read is left out (the `revoked`
/// frame at the change that removed them stands for it). Gives the cursor
/// it reached.
pub async fn replay(
    socket: &mut WebSocket,
    context: &FeedContext,
    viewer: Viewer,
    from: FeedCursor,
    to: u64,
) -> Result<FeedCursor, ReplayError> {
    if from.seq >= to {
        return Ok(from);
    }
    let from = from.seq;
    // Who may read each task at the end of the range, by the directory as it
    // is now: a first pass reads only who may see each event.
    let mut last_seen: HashMap<Uuid, LiveEvent> = HashMap::new();
    let mut range = StreamRange::open(context, from, to).await?;
    while let Some((seq, payload)) = range.next().await? {
        if let Some(event) = LiveEvent::decode(seq, &payload)
            && let Some(task_id) = event.task_id
        {
            last_seen.insert(task_id, event);
        }
    }
    let readable_now: HashMap<Uuid, bool> = {
        let directory = directory::read(&context.directory);
        last_seen
            .into_iter()
            .map(|(task, last)| {
                let reads = directory.reads(viewer.user, &last.access);
                (task, reads)
            })
            .collect()
    };
    let mut range = StreamRange::open(context, from, to).await?;
    let mut replayed = 0u64;
    let mut reached = FeedCursor::unchecked(from);
    while let Some((seq, payload)) = range.next().await? {
        let Some(event) = LiveEvent::decode(seq, &payload) else {
            reached = cursor::of_message(seq, &payload);
            continue;
        };
        reached = event.cursor;
        let now = event
            .task_id
            .and_then(|task| readable_now.get(&task).copied())
            .unwrap_or(true);
        let delivery = event.delivery_to(viewer.user, &directory::read(&context.directory));
        let frame = match state::replayed(delivery, now) {
            Replayed::Event => event.frame,
            Replayed::Revoked(task_id) => revoked_frame(task_id),
            Replayed::Skipped => continue,
        };
        send_text(socket, frame)
            .await
            .map_err(|()| ReplayError::Closed)?;
        replayed += 1;
    }
    metrics::counter!("taskflow_ws_events_replayed_total").increment(replayed);
    Ok(reached)
}

/// The messages of `TASKS` after `from` up to `to`, each sequence in turn:
/// a missing one (deleted since) or a stream that stops answering ends the
/// range with an error rather than with a silent gap.
struct StreamRange {
    messages: Ordered,
    next: u64,
    to: u64,
}

impl StreamRange {
    async fn open(context: &FeedContext, from: u64, to: u64) -> Result<Self, ReplayError> {
        let failed = |error: &dyn std::fmt::Display| ReplayError::Failed(error.to_string());
        let mut stream = context
            .jetstream
            .get_stream(TASKS_STREAM)
            .await
            .map_err(|e| failed(&e))?;
        let first = stream
            .info()
            .await
            .map_err(|e| failed(&e))?
            .state
            .first_sequence;
        if from + 1 < first {
            return Err(ReplayError::TooOld);
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from + 1,
                },
                filter_subject: "tasks.>".into(),
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&e))?;
        let messages = consumer.messages().await.map_err(|e| failed(&e))?;
        Ok(Self {
            messages,
            next: from + 1,
            to,
        })
    }

    async fn next(&mut self) -> Result<Option<(u64, bytes::Bytes)>, ReplayError> {
        if self.next > self.to {
            return Ok(None);
        }
        let message = match tokio::time::timeout(REPLAY_STALL, self.messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(ReplayError::Failed(error.to_string())),
            Ok(None) => return Err(ReplayError::Failed("the stream ended".into())),
            Err(_) => {
                return Err(ReplayError::Failed(format!(
                    "the stream sent nothing for {REPLAY_STALL:?}"
                )));
            }
        };
        let seq = message
            .info()
            .map_err(|error| ReplayError::Failed(error.to_string()))?
            .stream_sequence;
        if seq != self.next {
            // Deleted since the range was opened: what the client missed is gone.
            return Err(ReplayError::TooOld);
        }
        self.next += 1;
        Ok(Some((seq, message.payload.clone())))
    }
}

/// The replay could not finish: say so and where to resume from, and close.
pub async fn replay_failed(socket: &mut WebSocket, from: FeedCursor, problem: String) -> Ending {
    tracing::warn!(
        service = "livefeed",
        from = from.seq,
        problem,
        "replay failed"
    );
    let from = from.to_wire();
    metrics::counter!("taskflow_ws_replays_failed_total").increment(1);
    let refusal = Refusal::new(
        FeedErrorCode::ReplayFailed,
        format!("the replay could not complete ({problem}); resume later from cursor {from}"),
    );
    refuse(socket, refusal).await;
    Ending::Closed
}
