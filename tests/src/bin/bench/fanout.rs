//! REST → WebSocket and REST → audit latency, under paced creates with many
//! live-feed clients connected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::system::BenchSystem;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::{RUN_FOR, WARM_UP, percentiles};

pub struct FanOut {
    /// Creates timed (after the warm-up).
    pub creates: usize,
    /// Creates sent, the warm-up's included.
    pub sent: usize,
    pub deliveries: usize,
    pub ws: (f64, f64),
    pub audit: (f64, f64),
}

/// Connects `clients` feeds for the user, creates at `rate` per second, and
/// times each create from its request to every client and to its audit record.
pub async fn run(
    system: &BenchSystem,
    token: &str,
    clients: usize,
    rate: f64,
) -> anyhow::Result<FanOut> {
    let arrivals: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..clients {
        let url = format!(
            "{}/ws?token={token}",
            system.base_url.replacen("http://", "ws://", 1)
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        let arrivals = arrivals.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && let Some(n) = title_number(&text)
                {
                    arrivals
                        .lock()
                        .expect("not poisoned")
                        .push((n, Instant::now()));
                }
            }
        }));
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let url = format!("{}/api/v1/tasks", system.base_url);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut sent: Vec<(Instant, DateTime<Utc>)> = Vec::new();
    let mut requests = Vec::new();
    while started.elapsed() < WARM_UP + RUN_FOR {
        ticks.tick().await;
        let n = sent.len();
        sent.push((Instant::now(), Utc::now()));
        let request = http
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"title": format!("fan {n}")}));
        requests.push(tokio::spawn(async move {
            request.send().await.map(|r| r.status())
        }));
    }
    for request in futures::future::join_all(requests).await {
        anyhow::ensure!(request??.is_success(), "a create failed");
    }
    let counted_from = sent
        .iter()
        .position(|(at, _)| *at >= started + WARM_UP)
        .unwrap_or(0);
    let expected = (sent.len() - counted_from) * clients;
    taskflow_system_tests::wait_until("every delivery", Duration::from_secs(30), || {
        let arrivals = arrivals.clone();
        async move {
            let arrived = arrivals
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|(n, _)| *n >= counted_from)
                .count();
            (arrived >= expected).then_some(())
        }
    })
    .await;
    readers.iter().for_each(|reader| reader.abort());

    let mut ws: Vec<f64> = arrivals
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(n, _)| *n >= counted_from)
        .map(|(n, at)| at.duration_since(sent[*n].0).as_secs_f64() * 1000.0)
        .collect();
    let deliveries = ws.len();

    taskflow_system_tests::wait_until("every audit record", Duration::from_secs(30), || async {
        (system.consumer_lag("audit").await == 0).then_some(())
    })
    .await;
    let recorded: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT payload->'task'->>'title', recorded_at FROM audit_records \
         WHERE event_type = 'task.created' AND payload->'task'->>'title' LIKE 'fan %'",
    )
    .fetch_all(system.pool("audit"))
    .await?;
    let by_number: HashMap<usize, DateTime<Utc>> = recorded
        .into_iter()
        .filter_map(|(title, at)| Some((title.strip_prefix("fan ")?.parse().ok()?, at)))
        .collect();
    let mut audit: Vec<f64> = (counted_from..sent.len())
        .filter_map(|n| {
            by_number
                .get(&n)
                .map(|at| (*at - sent[n].1).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    Ok(FanOut {
        creates: sent.len() - counted_from,
        sent: sent.len(),
        deliveries,
        ws: percentiles(&mut ws),
        audit: percentiles(&mut audit),
    })
}

/// The `n` of a `"title":"fan n"` frame, without parsing the whole frame.
fn title_number(frame: &str) -> Option<usize> {
    let start = frame.find("\"title\":\"fan ")? + "\"title\":\"fan ".len();
    let digits: String = frame[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
