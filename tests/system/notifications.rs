//! The notifier, with a real SMTP server (aiosmtpd) and real WebSocket
//! clients: each notification once per event, recipient and channel.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use taskflow_system_tests::ws::FeedClient;
use taskflow_system_tests::{SmtpCatcher, TestSystem, Transport, User, id_of, wait_until};
use uuid::Uuid;

const SOON: Duration = Duration::from_secs(10);

async fn with_smtp(catcher: &SmtpCatcher) -> TestSystem {
    TestSystem::spawn_configured(
        Transport::InProcess,
        8,
        &[("TASKFLOW_SMTP_URL", catcher.url().as_str())],
    )
    .await
}

/// Waits until the notifier knows `users` (their email and setting).
async fn known_to_the_notifier(system: &TestSystem, users: &[&User]) {
    let ids: Vec<Uuid> = users.iter().map(|user| user.id).collect();
    wait_until("the notifier knows the users", SOON, || async {
        let known: i64 =
            sqlx::query_scalar("SELECT count(*) FROM recipients WHERE user_id = ANY($1)")
                .bind(&ids)
                .fetch_one(&system.service("notifier").pool)
                .await
                .unwrap();
        (known == ids.len() as i64).then_some(())
    })
    .await;
}

async fn notifications(system: &TestSystem, user: &User, query: &str) -> Vec<Value> {
    let reply = system
        .call(
            Method::GET,
            &format!("/api/v1/notifications{query}"),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

/// Waits until `user` has `count` notifications matching `query`.
async fn wait_for_notifications(
    system: &TestSystem,
    user: &User,
    query: &str,
    count: usize,
) -> Vec<Value> {
    wait_until(&format!("{count} notifications{query}"), SOON, || async {
        let items = notifications(system, user, query).await;
        (items.len() >= count).then_some(items)
    })
    .await
}

#[tokio::test]
async fn a_reminder_notifies_once_in_app_by_frame_and_by_email() {
    let catcher = SmtpCatcher::start().await;
    let system = with_smtp(&catcher).await;
    let ada = system.register("Ada").await;
    known_to_the_notifier(&system, &[&ada]).await;
    let mut feed = FeedClient::connect(&system.base_url, &format!("?token={}", ada.token)).await;
    feed.until("ready", Duration::from_secs(5)).await;

    let due_at: DateTime<Utc> = (Utc::now() + chrono::Duration::seconds(2)).trunc_subsecs(3);
    let task = system
        .create_task(
            &ada,
            json!({"title": "renew the passport", "reminder_time": due_at}),
        )
        .await;
    let (_, frame) = feed.until("notification", Duration::from_secs(10)).await;
    let framed_at = Utc::now();
    let notification = &frame["notification"];
    assert_eq!(notification["kind"], "reminder");
    assert_eq!(notification["channel"], "in_app");
    assert_eq!(notification["message"], "Reminder: renew the passport");
    assert_eq!(notification["task_id"], task["id"]);

    let mail = wait_until("the email", SOON, || async {
        let mails = catcher.messages();
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    let mailed_at = Utc::now();
    println!(
        "reminder lateness: frame {} ms, email {} ms after its time",
        (framed_at - due_at).num_milliseconds(),
        (mailed_at - due_at).num_milliseconds()
    );
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("renew the passport"), "{}", mail[0]);
    assert!(mail[0].contains(&ada.email), "{}", mail[0]);

    let listed = wait_until("the email is marked sent", SOON, || async {
        let items = notifications(&system, &ada, "").await;
        let sent = items.iter().all(|item| item["status"] == "sent");
        (items.len() == 2 && sent).then_some(items)
    })
    .await;
    let channels: Vec<&str> = listed
        .iter()
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert!(
        channels.contains(&"in_app") && channels.contains(&"email"),
        "{channels:?}"
    );
    let email = listed.iter().find(|n| n["channel"] == "email").unwrap();
    assert_eq!(email["attempts"], 1);

    // Each record's event on AUDIT is caused by the reminder.
    let reminder = &system.stream_events("REMINDERS").await[0];
    let announced = wait_until("both notification.sent events", SOON, || async {
        let sent: Vec<_> = system
            .stream_events("AUDIT")
            .await
            .into_iter()
            .filter(|event| event.envelope.event_type == "notification.sent")
            .collect();
        (sent.len() == 2).then_some(sent)
    })
    .await;
    for event in &announced {
        assert_eq!(
            event.envelope.causation_id,
            Some(reminder.envelope.event_id)
        );
        assert_eq!(
            event.envelope.correlation_id,
            reminder.envelope.correlation_id
        );
    }
    feed.assert_silent(Duration::from_millis(300)).await;
    assert!(feed.set_aside_notifications().is_empty(), "one frame");
    assert_eq!(catcher.messages().len(), 1, "one email");
    system.stop().await;
}

#[tokio::test]
async fn assignments_and_completions_notify_the_others_and_nobody_of_their_own_doing() {
    let system = TestSystem::spawn().await;
    let (ada, bob, cy) = (
        system.register("Ada").await,
        system.register("Bob").await,
        system.register("Cy").await,
    );
    let task = system
        .create_task(
            &ada,
            json!({"title": "review", "assignee_id": bob.id, "observer_ids": [cy.id]}),
        )
        .await;
    let assigned = wait_for_notifications(&system, &bob, "", 1).await;
    assert_eq!(assigned[0]["kind"], "assigned");
    assert_eq!(assigned[0]["message"], "Assigned to you: review");

    let completed = system
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{}/complete", id_of(&task)),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(completed.status, 200);
    for user in [&ada, &cy] {
        let told = wait_for_notifications(&system, user, "", 1).await;
        assert_eq!(told.len(), 1);
        assert_eq!(told[0]["kind"], "completed");
        assert_eq!(told[0]["channel"], "in_app", "no SMTP: in-app only");
    }
    // A later assignment by Ada to Cy tells Cy; Bob heard of nothing else.
    let other = system.create_task(&ada, json!({"title": "second"})).await;
    system
        .call(
            Method::PATCH,
            &format!("/api/v1/tasks/{}", id_of(&other)),
            Some(&ada.token),
            Some(json!({"assignee_id": cy.id})),
        )
        .await;
    let cys = wait_for_notifications(&system, &cy, "", 2).await;
    assert_eq!(cys[0]["kind"], "assigned", "newest first");
    assert_eq!(notifications(&system, &bob, "").await.len(), 1);
    assert!(notifications(&system, &ada, "?unread=true").await.len() == 1);

    // Reading: one's own only.
    let id = cys[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/notifications/{id}/read");
    let read = system
        .call(Method::POST, &path, Some(&cy.token), None)
        .await;
    assert_eq!(read.status, 200);
    assert!(read.body["read_at"].is_string());
    let again = system
        .call(Method::POST, &path, Some(&cy.token), None)
        .await;
    assert_eq!(
        again.body["read_at"], read.body["read_at"],
        "the first reading is kept"
    );
    let stranger = system
        .call(Method::POST, &path, Some(&bob.token), None)
        .await;
    assert_eq!(stranger.status, 404);
    assert_eq!(notifications(&system, &cy, "?unread=true").await.len(), 1);
    assert_eq!(notifications(&system, &cy, "?unread=false").await.len(), 1);
    system.stop().await;
}

#[tokio::test]
async fn an_email_sent_while_smtp_is_down_is_retried_and_sent_when_it_is_back() {
    let mut catcher = SmtpCatcher::start().await;
    let system = with_smtp(&catcher).await;
    let (ada, bob) = (system.register("Ada").await, system.register("Bob").await);
    known_to_the_notifier(&system, &[&ada, &bob]).await;
    catcher.kill();
    system
        .create_task(&ada, json!({"title": "while down", "assignee_id": bob.id}))
        .await;
    let failing = wait_until("two failed tries", Duration::from_secs(20), || async {
        let items = notifications(&system, &bob, "?status=pending").await;
        items
            .into_iter()
            .find(|item| item["channel"] == "email" && item["attempts"].as_i64() >= Some(2))
    })
    .await;
    assert!(
        failing["error"].as_str().unwrap().contains("smtp"),
        "{failing}"
    );

    catcher.resume().await;
    let sent = wait_until("the email is sent", Duration::from_secs(30), || async {
        let items = notifications(&system, &bob, "?status=sent").await;
        items.into_iter().find(|item| item["channel"] == "email")
    })
    .await;
    assert!(sent["attempts"].as_i64().unwrap() >= 3, "{sent}");
    assert_eq!(sent["error"], Value::Null);
    let mails = catcher.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Assigned to you: while down"));
    let events = system.stream_events("AUDIT").await;
    let failed = events
        .iter()
        .filter(|e| e.envelope.event_type == "notification.failed");
    assert_eq!(failed.count(), 0, "retried, not failed");
    system.stop().await;
}

#[tokio::test]
async fn a_malformed_reminder_goes_to_the_dlq_and_a_reinjected_one_notifies_nobody_twice() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let task = system
        .create_task(
            &ada,
            json!({"title": "once", "reminder_time": (Utc::now() + chrono::Duration::milliseconds(300))}),
        )
        .await;
    let told = wait_for_notifications(&system, &ada, "", 1).await;
    assert_eq!(told.len(), 1);
    let reminder = system.stream_events("REMINDERS").await.remove(0);

    // Garbage, and a reminder whose payload is not one.
    system
        .inject(
            format!("reminders.due.{}", id_of(&task)),
            b"{oops".to_vec(),
            "garbage",
        )
        .await;
    let mut wrong = reminder.envelope.clone();
    wrong.event_id = Uuid::now_v7();
    wrong.payload = json!({"task": "not a task"});
    system
        .inject(
            reminder.subject.clone(),
            serde_json::to_vec(&wrong).unwrap(),
            "wrong",
        )
        .await;
    // The same reminder again, as the nats CLI would re-inject it.
    system
        .inject(
            reminder.subject.clone(),
            serde_json::to_vec(&reminder.envelope).unwrap(),
            "again",
        )
        .await;
    let parked = wait_until("both in the DLQ", SOON, || async {
        let parked = system.dlq_of("notifier-reminders").await;
        (parked.len() == 2).then_some(parked)
    })
    .await;
    assert_eq!(&parked[0].payload[..], b"{oops");
    // A later reminder shows the re-injected one was handled: still one.
    system
        .create_task(
            &ada,
            json!({"title": "marker", "reminder_time": (Utc::now() + chrono::Duration::milliseconds(300))}),
        )
        .await;
    let items = wait_for_notifications(&system, &ada, "", 2).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["message"], "Reminder: marker");
    system.stop().await;
}

#[tokio::test]
async fn a_user_who_turned_email_off_gets_in_app_notifications_only() {
    let catcher = SmtpCatcher::start().await;
    let system = with_smtp(&catcher).await;
    let (ada, bob) = (system.register("Ada").await, system.register("Bob").await);
    let off = system
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&bob.token),
            Some(json!({"email_notifications": false})),
        )
        .await;
    assert_eq!(off.status, 200);
    wait_until("the notifier hears of it", SOON, || async {
        let wants: Option<bool> =
            sqlx::query_scalar("SELECT email_notifications FROM recipients WHERE user_id = $1")
                .bind(bob.id)
                .fetch_optional(&system.service("notifier").pool)
                .await
                .unwrap();
        (wants == Some(false)).then_some(())
    })
    .await;
    system
        .create_task(&ada, json!({"title": "quietly", "assignee_id": bob.id}))
        .await;
    let told = wait_for_notifications(&system, &bob, "", 1).await;
    assert_eq!(told[0]["channel"], "in_app");
    // Ada's own email marker proves the notifier got past Bob's event.
    system
        .create_task(&bob, json!({"title": "marker", "assignee_id": ada.id}))
        .await;
    wait_until("Ada's email", SOON, || async {
        (catcher.messages().len() == 1).then_some(())
    })
    .await;
    assert_eq!(notifications(&system, &bob, "").await.len(), 1);
    assert!(catcher.messages()[0].contains("marker"));
    system.stop().await;
}

#[tokio::test]
async fn a_reminder_injected_as_the_readme_shows_notifies_its_actor() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let task_id = Uuid::now_v7();
    // `just inject-reminder`: the same envelope, subject and header.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/envelope.py");
    let output = std::process::Command::new("python3")
        .args([
            script,
            "reminder.due",
            &task_id.to_string(),
            &ada.id.to_string(),
        ])
        .output()
        .expect("python3 runs");
    assert!(output.status.success());
    system
        .inject(format!("reminders.due.{task_id}"), output.stdout, "cli-1")
        .await;
    let told = wait_for_notifications(&system, &ada, "", 1).await;
    assert_eq!(told[0]["message"], "Reminder: injected with the nats CLI");
    assert_eq!(told[0]["task_id"], task_id.to_string());
    assert!(system.dlq_of("notifier-reminders").await.is_empty());
    system.stop().await;
}

#[tokio::test]
async fn an_older_profile_applied_after_a_newer_one_changes_nothing() {
    // Two instances of a service may commit a user's events out of order
    // (each holds one of them at once); here the older comes second on
    // the stream, as an instance that committed late would apply it.
    let system = TestSystem::spawn().await;
    let bob = system.register("Bob").await;
    let profile = |version: i64, email_notifications: bool, timezone: &str| {
        let payload = json!({"user_id": bob.id, "email": bob.email, "name": "Bob",
                             "timezone": timezone, "email_notifications": email_notifications,
                             "version": version});
        let event = taskflow_schemas::EventEnvelope::new(
            taskflow_schemas::events::USER_UPDATED,
            None,
            Some(bob.id),
            "profile-order",
            payload,
        );
        (
            serde_json::to_vec(&event).unwrap(),
            event.event_id.to_string(),
        )
    };
    let subject = taskflow_schemas::subjects::audit_subject(taskflow_schemas::events::USER_UPDATED);
    for (version, email, timezone) in [(3, false, "Europe/Paris"), (2, true, "Asia/Tokyo")] {
        let (body, id) = profile(version, email, timezone);
        system.inject(subject.clone(), body, &id).await;
    }
    let kept = || async {
        let wants: Option<(bool, i64)> = sqlx::query_as(
            "SELECT email_notifications, profile_version FROM recipients WHERE user_id = $1",
        )
        .bind(bob.id)
        .fetch_optional(&system.service("notifier").pool)
        .await
        .unwrap();
        let zone: Option<(String, i64)> = sqlx::query_as(
            "SELECT timezone, profile_version FROM user_timezones WHERE user_id = $1",
        )
        .bind(bob.id)
        .fetch_optional(&system.service("scheduler").pool)
        .await
        .unwrap();
        (wants, zone)
    };
    // Both events applied (the consumers are caught up), the newer kept.
    taskflow_system_tests::caught_up(
        "the profiles",
        Duration::from_secs(10),
        &[system.service("notifier"), system.service("scheduler")],
    )
    .await;
    assert_eq!(
        kept().await,
        (Some((false, 3)), Some(("Europe/Paris".to_owned(), 3)))
    );
    system.stop().await;
}
