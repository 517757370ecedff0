//! What holding clients and reminders costs in memory: the resident size of
//! the process that holds them, before and after, on a process started
//! afresh (one that served earlier figures reuses memory it freed, and the
//! difference would say too little).

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use taskflow_system_tests::{User, wait_until};
use tokio_tungstenite::tungstenite::Message;

use crate::system::BenchSystem;

/// Live-feed clients connected for the figure.
pub const FEED_CLIENTS: usize = 1_000;
/// Reminders set for the figure (scaled to 100,000 in the report).
pub const REMINDERS: usize = 20_000;

/// KiB of the edge's resident memory per 1,000 connected live-feed clients.
pub async fn per_thousand_clients(system: &mut BenchSystem, user: &User) -> anyhow::Result<f64> {
    system.set_running("edge", false).await;
    system.set_running("edge", true).await;
    let before = system.resident_kib("edge")?;
    let url = format!(
        "{}/ws?token={}",
        system.base_url.replacen("http://", "ws://", 1),
        user.token
    );
    let mut clients = Vec::with_capacity(FEED_CLIENTS);
    for _ in 0..FEED_CLIENTS {
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
        // Authenticated and registered with the hub once `ready` comes.
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message?
                && text.contains(r#""type":"ready""#)
            {
                break;
            }
        }
        clients.push(socket);
    }
    // Let the allocator settle before reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = system.resident_kib("edge")?;
    for mut client in clients {
        let _ = client.close(None).await;
    }
    Ok((after.saturating_sub(before)) as f64 * 1_000.0 / FEED_CLIENTS as f64)
}

/// KiB of the scheduler's resident memory per 100,000 pending reminders,
/// measured with [`REMINDERS`] of them (due in 2030).
pub async fn per_hundred_thousand_reminders(
    system: &mut BenchSystem,
    user: &User,
) -> anyhow::Result<f64> {
    system.set_running("scheduler", false).await;
    system.set_running("scheduler", true).await;
    let before = system.resident_kib("scheduler")?;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/tasks", system.base_url);
    futures::stream::iter(0..REMINDERS)
        .map(|n| {
            let (http, url, token) = (http.clone(), url.clone(), user.token.clone());
            async move {
                let body = json!({"title": format!("pending {n}"), "reminder_time": "2030-01-01T09:00:00Z"});
                let reply = http.post(&url).bearer_auth(token).json(&body).send().await?;
                anyhow::ensure!(reply.status().is_success(), "create answered {}", reply.status());
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let pool = system.pool("scheduler");
    wait_until(
        "every reminder to be pending",
        Duration::from_secs(120),
        || async {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM reminders WHERE status = 'pending'")
                    .fetch_one(pool)
                    .await
                    .ok()?;
            (pending as usize >= REMINDERS).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = system.resident_kib("scheduler")?;
    Ok((after.saturating_sub(before)) as f64 * 100_000.0 / REMINDERS as f64)
}
