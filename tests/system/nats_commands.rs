//! The commands as a plain NATS client (or the nats CLI) sends them.

use serde_json::{Value, json};
use taskflow_system_tests::TestSystem;

async fn request(system: &TestSystem, subject: &str, body: Value) -> Value {
    let reply = system
        .platform
        .nats
        .request(
            subject.to_owned(),
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .expect("the service answers");
    serde_json::from_slice(&reply.payload).expect("a JSON reply")
}

#[tokio::test]
async fn the_task_commands_work_from_a_plain_nats_client() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;

    let created = request(
        &system,
        "taskflow.tasks.create",
        json!({"title": "from nats", "actor_id": ada.id}),
    )
    .await;
    let task = &created["ok"];
    assert_eq!(task["title"], "from nats");
    let task_id = task["id"].clone();

    let read = request(
        &system,
        "taskflow.tasks.get",
        json!({"task_id": task_id, "actor_id": ada.id}),
    )
    .await;
    assert_eq!(read["ok"]["id"], task_id);
    let updated = request(
        &system,
        "taskflow.tasks.update",
        json!({"task_id": task_id, "actor_id": ada.id, "patch": {"priority": "low"}}),
    )
    .await;
    assert_eq!(updated["ok"]["priority"], "low");
    let listed = request(
        &system,
        "taskflow.tasks.list",
        json!({"actor_id": ada.id, "limit": 10}),
    )
    .await;
    assert_eq!(listed["ok"]["items"].as_array().unwrap().len(), 1);
    let completed = request(
        &system,
        "taskflow.tasks.complete",
        json!({"task_id": task_id, "actor_id": ada.id}),
    )
    .await;
    assert_eq!(completed["ok"]["status"], "complete");

    let invalid = request(
        &system,
        "taskflow.tasks.create",
        json!({"actor_id": ada.id}),
    )
    .await;
    assert_eq!(
        invalid,
        json!({"error": "title: missing field `title`", "code": "validation_failed", "field": "title"})
    );
    let garbage = system
        .platform
        .nats
        .request("taskflow.tasks.create", "not json".into())
        .await
        .unwrap();
    let garbage: Value = serde_json::from_slice(&garbage.payload).unwrap();
    assert_eq!(garbage["code"], "validation_failed");
    let stranger = request(
        &system,
        "taskflow.tasks.get",
        json!({"task_id": task_id, "actor_id": uuid::Uuid::now_v7()}),
    )
    .await;
    assert_eq!(stranger["code"], "not_found");

    let events = system.wait_for_events("TASKS", 3).await;
    assert_eq!(events.len(), 3);
    system.stop().await;
}

#[tokio::test]
async fn the_services_are_listed_by_the_nats_service_api() {
    let system = TestSystem::spawn().await;
    for (service, endpoint) in [
        ("taskflow-tasks", "taskflow.tasks.create"),
        ("taskflow-identity", "taskflow.identity.register"),
    ] {
        let info = system
            .platform
            .nats
            .request(format!("$SRV.INFO.{service}"), "".into())
            .await
            .unwrap();
        let info: Value = serde_json::from_slice(&info.payload).unwrap();
        assert_eq!(info["name"], service);
        let subjects: Vec<&str> = info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        assert!(subjects.contains(&endpoint), "{subjects:?}");
    }
    system.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_header_over_nats_is_bounded_as_over_http_and_makes_retries_safe() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let create = |key: String| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Idempotency-Key", key.as_str());
        let body = serde_json::to_vec(&json!({"title": "keyed", "actor_id": ada.id})).unwrap();
        let nats = system.platform.nats.clone();
        async move {
            let reply = nats
                .request_with_headers("taskflow.tasks.create", headers, body.into())
                .await
                .expect("the service answers");
            serde_json::from_slice::<Value>(&reply.payload).expect("a JSON reply")
        }
    };

    let too_long = create("k".repeat(10_000)).await;
    assert_eq!(too_long["code"], "validation_failed", "{too_long}");
    assert_eq!(too_long["field"], "Idempotency-Key");
    let control = create("a\u{1}b".into()).await;
    assert_eq!(control["field"], "Idempotency-Key", "{control}");

    let first = create("nats-retry-1".into()).await;
    let again = create("nats-retry-1".into()).await;
    assert_eq!(first["ok"]["id"], again["ok"]["id"], "{first} {again}");
    let listed = request(
        &system,
        "taskflow.tasks.list",
        json!({"actor_id": ada.id, "limit": 10}),
    )
    .await;
    assert_eq!(listed["ok"]["items"].as_array().unwrap().len(), 1);
    system.stop().await;
}
