//! The task routes of the edge, as a client uses them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;
use taskflow_system_tests::ws::FeedClient;
use taskflow_system_tests::{TestSystem, Transport, id_of};

#[tokio::test]
async fn create_read_update_complete_and_delete_through_http() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let token = Some(ada.token.as_str());

    let task = system
        .create_task(
            &ada,
            json!({"title": "Write the report", "priority": "high", "labels": ["work"]}),
        )
        .await;
    assert_eq!(task["status"], "pending");
    assert_eq!(task["version"], 1);
    assert_eq!(task["creator_id"], ada.id.to_string());
    let path = format!("/api/v1/tasks/{}", id_of(&task));

    let read = system.call(Method::GET, &path, token, None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, task);
    assert_eq!(read.header("etag"), Some("\"1\""));

    let listed = system.call(Method::GET, "/api/v1/tasks", token, None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["next_cursor"], serde_json::Value::Null);

    let updated = system
        .call(
            Method::PUT,
            &path,
            token,
            Some(json!({"title": "Write the final report", "description": null})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["title"], "Write the final report");
    assert_eq!(updated.body["version"], 2);

    let patched = system
        .call(
            Method::PATCH,
            &path,
            token,
            Some(json!({"status": "in_progress"})),
        )
        .await;
    assert_eq!(patched.body["status"], "in_progress");

    let completed = system
        .call(Method::POST, &format!("{path}/complete"), token, None)
        .await;
    assert_eq!(completed.status, StatusCode::OK);
    assert_eq!(completed.body["status"], "complete");
    assert!(completed.body["completed_at"].is_string());
    let again = system
        .call(Method::POST, &format!("{path}/complete"), token, None)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body, completed.body,
        "completing twice changes nothing"
    );

    let deleted = system.call(Method::DELETE, &path, token, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = system.call(Method::GET, &path, token, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "not_found");

    let events = system.wait_for_events("TASKS", 5).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e.envelope.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "task.created",
            "task.updated",
            "task.updated",
            "task.completed",
            "task.deleted"
        ],
        "one event per change, none for the second complete"
    );
    system.stop().await;
}

#[tokio::test]
async fn every_validation_error_names_its_field() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let token = Some(ada.token.as_str());
    let task = system.create_task(&ada, json!({"title": "t"})).await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));

    // 400: the body does not match the documented schema.
    let malformed = [
        (json!({}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"title": "t", "priority": "whenever"}), "priority"),
        (json!({"title": "t", "colour": "red"}), "colour"),
        (json!({"title": "t", "due_date": "tomorrow"}), "due_date"),
        (json!({"title": "t", "assignee_id": "bob"}), "assignee_id"),
        (json!({"title": "t", "labels": [""]}), "labels"),
        (
            json!({"title": "t", "due_date": "2030-01-01T00:00:00Z", "recurrence": {"frequency": "daily", "interval": 0}}),
            "recurrence.interval",
        ),
    ];
    // 422: it matches the schema; a rule across fields refuses it.
    let refused = [
        (
            json!({"title": "t", "reminder_offset_minutes": 10}),
            "reminder_offset_minutes",
        ),
        (
            json!({"title": "t", "recurrence": {"frequency": "daily"}}),
            "recurrence",
        ),
        (json!({"title": "t", "status": "complete"}), "status"),
    ];
    let expected = malformed
        .into_iter()
        .map(|(body, field)| (body, field, StatusCode::BAD_REQUEST, "validation_failed"))
        .chain(refused.into_iter().map(|(body, field)| {
            (
                body,
                field,
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
            )
        }));
    for (body, field, status, code) in expected {
        let reply = system
            .call(Method::POST, "/api/v1/tasks", token, Some(body.clone()))
            .await;
        assert_eq!(reply.status, status, "{body} → {}", reply.body);
        assert_eq!(reply.error_code(), code);
        assert_eq!(reply.body["field"], field, "{body} → {}", reply.body);
    }

    let queries = [
        ("?status=done", "status"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?due_before=soon", "due_before"),
        ("?sort=title", "sort"),
    ];
    for (query, field) in queries {
        let reply = system
            .call(Method::GET, &format!("/api/v1/tasks{query}"), token, None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query} → {}",
            reply.body
        );
        assert_eq!(reply.body["field"], field, "{query} → {}", reply.body);
    }

    let foreign_cursor = system
        .call(Method::GET, "/api/v1/tasks?cursor=garbage", token, None)
        .await;
    assert_eq!(
        foreign_cursor.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a cursor this API did not give out"
    );
    assert_eq!(foreign_cursor.body["field"], "cursor");

    let bad_id = system
        .call(Method::GET, "/api/v1/tasks/not-a-uuid", token, None)
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.body["field"], "id");

    let bad_version = system
        .send(
            system
                .request(Method::PUT, &path, token)
                .header("If-Match", "latest")
                .json(&json!({"title": "x"})),
        )
        .await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_version.body["field"], "If-Match");

    let broken = system
        .send(
            system
                .request(Method::POST, "/api/v1/tasks", token)
                .body("{\"title\":"),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.error_code(), "validation_failed");

    let huge = system
        .call(
            Method::POST,
            "/api/v1/tasks",
            token,
            Some(json!({"title": "t", "description": "x".repeat(2 << 20)})),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.error_code(), "payload_too_large");

    let nowhere = system
        .call(Method::GET, "/api/v1/nowhere", token, None)
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.error_code(), "not_found");

    let wrong_method = system
        .call(Method::PATCH, "/api/v1/tasks", token, None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    system.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let system = TestSystem::spawn().await;
    for token in [
        None,
        Some("not-a-token"),
        Some("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
    ] {
        let reply = system.call(Method::GET, "/api/v1/tasks", token, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(reply.error_code(), "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let forged =
        taskflow_runtime::http::tokens::Tokens::new("some-other-secret-that-is-long-enough!!")
            .issue(uuid::Uuid::now_v7(), taskflow_schemas::user::Role::Admin);
    let reply = system
        .call(Method::GET, "/api/v1/users/me", Some(&forged), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    system.stop().await;
}

#[tokio::test]
async fn another_users_private_task_can_be_neither_read_nor_changed() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let task = system
        .create_task(&ada, json!({"title": "Ada's secret"}))
        .await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let bob_token = Some(bob.token.as_str());

    for (method, path, body) in [
        (Method::GET, path.clone(), None),
        (
            Method::PUT,
            path.clone(),
            Some(json!({"title": "mine now"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/complete"), None),
    ] {
        let reply = system.call(method.clone(), &path, bob_token, body).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            reply.body
        );
    }
    let listed = system
        .call(Method::GET, "/api/v1/tasks", bob_token, None)
        .await;
    assert_eq!(listed.body["items"], json!([]));

    // Once assigned, Bob reads and completes it, but may not change it.
    let assigned = system
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"assignee_id": bob.id})),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK);
    assert_eq!(
        system
            .call(Method::GET, &path, bob_token, None)
            .await
            .status,
        StatusCode::OK
    );
    let change = system
        .call(
            Method::PUT,
            &path,
            bob_token,
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_eq!(change.status, StatusCode::FORBIDDEN);
    assert_eq!(change.error_code(), "forbidden");
    let delete = system.call(Method::DELETE, &path, bob_token, None).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let complete = system
        .call(Method::POST, &format!("{path}/complete"), bob_token, None)
        .await;
    assert_eq!(complete.status, StatusCode::OK);
    let mine = system
        .call(
            Method::GET,
            &format!("/api/v1/tasks?assignee_id={}", bob.id),
            bob_token,
            None,
        )
        .await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    system.stop().await;
}

#[tokio::test]
async fn a_stale_if_match_gets_412_and_a_current_one_goes_through() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let token = Some(ada.token.as_str());
    let task = system.create_task(&ada, json!({"title": "v1"})).await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));

    let first = system
        .send(
            system
                .request(Method::PUT, &path, token)
                .header("If-Match", "\"1\"")
                .json(&json!({"title": "v2"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("etag"), Some("\"2\""));

    let stale = system
        .send(
            system
                .request(Method::PUT, &path, token)
                .header("If-Match", "\"1\"")
                .json(&json!({"title": "lost"})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.error_code(), "precondition_failed");
    for (method, suffix) in [(Method::POST, "/complete"), (Method::DELETE, "")] {
        let reply = system
            .send(
                system
                    .request(method, &format!("{path}{suffix}"), token)
                    .header("If-Match", "1"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    }
    let current = system.call(Method::GET, &path, token, None).await;
    assert_eq!(current.body["title"], "v2");
    system.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retry_create_nothing_new() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let body = json!({"title": "Pay the rent", "priority": "urgent"});
    let post = |key: &str, body: &serde_json::Value| {
        system
            .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
            .header("Idempotency-Key", key)
            .json(body)
    };

    let first = system.send(post("rent-2026-12", &body)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = system.send(post("rent-2026-12", &body)).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(
        retry.body, first.body,
        "the retry returns the first response"
    );

    let other_body = system
        .send(post("rent-2026-12", &json!({"title": "Something else"})))
        .await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other_body.error_code(), "idempotency_key_reused");

    // Keys are per user: Bob's identical key is his own.
    let bob = system.register("Bob").await;
    let bobs = system
        .send(
            system
                .request(Method::POST, "/api/v1/tasks", Some(&bob.token))
                .header("Idempotency-Key", "rent-2026-12")
                .json(&body),
        )
        .await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert_ne!(bobs.body["id"], first.body["id"]);

    let listed = system
        .call(Method::GET, "/api/v1/tasks", Some(&ada.token), None)
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let events = system.wait_for_events("TASKS", 2).await;
    assert_eq!(
        events.len(),
        2,
        "one task.created per user, none for the retry"
    );
    system.stop().await;
}

#[tokio::test]
async fn lists_filter_and_page_with_a_cursor() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let token = Some(ada.token.as_str());
    for index in 0..5 {
        let priority = if index % 2 == 0 { "high" } else { "low" };
        system
            .create_task(&ada, json!({"title": format!("task {index}"), "priority": priority, "due_date": format!("2030-01-0{}T09:00:00Z", index + 1)}))
            .await;
    }
    let first = system
        .call(Method::GET, "/api/v1/tasks?limit=2", token, None)
        .await;
    let titles = |reply: &taskflow_system_tests::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(titles(&first), ["task 4", "task 3"], "newest first");
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = system
        .call(
            Method::GET,
            &format!("/api/v1/tasks?limit=2&cursor={cursor}"),
            token,
            None,
        )
        .await;
    assert_eq!(titles(&second), ["task 2", "task 1"]);
    let cursor = second.body["next_cursor"].as_str().expect("a last page");
    let last = system
        .call(
            Method::GET,
            &format!("/api/v1/tasks?limit=2&cursor={cursor}"),
            token,
            None,
        )
        .await;
    assert_eq!(titles(&last), ["task 0"]);
    assert_eq!(last.body["next_cursor"], serde_json::Value::Null);

    let high = system
        .call(Method::GET, "/api/v1/tasks?priority=high", token, None)
        .await;
    assert_eq!(titles(&high), ["task 4", "task 2", "task 0"]);
    let window = system
        .call(
            Method::GET,
            "/api/v1/tasks?due_after=2030-01-02T00:00:00Z&due_before=2030-01-04T00:00:00Z",
            token,
            None,
        )
        .await;
    assert_eq!(titles(&window), ["task 2", "task 1"]);
    let search = system
        .call(Method::GET, "/api/v1/tasks?q=TASK%203", token, None)
        .await;
    assert_eq!(titles(&search), ["task 3"]);
    system.stop().await;
}

#[tokio::test]
async fn an_edge_that_talks_nats_only_carries_the_request_id_into_the_event() {
    let system = TestSystem::spawn_with(Transport::Nats).await;
    let ada = system.register("Ada").await;
    let reply = system
        .send(
            system
                .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
                .header("X-Request-Id", "req-from-the-client")
                .json(&json!({"title": "traced"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("x-request-id"), Some("req-from-the-client"));
    let events = system.wait_for_events("TASKS", 1).await;
    assert_eq!(events[0].envelope.correlation_id, "req-from-the-client");
    assert_eq!(events[0].request_id.as_deref(), Some("req-from-the-client"));

    let generated = system
        .call(Method::GET, "/api/v1/tasks", Some(&ada.token), None)
        .await;
    assert!(
        generated
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );
    system.stop().await;
}

#[tokio::test]
async fn the_edge_serves_health_readiness_metrics_and_openapi() {
    let mut system = TestSystem::spawn().await;
    assert_eq!(
        system.call(Method::GET, "/health", None, None).await.status,
        StatusCode::OK
    );
    let ready = system.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);

    let openapi = system
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert!(openapi.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/complete",
        "/api/v1/auth/register",
        "/api/v1/users/me",
    ] {
        assert!(
            openapi.body["paths"][path].is_object(),
            "{path} is documented"
        );
    }

    let ada = system.register("Ada").await;
    system.create_task(&ada, json!({"title": "counted"})).await;
    let metrics = system
        .http
        .get(format!("{}/metrics", system.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("taskflow_http_requests_total"),
        "{metrics}"
    );

    system.nats.kill();
    let unready = taskflow_system_tests::wait_until(
        "readiness to fail",
        std::time::Duration::from_secs(5),
        || async {
            let reply = system.call(Method::GET, "/health/ready", None, None).await;
            (reply.status == StatusCode::SERVICE_UNAVAILABLE).then_some(reply)
        },
    )
    .await;
    assert_eq!(unready.body["failing"], "nats");
    system.stop().await;
}

#[tokio::test]
async fn a_retry_while_the_first_request_is_in_flight_gets_409_until_its_process_dies() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let body = json!({"title": "Slow one"});
    // The first request is in its transaction, which holds the key, in a
    // process of its own: here, a connection of its own.
    let mut first = sqlx::PgConnection::connect_with(&system.tasks().pool.connect_options())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut first).await.unwrap();
    assert!(
        taskflow_tasks::store::lock_key(&mut first, ada.id, "slow-1")
            .await
            .unwrap()
    );
    let retry = || {
        system.send(
            system
                .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
                .header("Idempotency-Key", "slow-1")
                .json(&body),
        )
    };
    let refused = retry().await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.error_code(), "idempotency_key_in_flight");
    let listed = system
        .call(Method::GET, "/api/v1/tasks", Some(&ada.token), None)
        .await;
    assert_eq!(listed.body["items"], json!([]), "nothing was created");

    // Its process dies mid-request (kill -9: the connection drops without
    // a word); the retry goes ahead at once, and once only.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut first)
        .await
        .unwrap();
    // Returns once the backend is gone (or after 5 s).
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&system.tasks().pool)
        .await
        .unwrap();
    assert!(terminated);
    let created = retry().await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let again = retry().await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["id"], created.body["id"]);
    system.stop().await;
}

#[tokio::test]
async fn an_admin_reads_every_task_but_changes_only_by_the_rules_and_only_while_admin() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let member = system.register("Root").await;
    let task = system.create_task(&ada, json!({"title": "Ada's"})).await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let root = system.make_admin(member.clone()).await;
    let admin = Some(root.token.as_str());

    assert_eq!(
        system.call(Method::GET, &path, admin, None).await.status,
        StatusCode::OK
    );
    let listed = system.call(Method::GET, "/api/v1/tasks", admin, None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let change = system
        .call(Method::PUT, &path, admin, Some(json!({"title": "mine"})))
        .await;
    assert_eq!(change.status, StatusCode::FORBIDDEN);
    // The role counts at once, whatever role a token was signed with: the
    // token from before the grant acts as an admin, and once the role is
    // taken back, the token signed as an admin no longer does.
    let old = system
        .call(Method::GET, &path, Some(&member.token), None)
        .await;
    assert_eq!(old.status, StatusCode::OK);
    let replayed_events = |token: String| {
        let (base, query) = (system.base_url.clone(), format!("?token={token}&cursor=0"));
        async move {
            let mut feed = FeedClient::connect(&base, &query).await;
            let (frames, _) = feed.until("ready", Duration::from_secs(5)).await;
            frames
                .iter()
                .filter(|frame| frame["type"] == "event")
                .count()
        }
    };
    assert_eq!(replayed_events(member.token.clone()).await, 1);
    system.revoke_admin(&root).await;
    for token in [admin, Some(member.token.as_str())] {
        assert_eq!(
            system.call(Method::GET, &path, token, None).await.status,
            StatusCode::NOT_FOUND
        );
        let listed = system.call(Method::GET, "/api/v1/tasks", token, None).await;
        assert_eq!(listed.body["items"], json!([]));
    }
    assert_eq!(replayed_events(root.token.clone()).await, 0);
    system.stop().await;
}
