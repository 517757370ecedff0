//! The live feed against hostile and careless clients: limits, replays
//! that are long, slow or broken, tokens that expire, access that is taken
//! away.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use taskflow_runtime::http::tokens::Tokens;
use taskflow_schemas::user::Role;
use taskflow_system_tests::ws::{Closed, FeedClient, seq_of};
use taskflow_system_tests::{TestSystem, Transport, fixtures, id_of, wait_until};

const SOON: Duration = Duration::from_secs(5);

fn token_query(token: &str) -> String {
    format!("?token={token}")
}

/// Asserts an error frame of `code`, then the close.
async fn refused_with(client: &mut FeedClient, code: &str) {
    let frame = client.next_frame(Duration::from_secs(10)).await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], code, "{frame}");
    assert!(
        client.next_or_close(SOON).await.is_err(),
        "closed after the error"
    );
}

#[tokio::test]
async fn a_user_past_the_connection_cap_gets_an_error_frame() {
    let system = TestSystem::spawn_configured(
        Transport::InProcess,
        8,
        &[("TASKFLOW_WS_MAX_PER_USER", "2")],
    )
    .await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let mut first = FeedClient::connect(&system.base_url, &token_query(&ada.token)).await;
    let mut second = FeedClient::connect(&system.base_url, &token_query(&ada.token)).await;
    for client in [&mut first, &mut second] {
        assert_eq!(client.next_frame(SOON).await["type"], "ready");
    }
    let mut third = FeedClient::connect(&system.base_url, &token_query(&ada.token)).await;
    refused_with(&mut third, "too_many_connections").await;
    let mut other = FeedClient::connect(&system.base_url, &token_query(&bob.token)).await;
    assert_eq!(
        other.next_frame(SOON).await["type"],
        "ready",
        "other users are not held back"
    );
    first.close().await;
    // The place comes back once the first connection is gone.
    let mut again = wait_until("a place for Ada", SOON, || async {
        let mut client = FeedClient::connect(&system.base_url, &token_query(&ada.token)).await;
        let frame = client.next_frame(SOON).await;
        (frame["type"] == "ready").then_some(client)
    })
    .await;
    again.assert_silent(Duration::from_millis(100)).await;
    system.stop().await;
}

#[tokio::test]
async fn a_huge_frame_before_authentication_is_refused_unread() {
    let system = TestSystem::spawn().await;
    let mut client = FeedClient::connect(&system.base_url, "").await;
    let huge = "x".repeat(1024 * 1024);
    // The server may drop the connection while the frame is still on its way.
    let _ = client.try_send_text(huge).await;
    // Never read, so never answered as a (bad) first frame: it is refused
    // as unreadable, or the connection ends while it is still coming.
    match client.next_or_close(SOON).await {
        Ok(frame) => {
            assert_eq!(frame["code"], "bad_frame", "{frame}");
            let error = frame["error"].as_str().unwrap();
            assert!(error.contains("too long"), "{error}");
        }
        Err(Closed::Frame(code, _)) => assert_eq!(code, 1009, "message too big"),
        Err(Closed::Dropped) => {}
    }
    system.stop().await;
}

#[tokio::test]
async fn a_client_that_never_authenticates_is_closed_within_seconds() {
    let system = TestSystem::spawn().await;
    let mut silent = FeedClient::connect(&system.base_url, "").await;
    let started = tokio::time::Instant::now();
    refused_with(&mut silent, "unauthorized").await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    system.stop().await;
}

#[tokio::test]
async fn a_flood_of_resumes_is_refused() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system.create_task(&ada, json!({"title": "one"})).await;
    system.wait_for_events("TASKS", 1).await;
    let mut client = FeedClient::connect(&system.base_url, &token_query(&ada.token)).await;
    assert_eq!(client.next_frame(SOON).await["type"], "ready");
    let mut frames = Vec::new();
    for _ in 0..30 {
        client.send(json!({"type": "resume", "cursor": 0})).await;
    }
    while let Ok(frame) = client.next_or_close(SOON).await {
        frames.push(frame);
    }
    let readies = frames
        .iter()
        .filter(|frame| frame["type"] == "ready")
        .count();
    assert_eq!(readies, 10, "ten resumes a minute are served");
    let last = frames.last().unwrap();
    assert_eq!(last["code"], "too_many_resumes", "{last}");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_replaying_20000_events_gets_them_all_with_no_eviction_and_no_gap() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let history = 20_000;
    inject_many(&system, ada.id, history).await;
    let mut client = FeedClient::connect_with_small_buffer(
        &system.base_url,
        &format!("?token={}&cursor=0", ada.token),
    )
    .await;
    // Live events keep coming while the replay runs: more than the live
    // buffer holds.
    let writer = {
        let platform = system.platform.clone();
        let owner = ada.id;
        tokio::spawn(async move {
            for _ in 0..3 {
                inject_many_on(&platform, owner, 1_000).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut cursors = Vec::with_capacity(history + 3_000);
    let mut ready = None;
    while cursors.len() < history + 3_000 {
        let frame = client.next_frame(Duration::from_secs(30)).await;
        match frame["type"].as_str() {
            Some("event") => cursors.push(seq_of(&frame)),
            Some("ready") => ready = Some(seq_of(&frame)),
            _ => panic!("unexpected frame {frame}"),
        }
        if cursors.len() % 500 == 0 {
            // A reader slower than the stream.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    writer.await.unwrap();
    if ready.is_none() {
        // Everything written during the replay was replayed too.
        let frame = client.next_frame(SOON).await;
        assert_eq!(frame["type"], "ready", "{frame}");
    }
    let expected: Vec<u64> = (1..=(history as u64 + 3_000)).collect();
    assert_eq!(cursors, expected, "every event once, in order");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_cut_short_by_nats_ends_in_an_error_never_in_ready() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    inject_many(&system, ada.id, 5_000).await;
    let mut client = FeedClient::connect_with_small_buffer(
        &system.base_url,
        &format!("?token={}&cursor=0", ada.token),
    )
    .await;
    for _ in 0..100 {
        assert_eq!(client.next_frame(SOON).await["type"], "event");
    }
    system.nats.kill();
    loop {
        match client.next_or_close(Duration::from_secs(30)).await {
            Ok(frame) if frame["type"] == "event" => {}
            Ok(frame) => {
                assert_eq!(frame["type"], "error", "never ready over a gap: {frame}");
                assert_eq!(frame["code"], "replay_failed", "{frame}");
                break;
            }
            Err(closed) => panic!("closed without saying why: {closed:?}"),
        }
    }
    system.nats.resume().await;
    system.stop().await;
}

#[tokio::test]
async fn an_expired_token_ends_the_stream_unless_a_fresh_one_came() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let tokens = Tokens::new(&system.settings.jwt_secret);
    let short = tokens.issue_for(ada.id, Role::Member, Duration::from_secs(2));
    let mut expiring = FeedClient::connect(&system.base_url, &token_query(&short)).await;
    let mut refreshed = FeedClient::connect(&system.base_url, &token_query(&short)).await;
    for client in [&mut expiring, &mut refreshed] {
        assert_eq!(client.next_frame(SOON).await["type"], "ready");
    }
    refreshed
        .send(json!({"type": "authenticate", "token": ada.token}))
        .await;
    refused_with(&mut expiring, "token_expired").await;
    let task = system
        .create_task(&ada, json!({"title": "after expiry"}))
        .await;
    let frame = refreshed.next_frame(SOON).await;
    assert_eq!(frame["event"]["task_id"], task["id"], "{frame}");
    system.stop().await;
}

#[tokio::test]
async fn a_removed_assignee_gets_revoked_then_nothing_live_or_on_replay() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let task = system
        .create_task(&ada, json!({"title": "shared", "assignee_id": bob.id}))
        .await;
    let task_id = id_of(&task);
    let path = format!("/api/v1/tasks/{task_id}");
    // On the stream before bob connects, so it is replayed, not live.
    system.wait_for_events("TASKS", 1).await;
    let mut bob_feed =
        FeedClient::connect(&system.base_url, &format!("?token={}&cursor=0", bob.token)).await;
    let (replayed, _) = bob_feed.until("ready", SOON).await;
    assert_eq!(replayed.len(), 1, "bob sees the task while assigned");

    let patch = |body: Value| system.call(Method::PATCH, &path, Some(&ada.token), Some(body));
    patch(json!({"assignee_id": null})).await;
    let revoked = bob_feed.next_frame(SOON).await;
    assert_eq!(revoked, json!({"type": "revoked", "task_id": task_id}));
    patch(json!({"title": "secret now"})).await;
    let other = system
        .create_task(&bob, json!({"title": "bob's own"}))
        .await;
    let next = bob_feed.next_frame(SOON).await;
    assert_eq!(
        next["event"]["task_id"], other["id"],
        "nothing of the task in between: {next}"
    );

    // A replay shows the task as it stands now: bob may not read it.
    let mut replaying =
        FeedClient::connect(&system.base_url, &format!("?token={}&cursor=0", bob.token)).await;
    let (frames, _) = replaying.until("ready", SOON).await;
    let of_task: Vec<&Value> = frames
        .iter()
        .filter(|frame| {
            frame["task_id"] == task_id.to_string()
                || frame["event"]["task_id"] == task_id.to_string()
        })
        .collect();
    assert_eq!(
        of_task,
        [&json!({"type": "revoked", "task_id": task_id})],
        "{frames:?}"
    );
    system.stop().await;
}

/// Publishes `count` `task.created` events of `owner` straight to `TASKS`.
async fn inject_many(system: &TestSystem, owner: uuid::Uuid, count: usize) {
    inject_many_on(&system.platform, owner, count).await;
    system.wait_for_events("TASKS", count).await;
}

async fn inject_many_on(platform: &taskflow_runtime::Platform, owner: uuid::Uuid, count: usize) {
    // Pipelined, a thousand acks in flight at most (the context allows 5,000).
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for n in chunk {
            let event = fixtures::task_created(owner, &format!("history {n}"), "history");
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(serde_json::to_vec(&event).unwrap().into())
                .message_id(event.event_id.to_string());
            acks.push(
                platform
                    .jetstream
                    .send_publish(fixtures::subject_of(&event), message)
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

#[tokio::test]
async fn binary_and_invalid_utf8_frames_end_only_their_own_connection() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let query = format!("?token={}", ada.token);
    let mut watching = FeedClient::connect(&system.base_url, &query).await;
    assert_eq!(watching.next_frame(SOON).await["type"], "ready");

    let mut binary_first = FeedClient::connect(&system.base_url, "").await;
    binary_first
        .send_raw(Message::Binary(vec![0, 0xff, 0xfe].into()))
        .await;
    refused_with(&mut binary_first, "bad_first_frame").await;

    let mut binary = FeedClient::connect(&system.base_url, &query).await;
    assert_eq!(binary.next_frame(SOON).await["type"], "ready");
    binary
        .send_raw(Message::Binary(
            b"{\"type\":\"resume\",\"cursor\":0}".to_vec().into(),
        ))
        .await;
    refused_with(&mut binary, "bad_frame").await;

    // A text frame whose bytes are not UTF-8: the protocol layer refuses it.
    let mut invalid = FeedClient::connect(&system.base_url, &query).await;
    assert_eq!(invalid.next_frame(SOON).await["type"], "ready");
    let frame = Frame::message(
        vec![b'{', 0xff, 0xfe, 0x00, b'}'],
        OpCode::Data(Data::Text),
        true,
    );
    invalid.send_raw(Message::Frame(frame)).await;
    assert!(
        invalid.next_or_close(SOON).await.is_err(),
        "the connection ends"
    );

    // The others never noticed.
    let task = system
        .create_task(&ada, json!({"title": "still live"}))
        .await;
    let event = watching.next_frame(SOON).await;
    assert_eq!(event["event"]["task_id"], task["id"], "{event}");
    system.stop().await;
}
