//! Consistency tokens: a write asked with `Prefer: consistency-token`
//! answers with its token, and a read in another service that sends it
//! back sees the write: the audit's records, the schedule, the assignee's
//! notification. Bounded: a service that cannot apply it in time answers
//! 503, and a token the API never gave out is refused.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_system_tests::{Reply, TestSystem, User, id_of};

const PREFER: (&str, &str) = ("prefer", "consistency-token");

/// Sends `method path` as `user`, with `headers`.
async fn send(
    system: &TestSystem,
    user: &User,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = system.request(method, path, Some(&user.token));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    system.send(request).await
}

/// Creates a task with `Prefer: consistency-token`.
async fn create_asking_for_a_token(system: &TestSystem, user: &User, body: Value) -> Reply {
    send(
        system,
        user,
        Method::POST,
        "/api/v1/tasks",
        &[PREFER],
        Some(body),
    )
    .await
}

fn token_of(reply: &Reply) -> String {
    assert_eq!(
        reply.header("preference-applied"),
        Some("consistency-token")
    );
    reply
        .header("consistency-token")
        .unwrap_or_else(|| panic!("no token in a {} reply", reply.status))
        .to_owned()
}

/// Whether an audit page holds a record of `event_type`.
fn recorded(reply: &Reply, event_type: &str) -> bool {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["items"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|record| record["event_type"] == event_type)
    })
}

fn count(reply: &Reply) -> usize {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["items"].as_array().map_or(0, Vec::len)
}

/// Sends `write` (method, path, the status it must answer) asking for its
/// token, then reads `audit` with it: whether a record of `event_type` is
/// there.
async fn audited_at_once(
    system: &TestSystem,
    user: &User,
    (method, path, status): (Method, &str, StatusCode),
    audit: &str,
    event_type: &str,
) -> bool {
    let written = send(system, user, method, path, &[PREFER], None).await;
    assert_eq!(written.status, status, "{}", written.body);
    let token = token_of(&written);
    let after = [("consistency-token", token.as_str())];
    recorded(
        &send(system, user, Method::GET, audit, &after, None).await,
        event_type,
    )
}

const ROUNDS: usize = 50;

#[tokio::test]
async fn a_write_with_its_token_is_read_at_once_in_every_other_service() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let due = (Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    for round in 0..ROUNDS {
        let body = json!({"title": format!("round {round}"), "assignee_id": bob.id,
                          "due_date": due, "reminder_offset_minutes": 30});
        let created = create_asking_for_a_token(&system, &ada, body).await;
        assert_eq!(created.status, StatusCode::CREATED);
        let token = token_of(&created);
        let task = id_of(&created.body);
        let after = [("consistency-token", token.as_str())];
        let audit = format!("/api/v1/audit?task_id={task}");
        let records = send(&system, &ada, Method::GET, &audit, &after, None).await;
        assert!(
            recorded(&records, "task.created"),
            "round {round}: the audit's record"
        );
        let schedules = format!("/api/v1/schedules?task_id={task}");
        let reminders = send(&system, &ada, Method::GET, &schedules, &after, None).await;
        assert_eq!(count(&reminders), 1, "round {round}: the reminder");
        let notices = format!("/api/v1/notifications?task_id={task}");
        let told = send(&system, &bob, Method::GET, &notices, &after, None).await;
        assert!(count(&told) >= 1, "round {round}: Bob is told");

        let complete = format!("/api/v1/tasks/{task}/complete");
        let write = (Method::POST, complete.as_str(), StatusCode::OK);
        assert!(
            audited_at_once(&system, &ada, write, &audit, "task.completed").await,
            "round {round}: the completion's record"
        );
        let path = format!("/api/v1/tasks/{task}");
        let write = (Method::DELETE, path.as_str(), StatusCode::NO_CONTENT);
        assert!(
            audited_at_once(&system, &ada, write, &audit, "task.deleted").await,
            "round {round}: the deletion's record"
        );
    }
    // Asked again with nothing new, a completion still names its event.
    let task = id_of(
        &system
            .create_task(&ada, json!({"title": "done twice"}))
            .await,
    );
    let path = format!("/api/v1/tasks/{task}/complete");
    send(&system, &ada, Method::POST, &path, &[], None).await;
    let again = send(&system, &ada, Method::POST, &path, &[PREFER], None).await;
    token_of(&again);
    // Without the preference, no token and no wait.
    let plain = send(
        &system,
        &ada,
        Method::POST,
        "/api/v1/tasks",
        &[],
        Some(json!({"title": "plain"})),
    )
    .await;
    assert_eq!(plain.header("consistency-token"), None);
    system.stop().await;
}

#[tokio::test]
async fn a_token_waits_boundedly_and_one_never_given_out_is_refused() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let audit = "/api/v1/audit";
    for forged in [
        "tasks.",
        "tasks.-1",
        "audit.4",
        "tasks.1.0",
        &format!("tasks.{}", "9".repeat(4_000)),
    ] {
        let refused = send(
            &system,
            &ada,
            Method::GET,
            audit,
            &[("consistency-token", forged)],
            None,
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{forged:.20}");
        assert_eq!(refused.error_code(), "validation_failed");
        assert!(
            refused.body["error"]
                .as_str()
                .unwrap()
                .contains("Consistency-Token")
        );
    }
    // A place beyond the stream's end (a stream that lost its tail since):
    // nothing to wait for.
    let beyond = send(
        &system,
        &ada,
        Method::GET,
        audit,
        &[("consistency-token", "tasks.999999999")],
        None,
    )
    .await;
    assert_eq!(beyond.status, StatusCode::OK);

    system.stop_audit().await;
    let body = json!({"title": "while the audit is down"});
    let created = create_asking_for_a_token(&system, &ada, body).await;
    let token = token_of(&created);
    let after = [("consistency-token", token.as_str())];
    let asked = Instant::now();
    let unavailable = send(&system, &ada, Method::GET, audit, &after, None).await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.error_code(), "service_unavailable");
    assert!(unavailable.header("retry-after").is_some());
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
    // Other services' reads are not held by the audit's.
    let schedules = send(
        &system,
        &ada,
        Method::GET,
        "/api/v1/schedules",
        &after,
        None,
    )
    .await;
    assert_eq!(schedules.status, StatusCode::OK);

    system.start_audit().await;
    let task = id_of(&created.body);
    let records = send(
        &system,
        &ada,
        Method::GET,
        &format!("{audit}?task_id={task}"),
        &after,
        None,
    )
    .await;
    assert_eq!(count(&records), 1);
    system.stop().await;
}

#[tokio::test]
async fn reads_waiting_on_a_token_share_their_looks_at_jetstream() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    system.stop_audit().await;
    let body = json!({"title": "while the audit is down"});
    let created = create_asking_for_a_token(&system, &ada, body).await;
    let token = token_of(&created);
    let requests = || async {
        let account = system.platform.jetstream.query_account().await.unwrap();
        account.requests.total
    };
    let before = requests().await;
    // A hundred reads wait their 5 s at once; each asking JetStream on its
    // own would be some 10,000 API requests.
    let waiting = (0..100).map(|_| {
        let after = [("consistency-token", token.as_str())];
        let system = &system;
        let ada = &ada;
        async move {
            send(system, ada, Method::GET, "/api/v1/audit", &after, None)
                .await
                .status
        }
    });
    let statuses = futures::future::join_all(waiting).await;
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::SERVICE_UNAVAILABLE)
    );
    let asked = requests().await - before;
    assert!(asked < 1_500, "{asked} JetStream API requests");
    println!("{asked} JetStream API requests while 100 reads waited 5 s");
    system.stop().await;
}
