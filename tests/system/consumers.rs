//! The consumer runtime seen through a service made for these tests: keyed
//! workers keep each task's events in order, and an effector performs its
//! effects after the commit, retrying what fails, once per event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;
use taskflow_runtime::bus::Endpoints;
use taskflow_runtime::consumer::effector::{EffectError, Effector};
use taskflow_runtime::consumer::{ConsumedEvent, ConsumerSpec, HandlerError};
use taskflow_runtime::service::{ConsumerStarter, Service, ServiceDefinition};
use taskflow_schemas::subjects::TASKS_STREAM;
use taskflow_system_tests::{TestSystem, caught_up, id_of, wait_until};
use uuid::Uuid;

/// What the effector saw, in the order it saw it (each test is a process).
static PLANNED: Mutex<Vec<(Uuid, i64)>> = Mutex::new(Vec::new());
static PERFORMED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

static EFFECTS: ServiceDefinition<()> = ServiceDefinition {
    name: "effects",
    description: "a test service: one effect per task event",
    migrator: &NO_MIGRATIONS,
    workers: 1,
    outbox: false,
    publishes_directory: false,
    check_settings: |_| Ok(()),
    ops_addr: "127.0.0.1:0",
    state: |_, _| (),
    endpoints: Endpoints::new,
    actors: Vec::new,
    consumers: |_, _| {
        let spec = ConsumerSpec {
            service: "effects",
            durable: "effects-tasks".into(),
            stream: TASKS_STREAM,
            subjects: vec!["tasks.>".into()],
            workers: 4,
        };
        vec![ConsumerStarter::effector(spec, TitleEffector)]
    },
};

#[derive(Serialize, Deserialize)]
struct Note {
    title: String,
}

struct TitleEffector;

impl Effector for TitleEffector {
    type Effect = Note;

    async fn plan(
        &self,
        _: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<Vec<Note>, HandlerError> {
        let task = &event.envelope.payload["task"];
        if task["title"]
            .as_str()
            .is_some_and(|title| title.starts_with("slow"))
        {
            // Work longer than the consumer's ack wait.
            tokio::time::sleep(taskflow_runtime::consumer::ACK_WAIT * 3).await;
        }
        let version = task["version"].as_i64().unwrap_or_default();
        let id = event.envelope.task_id.unwrap_or_default();
        PLANNED.lock().unwrap().push((id, version));
        let title = task["title"].as_str().unwrap_or_default().to_owned();
        Ok(vec![Note { title }])
    }

    async fn perform(&self, _delivery: i64, note: &Note) -> Result<(), EffectError> {
        let attempts = {
            let mut performed = PERFORMED.lock().unwrap();
            performed.push(note.title.clone());
            performed
                .iter()
                .filter(|title| **title == note.title)
                .count()
        };
        if note.title.starts_with("doomed") {
            return Err(EffectError::Permanent("refused for good".into()));
        }
        if note.title.starts_with("flaky") && attempts < 3 {
            return Err(EffectError::Retry(format!("attempt {attempts} fails")));
        }
        Ok(())
    }
}

/// (status, attempts) of every delivery, by the effect's title.
async fn deliveries(pool: &sqlx::PgPool) -> HashMap<String, Vec<(String, i32)>> {
    let rows: Vec<(serde_json::Value, String, i32)> =
        sqlx::query_as("SELECT effect, status, attempts FROM effect_deliveries ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut by_title: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    for (effect, status, attempts) in rows {
        let title = effect["title"].as_str().unwrap().to_owned();
        by_title.entry(title).or_default().push((status, attempts));
    }
    by_title
}

#[tokio::test]
async fn an_effector_performs_each_effect_once_after_retries_and_records_its_status() {
    let system = TestSystem::spawn().await;
    let effects = EFFECTS.start(&system.platform).await.expect("starts");
    let ada = system.register("Ada").await;
    for title in ["plain", "flaky", "doomed"] {
        let created = system
            .call(
                Method::POST,
                "/api/v1/tasks",
                Some(&ada.token),
                Some(json!({ "title": title })),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let settled = wait_until(
        "every delivery settles",
        Duration::from_secs(20),
        || async {
            let all = deliveries(&effects.pool).await;
            let settled = all.len() == 3
                && all
                    .values()
                    .flatten()
                    .all(|(status, _)| status != "pending");
            settled.then_some(all)
        },
    )
    .await;
    assert_eq!(settled["plain"], vec![("done".to_owned(), 1)]);
    assert_eq!(
        settled["flaky"],
        vec![("done".to_owned(), 3)],
        "two retries"
    );
    assert_eq!(settled["doomed"], vec![("failed".to_owned(), 1)]);
    let performed = PERFORMED.lock().unwrap().clone();
    let count = |title: &str| performed.iter().filter(|seen| *seen == title).count();
    assert_eq!((count("plain"), count("flaky"), count("doomed")), (1, 3, 1));

    // The same event again changes nothing: no second delivery.
    let stored = system.stream_events(TASKS_STREAM).await;
    let first = &stored[0];
    system
        .inject(
            first.subject.clone(),
            serde_json::to_vec(&first.envelope).unwrap(),
            &Uuid::now_v7().to_string(),
        )
        .await;
    caught_up(
        "the duplicate is consumed",
        Duration::from_secs(10),
        &[&effects],
    )
    .await;
    assert_eq!(deliveries(&effects.pool).await.len(), 3);
    let metrics = system.metrics().await;
    assert!(
        metrics.contains("taskflow_effects_total{consumer=\"effects-tasks\",outcome=\"retry\"} 2"),
        "{metrics}"
    );
    effects.stop().await;
    system.stop().await;
}

#[tokio::test]
async fn keyed_workers_keep_each_tasks_events_in_order() {
    let system = TestSystem::spawn().await;
    let effects = EFFECTS.start(&system.platform).await.expect("starts");
    let ada = system.register("Ada").await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let body = json!({ "title": format!("ordered {n}") });
        let created = system
            .call(Method::POST, "/api/v1/tasks", Some(&ada.token), Some(body))
            .await;
        ids.push(id_of(&created.body));
    }
    // Updates of different tasks interleave; each task's come in order.
    for round in 0..4 {
        for id in &ids {
            let patch = json!({ "description": format!("round {round}") });
            let path = format!("/api/v1/tasks/{id}");
            let updated = system
                .call(Method::PATCH, &path, Some(&ada.token), Some(patch))
                .await;
            assert_eq!(updated.status, 200, "{}", updated.body);
        }
    }
    wait_until(
        "every event is planned",
        Duration::from_secs(20),
        || async { (PLANNED.lock().unwrap().len() >= 12 * 5).then_some(()) },
    )
    .await;
    let planned = PLANNED.lock().unwrap().clone();
    for id in &ids {
        let versions: Vec<i64> = planned
            .iter()
            .filter(|(task, _)| task == id)
            .map(|(_, version)| *version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5], "task {id}");
    }
    effects.stop().await;
    system.stop().await;
}

/// Whether `consumer` recorded `event` in its service's inbox.
async fn recorded(pool: &sqlx::PgPool, consumer: &str, event: Uuid) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM consumed_events WHERE consumer = $1 AND event_id = $2)",
    )
    .bind(consumer)
    .bind(event)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_event_a_service_has_nothing_to_do_with_is_acked_without_a_transaction() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let far = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let plain = json!({"title": "plain"});
    let reminded = json!({"title": "reminded", "reminder_time": far});
    let assigned = json!({"title": "assigned", "assignee_id": bob.id});
    let mut created = Vec::new();
    for body in [plain, reminded, assigned] {
        let task = id_of(&system.create_task(&ada, body).await);
        system
            .wait_for_events(TASKS_STREAM, created.len() + 1)
            .await;
        created.push(system.task_events(task).await[0].envelope.event_id);
    }
    let (scheduler, notifier) = (system.service("scheduler"), system.service("notifier"));
    caught_up(
        "the scheduler and the notifier are done with the three",
        Duration::from_secs(10),
        &[scheduler, notifier],
    )
    .await;

    let mut in_scheduler = Vec::new();
    let mut in_notifier = Vec::new();
    for event in &created {
        in_scheduler.push(recorded(&scheduler.pool, "scheduler-tasks", *event).await);
        in_notifier.push(recorded(&notifier.pool, "notifier-tasks", *event).await);
    }
    // Only the reminder concerns the scheduler, only the assignment the notifier.
    assert_eq!(in_scheduler, [false, true, false]);
    assert_eq!(in_notifier, [false, false, true]);
    let reminders: i64 = sqlx::query_scalar("SELECT count(*) FROM reminders")
        .fetch_one(&scheduler.pool)
        .await
        .unwrap();
    assert_eq!(reminders, 1);
    let notified: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE recipient_id = $1")
            .bind(bob.id)
            .fetch_one(&notifier.pool)
            .await
            .unwrap();
    assert!(notified >= 1, "bob is told of the assignment");
    system.stop().await;
}

/// The ids and reasons of what `consumer` parked, once it parked `count`.
async fn parked(system: &TestSystem, consumer: &str, count: usize) -> Vec<(Uuid, String)> {
    let parked = wait_until(
        &format!("{count} parked by {consumer}"),
        Duration::from_secs(10),
        || async {
            let parked = system.dlq_of(consumer).await;
            (parked.len() >= count).then_some(parked)
        },
    )
    .await;
    parked
        .iter()
        .map(|message| {
            let envelope: taskflow_schemas::EventEnvelope =
                serde_json::from_slice(&message.payload).unwrap();
            let reason = message.headers.get("Taskflow-Dlq-Reason").unwrap();
            (envelope.event_id, reason.to_string())
        })
        .collect()
}

#[tokio::test]
async fn injected_creates_are_ignored_only_when_well_formed_and_a_flood_of_them_stalls_nothing() {
    use taskflow_system_tests::fixtures::{subject_of, task_created};
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let inject = |event: taskflow_schemas::EventEnvelope| {
        let system = &system;
        async move {
            let body = serde_json::to_vec(&event).unwrap();
            system
                .inject(subject_of(&event), body, &event.event_id.to_string())
                .await;
        }
    };

    // Plain in every field but one: its payload is about another task.
    let mut mismatched = task_created(ada.id, "someone else's", "hostile-mismatched");
    mismatched.payload["task"]["id"] = json!(Uuid::now_v7());
    inject(mismatched.clone()).await;
    // A NUL, which the API refuses and Postgres cannot store.
    let with_nul = task_created(ada.id, "nul \u{0} inside", "hostile-nul");
    inject(with_nul.clone()).await;
    // Odd but well-formed: right-to-left text in the title, 10,000 labels.
    let mut odd = task_created(ada.id, "\u{202e}reversed", "hostile-odd");
    odd.payload["task"]["labels"] = json!((0..10_000).map(|n| format!("l{n}")).collect::<Vec<_>>());
    inject(odd.clone()).await;
    // A flood of plain creates, then a task that needs the scheduler.
    for n in 0..1_000 {
        inject(task_created(
            ada.id,
            &format!("flood {n}"),
            &format!("hostile-{n}"),
        ))
        .await;
    }
    let far = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let reminded = id_of(
        &system
            .create_task(
                &ada,
                json!({"title": "after the flood", "reminder_time": far}),
            )
            .await,
    );

    let (scheduler, notifier) = (system.service("scheduler"), system.service("notifier"));
    wait_until(
        "the reminder behind the flood",
        Duration::from_secs(20),
        || async {
            let found: Option<Uuid> = sqlx::query_scalar("SELECT task_id FROM reminders")
                .fetch_optional(&scheduler.pool)
                .await
                .unwrap();
            (found == Some(reminded)).then_some(())
        },
    )
    .await;
    for consumer in ["scheduler-tasks", "notifier-tasks"] {
        // Two instances may park them in either order.
        let parked: HashMap<Uuid, String> =
            parked(&system, consumer, 2).await.into_iter().collect();
        assert_eq!(parked.len(), 2, "{consumer}: {parked:?}");
        let mismatch = &parked[&mismatched.event_id];
        assert!(mismatch.contains("task_id"), "{consumer}: {mismatch}");
        let nul = &parked[&with_nul.event_id];
        assert!(
            nul.starts_with("malformed: payload.task.title"),
            "{consumer}: {nul}"
        );
    }
    let audit_parked = parked(&system, "audit-tasks", 1).await;
    assert_eq!(
        audit_parked.len(),
        1,
        "the audit records the mismatched one as it came"
    );
    assert_eq!(audit_parked[0].0, with_nul.event_id);
    caught_up(
        "the two are done with the flood",
        Duration::from_secs(20),
        &[scheduler, notifier],
    )
    .await;
    // The odd one and the flood were nothing to either: no inbox row, no notification.
    assert!(!recorded(&scheduler.pool, "scheduler-tasks", odd.event_id).await);
    assert!(!recorded(&notifier.pool, "notifier-tasks", odd.event_id).await);
    let notifications: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&notifier.pool)
        .await
        .unwrap();
    assert_eq!(notifications, 0);
    // The audit ignores nothing: the odd one is recorded as it came.
    let labels: i64 = wait_until("the odd one's audit record", Duration::from_secs(20), || async {
        sqlx::query_scalar("SELECT jsonb_array_length(payload->'task'->'labels')::bigint FROM audit_records WHERE event_id = $1")
            .bind(odd.event_id)
            .fetch_optional(&system.audit().pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(labels, 10_000);
    system.stop().await;
}

#[tokio::test]
async fn what_a_killed_instance_held_is_processed_by_another_within_moments() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system.stop_audit().await;
    let mut tasks = Vec::new();
    for n in 0..5 {
        tasks.push(id_of(
            &system
                .create_task(&ada, json!({"title": format!("held {n}")}))
                .await,
        ));
    }
    system.wait_for_events("TASKS", 5).await;
    // Another instance pulls the five and dies holding them (its
    // connection gone, nothing acked: a kill -9).
    let doomed = async_nats::connect(system.nats.url()).await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        async_nats::jetstream::new(doomed.clone())
            .get_consumer_from_stream("audit-tasks", TASKS_STREAM)
            .await
            .expect("the audit's durable consumer");
    let mut held = consumer.fetch().max_messages(5).messages().await.unwrap();
    let mut taken = 0;
    while let Some(message) = futures::StreamExt::next(&mut held).await {
        message.unwrap();
        taken += 1;
    }
    assert_eq!(taken, 5, "the doomed instance holds all five");
    drop(held);
    drop(doomed);
    let killed = std::time::Instant::now();

    system.start_audit().await;
    let pool = system.audit().pool.clone();
    wait_until(
        "the audit to record them",
        Duration::from_secs(10),
        || async {
            let recorded: i64 =
                sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE task_id = ANY($1)")
                    .bind(&tasks)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (recorded == 5).then_some(())
        },
    )
    .await;
    // Within the ack wait (1.5 s) and the time to apply them; 30 s before.
    println!(
        "taken over {} ms after the kill",
        killed.elapsed().as_millis()
    );
    system.stop().await;
}

#[tokio::test]
async fn work_longer_than_the_ack_wait_is_not_delivered_twice() {
    let system = TestSystem::spawn().await;
    let effects = EFFECTS.start(&system.platform).await.expect("starts");
    // A second instance, waiting for whatever the first is thought to hold
    // no longer.
    let _other = EFFECTS.start(&system.platform).await.expect("starts");
    let ada = system.register("Ada").await;
    for title in ["slow", "behind it"] {
        system.create_task(&ada, json!({ "title": title })).await;
    }
    wait_until("both delivered", Duration::from_secs(20), || async {
        let all = deliveries(&effects.pool).await;
        (all.len() == 2 && all.values().flatten().all(|(status, _)| status == "done")).then_some(())
    })
    .await;
    let metrics = system.metrics().await;
    assert!(
        !metrics.contains("taskflow_consumer_redeliveries_total{consumer=\"effects-tasks\"}"),
        "in-progress acks kept them from redelivery:\n{metrics}"
    );
    assert_eq!(PERFORMED.lock().unwrap().len(), 2, "each performed once");
    system.stop().await;
}
