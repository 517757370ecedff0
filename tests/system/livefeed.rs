//! The WebSocket live feed, with real clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_system_tests::ws::{Closed, FeedClient, seq_of};
use taskflow_system_tests::{TestSystem, id_of};

const SOON: Duration = Duration::from_secs(2);

fn cursor_of(frame: &Value) -> u64 {
    seq_of(frame)
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
    let last_cursor = seen["cursor"].as_u64().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_closed_with_a_reason_and_never_slows_the_others() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let query = format!("?token={}", ada.token);
    let mut slow = FeedClient::connect_with_small_buffer(&system.base_url, &query).await;
    let mut fast = FeedClient::connect(&system.base_url, &query).await;
    slow.next_frame(SOON).await;
    fast.next_frame(SOON).await;

    // The fast client reads all along, in a task of its own.
    // Enough to fill the slow client's socket buffers and its 1,024 frames twice over.
    let count = 2500;
    let received = Arc::new(AtomicUsize::new(0));
    let fast_reader = tokio::spawn({
        let received = received.clone();
        async move {
            let started = Instant::now();
            for expected in 0..count {
                let frame = fast.next_frame(Duration::from_secs(10)).await;
                assert_eq!(
                    frame["event"]["payload"]["task"]["title"],
                    expected.to_string(),
                    "{frame}"
                );
                received.fetch_add(1, Ordering::Relaxed);
            }
            started.elapsed()
        }
    });

    // Big events, injected straight into the stream: the slow client stops
    // reading, its socket fills, then its bounded buffer, and out it goes.
    let padding = "x".repeat(8 * 1024);
    let js = &system.platform.jetstream;
    // Pipelined, acknowledged a hundred at a time: the flood must outrun
    // the slow client's socket, not wait on each publish.
    let mut acks = Vec::new();
    for n in 0..count {
        // A fast client is one that keeps up: never let it fall far behind.
        if n % 100 == 0 {
            for ack in acks.drain(..) {
                let ack: async_nats::jetstream::context::PublishAckFuture = ack;
                ack.await.unwrap();
            }
            let received = received.clone();
            taskflow_system_tests::wait_until(
                "the fast client to keep up",
                Duration::from_secs(10),
                || {
                    let received = received.clone();
                    async move { (received.load(Ordering::Relaxed) + 300 >= n).then_some(()) }
                },
            )
            .await;
        }
        // Whole task events, as the tasks service writes them: every other
        // consumer of TASKS takes them in too.
        let mut event =
            taskflow_system_tests::fixtures::task_created(ada.id, &n.to_string(), "flood");
        event.payload["task"]["description"] = json!(padding);
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(serde_json::to_vec(&event).unwrap().into())
            .message_id(event.event_id.to_string());
        acks.push(
            js.send_publish(taskflow_system_tests::fixtures::subject_of(&event), publish)
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let took = fast_reader.await.expect("the fast client got every event");
    println!("the fast client got {count} events of 8 KiB in {took:?}");

    let mut frames = 0;
    let ending = loop {
        match slow.next_or_close(Duration::from_secs(10)).await {
            Ok(frame) if frame["type"] == "event" => frames += 1,
            Ok(frame) => break frame,
            Err(closed) => {
                panic!("closed without an error frame after {frames} events: {closed:?}")
            }
        }
    };
    assert!(frames < count, "the slow client was cut off before the end");
    assert_eq!(ending["code"], "slow_consumer");
    assert!(matches!(
        slow.next_or_close(SOON).await,
        Err(Closed::Frame(1013, _))
    ));
    system.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_no_ping_is_dropped() {
    let mut system = TestSystem::spawn().await;
    let keepalive = taskflow_livefeed::Keepalive {
        ping_every: Duration::from_millis(100),
        idle_limit: Duration::from_millis(300),
    };
    let feed = taskflow_livefeed::LiveFeed::start_with(&system.platform, keepalive)
        .await
        .unwrap();
    system.replace_feed(feed).await;
    let ada = system.register("Ada").await;
    let mut silent = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    // Not reading means not answering the pings.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(silent.next_frame(SOON).await["type"], "ready");
    match silent.next_or_close(SOON).await {
        Err(Closed::Frame(1001, reason)) => assert_eq!(reason, "no pong"),
        other => panic!("expected a close for no pong, got {other:?}"),
    }
    system.stop().await;
}

#[tokio::test]
async fn a_hub_that_dies_stops_the_feed_closes_its_clients_and_is_counted() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut client = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    assert_eq!(client.next_frame(SOON).await["type"], "ready");

    let feed = system.feed.as_mut().expect("the live feed runs");
    feed.hub.stop(Some("killed by the test".into()));
    tokio::time::timeout(Duration::from_secs(5), feed.stopped())
        .await
        .expect("a feed whose hub died stops, so the process exits and is restarted");

    // The client is told, rather than left on a feed that no longer moves.
    let told = client.next_frame(Duration::from_secs(5)).await;
    assert_eq!(told["code"], "service_unavailable", "{told}");
    let closed = client
        .next_or_close(Duration::from_secs(5))
        .await
        .expect_err("the session closes");
    assert!(
        matches!(closed, Closed::Frame(1013, _)),
        "closed as 'try again later': {closed:?}"
    );
    let metrics = system.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("taskflow_actor_failures_total{service=\"livefeed\"}")),
        "the failure is counted:\n{metrics}"
    );
    system.stop().await;
}

async fn drained(system: &TestSystem) {
    taskflow_system_tests::wait_until("an empty outbox", Duration::from_secs(15), || async {
        (system.tasks().outbox_backlog().await == 0).then_some(())
    })
    .await
}

#[tokio::test]
async fn after_nats_loses_its_unsynced_tail_the_feed_starts_over_in_place_and_lost_cursors_resync()
{
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut live = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    assert_eq!(live.next_frame(SOON).await["type"], "ready");
    let mut wire_cursors = Vec::new();
    for n in 0..3 {
        system
            .create_task(&ada, json!({"title": format!("kept {n}")}))
            .await;
        wire_cursors.push(live.next_frame(SOON).await["cursor"].as_u64().unwrap());
    }
    drained(&system).await;
    let synced = system.nats.copy_store();
    // A task injected by hand is in no outbox: once lost, it is gone for
    // good, and every later event comes back one sequence earlier.
    let foreign = taskflow_system_tests::fixtures::task_created(ada.id, "foreign", "foreign");
    let body = serde_json::to_vec(&foreign).unwrap();
    let subject = taskflow_system_tests::fixtures::subject_of(&foreign);
    system
        .inject(subject, body, &foreign.event_id.to_string())
        .await;
    wire_cursors.push(live.next_frame(SOON).await["cursor"].as_u64().unwrap());
    for n in 0..3 {
        system
            .create_task(&ada, json!({"title": format!("lost {n}")}))
            .await;
        wire_cursors.push(live.next_frame(SOON).await["cursor"].as_u64().unwrap());
    }
    drained(&system).await;

    // The power goes: the server comes back with what it had at the copy.
    system.nats.kill();
    system.nats.restore_store(&synced);
    system.nats.resume().await;

    // The feed sees that TASKS no longer holds what it sent and starts
    // over in place: its clients are told to resume, the process (and the
    // API beside it) keeps running.
    let told = live.next_frame(Duration::from_secs(20)).await;
    assert_eq!(told["code"], "service_unavailable", "{told}");
    let feed = system.feed.as_mut().expect("the live feed runs");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), feed.stopped())
            .await
            .is_err(),
        "the feed keeps running"
    );
    let metrics = system.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("taskflow_ws_stream_rewinds_total{stream=\"TASKS\"} 1")),
        "the restart is counted:\n{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("taskflow_actor_failures_total{service=\"livefeed\"}")),
        "no actor failed:\n{metrics}"
    );
    let titles = |events: Vec<taskflow_system_tests::StoredEvent>| -> Vec<String> {
        events
            .iter()
            .map(|event| {
                event.envelope.payload["task"]["title"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let stored = titles(system.wait_for_events("TASKS", 6).await);
    assert_eq!(
        stored,
        ["kept 0", "kept 1", "kept 2", "lost 0", "lost 1", "lost 2"]
    );
    let feed = system.feed.as_ref().expect("the live feed runs");
    taskflow_system_tests::wait_until("the feed at the stream's end", SOON, || async {
        (feed.head().await == Some(6)).then_some(())
    })
    .await;
    let resume = |cursor: u64| {
        let query = format!("?token={}&cursor={cursor}", ada.token);
        let base = system.base_url.clone();
        async move { FeedClient::connect(&base, &query).await }
    };

    // A cursor from before the loss replays what the relay sent again.
    let mut kept = resume(wire_cursors[2]).await;
    let (replayed, ready) = kept.until("ready", SOON).await;
    let replayed: Vec<&str> = replayed
        .iter()
        .map(|frame| frame["event"]["payload"]["task"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(replayed, ["lost 0", "lost 1", "lost 2"]);
    assert_eq!(seq_of(&ready), 6);
    // A cursor of the lost history, beyond the stream's end or at a
    // sequence another event holds now, asks for a resync.
    for lost in [wire_cursors[6], wire_cursors[3], wire_cursors[4]] {
        let mut client = resume(lost).await;
        let resync = client.next_frame(SOON).await;
        assert_eq!(resync["type"], "resync_required", "{resync}");
        assert_eq!(seq_of(&resync), 6);
        assert_eq!(client.next_frame(SOON).await["type"], "ready");
    }
    // A cursor the feed never gave out is refused.
    let mut forged = resume(u64::MAX).await;
    assert_eq!(forged.next_frame(SOON).await["code"], "validation_failed");
    system.stop().await;
}

#[tokio::test]
async fn a_membership_change_the_stream_no_longer_holds_makes_the_feed_start_over() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let eve = system.register("Eve").await;
    let created = system
        .call(
            Method::POST,
            "/api/v1/projects",
            Some(&ada.token),
            Some(json!({"name": "p"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let members = format!(
        "/api/v1/projects/{}/members",
        created.body["id"].as_str().unwrap()
    );
    let body = json!({"user_id": eve.id, "role": "member"});
    let added = system
        .call(Method::POST, &members, Some(&ada.token), Some(body))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    // Once the feed's directory applied it, its head is that change.
    system.settle_directories().await;
    let feed = system.feed.as_ref().expect("the live feed runs");
    let head = feed.directory_applied();
    let mut live = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    assert_eq!(live.next_frame(SOON).await["type"], "ready");

    // The stream loses the change (as a server that lost its unsynced tail
    // would, and gave the place to another event), while TASKS keeps the
    // feed's head: only the directory's check can tell.
    let nats = async_nats::connect(system.nats.url()).await.unwrap();
    let audit = async_nats::jetstream::new(nats)
        .get_stream("AUDIT")
        .await
        .unwrap();
    assert!(audit.delete_message(head).await.unwrap());
    system.nats.kill();
    system.nats.resume().await;

    let told = live.next_frame(Duration::from_secs(20)).await;
    assert_eq!(told["code"], "service_unavailable", "{told}");
    let metrics = system.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("taskflow_ws_stream_rewinds_total{stream=\"AUDIT\"} 1")),
        "the restart is counted:\n{metrics}"
    );
    system.stop().await;
}
