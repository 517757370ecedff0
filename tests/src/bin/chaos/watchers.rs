//! Live-feed clients that come and go: each follows one user's feed on
//! either edge, drops its connection now and then (or loses it to a kill)
//! and resumes from the last cursor it saw. What each received is checked
//! against the stream: every event it may see, once, in order, from the
//! last time the feed asked it to resync (after a power loss of NATS).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use taskflow_schemas::feed::FeedCursor;

use crate::rng::Rng;
use crate::workload::Client;

/// One event as a client received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `TASKS` sequence of its cursor.
    pub seq: u64,
    pub event_id: Uuid,
}

pub struct Watcher {
    pub user: Uuid,
    pub received: Vec<Received>,
    /// Each `resync_required`: how many events had been received, and the
    /// sequence to continue after (everything up to it is the REST API's).
    pub resyncs: Vec<(usize, u64)>,
    pub resumes: usize,
}

/// Follows `client`'s feed until `stop` says so, then resumes once more and
/// reads up to the end (`ready`), so that it has everything.
pub async fn watch(
    client: Client,
    edges: Arc<Vec<String>>,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> Watcher {
    let mut rng = Rng::new(seed);
    let mut watcher = Watcher {
        user: client.id,
        received: Vec::new(),
        resyncs: Vec::new(),
        resumes: 0,
    };
    // The cursor to resume from, as the feed gave it.
    let mut cursor = 0;
    loop {
        let stopping = *stop.borrow();
        let edge = &edges[rng.below(edges.len() as u64) as usize];
        let url = format!(
            "{}/ws?token={}&cursor={cursor}",
            edge.replacen("http://", "ws://", 1),
            client.token
        );
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        watcher.resumes += 1;
        // Stay a while, then leave and come back.
        let stay = tokio::time::sleep(Duration::from_millis(1_000 + rng.below(6_000)));
        tokio::pin!(stay);
        let mut ready = false;
        loop {
            tokio::select! {
                _ = &mut stay, if !stopping => break,
                _ = stop.changed(), if !stopping => break,
                message = socket.next() => {
                    let Some(Ok(Message::Text(text))) = message else {
                        if matches!(message, Some(Ok(_))) { continue; }
                        break;
                    };
                    let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let at = frame["cursor"].as_u64();
                    let seq = at.and_then(FeedCursor::from_wire).unwrap_or_default().seq;
                    match frame["type"].as_str() {
                        Some("event") => {
                            cursor = at.unwrap_or(cursor);
                            watcher.received.push(Received {
                                seq,
                                event_id: frame["event"]["event_id"]
                                    .as_str()
                                    .and_then(|id| id.parse().ok())
                                    .unwrap_or_default(),
                            });
                        }
                        Some("resync_required") => {
                            cursor = at.unwrap_or(cursor);
                            watcher.resyncs.push((watcher.received.len(), seq));
                        }
                        Some("ready") => {
                            ready = true;
                            if stopping {
                                break;
                            }
                        }
                        Some("error") | None => break,
                        _ => {}
                    }
                }
            }
        }
        let _ = socket.close(None).await;
        if stopping && ready {
            return watcher;
        }
    }
}
