//! What acts on time: reminder lateness under load, completion → next task,
//! and notification → email accepted by the SMTP server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use taskflow_schemas::EventEnvelope;
use taskflow_system_tests::{SmtpCatcher, User, wait_until};

use crate::system::BenchSystem;
use tokio::sync::Mutex;
use uuid::Uuid;

/// (p50, p99, max) in milliseconds.
pub type Spread = (f64, f64, f64);

/// Lateness of `count` reminders spread over `spread`: from each reminder's
/// time to its `reminder.due` on `REMINDERS`, seen by a subscriber; and,
/// to tell the timer from the relay, to its firing in the scheduler's
/// database.
pub async fn reminder_lateness(
    system: &BenchSystem,
    user: &User,
    count: usize,
    spread: Duration,
) -> anyhow::Result<(Spread, Spread)> {
    let subscriber = async_nats::connect(system.nats_url.as_str()).await?;
    let mut due = subscriber.subscribe("reminders.due.>").await?;
    let late = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let listener = {
        let late = late.clone();
        tokio::spawn(async move {
            while let Some(message) = due.next().await {
                let seen = Utc::now();
                let Ok(event) = serde_json::from_slice::<EventEnvelope>(&message.payload) else {
                    continue;
                };
                let Some(at) = event.payload["fire_at"].as_str() else {
                    continue;
                };
                if let Ok(at) = at.parse::<DateTime<Utc>>() {
                    let ms = (seen - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                    late.lock().await.push(ms);
                }
            }
        })
    };
    // Set far enough ahead that every task exists before the first is due,
    // even on a machine that creates 300 a second.
    let first = Utc::now() + chrono::Duration::seconds(40);
    let step = spread.as_secs_f64() / count as f64;
    let url = format!("{}/api/v1/tasks", system.base_url);
    let http = reqwest::Client::new();
    let bodies: Vec<_> = (0..count)
        .map(|n| {
            let at = first + chrono::Duration::microseconds((n as f64 * step * 1e6) as i64);
            json!({"title": format!("remind {n}"), "reminder_time": at})
        })
        .collect();
    futures::stream::iter(bodies)
        .map(|body| {
            let (http, url, token) = (http.clone(), url.clone(), user.token.clone());
            async move {
                let reply = http
                    .post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .expect("the edge answers");
                assert_eq!(reply.status(), reqwest::StatusCode::CREATED);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    anyhow::ensure!(Utc::now() < first, "the reminders were made too slowly");
    let limit = spread + Duration::from_secs(60);
    wait_until("every reminder fired", limit, || {
        let late = late.clone();
        async move { (late.lock().await.len() >= count).then_some(()) }
    })
    .await;
    listener.abort();
    let mut seen = late.lock().await.clone();
    let mut fired: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM fired_at - fire_at) * 1000)::float8 FROM reminders \
         WHERE status = 'fired'",
    )
    .fetch_all(system.pool("scheduler"))
    .await?;
    Ok((spread_of(&mut seen), spread_of(&mut fired)))
}

fn spread_of(samples: &mut [f64]) -> Spread {
    let (p50, p99) = super::percentiles(samples);
    let max = samples.iter().copied().fold(0.0, f64::max);
    (p50, p99, max)
}

/// When a series' task was completed, and when its next task was seen.
type Occurrence = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Completion of a recurring task → its next task's `task.created` on
/// `TASKS`, for `count` series completed `per_second`. (p50, p99) in ms.
pub async fn next_instance(
    system: &BenchSystem,
    user: &User,
    count: usize,
    per_second: f64,
) -> anyhow::Result<(f64, f64)> {
    let http = reqwest::Client::new();
    let base = &system.base_url;
    let mut firsts = Vec::with_capacity(count);
    for n in 0..count {
        let body = json!({
            "title": format!("series {n}"),
            "due_date": "2030-01-01T09:00:00Z",
            "recurrence": {"frequency": "daily"}
        });
        let task: serde_json::Value = http
            .post(format!("{base}/api/v1/tasks"))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        firsts.push(task["id"].as_str().unwrap_or_default().to_owned());
    }
    let seen: Arc<Mutex<HashMap<Uuid, Occurrence>>> = Arc::default();
    let subscriber = async_nats::connect(system.nats_url.as_str()).await?;
    let mut events = subscriber.subscribe("tasks.>").await?;
    let listener = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(message) = events.next().await {
                let arrived = Utc::now();
                let Ok(event) = serde_json::from_slice::<EventEnvelope>(&message.payload) else {
                    continue;
                };
                let task = &event.payload["task"];
                let Some(series) = task["series_id"].as_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                let mut seen = seen.lock().await;
                let entry = seen.entry(series).or_insert((None, None));
                match event.event_type.as_str() {
                    "task.completed" => entry.0 = Some(event.occurred_at),
                    "task.created" if task["id"] != task["series_id"] => entry.1 = Some(arrived),
                    _ => {}
                }
            }
        })
    };
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    for id in &firsts {
        ticks.tick().await;
        let reply = http
            .post(format!("{base}/api/v1/tasks/{id}/complete"))
            .bearer_auth(&user.token)
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "a completion failed");
    }
    wait_until("every next task", Duration::from_secs(60), || {
        let seen = seen.clone();
        async move {
            let seen = seen.lock().await;
            let done = seen.values().filter(|(_, next)| next.is_some()).count();
            (done >= count).then_some(())
        }
    })
    .await;
    listener.abort();
    let mut samples: Vec<f64> = seen
        .lock()
        .await
        .values()
        .filter_map(|(completed, next)| {
            Some(((*next)? - (*completed)?).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    Ok(super::percentiles(&mut samples))
}

/// A task assigned to `recipient` → the email accepted by the SMTP server
/// (the catcher's file time), for `count` assignments `per_second`.
/// (p50, p99) in ms.
pub async fn notification_to_email(
    system: &BenchSystem,
    catcher: &SmtpCatcher,
    author: &User,
    recipient: &User,
    count: usize,
    per_second: f64,
) -> anyhow::Result<(f64, f64)> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/tasks", system.base_url);
    let before = catcher.messages().len();
    let mut created = HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    for n in 0..count {
        ticks.tick().await;
        let title = format!("mail-bench-{n}-end");
        let sent = SystemTime::now();
        let reply = http
            .post(&url)
            .bearer_auth(&author.token)
            .json(&json!({"title": title, "assignee_id": recipient.id}))
            .send()
            .await?;
        anyhow::ensure!(
            reply.status() == reqwest::StatusCode::CREATED,
            "a create failed"
        );
        created.insert(title, sent);
    }
    wait_until("every email", Duration::from_secs(60), || async {
        (catcher.messages().len() >= before + count).then_some(())
    })
    .await;
    let mut samples: Vec<f64> = catcher
        .message_times()
        .into_iter()
        .filter_map(|(text, accepted)| {
            let title = created.keys().find(|title| text.contains(title.as_str()))?;
            let sent = created[title];
            Some(accepted.duration_since(sent).ok()?.as_secs_f64() * 1000.0)
        })
        .collect();
    Ok(super::percentiles(&mut samples))
}
