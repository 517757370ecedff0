//! The audit trail: every event once, immutable, readable by who may read it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_runtime::service::Service;
use taskflow_schemas::EventEnvelope;
use taskflow_system_tests::{TestSystem, User, caught_up, fixtures, id_of, wait_until};

/// Waits until the audit holds `count` records of `event_type`, then
/// until its consumers have nothing left to do.
async fn wait_for_records(system: &TestSystem, event_type: &str, count: i64) {
    let pool = system.audit().pool.clone();
    wait_until(
        &format!("{count} {event_type} records"),
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let found: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_type = $1")
                        .bind(event_type)
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                (found >= count).then_some(())
            }
        },
    )
    .await;
    caught_up(
        "no consumer lag",
        Duration::from_secs(10),
        &[system.audit()],
    )
    .await;
}

async fn records(system: &TestSystem, user: &User, query: &str) -> Value {
    let reply = system
        .call(
            Method::GET,
            &format!("/api/v1/audit{query}"),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn every_task_change_becomes_one_record_that_its_readers_can_read() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let task = system.create_task(&ada, json!({"title": "audited"})).await;
    let task_id = id_of(&task);
    let path = format!("/api/v1/tasks/{task_id}");
    let updated = system
        .send(
            system
                .request(Method::PATCH, &path, Some(&ada.token))
                .header("X-Request-Id", "req-audit-update")
                .json(&json!({"priority": "urgent"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    system
        .call(
            Method::POST,
            &format!("{path}/complete"),
            Some(&ada.token),
            None,
        )
        .await;
    wait_for_records(&system, "task.completed", 1).await;

    let mine = records(&system, &ada, &format!("?task_id={task_id}")).await;
    let items = mine["items"].as_array().unwrap();
    let types: Vec<&str> = items
        .iter()
        .map(|r| r["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["task.created", "task.updated", "task.completed"],
        "chronological"
    );
    assert_eq!(
        items[1]["changes"],
        json!([{"field": "priority", "old": "medium", "new": "urgent"}])
    );
    assert_eq!(items[1]["correlation_id"], "req-audit-update");
    assert_eq!(items[0]["stream"], "TASKS");
    assert!(items[0]["stream_seq"].as_i64().unwrap() >= 1);
    assert_eq!(items[0]["actor_id"], ada.id.to_string());

    let by_request = records(&system, &ada, "?correlation_id=req-audit-update").await;
    assert_eq!(by_request["items"].as_array().unwrap().len(), 1);

    let hidden = records(&system, &bob, &format!("?task_id={task_id}")).await;
    assert_eq!(
        hidden["items"],
        json!([]),
        "Bob cannot read the task, so not its records"
    );
    let record_path = format!("/api/v1/audit/{}", items[0]["id"].as_str().unwrap());
    assert_eq!(
        system
            .call(Method::GET, &record_path, Some(&ada.token), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        system
            .call(Method::GET, &record_path, Some(&bob.token), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Her own registration concerns no task; she sees it, Bob does not.
    let registered = records(&system, &ada, "?event_type=user.registered").await;
    assert_eq!(registered["items"].as_array().unwrap().len(), 1);
    assert_eq!(registered["items"][0]["stream"], "AUDIT");

    let root = system.make_admin(system.register("Root").await).await;
    wait_for_records(&system, "user.role_changed", 1).await;
    let everything = records(&system, &root, "?limit=200").await;
    assert!(
        everything["items"].as_array().unwrap().len() >= 7,
        "{everything}"
    );
    system.stop().await;
}

#[tokio::test]
async fn audit_records_cannot_be_changed_or_removed() {
    let system = TestSystem::spawn().await;
    system.register("Ada").await;
    wait_for_records(&system, "user.registered", 1).await;
    let pool = &system.audit().pool;
    for statement in [
        "UPDATE audit_records SET event_type = 'forged'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ] {
        let refused = sqlx::query(statement).execute(pool).await;
        let error = refused.expect_err(statement).to_string();
        assert!(error.contains("immutable"), "{statement}: {error}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_records")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    system.stop().await;
}

fn injected_event(owner: uuid::Uuid, schema_version: u32) -> EventEnvelope {
    let mut envelope = fixtures::task_created(owner, "injected", "injected");
    envelope.schema_version = schema_version;
    envelope
}

#[tokio::test]
async fn the_same_event_injected_twice_gives_one_record() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let event = injected_event(ada.id, 1);
    let subject = format!("tasks.created.{}", event.task_id.unwrap());
    let body = serde_json::to_vec(&event).unwrap();
    // Different message ids, so the stream keeps both copies.
    system
        .inject(subject.clone(), body.clone(), "first-copy")
        .await;
    system.inject(subject, body, "second-copy").await;
    wait_for_records(&system, "task.created", 1).await;

    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_id = $1")
        .bind(event.event_id)
        .fetch_one(&system.audit().pool)
        .await
        .unwrap();
    assert_eq!(found, 1);
    let metrics = system.metrics().await;
    assert!(
        metrics.contains(
            r#"taskflow_consumer_skipped_total{consumer="audit-tasks",reason="duplicate"} 1"#
        ),
        "{metrics}"
    );
    system.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_version_messages_do_not_stop_the_audit() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system
        .inject(
            "tasks.created.garbage".into(),
            b"{not an envelope".to_vec(),
            "garbage",
        )
        .await;
    let future = injected_event(ada.id, 2);
    let future_subject = format!("tasks.created.{}", future.task_id.unwrap());
    system
        .inject(
            future_subject,
            serde_json::to_vec(&future).unwrap(),
            "from-the-future",
        )
        .await;
    // A good event behind the bad ones still gets through.
    system
        .create_task(&ada, json!({"title": "after the bad ones"}))
        .await;
    wait_for_records(&system, "task.created", 1).await;

    let parked = system
        .wait_for_dlq("audit-tasks", Duration::from_secs(10))
        .await;
    assert_eq!(
        parked.len(),
        1,
        "only the malformed one; an unknown version is skipped, not parked"
    );
    let header = |name: &str| {
        parked[0]
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
    };
    assert_eq!(parked[0].subject.as_str(), "dlq.audit-tasks");
    assert!(
        header("Taskflow-Dlq-Reason")
            .unwrap()
            .starts_with("malformed")
    );
    assert_eq!(
        header("Taskflow-Dlq-Subject").as_deref(),
        Some("tasks.created.garbage")
    );
    assert_eq!(header("Taskflow-Dlq-Stream").as_deref(), Some("TASKS"));
    assert_eq!(header("Taskflow-Dlq-Sequence").as_deref(), Some("1"));
    assert_eq!(&parked[0].payload[..], b"{not an envelope");

    let metrics = system.metrics().await;
    for line in [
        r#"taskflow_consumer_skipped_total{consumer="audit-tasks",reason="unknown_schema_version"} 1"#,
        r#"taskflow_consumer_dlq_total{consumer="audit-tasks",reason="malformed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let future_records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_id = $1")
            .bind(future.event_id)
            .fetch_one(&system.audit().pool)
            .await
            .unwrap();
    assert_eq!(future_records, 0);
    system.stop().await;
}

#[tokio::test]
async fn an_audit_stopped_during_1000_writes_catches_up_with_exactly_1000_records() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system.stop_audit().await;

    system.create_tasks(&ada, "write", 1000, 16).await;

    system.start_audit().await;
    wait_for_records(&system, "task.created", 1000).await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_type = 'task.created'")
            .fetch_one(&system.audit().pool)
            .await
            .unwrap();
    assert_eq!(count, 1000);
    system.stop().await;
}

#[tokio::test]
async fn two_audit_instances_share_one_consumer_and_record_each_event_once() {
    let system = TestSystem::spawn().await;
    let second = taskflow_audit::SERVICE
        .start(&system.platform)
        .await
        .expect("a second instance starts");
    let ada = system.register("Ada").await;
    system.create_tasks(&ada, "shared", 200, 8).await;
    wait_for_records(&system, "task.created", 200).await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_type = 'task.created'")
            .fetch_one(&system.audit().pool)
            .await
            .unwrap();
    assert_eq!(count, 200);
    second.stop().await;
    system.stop().await;
}

#[tokio::test]
async fn an_event_the_handler_rejects_goes_to_the_dlq_at_once() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut event = injected_event(ada.id, 1);
    event.payload = json!({"task": "not a task"});
    let subject = format!("tasks.created.{}", event.task_id.unwrap());
    system
        .inject(
            subject.clone(),
            serde_json::to_vec(&event).unwrap(),
            "rejected",
        )
        .await;
    system
        .create_task(&ada, json!({"title": "behind it"}))
        .await;
    wait_for_records(&system, "task.created", 1).await;

    let parked = system.dlq_of("audit-tasks").await;
    assert_eq!(parked.len(), 1);
    let reason = parked[0]
        .headers
        .get("Taskflow-Dlq-Reason")
        .unwrap()
        .as_str()
        .to_owned();
    assert!(reason.starts_with("rejected"), "{reason}");
    assert_eq!(
        parked[0]
            .headers
            .get("Taskflow-Dlq-Subject")
            .unwrap()
            .as_str(),
        subject
    );
    system.stop().await;
}
