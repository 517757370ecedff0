//! The scheduler: reminders fire once and on time, across restarts and two
//! instances; completing a recurring task makes exactly one next task.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use taskflow_runtime::service::Service;
use taskflow_system_tests::{StoredEvent, TestSystem, User, id_of, wait_until};
use uuid::Uuid;

const REMINDERS: &str = "REMINDERS";

fn in_ms(ms: i64) -> DateTime<Utc> {
    (Utc::now() + chrono::Duration::milliseconds(ms)).trunc_subsecs(3)
}

fn scheduler() -> &'static dyn Service {
    *taskflow::SERVICES
        .iter()
        .find(|service| service.name() == "scheduler")
        .expect("the scheduler is a service")
}

/// Waits for the `reminder.due` events of `count` reminders.
async fn fired(system: &TestSystem, count: usize, limit: Duration) -> Vec<StoredEvent> {
    wait_until(&format!("{count} reminders fired"), limit, || async {
        let events = system.stream_events(REMINDERS).await;
        (events.len() >= count).then_some(events)
    })
    .await
}

/// (status, fire_at) of each reminder of `task`, oldest first.
async fn reminder_rows(system: &TestSystem, task: Uuid) -> Vec<(String, DateTime<Utc>)> {
    sqlx::query_as("SELECT status, fire_at FROM reminders WHERE task_id = $1 ORDER BY created_at")
        .bind(task)
        .fetch_all(&system.service("scheduler").pool)
        .await
        .unwrap()
}

async fn wait_for_pending(system: &TestSystem, task: Uuid) {
    wait_until(
        "the reminder is recorded",
        Duration::from_secs(10),
        || async {
            let rows = reminder_rows(system, task).await;
            rows.iter()
                .any(|(status, _)| status == "pending")
                .then_some(())
        },
    )
    .await;
}

/// After `task`'s reminder fired: a later marker reminder fires too, and
/// `task`'s never fired a second time in between.
async fn assert_fired_once(system: &TestSystem, user: &User, task: Uuid) {
    system
        .create_task(
            user,
            json!({"title": "marker", "reminder_time": in_ms(300)}),
        )
        .await;
    let events = fired(system, 2, Duration::from_secs(10)).await;
    let for_task = events
        .iter()
        .filter(|e| e.envelope.task_id == Some(task))
        .count();
    assert_eq!(for_task, 1, "{task}'s reminder fired once");
}

async fn patch(system: &TestSystem, user: &User, task: Uuid, body: Value) -> Value {
    let reply = system
        .call(
            Method::PATCH,
            &format!("/api/v1/tasks/{task}"),
            Some(&user.token),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn complete(system: &TestSystem, user: &User, task: Uuid) -> Value {
    let reply = system
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/complete"),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn a_reminder_fires_once_on_time_caused_by_the_change_that_set_it() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let due_at = in_ms(2_000);
    let task = system
        .create_task(
            &ada,
            json!({"title": "call the plumber", "reminder_time": due_at}),
        )
        .await;
    let task_id = id_of(&task);

    let events = fired(&system, 1, Duration::from_secs(10)).await;
    let seen_at = Utc::now();
    let reminder = &events[0];
    println!(
        "reminder lateness: fired {} ms after its time, seen {} ms after",
        (reminder.envelope.occurred_at - due_at).num_milliseconds(),
        (seen_at - due_at).num_milliseconds()
    );
    assert!(reminder.envelope.occurred_at >= due_at, "never early");
    assert_eq!(reminder.subject, format!("reminders.due.{task_id}"));
    assert_eq!(reminder.envelope.event_type, "reminder.due");
    assert_eq!(reminder.envelope.task_id, Some(task_id));
    assert_eq!(
        reminder.envelope.payload["task"]["title"],
        "call the plumber"
    );
    let created = &system.task_events(task_id).await[0];
    assert_eq!(
        reminder.envelope.causation_id,
        Some(created.envelope.event_id)
    );
    assert_eq!(
        reminder.envelope.correlation_id,
        created.envelope.correlation_id
    );
    assert_eq!(
        reminder.msg_id,
        Some(reminder.envelope.event_id.to_string())
    );

    // Changing the task afterwards does not fire the same reminder again.
    patch(
        &system,
        &ada,
        task_id,
        json!({"title": "call the plumber today"}),
    )
    .await;
    let marker = system
        .create_task(
            &ada,
            json!({"title": "marker", "reminder_time": in_ms(300)}),
        )
        .await;
    let events = fired(&system, 2, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].envelope.task_id, Some(id_of(&marker)));
    system.stop().await;
}

#[tokio::test]
async fn moving_completing_and_deleting_reschedule_or_cancel_the_reminder() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let far = in_ms(3_600_000);
    let moved = id_of(
        &system
            .create_task(&ada, json!({"title": "moved", "reminder_time": far}))
            .await,
    );
    let completed = id_of(
        &system
            .create_task(
                &ada,
                json!({"title": "done", "reminder_time": in_ms(1_500)}),
            )
            .await,
    );
    let deleted = id_of(
        &system
            .create_task(
                &ada,
                json!({"title": "gone", "reminder_time": in_ms(1_500)}),
            )
            .await,
    );
    let due = "2030-01-10T10:00:00Z";
    let relative = id_of(
        &system
            .create_task(
                &ada,
                json!({"title": "relative", "due_date": due, "reminder_offset_minutes": 30}),
            )
            .await,
    );
    for task in [moved, completed, deleted, relative] {
        wait_for_pending(&system, task).await;
    }

    let soon = in_ms(1_000);
    patch(&system, &ada, moved, json!({"reminder_time": soon})).await;
    complete(&system, &ada, completed).await;
    let gone = system
        .call(
            Method::DELETE,
            &format!("/api/v1/tasks/{deleted}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(gone.status, 204);
    // A relative reminder follows its due date.
    patch(
        &system,
        &ada,
        relative,
        json!({"due_date": "2030-01-11T10:00:00Z"}),
    )
    .await;

    // The moved one fires; then a later marker proves the others did not.
    let events = fired(&system, 1, Duration::from_secs(10)).await;
    assert_eq!(events[0].envelope.task_id, Some(moved));
    let marker = id_of(
        &system
            .create_task(
                &ada,
                json!({"title": "marker", "reminder_time": in_ms(800)}),
            )
            .await,
    );
    let events = fired(&system, 2, Duration::from_secs(10)).await;
    let fired_tasks: Vec<_> = events.iter().map(|e| e.envelope.task_id.unwrap()).collect();
    assert_eq!(
        fired_tasks,
        [moved, marker],
        "completed and deleted reminders never fire"
    );

    let status = |rows: Vec<(String, DateTime<Utc>)>| -> Vec<String> {
        rows.into_iter().map(|(status, _)| status).collect()
    };
    assert_eq!(
        status(reminder_rows(&system, moved).await),
        ["cancelled", "fired"]
    );
    assert_eq!(
        status(reminder_rows(&system, completed).await),
        ["cancelled"]
    );
    assert_eq!(status(reminder_rows(&system, deleted).await), ["cancelled"]);
    let relative_rows = reminder_rows(&system, relative).await;
    assert_eq!(relative_rows[1].0, "pending");
    assert_eq!(
        relative_rows[1].1,
        "2030-01-11T09:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    system.stop().await;
}

#[tokio::test]
async fn five_hundred_reminders_due_in_the_same_second_each_fire_once() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let at = in_ms(6_000);
    let mut created = Vec::new();
    for chunk in 0..25 {
        let requests = (0..20).map(|n| {
            let body = json!({"title": format!("r{chunk}-{n}"), "reminder_time": at});
            system.create_task(&ada, body)
        });
        for task in futures::future::join_all(requests).await {
            created.push(id_of(&task));
        }
    }
    assert!(
        Utc::now() < at,
        "the tasks were made before their reminders fell due"
    );
    let events = fired(&system, 500, Duration::from_secs(30)).await;
    let mut per_task: HashMap<Uuid, usize> = HashMap::new();
    for event in &events {
        *per_task.entry(event.envelope.task_id.unwrap()).or_default() += 1;
    }
    assert_eq!(per_task.len(), 500);
    assert!(per_task.values().all(|count| *count == 1));
    let latest = events.iter().map(|e| e.envelope.occurred_at).max().unwrap();
    println!(
        "500 reminders due at once: the last fired {} ms after their time",
        (latest - at).num_milliseconds()
    );
    // And each is delivered once: one in-app notification per reminder.
    let notifier = &system.service("notifier").pool;
    let (told, tasks): (i64, i64) =
        wait_until("500 notifications", Duration::from_secs(30), || async {
            let counts: (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT task_id) FROM notifications WHERE kind = 'reminder'",
        )
        .fetch_one(notifier)
        .await
        .unwrap();
            (counts.0 >= 500).then_some(counts)
        })
        .await;
    assert_eq!((told, tasks), (500, 500));
    system.stop().await;
}

#[tokio::test]
async fn a_reminder_that_fell_due_while_the_scheduler_was_down_fires_once_at_restart() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let at = in_ms(1_500);
    let task = id_of(
        &system
            .create_task(&ada, json!({"title": "missed", "reminder_time": at}))
            .await,
    );
    wait_for_pending(&system, task).await;
    system.stop_service("scheduler").await;
    // Nothing to wait for: the point is that its time passes while it is down.
    tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300))
        .await;
    assert!(system.stream_events(REMINDERS).await.is_empty());

    system.start_service("scheduler").await;
    let events = fired(&system, 1, Duration::from_secs(10)).await;
    assert_eq!(events[0].envelope.task_id, Some(task));
    assert_fired_once(&system, &ada, task).await;
    system.stop().await;
}

#[tokio::test]
async fn two_scheduler_instances_fire_each_reminder_once() {
    let system = TestSystem::spawn().await;
    let second = scheduler()
        .start(&system.platform)
        .await
        .expect("a second instance starts");
    let ada = system.register("Ada").await;
    let at = in_ms(4_000);
    let requests = (0..200).map(|n| {
        system.create_task(
            &ada,
            json!({"title": format!("twice {n}"), "reminder_time": at}),
        )
    });
    futures::future::join_all(requests).await;
    fired(&system, 200, Duration::from_secs(20)).await;
    // Both relays have published all they committed.
    wait_until(
        "both outboxes are empty",
        Duration::from_secs(10),
        || async {
            let first = system.service("scheduler").outbox_backlog().await;
            let other = second.outbox_backlog().await;
            (first == 0 && other == 0).then_some(())
        },
    )
    .await;
    let events = system.stream_events(REMINDERS).await;
    assert_eq!(events.len(), 200, "no reminder fired by both");
    second.stop().await;
    system.stop().await;
}

#[tokio::test]
async fn completing_a_recurring_task_makes_exactly_one_next_task() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let task = system
        .create_task(
            &ada,
            json!({
                "title": "water the plants",
                "labels": ["home"],
                "due_date": "2030-03-01T09:00:00Z",
                "reminder_time": "2030-03-01T08:00:00Z",
                "recurrence": {"frequency": "daily"}
            }),
        )
        .await;
    let first = id_of(&task);
    let series = task["series_id"].clone();

    // Two completions at once: one succeeds, the other finds it complete.
    let path = format!("/api/v1/tasks/{first}/complete");
    let (one, two) = tokio::join!(
        system.call(Method::POST, &path, Some(&ada.token), None),
        system.call(Method::POST, &path, Some(&ada.token), None),
    );
    assert_eq!((one.status.as_u16(), two.status.as_u16()), (200, 200));

    let list = || async {
        let reply = system
            .call(
                Method::GET,
                "/api/v1/tasks?limit=50",
                Some(&ada.token),
                None,
            )
            .await;
        reply.body["items"].as_array().unwrap().clone()
    };
    let next = wait_until("the next task", Duration::from_secs(10), || async {
        let items = list().await;
        items.into_iter().find(|task| id_of(task) != first)
    })
    .await;
    assert_eq!(next["title"], "water the plants");
    assert_eq!(next["labels"], json!(["home"]));
    assert_eq!(next["series_id"], series);
    assert_eq!(next["status"], "pending");
    assert_eq!(next["due_date"], "2030-03-02T09:00:00Z");
    assert_eq!(
        next["reminder_offset_minutes"], 60,
        "the reminder carries over"
    );
    assert_eq!(next["recurrence"]["frequency"], "daily");

    let completion = system
        .task_events(first)
        .await
        .into_iter()
        .find(|event| event.envelope.event_type == "task.completed")
        .expect("a completion event");
    // Read over REST once committed; on the stream once the relay published it.
    let created = wait_until("the next task event", Duration::from_secs(10), || async {
        system.task_events(id_of(&next)).await.into_iter().next()
    })
    .await;
    assert_eq!(
        created.envelope.causation_id,
        Some(completion.envelope.event_id)
    );
    assert_eq!(
        created.envelope.correlation_id,
        completion.envelope.correlation_id
    );

    // The completion again, as the nats CLI would inject it: nothing more.
    system
        .inject(
            completion.subject.clone(),
            serde_json::to_vec(&completion.envelope).unwrap(),
            &Uuid::now_v7().to_string(),
        )
        .await;
    // A second series, completed after the injection, shows it was handled.
    let other = system
        .create_task(
            &ada,
            json!({"title": "other", "due_date": "2030-03-01T09:00:00Z", "recurrence": {"frequency": "weekly"}}),
        )
        .await;
    complete(&system, &ada, id_of(&other)).await;
    let items = wait_until(
        "the other series' next task",
        Duration::from_secs(10),
        || async {
            let items = list().await;
            (items.len() == 4).then_some(items)
        },
    )
    .await;
    let water = items
        .iter()
        .filter(|task| task["title"] == "water the plants")
        .count();
    assert_eq!(water, 2, "one first task and one next task");
    let weekly = items
        .iter()
        .find(|task| task["title"] == "other" && task["status"] == "pending")
        .unwrap();
    assert_eq!(weekly["due_date"], "2030-03-08T09:00:00Z");
    system.stop().await;
}

#[tokio::test]
async fn a_daily_series_in_new_york_keeps_nine_oclock_across_the_dst_change() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let profile = system
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&ada.token),
            Some(json!({"timezone": "America/New_York"})),
        )
        .await;
    assert_eq!(profile.status, 200, "{}", profile.body);
    // The scheduler learns the zone from identity's user.updated.
    wait_until(
        "the scheduler knows the zone",
        Duration::from_secs(10),
        || async {
            let zone: Option<String> =
                sqlx::query_scalar("SELECT timezone FROM user_timezones WHERE user_id = $1")
                    .bind(ada.id)
                    .fetch_optional(&system.service("scheduler").pool)
                    .await
                    .unwrap();
            (zone.as_deref() == Some("America/New_York")).then_some(())
        },
    )
    .await;

    // 09:00 EST on the day before clocks go forward.
    let task = system
        .create_task(
            &ada,
            json!({"title": "stand-up", "due_date": "2026-03-07T14:00:00Z", "recurrence": {"frequency": "daily"}}),
        )
        .await;
    complete(&system, &ada, id_of(&task)).await;
    let next = wait_until("the next task", Duration::from_secs(10), || async {
        let reply = system
            .call(
                Method::GET,
                "/api/v1/tasks?status=pending",
                Some(&ada.token),
                None,
            )
            .await;
        reply.body["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(next["due_date"], "2026-03-08T13:00:00Z", "09:00 EDT");
    system.stop().await;
}

#[tokio::test]
async fn deleting_a_recurring_task_ends_its_series_and_its_reminder() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let task = system
        .create_task(
            &ada,
            json!({
                "title": "weekly report",
                "due_date": "2030-03-01T09:00:00Z",
                "reminder_offset_minutes": 15,
                "recurrence": {"frequency": "weekly"}
            }),
        )
        .await;
    let task_id = id_of(&task);
    let series: Uuid = task["series_id"].as_str().unwrap().parse().unwrap();
    wait_for_pending(&system, task_id).await;
    let gone = system
        .call(
            Method::DELETE,
            &format!("/api/v1/tasks/{task_id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(gone.status, 204);
    let pool = &system.service("scheduler").pool;
    wait_until("the series ends", Duration::from_secs(10), || async {
        let active: Option<bool> = sqlx::query_scalar("SELECT is_active FROM series WHERE id = $1")
            .bind(series)
            .fetch_optional(pool)
            .await
            .unwrap();
        (active == Some(false)).then_some(())
    })
    .await;
    let rows = reminder_rows(&system, task_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "cancelled");
    system.stop().await;
}

#[tokio::test]
async fn a_task_event_the_scheduler_cannot_read_goes_to_its_dlq_and_reminders_go_on() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let mut event = taskflow_system_tests::fixtures::task_created(ada.id, "broken", "r-broken");
    event.payload = json!({"task": {"id": event.task_id, "title": 42}});
    system
        .inject(
            taskflow_system_tests::fixtures::subject_of(&event),
            serde_json::to_vec(&event).unwrap(),
            "broken",
        )
        .await;
    let task = system
        .create_task(
            &ada,
            json!({"title": "behind it", "reminder_time": in_ms(500)}),
        )
        .await;
    let events = fired(&system, 1, Duration::from_secs(10)).await;
    assert_eq!(events[0].envelope.task_id, Some(id_of(&task)));
    let parked = system
        .wait_for_dlq("scheduler-tasks", Duration::from_secs(10))
        .await;
    assert_eq!(parked.len(), 1);
    let reason = parked[0]
        .headers
        .get("Taskflow-Dlq-Reason")
        .unwrap()
        .as_str();
    assert!(reason.contains("not a task event payload"), "{reason}");
    system.stop().await;
}

#[tokio::test]
async fn schedules_list_reminders_and_series_to_those_who_may_read_their_tasks() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let root = system.register("Root").await;
    let root = system.make_admin(root).await;
    let reminded = id_of(
        &system
            .create_task(
                &ada,
                json!({"title": "dentist", "reminder_time": "2031-05-01T08:00:00Z", "assignee_id": bob.id}),
            )
            .await,
    );
    let series = system
        .create_task(
            &ada,
            json!({"title": "rent", "due_date": "2031-01-31T09:00:00Z", "recurrence": {"frequency": "monthly"}}),
        )
        .await;
    let series_id = series["series_id"].as_str().unwrap().to_owned();
    let list = |user: &User, query: &'static str| {
        let token = user.token.clone();
        let system = &system;
        async move {
            let reply = system
                .call(
                    Method::GET,
                    &format!("/api/v1/schedules{query}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.body
        }
    };
    let mine = wait_until("both schedules", Duration::from_secs(10), || async {
        let page = list(&ada, "").await;
        (page["items"].as_array().unwrap().len() == 2).then_some(page)
    })
    .await;
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "series", "newest first");
    assert_eq!(items[0]["id"], series_id.as_str());
    assert_eq!(
        items[0]["next_fire_at"], "2031-02-28T09:00:00Z",
        "Jan 31 → Feb 28"
    );
    assert_eq!(items[0]["timezone"], "UTC");
    assert_eq!(items[1]["kind"], "reminder");
    assert_eq!(items[1]["task_id"], reminded.to_string());
    assert_eq!(items[1]["next_fire_at"], "2031-05-01T08:00:00Z");
    assert_eq!(items[1]["status"], "pending");

    // The assignee sees the reminder only; a stranger nothing; an admin all.
    let bobs = list(&bob, "").await;
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1);
    let carl = system.register("Carl").await;
    assert_eq!(list(&carl, "").await["items"], json!([]));
    assert_eq!(list(&root, "").await["items"].as_array().unwrap().len(), 2);
    let reminder_id = items[1]["id"].as_str().unwrap();
    let read = system
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{reminder_id}"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["title"], "dentist");
    let hidden = system
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{reminder_id}"),
            Some(&carl.token),
            None,
        )
        .await;
    assert_eq!(hidden.status, 404);

    // Paging and filters.
    let first = list(&ada, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let reply = system
        .call(
            Method::GET,
            &format!("/api/v1/schedules?limit=1&cursor={cursor}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(reply.body["items"][0]["kind"], "reminder");
    assert_eq!(reply.body["next_cursor"], Value::Null);
    complete(&system, &ada, reminded).await;
    wait_until(
        "the reminder is cancelled",
        Duration::from_secs(10),
        || async {
            let inactive = list(&ada, "?is_active=false").await;
            (inactive["items"].as_array().unwrap().len() == 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        list(&ada, "?is_active=true").await["items"][0]["kind"],
        "series"
    );
    let bad = system
        .call(
            Method::GET,
            "/api/v1/schedules?cursor=AAAA",
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "cursor");
    system.stop().await;
}

#[tokio::test]
async fn a_reminder_due_while_nats_is_down_fires_on_time_and_is_published_once_when_it_is_back() {
    let mut system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let at = in_ms(1_000);
    let task = id_of(
        &system
            .create_task(&ada, json!({"title": "offline", "reminder_time": at}))
            .await,
    );
    wait_for_pending(&system, task).await;
    system.nats.kill();
    // The timer needs only its database: the reminder fires into the outbox.
    wait_until("the reminder fires", Duration::from_secs(10), || async {
        let rows = reminder_rows(&system, task).await;
        (rows[0].0 == "fired").then_some(())
    })
    .await;
    assert!(system.service("scheduler").outbox_backlog().await >= 1);

    system.nats.resume().await;
    let events = fired(&system, 1, Duration::from_secs(20)).await;
    assert_eq!(events[0].envelope.task_id, Some(task));
    assert!(events[0].envelope.occurred_at >= at);
    assert_fired_once(&system, &ada, task).await;
    system.stop().await;
}

/// Rounds of a time-zone change followed at once by a recurring task.
const ZONE_ROUNDS: usize = 100;

#[tokio::test]
async fn a_time_zone_change_holds_for_the_very_next_recurring_task() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let pending = || async {
        let reply = system
            .call(
                Method::GET,
                "/api/v1/tasks?status=pending",
                Some(&ada.token),
                None,
            )
            .await;
        reply.body["items"].as_array().unwrap().clone()
    };
    // 09:00 in New York on the day before its clocks go forward; the next
    // one is 09:00 EDT (13:00Z) there, and 14:00Z again in UTC.
    let zones = [
        ("America/New_York", "2030-03-10T13:00:00Z"),
        ("UTC", "2030-03-10T14:00:00Z"),
    ];
    for round in 0..ZONE_ROUNDS {
        let (zone, next_due) = zones[round % 2];
        let profile = system
            .call(
                Method::PATCH,
                "/api/v1/users/me",
                Some(&ada.token),
                Some(json!({"timezone": zone})),
            )
            .await;
        assert_eq!(profile.status, 200, "{}", profile.body);
        let task = system
            .create_task(
                &ada,
                json!({"title": format!("round {round}"), "due_date": "2030-03-09T14:00:00Z",
                       "recurrence": {"frequency": "daily"}}),
            )
            .await;
        complete(&system, &ada, id_of(&task)).await;
        let next = wait_until("the next task", Duration::from_secs(10), || async {
            pending()
                .await
                .into_iter()
                .find(|next| id_of(next) != id_of(&task))
        })
        .await;
        assert_eq!(next["due_date"], next_due, "round {round}, in {zone}");
        // Out of the way of the next round: deleting it ends the series.
        let stopped = system
            .call(
                Method::DELETE,
                &format!("/api/v1/tasks/{}", id_of(&next)),
                Some(&ada.token),
                None,
            )
            .await;
        assert!(stopped.status.is_success(), "{}", stopped.body);
    }
    system.stop().await;
}

#[tokio::test]
async fn an_older_version_of_a_task_applied_after_a_newer_one_leaves_its_reminder() {
    // Two instances may commit one task's events in the other order (each
    // held one at once); here the older comes second on the stream, as an
    // instance that committed late would apply it.
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let soon = Utc::now().trunc_subsecs(6) + chrono::Duration::days(2);
    let created = taskflow_system_tests::fixtures::task_created(ada.id, "moved", "order");
    let task_id = created.task_id.unwrap();
    let mut updated = created.clone();
    updated.event_id = Uuid::now_v7();
    updated.event_type = "task.updated".into();
    updated.payload["task"]["version"] = json!(2);
    updated.payload["task"]["due_date"] = json!(soon + chrono::Duration::days(1));
    updated.payload["task"]["reminder_time"] = json!(soon + chrono::Duration::hours(20));
    let mut created = created;
    created.payload["task"]["due_date"] = json!(soon);
    created.payload["task"]["reminder_time"] = json!(soon - chrono::Duration::hours(4));
    for event in [&updated, &created] {
        let body = serde_json::to_vec(event).unwrap();
        let subject = taskflow_system_tests::fixtures::subject_of(event);
        system
            .inject(subject, body, &event.event_id.to_string())
            .await;
    }
    taskflow_system_tests::caught_up(
        "the scheduler",
        Duration::from_secs(10),
        &[system.service("scheduler")],
    )
    .await;
    let pending: Vec<DateTime<Utc>> = reminder_rows(&system, task_id)
        .await
        .into_iter()
        .filter(|(status, _)| status == "pending")
        .map(|(_, fire_at)| fire_at)
        .collect();
    assert_eq!(pending, [soon + chrono::Duration::hours(20)]);
    system.stop().await;
}
