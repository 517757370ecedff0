//! The fast loop's one system test (`just check`): a change made over REST
//! reaches every service once, end to end, on a real nats-server and
//! Postgres.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskflow_system_tests::ws::FeedClient;
use taskflow_system_tests::{TestSystem, id_of, wait_until};

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_task_made_over_rest_reaches_the_feed_the_audit_the_schedules_and_the_notifications() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let mut feed = FeedClient::connect(&system.base_url, &format!("?token={}", bob.token)).await;
    assert_eq!(feed.next_frame(SOON).await["type"], "ready");

    let remind_at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let task = system
        .create_task(
            &ada,
            json!({"title": "smoke", "assignee_id": bob.id, "reminder_time": remind_at}),
        )
        .await;
    let task_id = id_of(&task);

    let frame = feed.next_frame(SOON).await;
    assert_eq!(frame["event"]["event_type"], "task.created");
    assert_eq!(frame["event"]["task_id"], task["id"]);

    let seen_by_bob = |path: String| {
        let system = &system;
        let token = bob.token.clone();
        async move {
            let reply = system.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
            let items = reply.body["items"].as_array().cloned().unwrap_or_default();
            items
                .iter()
                .any(|item| item["task_id"] == json!(task_id) || item["id"] == json!(task_id))
                .then_some(())
        }
    };
    for list in ["tasks", "audit", "schedules", "notifications"] {
        wait_until(&format!("bob's {list} to show the task"), SOON, || {
            seen_by_bob(format!("/api/v1/{list}"))
        })
        .await;
    }
    system.stop().await;
}
