//! The transactional outbox and its relay: every committed change reaches
//! `TASKS` once, in order, whatever happens to NATS or the relay.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskflow_system_tests::{TestSystem, fixtures, id_of, wait_until};
use uuid::Uuid;

/// The versions of `task`'s events, in stream order.
fn versions_of(events: &[taskflow_system_tests::StoredEvent], task: Uuid) -> Vec<i64> {
    events
        .iter()
        .filter(|event| event.envelope.task_id == Some(task))
        .map(|event| event.envelope.payload["task"]["version"].as_i64().unwrap())
        .collect()
}

/// Waits until the relay has published everything committed.
async fn drained(system: &TestSystem) {
    wait_until("an empty outbox", Duration::from_secs(15), || async {
        (system.tasks().outbox_backlog().await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_carry_the_envelope_and_their_id_as_nats_msg_id() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let created = system
        .send(
            system
                .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
                .header("X-Request-Id", "req-envelope")
                .json(&json!({"title": "enveloped"})),
        )
        .await;
    let task_id = id_of(&created.body);
    system
        .call(
            Method::PUT,
            &format!("/api/v1/tasks/{task_id}"),
            Some(&ada.token),
            Some(json!({"priority": "urgent"})),
        )
        .await;

    let events = system.wait_for_events("TASKS", 2).await;
    let (first, second) = (&events[0], &events[1]);
    assert_eq!(first.subject, format!("tasks.created.{task_id}"));
    assert_eq!(second.subject, format!("tasks.updated.{task_id}"));
    for event in [first, second] {
        let envelope = &event.envelope;
        assert_eq!(
            event.msg_id.as_deref(),
            Some(envelope.event_id.to_string().as_str())
        );
        assert_eq!(envelope.event_id.get_version_num(), 7);
        assert_eq!(envelope.schema_version, 1);
        assert_eq!(envelope.task_id, Some(task_id));
        assert_eq!(envelope.actor_id, Some(ada.id));
        assert_eq!(envelope.causation_id, None);
        assert_eq!(envelope.payload["task"]["id"], task_id.to_string());
    }
    assert_eq!(first.envelope.correlation_id, "req-envelope");
    assert_eq!(
        second.envelope.payload["changes"],
        json!({"priority": {"old": "medium", "new": "urgent"}})
    );
    assert_eq!(second.envelope.payload["task"]["version"], 2);
    system.stop().await;
}

#[tokio::test]
async fn a_task_written_while_nats_is_down_reaches_the_stream_once_when_it_is_back() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system
        .create_task(&ada, json!({"title": "before the outage"}))
        .await;
    system.wait_for_events("TASKS", 1).await;

    system.nats.kill();
    let mut written = Vec::new();
    for index in 0..3 {
        let task = system
            .create_task(&ada, json!({"title": format!("during the outage {index}")}))
            .await;
        written.push(id_of(&task));
    }
    assert_eq!(
        system.tasks().outbox_backlog().await,
        3,
        "committed, waiting for NATS"
    );

    system.nats.resume().await;
    drained(&system).await;
    let events = system.wait_for_events("TASKS", 4).await;
    let ids: HashSet<_> = events.iter().map(|event| event.envelope.event_id).collect();
    assert_eq!(events.len(), 4, "each event exactly once: {events:#?}");
    assert_eq!(ids.len(), 4);
    for task_id in written {
        assert_eq!(system.task_events(task_id).await.len(), 1);
    }
    system.stop().await;
}

#[tokio::test]
async fn the_relay_restarts_cleanly_and_publishes_what_it_left_in_order() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let task = system.create_task(&ada, json!({"title": "v1"})).await;
    let task_id = id_of(&task);
    system.wait_for_events("TASKS", 1).await;

    system.nats.kill();
    for version in 2..=4 {
        let reply = system
            .call(
                Method::PUT,
                &format!("/api/v1/tasks/{task_id}"),
                Some(&ada.token),
                Some(json!({"title": format!("v{version}")})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    system.stop_tasks().await;
    system.nats.resume().await;
    system.start_tasks().await;
    drained(&system).await;

    let versions: Vec<i64> = system
        .task_events(task_id)
        .await
        .iter()
        .map(|event| event.envelope.payload["task"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4], "every change once, in order");

    system
        .create_task(&ada, json!({"title": "after the restart"}))
        .await;
    let events = system.wait_for_events("TASKS", 5).await;
    assert_eq!(events.len(), 5);
    system.stop().await;
}

#[tokio::test]
async fn concurrent_writes_reach_the_stream_once_each_in_per_task_order() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut tasks = Vec::new();
    for index in 0..10 {
        tasks.push(id_of(
            &system
                .create_task(&ada, json!({"title": format!("task {index}")}))
                .await,
        ));
    }
    let updates = tasks
        .iter()
        .flat_map(|task_id| (0..5).map(move |round| (*task_id, round)));
    futures::future::join_all(updates.map(|(task_id, round)| {
        let system = &system;
        let token = ada.token.clone();
        async move {
            let path = format!("/api/v1/tasks/{task_id}");
            let reply = system
                .call(
                    Method::PATCH,
                    &path,
                    Some(&token),
                    Some(json!({"description": format!("round {round}")})),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
    }))
    .await;

    drained(&system).await;
    let events = system.wait_for_events("TASKS", 60).await;
    assert_eq!(events.len(), 60);
    for task_id in tasks {
        let versions = versions_of(&events, task_id);
        assert_eq!(versions, (1..=6).collect::<Vec<_>>(), "task {task_id}");
    }
    system.stop().await;
}

#[tokio::test]
async fn the_relay_survives_losing_its_database_connections() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system.create_task(&ada, json!({"title": "before"})).await;
    system.wait_for_events("TASKS", 1).await;

    // What a Postgres restart does to the service: every session ends at once.
    let database = system.settings.database_name("tasks");
    let pool = &system.tasks().pool;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the relay's session was among them");

    let after = wait_until(
        "a write to succeed again",
        Duration::from_secs(10),
        || async {
            let reply = system
                .call(
                    Method::POST,
                    "/api/v1/tasks",
                    Some(&ada.token),
                    Some(json!({"title": "after"})),
                )
                .await;
            (reply.status == StatusCode::CREATED).then_some(reply.body)
        },
    )
    .await;
    drained(&system).await;
    let events = system.wait_for_events("TASKS", 2).await;
    assert_eq!(system.task_events(id_of(&after)).await.len(), 1);
    let ids: HashSet<_> = events.iter().map(|event| event.envelope.event_id).collect();
    assert_eq!(ids.len(), events.len(), "no event twice");
    system.stop().await;
}

#[tokio::test]
async fn events_a_restarted_server_lost_are_published_again_exactly_however_old() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    // Another publisher shares the stream, so the outbox's sequences have gaps.
    async fn write(system: &TestSystem, ada: &taskflow_system_tests::User, title: String) {
        system.create_task(ada, json!({ "title": title })).await;
        let foreign = fixtures::task_created(ada.id, "foreign", "foreign");
        let body = serde_json::to_vec(&foreign).unwrap();
        system
            .inject(
                fixtures::subject_of(&foreign),
                body,
                &foreign.event_id.to_string(),
            )
            .await;
    }
    for n in 0..5 {
        write(&system, &ada, format!("kept {n}")).await;
    }
    system.wait_for_events("TASKS", 10).await;
    drained(&system).await;
    let synced = system.nats.copy_store();
    for n in 0..7 {
        write(&system, &ada, format!("lost {n}")).await;
    }
    system.wait_for_events("TASKS", 24).await;
    drained(&system).await;

    // The power goes: the server comes back with only what it had on disk at
    // the copy. As if it came back three minutes later, past the duplicate
    // window and past any "recent" window a relay might count on.
    system.nats.kill();
    system.nats.restore_store(&synced);
    sqlx::query("UPDATE outbox SET published_at = published_at - interval '3 minutes'")
        .execute(&system.tasks().pool)
        .await
        .unwrap();
    system.nats.resume().await;

    // The foreign messages after the copy are gone for good: not ours to send.
    let events = system.wait_for_events("TASKS", 17).await;
    let titles: Vec<&str> = events
        .iter()
        .map(|event| event.envelope.payload["task"]["title"].as_str().unwrap())
        .filter(|title| *title != "foreign")
        .collect();
    let expected: Vec<String> = (0..5)
        .map(|n| format!("kept {n}"))
        .chain((0..7).map(|n| format!("lost {n}")))
        .collect();
    assert_eq!(titles, expected);
    let ids: HashSet<_> = events.iter().map(|event| event.envelope.event_id).collect();
    assert_eq!(ids.len(), events.len(), "each event once");
    drained(&system).await;
    let republished = system.metrics().await;
    assert!(
        republished.contains(r#"taskflow_outbox_republished_total{service="tasks"} 7"#),
        "exactly the lost ones: {republished}"
    );
    system.stop().await;
}

#[tokio::test]
async fn after_losses_of_its_tail_each_task_s_events_on_the_stream_end_in_version_order() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let tasks: Vec<Uuid> = futures::future::join_all(
        (0..4).map(|n| system.create_task(&ada, json!({ "title": format!("task {n}") }))),
    )
    .await
    .iter()
    .map(id_of)
    .collect();
    let api = system.api();
    let edit = |round: usize| {
        let (api, token, tasks) = (api.clone(), ada.token.clone(), tasks.clone());
        async move {
            for task_id in tasks {
                let path = format!("/api/v1/tasks/{task_id}");
                let body = json!({ "description": format!("round {round}") });
                let reply = api
                    .call(Method::PATCH, &path, Some(&token), Some(body))
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            }
        }
    };
    let mut round = 0;
    // Two power losses in a row, each while edits keep coming: the newer
    // versions written as the server comes back must not go out before the
    // lost older ones are published again.
    for _ in 0..2 {
        drained(&system).await;
        let synced = system.nats.copy_store();
        for _ in 0..3 {
            round += 1;
            edit(round).await;
        }
        drained(&system).await;
        system.nats.kill();
        system.nats.restore_store(&synced);
        round += 1;
        edit(round).await;
        let edits = async {
            for next in round + 1..=round + 3 {
                edit(next).await;
            }
        };
        futures::join!(system.nats.resume(), edits);
        round += 3;
    }
    drained(&system).await;
    let last_version = 1 + round as i64;
    let events = system.wait_for_events("TASKS", 4).await;
    for task_id in tasks {
        let versions = versions_of(&events, task_id);
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            versions, sorted,
            "task {task_id}: in version order, each once"
        );
        assert_eq!(
            versions.last(),
            Some(&last_version),
            "task {task_id} ends at its version"
        );
    }
    system.stop().await;
}

/// The outbox table's scan counters: rows read by sequential scans, rows updated.
async fn outbox_reads(system: &TestSystem) -> (i64, i64) {
    sqlx::query_as(
        "SELECT seq_tup_read, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'outbox'",
    )
    .fetch_one(&system.tasks().pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_relay_marks_each_batch_without_scanning_an_outbox_that_grew_since_it_started() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    // Batches enough, on a small table, for Postgres to settle on a plan.
    for n in 1..=8 {
        system
            .create_task(&ada, json!({"title": format!("small {n}")}))
            .await;
        system.wait_for_events("TASKS", n).await;
    }
    // The outbox grows as it does over its hour of retention, with no ANALYZE yet.
    sqlx::query(
        "INSERT INTO outbox (event_id, subject, body, request_id, created_at, published_at) \
         SELECT gen_random_uuid(), 'tasks.created.old', '\\x7b7d', 'old', now(), now() \
         FROM generate_series(1, 50000)",
    )
    .execute(&system.tasks().pool)
    .await
    .unwrap();
    let marked_before = wait_until(
        "the marks so far counted",
        Duration::from_secs(15),
        || async {
            let (read, updated) = outbox_reads(&system).await;
            (updated >= 8).then_some((read, updated))
        },
    )
    .await;

    for n in 1..=5 {
        system
            .create_task(&ada, json!({"title": format!("large {n}")}))
            .await;
        system.wait_for_events("TASKS", 8 + n).await;
    }
    // The relay's session reports its counters when it is next idle.
    let marked_after = wait_until("the new marks counted", Duration::from_secs(15), || async {
        let (read, updated) = outbox_reads(&system).await;
        (updated >= marked_before.1 + 5).then_some((read, updated))
    })
    .await;
    let scanned = marked_after.0 - marked_before.0;
    assert!(
        scanned < 50_000,
        "five marks read {scanned} rows by sequential scan: the whole table at least once"
    );
    system.stop().await;
}
