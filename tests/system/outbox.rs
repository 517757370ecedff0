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

/// One run of losses: how many tasks are edited, and for each power loss
/// the edit rounds between the last synced copy and the kill (what the
/// stream loses), while the server is down, and while it comes back.
#[derive(Debug, Clone)]
struct Losses {
    tasks: usize,
    /// Edits of every task at once (concurrent transactions) or one by one.
    concurrent: bool,
    losses: Vec<(usize, usize, usize)>,
}

fn losses() -> impl proptest::strategy::Strategy<Value = Losses> {
    use proptest::prelude::*;
    (
        1..4usize,
        any::<bool>(),
        proptest::collection::vec((0..4usize, 0..3usize, 0..4usize), 1..4),
    )
        .prop_map(|(tasks, concurrent, losses)| Losses {
            tasks,
            concurrent,
            losses,
        })
}

/// A property test run apart from `just props` (each case restarts the
/// NATS server): `TASKFLOW_LOSS_CASES` cases, 6 by default.
mod tail_losses {
    use super::*;
    use proptest::test_runner::TestCaseError;
    use std::cell::RefCell;

    /// After any number of losses of the stream's tail, with edits before,
    /// during and after each, every task's events on `TASKS` are each of
    /// its versions once, in version order.
    #[test]
    fn after_losses_of_its_tail_each_task_s_events_on_the_stream_end_in_version_order() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let system = RefCell::new(runtime.block_on(TestSystem::spawn()));
        let ada = runtime.block_on(system.borrow().register("Ada"));
        let mut runner = taskflow_system_tests::property_runner("TASKFLOW_LOSS_CASES", 6);
        let outcome = runner.run(&losses(), |case| {
            runtime
                .block_on(check(&mut system.borrow_mut(), &ada, &case))
                .map_err(TestCaseError::fail)
        });
        runtime.block_on(system.into_inner().stop());
        outcome.unwrap();
    }

    async fn check(
        system: &mut TestSystem,
        ada: &taskflow_system_tests::User,
        case: &Losses,
    ) -> Result<(), String> {
        let created = futures::future::join_all(
            (0..case.tasks)
                .map(|n| system.create_task(ada, json!({ "title": format!("task {n}") }))),
        )
        .await;
        let tasks: Vec<Uuid> = created.iter().map(id_of).collect();
        let api = system.api();
        let edit = |round: usize| {
            let (api, token, tasks) = (api.clone(), ada.token.clone(), tasks.clone());
            async move { edit_all(&api, &token, &tasks, round, case.concurrent).await }
        };
        let mut round = 0;
        for &(before, down, returning) in &case.losses {
            drained(system).await;
            let synced = system.nats.copy_store();
            for _ in 0..before {
                round += 1;
                edit(round).await;
            }
            drained(system).await;
            system.nats.kill();
            system.nats.restore_store(&synced);
            for _ in 0..down {
                round += 1;
                edit(round).await;
            }
            let first = round + 1;
            let edits = async {
                for next in first..first + returning {
                    edit(next).await;
                }
            };
            futures::join!(system.nats.resume(), edits);
            round += returning;
        }
        drained(system).await;
        // Every version once, in order: none lost for good, none twice. A
        // loss with nothing written after it is found at the relay's next
        // sweep: waited for, boundedly.
        let every: Vec<i64> = (1..=1 + round as i64).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let events = system.stream_events("TASKS").await;
            let wrong = tasks.iter().find_map(|&task_id| {
                let versions = versions_of(&events, task_id);
                (versions != every).then_some((task_id, versions))
            });
            let Some((task_id, versions)) = wrong else {
                return Ok(());
            };
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "task {task_id}: versions {versions:?} on the stream, not {every:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Edits every task once, all at once or one after another.
    async fn edit_all(
        api: &taskflow_system_tests::Api,
        token: &str,
        tasks: &[Uuid],
        round: usize,
        concurrent: bool,
    ) {
        let one = |task_id: Uuid| async move {
            let path = format!("/api/v1/tasks/{task_id}");
            let body = json!({ "description": format!("round {round}") });
            let reply = api
                .call(Method::PATCH, &path, Some(token), Some(body))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        };
        if concurrent {
            futures::future::join_all(tasks.iter().copied().map(one)).await;
        } else {
            for &task_id in tasks {
                one(task_id).await;
            }
        }
    }
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
