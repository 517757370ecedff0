//! After the run: the system is left to settle, then every promise is
//! checked from the databases and the streams, and counted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use taskflow_schemas::EventEnvelope;
use uuid::Uuid;

use crate::poison::Injected;
use crate::watchers::Watcher;
use crate::workload::Acknowledged;
use taskflow_system_tests::cluster::{Cluster, service_names};

/// One invariant: what it says, how many cases it covered, and what broke it.
pub struct Invariant {
    pub name: &'static str,
    pub checked: usize,
    pub broken: Vec<String>,
}

impl Invariant {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            checked: 0,
            broken: Vec::new(),
        }
    }

    fn expect(&mut self, holds: bool, what: impl FnOnce() -> String) {
        self.checked += 1;
        if !holds && self.broken.len() < 5 {
            self.broken.push(what());
        }
    }
}

/// A stream's messages, decoded.
struct Stored {
    seq: u64,
    envelope: EventEnvelope,
}

async fn read_stream(js: &jetstream::Context, stream: &str) -> anyhow::Result<Vec<Stored>> {
    let mut stored = Vec::new();
    for (seq, payload) in read_messages(js, stream).await? {
        if let Ok(envelope) = serde_json::from_slice(&payload) {
            stored.push(Stored { seq, envelope });
        }
    }
    Ok(stored)
}

async fn read_payloads(js: &jetstream::Context, stream: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let messages = read_messages(js, stream).await?;
    Ok(messages.into_iter().map(|(_, payload)| payload).collect())
}

/// Every message of `stream`, as (sequence, payload).
async fn read_messages(
    js: &jetstream::Context,
    stream: &str,
) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let mut handle = js.get_stream(stream).await?;
    let last = handle.info().await?.state.last_sequence;
    let consumer = handle
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    let mut stored = Vec::new();
    let mut seen = 0;
    while seen < last {
        let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await?
        else {
            break;
        };
        let message = message?;
        seen = message
            .info()
            .map_err(|error| anyhow::anyhow!("{error}"))?
            .stream_sequence;
        stored.push((seen, message.payload.to_vec()));
    }
    Ok(stored)
}

/// Waits until nothing is left to do: every reminder the run set fired or
/// cancelled, every outbox published, every effect settled, every durable
/// consumer with nothing pending. Says what it still waits for now and then.
pub async fn settle(cluster: &Cluster, js: &jetstream::Context) -> anyhow::Result<()> {
    let mut pools = Vec::new();
    for service in service_names() {
        pools.push((service, cluster.database(service).await));
    }
    let started = std::time::Instant::now();
    let mut said = started;
    let mut clean = 0;
    loop {
        // Twice in a row: nothing moved between the first look and the second.
        let Some(waiting) = unsettled(&pools, js).await else {
            clean += 1;
            if clean == 2 {
                return Ok(());
            }
            continue;
        };
        clean = 0;
        if started.elapsed() > SETTLE_LIMIT {
            anyhow::bail!("not settled after {SETTLE_LIMIT:?}: {waiting}");
        }
        if said.elapsed() > Duration::from_secs(15) {
            println!("chaos: settling, waiting for {waiting}");
            said = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long the system may take to finish what the run left.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// What is still to be done, if anything: first the reminders (every one
/// the run set falls due within seconds of its end), then what they and
/// everything else left in the outboxes and effects, then the consumers.
async fn unsettled(pools: &[(&str, sqlx::PgPool)], js: &jetstream::Context) -> Option<String> {
    let scheduler = &pools.iter().find(|(name, _)| *name == "scheduler")?.1;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reminders WHERE status = 'pending'")
            .fetch_one(scheduler)
            .await
            .unwrap_or(-1);
    if pending != 0 {
        return Some(format!("{pending} reminders still to fire"));
    }
    for (service, pool) in pools {
        let counts: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL), \
                    (SELECT count(*) FROM effect_deliveries WHERE status = 'pending')",
        )
        .fetch_one(pool)
        .await;
        match counts {
            Ok((0, 0)) => {}
            Ok((unpublished, effects)) => {
                return Some(format!(
                    "{service}: {unpublished} unpublished, {effects} effects pending"
                ));
            }
            Err(error) => return Some(format!("{service}'s database: {error}")),
        }
    }
    for stream in ["TASKS", "REMINDERS", "AUDIT"] {
        let Ok(handle) = js.get_stream(stream).await else {
            return Some(format!("the {stream} stream"));
        };
        let mut names = handle.consumer_names();
        while let Some(Ok(name)) = names.next().await {
            let Ok(mut consumer) = handle
                .get_consumer::<jetstream::consumer::pull::Config>(&name)
                .await
            else {
                return Some(format!("consumer {name}"));
            };
            let Ok(info) = consumer.info().await else {
                return Some(format!("consumer {name}"));
            };
            if info.config.durable_name.is_some()
                && (info.num_pending > 0 || info.num_ack_pending > 0)
            {
                return Some(format!(
                    "{stream}/{name}: {} pending, {} unacked",
                    info.num_pending, info.num_ack_pending
                ));
            }
        }
    }
    None
}

pub async fn run(
    cluster: &Cluster,
    js: &jetstream::Context,
    acknowledged: &Acknowledged,
    watched: &[Watcher],
    injected: &Injected,
) -> anyhow::Result<Vec<Invariant>> {
    let tasks_db = cluster.database("tasks").await;
    let audit_db = cluster.database("audit").await;
    let scheduler_db = cluster.database("scheduler").await;
    let notifier_db = cluster.database("notifier").await;
    let tasks = read_stream(js, "TASKS").await?;
    let reminders = read_stream(js, "REMINDERS").await?;

    // A member removed (the answer given) reads none of the project's tasks.
    let mut removed = Invariant::new("a removed member reads none of the project's tasks");
    for read in 0..acknowledged.reads_after_removal {
        let broken = acknowledged.read_after_removal.get(read);
        removed.expect(broken.is_none(), || broken.cloned().unwrap_or_default());
    }

    // Every acknowledged write exists.
    let mut writes = Invariant::new("every acknowledged write exists");
    let stored: HashMap<Uuid, i64> = sqlx::query_as("SELECT id, version FROM tasks")
        .fetch_all(&tasks_db)
        .await?
        .into_iter()
        .collect();
    let deleted_on_stream: HashSet<Uuid> = tasks
        .iter()
        .filter(|event| event.envelope.event_type == "task.deleted")
        .filter_map(|event| event.envelope.task_id)
        .collect();
    for task in acknowledged.created.keys() {
        writes.expect(
            stored.contains_key(task) || deleted_on_stream.contains(task),
            || format!("task {task} was created (201) and is neither stored nor deleted"),
        );
    }
    for task in &acknowledged.deleted {
        writes.expect(!stored.contains_key(task), || {
            format!("task {task} was deleted (204) and is still stored")
        });
    }

    // Every event is on TASKS exactly once, each task's in version order.
    let mut once = Invariant::new("every event is on TASKS exactly once, in order");
    let outbox: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_all(&tasks_db)
        .await?;
    let mut on_stream: HashMap<Uuid, usize> = HashMap::new();
    for event in &tasks {
        *on_stream.entry(event.envelope.event_id).or_default() += 1;
    }
    for event_id in &outbox {
        let copies = on_stream.get(event_id).copied().unwrap_or(0);
        once.expect(copies == 1, || {
            format!("event {event_id} is on TASKS {copies} times")
        });
    }
    let mut versions: HashMap<Uuid, Vec<(u64, i64, bool)>> = HashMap::new();
    for event in &tasks {
        let Some(task) = event.envelope.task_id else {
            continue;
        };
        let version = event.envelope.payload["task"]["version"]
            .as_i64()
            .unwrap_or(0);
        let deleted = event.envelope.event_type == "task.deleted";
        versions
            .entry(task)
            .or_default()
            .push((event.seq, version, deleted));
    }
    for (task, events) in &versions {
        let in_order = events.windows(2).all(|pair| {
            let ((_, before, _), (_, after, deleted)) = (pair[0], pair[1]);
            after == before + 1 || (deleted && after == before)
        });
        once.expect(in_order && events[0].1 == 1, || {
            format!("task {task}: versions on TASKS {events:?}")
        });
        if let (Some(version), Some((_, last, false))) = (stored.get(task), events.last()) {
            once.expect(version == last, || {
                format!("task {task} is at version {version}, its last event at {last}")
            });
        }
    }

    // Every event has exactly one audit record.
    let mut audited = Invariant::new("every event has exactly one audit record");
    let records: HashMap<Uuid, i64> =
        sqlx::query_as("SELECT event_id, count(*) FROM audit_records GROUP BY event_id")
            .fetch_all(&audit_db)
            .await?
            .into_iter()
            .collect();
    for event in &tasks {
        let count = records.get(&event.envelope.event_id).copied().unwrap_or(0);
        audited.expect(count == 1, || {
            format!(
                "event {} has {count} audit records",
                event.envelope.event_id
            )
        });
    }

    // Every recurring completion has exactly one next instance.
    let mut recurring = Invariant::new("every recurring completion has exactly one next instance");
    let mut caused: HashMap<Uuid, usize> = HashMap::new();
    for event in &tasks {
        if event.envelope.event_type == "task.created"
            && let Some(cause) = event.envelope.causation_id
        {
            *caused.entry(cause).or_default() += 1;
        }
    }
    for event in &tasks {
        let envelope = &event.envelope;
        let recurs = !envelope.payload["task"]["recurrence"].is_null();
        if envelope.event_type != "task.completed" || !recurs {
            continue;
        }
        let next = caused.get(&envelope.event_id).copied().unwrap_or(0);
        // A task deleted before its next was made ends its series instead.
        let gone = envelope
            .task_id
            .is_some_and(|task| deleted_on_stream.contains(&task));
        recurring.expect(next == 1 || (gone && next == 0), || {
            format!("completion {} made {next} next tasks", envelope.event_id)
        });
    }

    // Every reminder that fell due fired once and notified once.
    let mut fired = Invariant::new("every reminder that fell due fired once and notified once");
    let due: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM reminders WHERE status <> 'cancelled'")
            .fetch_all(&scheduler_db)
            .await?;
    let mut published: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for event in &reminders {
        if let Some(reminder) = event.envelope.payload["reminder_id"].as_str()
            && let Ok(reminder) = reminder.parse()
        {
            published
                .entry(reminder)
                .or_default()
                .push(event.envelope.event_id);
        }
    }
    for (reminder, status) in &due {
        let events = published.get(reminder).cloned().unwrap_or_default();
        type OutboxRow = (
            Option<chrono::DateTime<chrono::Utc>>,
            Option<String>,
            Option<i64>,
        );
        let outbox: Vec<OutboxRow> = sqlx::query_as(
            "SELECT published_at, stream, stream_seq FROM outbox \
             WHERE position($1 in convert_from(body, 'UTF8')) > 0",
        )
        .bind(reminder.to_string())
        .fetch_all(&scheduler_db)
        .await?;
        fired.expect(status == "fired" && events.len() == 1, || {
            format!(
                "reminder {reminder} is {status} with {} reminder.due; its outbox rows {outbox:?}",
                events.len()
            )
        });
        for event in events {
            let notified: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM notifications WHERE source_event_id = $1 AND channel = 'in_app'",
            )
            .bind(event)
            .fetch_one(&notifier_db)
            .await?;
            fired.expect(notified == 1, || {
                format!("reminder.due {event} made {notified} in-app notifications")
            });
        }
    }

    // Every resuming client saw every event it may see, once, in order,
    // since the feed last asked it to resync (what came before is the REST
    // API's to give it).
    let mut feeds = Invariant::new("every resuming feed client saw its events once, in order");
    let project = acknowledged.project.map(|project| project.to_string());
    for watcher in watched {
        let user = watcher.user.to_string();
        let (since, after) = watcher.resyncs.last().copied().unwrap_or((0, 0));
        let mine: Vec<Uuid> = tasks
            .iter()
            .filter(|event| event.seq > after)
            .filter(|event| {
                let task = &event.envelope.payload["task"];
                // Watchers are members of the team's project all along.
                task["creator_id"].as_str() == Some(&user)
                    || (project.is_some() && task["project_id"].as_str() == project.as_deref())
            })
            .map(|event| event.envelope.event_id)
            .collect();
        let received: Vec<Uuid> = watcher.received[since..]
            .iter()
            .map(|event| event.event_id)
            .collect();
        let in_order = watcher.received[since..]
            .windows(2)
            .all(|pair| pair[0].seq < pair[1].seq);
        feeds.expect(in_order, || {
            format!("user {user}: cursors out of order or repeated")
        });
        feeds.expect(received == mine, || {
            let missing = mine.iter().filter(|id| !received.contains(id)).count();
            let first = received.iter().zip(&mine).position(|(got, want)| got != want);
            let at = |events: &[Uuid], index: Option<usize>| {
                index
                    .and_then(|index| events.get(index))
                    .and_then(|id| tasks.iter().find(|event| event.envelope.event_id == *id))
                    .map(|event| event.seq)
            };
            format!(
                "user {user}: {} events received, {} on TASKS, {missing} missing; first difference at {first:?}: received the event now at {:?}, TASKS has {:?} (received at {:?})",
                received.len(),
                mine.len(),
                at(&received, first),
                at(&mine, first),
                first.and_then(|index| watcher.received[since..].get(index)).map(|got| got.seq),
            )
        });
    }

    // No consumer is stuck, and the DLQ holds only the injected poison.
    let mut flowing =
        Invariant::new("no consumer is stuck; the DLQ holds only the poison injected");
    for parked in read_payloads(js, "DLQ").await? {
        flowing.expect(injected.bodies.contains(&parked), || {
            format!(
                "the DLQ holds a message that is no injected poison: {}",
                String::from_utf8_lossy(&parked)
            )
        });
    }
    for stream in ["TASKS", "REMINDERS", "AUDIT"] {
        let handle = js.get_stream(stream).await?;
        let mut names = handle.consumer_names();
        while let Some(Ok(name)) = names.next().await {
            // An ordered consumer (a live feed's, a replay's) may be gone
            // between the listing and the look: only durables are checked.
            let Ok(mut consumer) = handle
                .get_consumer::<jetstream::consumer::pull::Config>(&name)
                .await
            else {
                continue;
            };
            let Ok(info) = consumer.info().await else {
                continue;
            };
            if info.config.durable_name.is_none() {
                continue;
            }
            flowing.expect(info.num_pending == 0 && info.num_ack_pending == 0, || {
                format!(
                    "{stream}/{name}: {} pending, {} unacked",
                    info.num_pending, info.num_ack_pending
                )
            });
        }
    }
    Ok(vec![
        writes, once, audited, recurring, fired, feeds, removed, flowing,
    ])
}
