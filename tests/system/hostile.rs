//! What a hostile or careless client sends: each request here once froze a
//! pipeline, hid an action from the audit or crashed into a 500. Every test
//! asserts the refusal and that everything else keeps flowing.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_system_tests::ws::FeedClient;
use taskflow_system_tests::{TestSystem, User, fixtures, id_of, wait_until};

/// Waits until the audit holds a record of `event_id`.
async fn audited(system: &TestSystem, event_id: uuid::Uuid) {
    let pool = system.audit().pool.clone();
    wait_until("the audit record", Duration::from_secs(15), || {
        let pool = pool.clone();
        async move {
            let found: i64 =
                sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE event_id = $1")
                    .bind(event_id)
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (found == 1).then_some(())
        }
    })
    .await;
}

/// Creates a task with a plain request and waits for its event on `TASKS`
/// and its audit record: the whole pipeline still flows.
async fn pipeline_flows(system: &TestSystem, user: &User, title: &str) {
    let task = system.create_task(user, json!({ "title": title })).await;
    let task_id = id_of(&task);
    let event = wait_until("the task's event", Duration::from_secs(15), || async {
        system.task_events(task_id).await.into_iter().next()
    })
    .await;
    audited(system, event.envelope.event_id).await;
}

fn assert_names(reply: &taskflow_system_tests::Reply, status: StatusCode, field: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["field"], field, "{}", reply.body);
    reply.error_code();
}

#[tokio::test]
async fn a_request_id_out_of_bounds_is_refused_and_events_keep_flowing() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    // A head over 64 KiB is refused by the HTTP layer itself, before any
    // handler reads it.
    let quotes = "\"".repeat(380_000);
    for path in ["/api/v1/tasks", "/api/v1/auth/register"] {
        let huge = system
            .request(Method::POST, path, Some(&ada.token))
            .header("X-Request-Id", quotes.as_bytes())
            .json(&json!({"title": "sneaky"}));
        let status = huge.send().await.expect("the edge answers").status();
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let quotes = "\"".repeat(20_000);
    let hex: String = (0..8_000)
        .map(|n| char::from(b"0123456789abcdef"[n % 16]))
        .collect();
    for bad in [quotes.as_str(), hex.as_str(), "has space", "caf\u{e9}"] {
        let create = system
            .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
            .header("X-Request-Id", bad.as_bytes())
            .json(&json!({"title": "sneaky"}));
        assert_names(
            &system.send(create).await,
            StatusCode::BAD_REQUEST,
            "X-Request-Id",
        );
        // No login needed here: this once froze identity's events.
        let register = system
            .request(Method::POST, "/api/v1/auth/register", None)
            .header("X-Request-Id", bad.as_bytes())
            .json(&json!({"email": "eve@example.com", "name": "Eve", "password": "correct horse battery"}));
        assert_names(
            &system.send(register).await,
            StatusCode::BAD_REQUEST,
            "X-Request-Id",
        );
    }
    let twice = system
        .request(Method::GET, "/api/v1/tasks", Some(&ada.token))
        .header("X-Request-Id", "one")
        .header("X-Request-Id", "two");
    assert_names(
        &system.send(twice).await,
        StatusCode::BAD_REQUEST,
        "X-Request-Id",
    );

    let longest = "r".repeat(128);
    let kept = system
        .send(
            system
                .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
                .header("X-Request-Id", &longest)
                .json(&json!({"title": "the longest id"})),
        )
        .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    assert_eq!(kept.header("x-request-id"), Some(longest.as_str()));
    let event = wait_until("the event", Duration::from_secs(15), || async {
        system
            .task_events(id_of(&kept.body))
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(event.envelope.correlation_id, longest);
    audited(&system, event.envelope.event_id).await;
    pipeline_flows(&system, &ada, "after the attack").await;
    system.stop().await;
}

#[tokio::test]
async fn a_nats_command_with_a_request_id_out_of_bounds_is_refused() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Request-Id", "x".repeat(8_000).as_str());
    let body = serde_json::to_vec(&json!({"actor_id": ada.id, "title": "via nats"})).unwrap();
    let reply = system
        .platform
        .nats
        .request_with_headers("taskflow.tasks.create", headers, body.into())
        .await
        .expect("the service answers");
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["code"], "validation_failed", "{reply}");
    assert_eq!(reply["field"], "X-Request-Id", "{reply}");
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&system.tasks().pool)
        .await
        .unwrap();
    assert_eq!(tasks, 0, "nothing was written");
    system.stop().await;
}

#[tokio::test]
async fn an_outbox_row_the_server_cannot_take_is_parked_and_the_rows_behind_flow_on() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    // A row over the server's max_payload, as an older build could commit.
    let event = fixtures::task_created(ada.id, &"x".repeat(2 * 1024 * 1024), "too-big");
    sqlx::query(
        "INSERT INTO outbox (event_id, subject, body, request_id, created_at) \
         VALUES ($1, $2, $3, 'too-big', now())",
    )
    .bind(event.event_id)
    .bind(fixtures::subject_of(&event))
    .bind(serde_json::to_vec(&event).unwrap())
    .execute(&system.tasks().pool)
    .await
    .unwrap();

    pipeline_flows(&system, &ada, "behind the big one").await;
    let pool = system.tasks().pool.clone();
    let reason = wait_until("the big row parked", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT parked_reason FROM outbox WHERE event_id = $1",
            )
            .bind(event.event_id)
            .fetch_one(&pool)
            .await
            .ok()
            .flatten()
        }
    })
    .await;
    assert!(reason.contains("payload"), "{reason}");
    let metrics = system.metrics().await;
    assert!(
        metrics.contains(r#"taskflow_outbox_parked_total{service="tasks"} 1"#),
        "{metrics}"
    );
    wait_until("an empty outbox", Duration::from_secs(10), || async {
        (system.tasks().outbox_backlog().await == 0).then_some(())
    })
    .await;
    system.stop().await;
}

#[tokio::test]
async fn an_injected_event_with_a_huge_correlation_id_goes_to_the_dlq_at_once() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let hex: String = (0..8_000)
        .map(|n| char::from(b"0123456789abcdef"[n % 16]))
        .collect();
    let event = fixtures::task_created(ada.id, "injected", &hex);
    system
        .inject(
            fixtures::subject_of(&event),
            serde_json::to_vec(&event).unwrap(),
            "huge-correlation",
        )
        .await;
    pipeline_flows(&system, &ada, "behind the injected one").await;
    let parked = system
        .wait_for_dlq("audit-tasks", Duration::from_secs(10))
        .await;
    let reason = parked[0]
        .headers
        .get("Taskflow-Dlq-Reason")
        .unwrap()
        .as_str()
        .to_owned();
    assert!(reason.starts_with("malformed: correlation_id"), "{reason}");
    let redelivered = system.metrics().await;
    assert!(
        !redelivered.contains(r#"taskflow_consumer_redeliveries_total{consumer="audit-tasks"}"#),
        "parked on its first delivery, not after retries: {redelivered}"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_message_the_dlq_refuses_stays_pending_until_the_dlq_takes_it() {
    let system = TestSystem::spawn().await;
    let js = &system.platform.jetstream;
    js.delete_stream("DLQ")
        .await
        .expect("the DLQ stream is deleted");
    system
        .inject(
            "tasks.created.garbage".into(),
            b"{not an envelope".to_vec(),
            "garbage",
        )
        .await;
    // More refusals than the consumer's MAX_DELIVER: the server must not
    // have given up on the message.
    wait_until(
        "six refused DLQ publishes",
        Duration::from_secs(30),
        || async {
            let metrics = system.metrics().await;
            metrics
                .lines()
                .find_map(|line| {
                    line.strip_prefix(
                        r#"taskflow_consumer_dlq_failures_total{consumer="audit-tasks"} "#,
                    )
                })
                .and_then(|count| count.parse::<f64>().ok())
                .filter(|count| *count >= 6.0)
        },
    )
    .await;
    taskflow_runtime::bus::nats::ensure_streams(js)
        .await
        .expect("the streams are back");
    let parked = system
        .wait_for_dlq("audit-tasks", Duration::from_secs(60))
        .await;
    assert_eq!(&parked[0].payload[..], b"{not an envelope");
    system.stop().await;
}

#[tokio::test]
async fn the_live_feed_skips_an_unknown_schema_version() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut client = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    client.until("ready", Duration::from_secs(5)).await;
    let mut future = fixtures::task_created(ada.id, "from the future", "future-1");
    future.schema_version = 2;
    system
        .inject(
            fixtures::subject_of(&future),
            serde_json::to_vec(&future).unwrap(),
            "future",
        )
        .await;
    let task = system.create_task(&ada, json!({"title": "today"})).await;
    let frame = client.next_frame(Duration::from_secs(5)).await;
    assert_eq!(frame["type"], "event", "{frame}");
    assert_eq!(
        frame["event"]["task_id"], task["id"],
        "the version-2 event was skipped"
    );
    client.close().await;
    system.stop().await;
}

#[tokio::test]
async fn nul_and_invalid_utf8_anywhere_are_a_400_naming_the_field() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let login = system
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada\u{0}@example.com", "password": "x"})),
        )
        .await;
    assert_names(&login, StatusCode::BAD_REQUEST, "email");
    let title = system
        .call(
            Method::POST,
            "/api/v1/tasks",
            Some(&ada.token),
            Some(json!({"title": "a\u{0}b"})),
        )
        .await;
    assert_names(&title, StatusCode::BAD_REQUEST, "title");
    let raw = system
        .send(
            system
                .request(Method::POST, "/api/v1/tasks", Some(&ada.token))
                .header("content-type", "application/json")
                .body(b"{\"title\": \"caf\xe9\"}".to_vec()),
        )
        .await;
    assert_names(&raw, StatusCode::BAD_REQUEST, "title");
    for (path, field) in [
        ("/api/v1/tasks?q=a%00b", "q"),
        ("/api/v1/tasks?q=%FF", "q"),
        ("/api/v1/audit?event_type=task.%00", "event_type"),
    ] {
        let reply = system.call(Method::GET, path, Some(&ada.token), None).await;
        assert_names(&reply, StatusCode::BAD_REQUEST, field);
    }
    let priority = system
        .call(
            Method::POST,
            "/api/v1/tasks",
            Some(&ada.token),
            Some(json!({"title": "x", "priority": 3})),
        )
        .await;
    assert_names(&priority, StatusCode::BAD_REQUEST, "priority");
    system.stop().await;
}

#[tokio::test]
async fn a_flood_of_labels_is_refused_while_health_keeps_answering() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let labels: Vec<String> = (0..120_000).map(|n| format!("{n:x}")).collect();
    // Health is asked again and again while the flood is in flight; the
    // longest any probe waited, the one cut short by the flood's answer
    // included, says whether the flood held the process.
    let mut slowest = Duration::ZERO;
    let reply = {
        let flood = system.call(
            Method::POST,
            "/api/v1/tasks",
            Some(&ada.token),
            Some(json!({"title": "flood", "labels": labels})),
        );
        let mut flood = std::pin::pin!(flood);
        loop {
            let started = tokio::time::Instant::now();
            let probe = system.call(Method::GET, "/health", None, None);
            tokio::select! {
                reply = &mut flood => {
                    slowest = slowest.max(started.elapsed());
                    break reply;
                }
                health = probe => {
                    assert_eq!(health.status, StatusCode::OK);
                    slowest = slowest.max(started.elapsed());
                }
            }
        }
    };
    assert_names(&reply, StatusCode::BAD_REQUEST, "labels");
    assert!(
        slowest < Duration::from_secs(2),
        "health waited {slowest:?}"
    );
    system.stop().await;
}

/// Follows `path`'s pages to the end and returns every item.
async fn every_page(system: &TestSystem, user: &User, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(cursor) => format!("{path}{separator}cursor={cursor}"),
            None => path.to_owned(),
        };
        let reply = system
            .call(Method::GET, &url, Some(&user.token), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        items.extend(reply.body["items"].as_array().unwrap().iter().cloned());
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn a_list_larger_than_a_nats_message_is_cut_into_pages_not_dropped() {
    let system = TestSystem::spawn_with(taskflow_system_tests::Transport::Nats).await;
    let ada = system.register("Ada").await;
    // 50 tasks of ~30 KB each: 1.5 MB, past NATS's 1 MiB max_payload.
    let description = "\u{20ac}".repeat(10_000);
    for n in 0..50 {
        system
            .create_task(
                &ada,
                json!({"title": format!("heavy {n}"), "description": description}),
            )
            .await;
    }
    let first = system
        .call(
            Method::GET,
            "/api/v1/tasks?limit=50",
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.body["items"].as_array().unwrap().len() < 50);
    assert!(
        first.body["next_cursor"].is_string(),
        "the page ends early and says so"
    );
    let all = every_page(&system, &ada, "/api/v1/tasks?limit=50").await;
    let mut titles: Vec<&str> = all
        .iter()
        .map(|task| task["title"].as_str().unwrap())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 50, "every task once");
    system.stop().await;
}

#[tokio::test]
async fn an_audit_record_recorded_late_is_not_skipped_by_a_client_paging_the_trail() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    // Made first, so its UUID v7 sorts before everything below; published last.
    let late = fixtures::task_created(ada.id, "late", "late-1");
    for n in 0..3 {
        pipeline_flows(&system, &ada, &format!("early {n}")).await;
    }
    let path = "/api/v1/audit?event_type=task.created&limit=2";
    let first = system.call(Method::GET, path, Some(&ada.token), None).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();

    system
        .inject(
            fixtures::subject_of(&late),
            serde_json::to_vec(&late).unwrap(),
            "late",
        )
        .await;
    audited(&system, late.event_id).await;
    let rest = every_page(&system, &ada, &format!("{path}&cursor={cursor}")).await;
    let ids: Vec<&str> = rest
        .iter()
        .map(|record| record["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(
        ids[1],
        late.event_id.to_string(),
        "the late record comes after the cursor"
    );
    system.stop().await;
}

#[tokio::test]
async fn too_many_requests_get_429_with_retry_after_then_recover() {
    let system = TestSystem::spawn_configured(
        taskflow_system_tests::Transport::InProcess,
        8,
        &[
            ("TASKFLOW_RATE_LIMIT_USER", "5/s"),
            ("TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT", "3/min"),
        ],
    )
    .await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    async fn list(system: &TestSystem, user: &User) -> taskflow_system_tests::Reply {
        system
            .call(Method::GET, "/api/v1/tasks", Some(&user.token), None)
            .await
    }
    for _ in 0..5 {
        assert_eq!(list(&system, &ada).await.status, StatusCode::OK);
    }
    let refused = list(&system, &ada).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.error_code(), "rate_limited");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    assert_eq!(
        list(&system, &bob).await.status,
        StatusCode::OK,
        "another user is not held back"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        list(&system, &ada).await.status,
        StatusCode::OK,
        "after Retry-After it works again"
    );

    // Guessing one account's password: 3 tries a minute (register counted one).
    async fn guess(system: &TestSystem, email: &str) -> taskflow_system_tests::Reply {
        let body = json!({"email": email, "password": "guess"});
        system
            .call(Method::POST, "/api/v1/auth/login", None, Some(body))
            .await
    }
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(guess(&system, &ada.email).await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let locked = guess(&system, &ada.email.to_uppercase()).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the same account in capitals"
    );
    assert!(locked.header("retry-after").is_some());
    assert_eq!(
        guess(&system, &bob.email).await.status,
        StatusCode::UNAUTHORIZED
    );
    system.stop().await;
}

#[tokio::test]
async fn one_address_is_limited_but_health_and_metrics_are_not() {
    let system = TestSystem::spawn_configured(
        taskflow_system_tests::Transport::InProcess,
        8,
        &[("TASKFLOW_RATE_LIMIT_IP", "4/min")],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = system
            .call(Method::GET, "/api/v1/openapi.json", None, None)
            .await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses[..4], [StatusCode::OK; 4]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        system.call(Method::GET, "/health", None, None).await.status,
        StatusCode::OK
    );
    assert!(
        system
            .metrics()
            .await
            .contains("taskflow_http_rate_limited_total")
    );
    system.stop().await;
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let system = TestSystem::spawn().await;
    let address = system.base_url.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    let mut buffer = [0u8; 1024];
    // One more header byte every 500 ms: each keeps the socket busy, none
    // finishes the head.
    while started.elapsed() < Duration::from_secs(20) {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let read = tokio::time::timeout(Duration::from_millis(500), slow.read(&mut buffer));
        if let Ok(Ok(0) | Err(_)) = read.await {
            closed = true;
            break;
        }
    }
    assert!(closed, "the trickling connection is still open");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "cut at the header-read timeout, not before: {waited:?}"
    );
    let health = system.call(Method::GET, "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    system.stop().await;
}

#[tokio::test]
async fn a_write_whose_caller_gave_up_never_happens_later() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let task_id = id_of(
        &system
            .create_task(&ada, json!({"title": "contended"}))
            .await,
    );
    async fn rename(
        system: &TestSystem,
        user: &User,
        id: uuid::Uuid,
        title: &str,
    ) -> taskflow_system_tests::Reply {
        let path = format!("/api/v1/tasks/{id}");
        system
            .call(
                Method::PUT,
                &path,
                Some(&user.token),
                Some(json!({ "title": title })),
            )
            .await
    }
    // A long transaction holds the task's row: the first rename waits on it,
    // the second waits behind the first in the task's worker.
    let mut blocker = system.tasks().pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(task_id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        rename(&system, &ada, task_id, "ghost 1"),
        rename(&system, &ada, task_id, "ghost 2"),
    );
    blocker.rollback().await.unwrap();
    // The first waited on the lock past its deadline; the second reached the
    // worker at its deadline or just before it.
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );
    let mut answered_ok = Vec::new();
    for (reply, title) in [(&first, "ghost 1"), (&second, "ghost 2")] {
        match reply.status {
            StatusCode::OK => answered_ok.push(title),
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("{other}: {}", reply.body),
        }
    }

    // Behind those two in the same worker: a rename that got 503 must never
    // have happened, before or after this one.
    let real = rename(&system, &ada, task_id, "real").await;
    assert_eq!(real.status, StatusCode::OK, "{}", real.body);
    assert_eq!(real.body["version"], 2 + answered_ok.len());
    let mut expected = vec!["contended"];
    expected.extend(answered_ok);
    expected.push("real");
    let events = wait_until(
        "the real rename's event",
        Duration::from_secs(10),
        || async {
            let events = system.task_events(task_id).await;
            (events.len() >= expected.len()).then_some(events)
        },
    )
    .await;
    let titles: Vec<&str> = events
        .iter()
        .map(|e| e.envelope.payload["task"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, expected);
    system.stop().await;
}

#[tokio::test]
async fn a_login_flood_is_shed_and_profile_reads_keep_answering() {
    let system = TestSystem::spawn_configured(
        taskflow_system_tests::Transport::InProcess,
        8,
        &[
            ("TASKFLOW_RATE_LIMIT_AUTH_IP", "off"),
            ("TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT", "off"),
        ],
    )
    .await;
    let ada = system.register("Ada").await;
    let body = json!({"email": ada.email, "password": "wrong horse"});
    let flood = futures::future::join_all(
        (0..200).map(|_| system.call(Method::POST, "/api/v1/auth/login", None, Some(body.clone()))),
    );
    let profile = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        let reply = system
            .call(Method::GET, "/api/v1/users/me", Some(&ada.token), None)
            .await;
        (reply.status, started.elapsed())
    };
    let (logins, (profile, waited)) = tokio::join!(flood, profile);
    assert_eq!(profile, StatusCode::OK);
    assert!(
        waited < Duration::from_secs(2),
        "a profile read waited {waited:?}"
    );
    let shed = logins
        .iter()
        .filter(|reply| reply.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(shed > 0, "some sign-ins are refused at once");
    for reply in &logins {
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(&reply.status),
            "{}: {}",
            reply.status,
            reply.body
        );
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(reply.header("retry-after").is_some());
        }
    }
    system.stop().await;
}

#[tokio::test]
async fn a_nats_server_with_a_password_is_reached_with_the_credentials_of_nats_url() {
    let server =
        taskflow_system_tests::NatsServer::start_with(&["--user", "taskflow", "--pass", "s3cret"])
            .await;
    let patience = Duration::from_secs(1);
    let open = taskflow_runtime::bus::nats::connect(&server.url(), None, "test", patience).await;
    assert!(open.is_err(), "no credentials, no connection");
    let with_password = server
        .url()
        .replacen("nats://", "nats://taskflow:s3cret@", 1);
    let (client, _) = taskflow_runtime::bus::nats::connect(&with_password, None, "test", patience)
        .await
        .expect("the credentials in the URL are used");
    client.flush().await.expect("the server answers");
    let wrong = server
        .url()
        .replacen("nats://", "nats://taskflow:guess@", 1);
    let refused = taskflow_runtime::bus::nats::connect(&wrong, None, "test", patience).await;
    let Err(error) = refused else {
        panic!("a wrong password is refused")
    };
    let error = error.to_string();
    assert!(
        !error.contains("guess"),
        "the password stays out of errors: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_request_is_a_503_naming_the_database_then_work_resumes() {
    let postgres = taskflow_system_tests::PostgresServer::start().await;
    let url = postgres.url();
    let system = TestSystem::spawn_configured(
        taskflow_system_tests::Transport::InProcess,
        8,
        &[("DATABASE_URL", url.as_str())],
    )
    .await;
    let ada = system.register("Ada").await;
    let restarted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restart = tokio::task::spawn_blocking({
        let restarted = restarted.clone();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            // Longer than a service waits for a connection (3 s), so some
            // writes must fail rather than wait it out.
            postgres.restart(Duration::from_secs(4));
            restarted.store(true, std::sync::atomic::Ordering::SeqCst);
            postgres
        }
    });
    let mut statuses = Vec::new();
    let mut unavailable = Vec::new();
    // Writes all along the restart, and until one succeeds after it.
    loop {
        let after_restart = restarted.load(std::sync::atomic::Ordering::SeqCst);
        let reply = system
            .call(
                Method::POST,
                "/api/v1/tasks",
                Some(&ada.token),
                Some(json!({"title": "during"})),
            )
            .await;
        statuses.push(reply.status);
        match reply.status {
            StatusCode::CREATED if after_restart => break,
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(reply.header("retry-after").is_some());
                unavailable.push(reply.body["error"].as_str().unwrap_or_default().to_owned());
            }
            other => panic!("{other}: {}", reply.body),
        }
        assert!(
            statuses.len() < 5_000,
            "no write succeeded after the restart"
        );
    }
    let postgres = restart.await.unwrap();
    assert!(
        !unavailable.is_empty(),
        "the restart was seen: {statuses:?}"
    );
    assert!(
        unavailable
            .iter()
            .all(|error| error.contains("database") || error.contains("service")),
        "{unavailable:?}"
    );
    pipeline_flows(&system, &ada, "after the restart").await;
    system.stop().await;
    drop(postgres);
}

#[tokio::test]
async fn a_consumer_made_by_an_older_build_is_updated_at_start() {
    let mut system = TestSystem::spawn().await;
    system.stop_audit().await;
    let js = &system.platform.jetstream;
    let stream = js.get_stream("TASKS").await.unwrap();
    stream.delete_consumer("audit-tasks").await.unwrap();
    // As the build before this one made it: the server gave up after 5 deliveries.
    let older = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("audit-tasks".into()),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_deliver: 5,
        filter_subjects: vec!["tasks.>".into()],
        max_ack_pending: 10_000,
        ..Default::default()
    };
    stream.create_consumer(older).await.unwrap();
    system.start_audit().await;
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("audit-tasks").await.unwrap();
    assert_eq!(consumer.info().await.unwrap().config.max_deliver, -1);
    let ada = system.register("Ada").await;
    pipeline_flows(&system, &ada, "after the upgrade").await;
    system.stop().await;
}

/// The subjects some service consumes, one of each kind.
fn consumed_subjects() -> Vec<String> {
    let task = uuid::Uuid::now_v7();
    let mut subjects: Vec<String> = ["created", "updated", "completed", "deleted"]
        .iter()
        .map(|verb| format!("tasks.{verb}.{task}"))
        .collect();
    subjects.push(format!("reminders.due.{task}"));
    for event in [
        "user.registered",
        "user.updated",
        "user.role_changed",
        "project.created",
        "project.updated",
        "project.deleted",
        "project.member_added",
        "project.member_role_changed",
        "project.member_removed",
        "notification.sent",
        "notification.failed",
    ] {
        subjects.push(format!("audit.{event}"));
    }
    subjects
}

/// What a careless or hostile publisher sends, none of it an envelope.
fn poison(nonce: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut not_json = format!("{{\"event_id\": {nonce}, \0").into_bytes();
    not_json.extend([0xff, 0xfe, 0x00]);
    let wrong_types = json!({
        "event_id": nonce, "event_type": ["task.created"], "schema_version": "1",
        "occurred_at": true, "task_id": {}, "actor_id": null, "correlation_id": 7,
        "causation_id": [], "payload": "x",
    });
    let huge = json!({ "event_id": nonce.to_string(), "payload": "x".repeat(700 * 1024) });
    vec![
        ("not JSON, with NUL and invalid UTF-8", not_json),
        (
            "JSON of the wrong shape",
            format!("[{nonce}, \"poison\"]").into_bytes(),
        ),
        (
            "an envelope's fields with the wrong types",
            wrong_types.to_string().into_bytes(),
        ),
        ("700 KiB", huge.to_string().into_bytes()),
    ]
}

/// Every durable consumer of the event streams has nothing pending and
/// nothing unacknowledged.
async fn no_consumer_waits(system: &TestSystem) {
    let js = &system.platform.jetstream;
    wait_until(
        "every consumer to drain",
        Duration::from_secs(30),
        || async { (taskflow_system_tests::consumer_backlog(js, "").await? == 0).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_of_every_shape_on_every_consumed_subject_is_parked_and_nothing_stalls() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut feed = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    assert_eq!(
        feed.next_frame(Duration::from_secs(2)).await["type"],
        "ready"
    );
    let mut injected = Vec::new();
    for (n, subject) in consumed_subjects().into_iter().enumerate() {
        for (shape, body) in poison(n) {
            let id = uuid::Uuid::now_v7().to_string();
            system.inject(subject.clone(), body.clone(), &id).await;
            injected.push((subject.clone(), shape, body));
        }
    }
    // Hostile headers on a real event: a request id far past its bound,
    // a causation id that is no id.
    let event = fixtures::task_created(ada.id, "odd headers", "odd-headers");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
    headers.insert("X-Request-Id", "r".repeat(8_000).as_str());
    headers.insert("Taskflow-Causation-Id", "not an id");
    system
        .platform
        .jetstream
        .publish_with_headers(
            fixtures::subject_of(&event),
            headers,
            serde_json::to_vec(&event).unwrap().into(),
        )
        .await
        .expect("the server takes the publish")
        .await
        .expect("the stream acknowledges it");

    no_consumer_waits(&system).await;
    pipeline_flows(&system, &ada, "behind the poison").await;
    let parked = system.raw_messages("DLQ").await;
    for (subject, shape, body) in &injected {
        assert!(
            parked
                .iter()
                .any(|message| message.payload.as_ref() == body.as_slice()),
            "{shape} on {subject} is in the DLQ"
        );
    }
    for message in &parked {
        let poison = injected
            .iter()
            .any(|(_, _, body)| message.payload.as_ref() == body.as_slice());
        let odd = message.payload.as_ref() == serde_json::to_vec(&event).unwrap().as_slice();
        assert!(poison || odd, "the DLQ holds only what was injected");
    }
    // The live feed skipped all of it and still moves.
    let task = system.create_task(&ada, json!({"title": "live"})).await;
    loop {
        let frame = feed.next_frame(Duration::from_secs(5)).await;
        if frame["type"] == "event" && frame["event"]["task_id"] == task["id"] {
            break;
        }
    }
    system.stop().await;
}
