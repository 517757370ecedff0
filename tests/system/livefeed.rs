//! The WebSocket live feed, with real clients.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_system_tests::ws::{Closed, FeedClient};
use taskflow_system_tests::{TestSystem, id_of};

const SOON: Duration = Duration::from_secs(2);

fn cursor_of(frame: &Value) -> u64 {
    frame["cursor"].as_u64().expect("a cursor")
}

#[tokio::test]
async fn two_clients_see_create_update_complete_and_delete_within_two_seconds() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut by_query =
        FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    let mut by_frame = FeedClient::connect(&system.base_url, "").await;
    by_frame
        .send(json!({"type": "authenticate", "token": ada.token}))
        .await;
    for client in [&mut by_query, &mut by_frame] {
        assert_eq!(client.next_frame(SOON).await["type"], "ready");
    }
    let connections = system
        .call(Method::GET, "/api/v1/connections", None, None)
        .await;
    assert_eq!(connections.body, json!({"count": 2}));

    let task = system.create_task(&ada, json!({"title": "live"})).await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let mut changed_at = vec![Instant::now()];
    system
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"priority": "urgent"})),
        )
        .await;
    changed_at.push(Instant::now());
    system
        .call(
            Method::POST,
            &format!("{path}/complete"),
            Some(&ada.token),
            None,
        )
        .await;
    changed_at.push(Instant::now());
    let deleted = system
        .call(Method::DELETE, &path, Some(&ada.token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    changed_at.push(Instant::now());

    for client in [&mut by_query, &mut by_frame] {
        let mut cursors = Vec::new();
        for (expected, sent) in [
            "task.created",
            "task.updated",
            "task.completed",
            "task.deleted",
        ]
        .iter()
        .zip(&changed_at)
        {
            let frame = client.next_frame(SOON).await;
            assert_eq!(frame["type"], "event");
            assert_eq!(frame["event"]["event_type"], *expected);
            assert_eq!(frame["event"]["task_id"], task["id"]);
            let waited = sent.elapsed();
            assert!(waited < SOON, "{expected} took {waited:?}");
            cursors.push(cursor_of(&frame));
        }
        assert!(
            cursors.windows(2).all(|pair| pair[0] < pair[1]),
            "in stream order: {cursors:?}"
        );
    }
    system.stop().await;
}

#[tokio::test]
async fn a_client_that_resumes_gets_exactly_what_it_missed_then_live_events() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut client = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    client.next_frame(SOON).await;
    let task = system.create_task(&ada, json!({"title": "v1"})).await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let seen = client.next_frame(SOON).await;
    let last_cursor = cursor_of(&seen);
    client.close().await;

    for version in 2..=4 {
        system
            .call(
                Method::PUT,
                &path,
                Some(&ada.token),
                Some(json!({"title": format!("v{version}")})),
            )
            .await;
    }
    system.wait_for_events("TASKS", 4).await;

    let mut back = FeedClient::connect(
        &system.base_url,
        &format!("?token={}&cursor={last_cursor}", ada.token),
    )
    .await;
    let (missed, ready) = back.until("ready", SOON).await;
    let titles: Vec<&str> = missed
        .iter()
        .map(|f| f["event"]["payload"]["task"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["v2", "v3", "v4"],
        "exactly the missed events, in order"
    );
    assert_eq!(cursor_of(&ready), cursor_of(missed.last().unwrap()));

    system
        .call(
            Method::PUT,
            &path,
            Some(&ada.token),
            Some(json!({"title": "v5"})),
        )
        .await;
    let live = back.next_frame(SOON).await;
    assert_eq!(live["event"]["payload"]["task"]["title"], "v5");
    assert_eq!(
        cursor_of(&live),
        cursor_of(&ready) + 1,
        "no gap, no duplicate at the seam"
    );

    // The same with a resume frame on an open connection.
    back.send(json!({"type": "resume", "cursor": last_cursor}))
        .await;
    let (again, _) = back.until("ready", SOON).await;
    assert_eq!(again.len(), 4);
    system.stop().await;
}

#[tokio::test]
async fn another_users_private_task_never_reaches_a_client() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let mut bobs = FeedClient::connect(&system.base_url, &format!("?token={}", bob.token)).await;
    bobs.next_frame(SOON).await;

    system
        .create_task(&ada, json!({"title": "Ada's secret"}))
        .await;
    let shared = system
        .create_task(&ada, json!({"title": "for Bob", "assignee_id": bob.id}))
        .await;
    let frame = bobs.next_frame(SOON).await;
    assert_eq!(
        frame["event"]["task_id"], shared["id"],
        "the first thing Bob sees is the task he may see"
    );
    bobs.assert_silent(Duration::from_millis(300)).await;

    // Taking Bob off the task is the last thing he hears of it.
    let path = format!("/api/v1/tasks/{}", id_of(&shared));
    system
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"assignee_id": null})),
        )
        .await;
    assert_eq!(
        bobs.next_frame(SOON).await["event"]["payload"]["changes"]["assignee_id"]["new"],
        Value::Null
    );
    system
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"title": "private again"})),
        )
        .await;
    bobs.assert_silent(Duration::from_millis(300)).await;
    system.stop().await;
}

#[tokio::test]
async fn bad_input_gets_an_error_frame_before_the_close() {
    let system = TestSystem::spawn().await;
    let mut wrong_first = FeedClient::connect(&system.base_url, "").await;
    wrong_first
        .send(json!({"type": "resume", "cursor": 1}))
        .await;
    let error = wrong_first.next_frame(SOON).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "bad_first_frame");
    assert!(matches!(
        wrong_first.next_or_close(SOON).await,
        Err(Closed::Frame(1008, _))
    ));

    let mut bad_token = FeedClient::connect(&system.base_url, "?token=forged").await;
    let error = bad_token.next_frame(SOON).await;
    assert_eq!(error["code"], "unauthorized");

    let ada = system.register("Ada").await;
    let mut bad_cursor = FeedClient::connect(
        &system.base_url,
        &format!("?token={}&cursor=soon", ada.token),
    )
    .await;
    assert_eq!(
        bad_cursor.next_frame(SOON).await["code"],
        "validation_failed"
    );

    let mut garbage = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    garbage.next_frame(SOON).await;
    garbage.send(json!({"type": "dance"})).await;
    assert_eq!(garbage.next_frame(SOON).await["code"], "bad_frame");
    system.stop().await;
}

#[tokio::test]
async fn a_cursor_older_than_the_stream_asks_for_a_resync() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system
        .create_task(&ada, json!({"title": "soon gone"}))
        .await;
    system.wait_for_events("TASKS", 1).await;
    system
        .platform
        .jetstream
        .get_stream("TASKS")
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    let task = system.create_task(&ada, json!({"title": "kept"})).await;
    system.wait_for_events("TASKS", 1).await;

    let mut client =
        FeedClient::connect(&system.base_url, &format!("?token={}&cursor=0", ada.token)).await;
    let resync = client.next_frame(SOON).await;
    assert_eq!(resync["type"], "resync_required");
    let ready = client.next_frame(SOON).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(cursor_of(&resync), cursor_of(&ready));
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    system
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"title": "changed"})),
        )
        .await;
    assert_eq!(client.next_frame(SOON).await["type"], "event");
    system.stop().await;
}
