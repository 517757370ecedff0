//! Tasks in projects: the owner/member/viewer/outsider/admin matrix on every
//! task route and on audit and schedules, the people a project task may
//! name, a removed member losing access, and a deleted project's tasks.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_schemas::EventEnvelope;
use taskflow_system_tests::ws::FeedClient;
use taskflow_system_tests::{Reply, TestSystem, User, id_of, wait_until};
use uuid::Uuid;

/// Ada owns the project, Bob is a member, Cy a viewer, Eve an outsider and
/// Root an admin outside it.
struct Cast {
    ada: User,
    bob: User,
    cy: User,
    eve: User,
    root: User,
    project: String,
}

async fn call(
    system: &TestSystem,
    user: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    system.call(method, path, Some(&user.token), body).await
}

async fn new_project(system: &TestSystem, owner: &User, name: &str) -> String {
    let created = call(
        system,
        owner,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

async fn add_member(system: &TestSystem, owner: &User, project: &str, user: &User, role: &str) {
    let added = call(
        system,
        owner,
        Method::POST,
        &format!("/api/v1/projects/{project}/members"),
        Some(json!({"user_id": user.id, "role": role})),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
}

async fn remove_member(system: &TestSystem, owner: &User, project: &str, user: &User) {
    let path = format!("/api/v1/projects/{project}/members/{}", user.id);
    let removed = call(system, owner, Method::DELETE, &path, None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
}

/// A task of `project` with a reminder, and where to read it, its records
/// and its schedules; returned once `reader` sees its record and reminder.
struct Watched {
    read: String,
    audit: String,
    schedules: String,
}

async fn watched(system: &TestSystem, owner: &User, project: &str, reader: &User) -> Watched {
    let remind_at = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let task = system
        .create_task(
            owner,
            json!({"title": "watched", "project_id": project, "reminder_time": remind_at}),
        )
        .await;
    let id = id_of(&task);
    let watched = Watched {
        read: format!("/api/v1/tasks/{id}"),
        audit: format!("/api/v1/audit?task_id={id}"),
        schedules: format!("/api/v1/schedules?task_id={id}"),
    };
    wait_until(
        "the record and the reminder",
        Duration::from_secs(10),
        || async {
            let records = call(system, reader, Method::GET, &watched.audit, None).await;
            let reminders = call(system, reader, Method::GET, &watched.schedules, None).await;
            (records.body["items"].as_array()?.len() == 1
                && reminders.body["items"].as_array()?.len() == 1)
                .then_some(())
        },
    )
    .await;
    watched
}

async fn cast(system: &TestSystem) -> Cast {
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let cy = system.register("Cy").await;
    let eve = system.register("Eve").await;
    let root = system.register("Root").await;
    let root = system.make_admin(root).await;
    let project = new_project(system, &ada, "Launch").await;
    add_member(system, &ada, &project, &bob, "member").await;
    add_member(system, &ada, &project, &cy, "viewer").await;
    system.settle_directories().await;
    Cast {
        ada,
        bob,
        cy,
        eve,
        root,
        project,
    }
}

async fn create_in(system: &TestSystem, user: &User, project: &str, title: &str) -> Reply {
    call(
        system,
        user,
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"title": title, "project_id": project})),
    )
    .await
}

fn ids_of(listed: &Reply) -> Vec<Uuid> {
    listed.body["items"]
        .as_array()
        .expect("a page")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn owners_and_members_write_viewers_read_outsiders_see_nothing_admins_read() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada,
        bob,
        cy,
        eve,
        root,
        project,
    } = cast(&system).await;

    // Create: writers may, a viewer is forbidden, an outsider is told the
    // project is not one of theirs.
    for (user, status) in [
        (&ada, StatusCode::CREATED),
        (&bob, StatusCode::CREATED),
        (&cy, StatusCode::FORBIDDEN),
        (&eve, StatusCode::UNPROCESSABLE_ENTITY),
        (&root, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let created = create_in(&system, user, &project, "by anyone").await;
        assert_eq!(created.status, status, "{}", created.body);
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(created.body["field"], "project_id");
        }
    }
    let task = create_in(&system, &ada, &project, "the plan").await.body;
    assert_eq!(task["project_id"], project.as_str());
    let path = format!("/api/v1/tasks/{}", id_of(&task));

    // Read and list.
    for (user, readable) in [
        (&ada, true),
        (&bob, true),
        (&cy, true),
        (&eve, false),
        (&root, true),
    ] {
        let read = call(&system, user, Method::GET, &path, None).await;
        let expected = if readable {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(read.status, expected);
        let listed = call(
            &system,
            user,
            Method::GET,
            &format!("/api/v1/tasks?project_id={project}"),
            None,
        )
        .await;
        assert_eq!(ids_of(&listed).contains(&id_of(&task)), readable);
    }

    // Update, complete and delete: the viewer and the admin may read but not
    // write (403); the outsider does not see the task (404).
    for (user, status) in [
        (&cy, StatusCode::FORBIDDEN),
        (&root, StatusCode::FORBIDDEN),
        (&eve, StatusCode::NOT_FOUND),
    ] {
        for (method, route, body) in [
            (Method::PUT, path.clone(), Some(json!({"title": "mine"}))),
            (Method::POST, format!("{path}/complete"), None),
            (Method::DELETE, path.clone(), None),
        ] {
            let refused = call(&system, user, method, &route, body).await;
            assert_eq!(refused.status, status, "{route}: {}", refused.body);
        }
    }
    let changed = call(
        &system,
        &bob,
        Method::PUT,
        &path,
        Some(json!({"title": "Bob's plan"})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let completed = call(
        &system,
        &bob,
        Method::POST,
        &format!("{path}/complete"),
        None,
    )
    .await;
    assert_eq!(completed.body["status"], "complete");

    // The records of the task: its readers see them, the outsider none.
    let audit = format!("/api/v1/audit?task_id={}", id_of(&task));
    let task_records = |listed: Reply| {
        listed.body["items"]
            .as_array()
            .expect("a page")
            .iter()
            .filter(|record| record["event_type"].as_str().unwrap().starts_with("task."))
            .count()
    };
    wait_until(
        "three records of the task",
        Duration::from_secs(10),
        || async {
            let listed = call(&system, &root, Method::GET, &audit, None).await;
            (task_records(listed) == 3).then_some(())
        },
    )
    .await;
    for (user, records) in [(&cy, 3), (&bob, 3), (&eve, 0)] {
        let listed = call(&system, user, Method::GET, &audit, None).await;
        assert_eq!(task_records(listed), records);
    }

    let deleted = call(&system, &bob, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    system.stop().await;
}

#[tokio::test]
async fn a_task_moves_between_projects_only_for_who_writes_in_both() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada,
        bob,
        eve,
        project,
        ..
    } = cast(&system).await;
    let elsewhere = new_project(&system, &eve, "Elsewhere").await;
    let task = create_in(&system, &bob, &project, "travelling").await.body;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let moving = json!({"project_id": elsewhere});

    let refused = call(&system, &ada, Method::PUT, &path, Some(moving.clone())).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["field"], "project_id");
    add_member(&system, &eve, &elsewhere, &ada, "viewer").await;
    system.settle_directories().await;
    let refused = call(&system, &ada, Method::PUT, &path, Some(moving.clone())).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    // Eve writes in the target but not in the source.
    let refused = call(&system, &eve, Method::PUT, &path, Some(moving.clone())).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    add_member(&system, &eve, &elsewhere, &ada, "member").await;
    let moved = call(&system, &ada, Method::PUT, &path, Some(moving)).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["project_id"], elsewhere.as_str());
    // Bob wrote it where it was; where it is now, he is nobody.
    let gone = call(&system, &bob, Method::GET, &path, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&system, &eve, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    system.stop().await;
}

#[tokio::test]
async fn the_people_a_task_names_exist_and_in_a_project_belong_to_it() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada,
        bob,
        cy,
        eve,
        project,
        ..
    } = cast(&system).await;
    let nobody = Uuid::now_v7();
    for (body, field) in [
        (
            json!({"title": "t", "project_id": project, "assignee_id": eve.id}),
            "assignee_id",
        ),
        (
            json!({"title": "t", "project_id": project, "observer_ids": [bob.id, eve.id]}),
            "observer_ids",
        ),
        (json!({"title": "t", "assignee_id": nobody}), "assignee_id"),
        (
            json!({"title": "t", "observer_ids": [nobody]}),
            "observer_ids",
        ),
    ] {
        let refused = call(&system, &ada, Method::POST, "/api/v1/tasks", Some(body)).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(refused.body["field"], field, "{}", refused.body);
    }
    // A viewer may be assigned: they read the task and may complete it.
    let task = system
        .create_task(
            &ada,
            json!({"title": "for Cy", "project_id": project, "assignee_id": cy.id}),
        )
        .await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let reassigned = call(
        &system,
        &ada,
        Method::PUT,
        &path,
        Some(json!({"assignee_id": eve.id})),
    )
    .await;
    assert_eq!(reassigned.body["field"], "assignee_id");
    let completed = call(
        &system,
        &cy,
        Method::POST,
        &format!("{path}/complete"),
        None,
    )
    .await;
    assert_eq!(completed.status, StatusCode::OK, "{}", completed.body);
    // A private task may name any user.
    system
        .create_task(&ada, json!({"title": "mine", "assignee_id": eve.id}))
        .await;
    system.stop().await;
}

#[tokio::test]
async fn a_removed_member_loses_the_projects_tasks_records_and_schedules() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada, cy, project, ..
    } = cast(&system).await;
    let Watched {
        read,
        audit,
        schedules,
    } = watched(&system, &ada, &project, &cy).await;

    remove_member(&system, &ada, &project, &cy).await;
    system.settle_directories().await;
    let read = call(&system, &cy, Method::GET, &read, None).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    for path in ["/api/v1/tasks".to_owned(), audit, schedules] {
        let listed = call(&system, &cy, Method::GET, &path, None).await;
        assert_eq!(listed.body["items"], json!([]), "{path}");
    }
    system.stop().await;
}

#[tokio::test]
async fn deleting_a_project_deletes_its_tasks_their_reminders_and_series() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada,
        bob,
        root,
        project,
        ..
    } = cast(&system).await;
    let due = (Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let reminded = system
        .create_task(
            &bob,
            json!({"title": "reminded", "project_id": project, "due_date": due,
                   "reminder_offset_minutes": 60}),
        )
        .await;
    let recurring = system
        .create_task(
            &ada,
            json!({"title": "weekly", "project_id": project, "due_date": due,
                   "recurrence": {"frequency": "weekly"}}),
        )
        .await;
    let outside = system.create_task(&ada, json!({"title": "private"})).await;
    let schedules = "/api/v1/schedules?is_active=true";
    wait_until(
        "a reminder and a series",
        Duration::from_secs(10),
        || async {
            let listed = call(&system, &root, Method::GET, schedules, None).await;
            (listed.body["items"].as_array()?.len() == 2).then_some(())
        },
    )
    .await;

    let path = format!("/api/v1/projects/{project}");
    let refused = call(&system, &bob, Method::DELETE, &path, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let deleted = call(&system, &ada, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);

    let project_deleted = wait_until("project.deleted", Duration::from_secs(10), || async {
        system
            .stream_events("AUDIT")
            .await
            .into_iter()
            .find(|event| event.envelope.event_type == "project.deleted")
    })
    .await;
    for task in [&reminded, &recurring] {
        let events = wait_until("the task's deletion", Duration::from_secs(10), || async {
            let events = system.task_events(id_of(task)).await;
            (events.len() == 2).then_some(events)
        })
        .await;
        let deletion = &events[1].envelope;
        assert_eq!(deletion.event_type, "task.deleted");
        assert_eq!(
            deletion.causation_id,
            Some(project_deleted.envelope.event_id)
        );
        assert_eq!(
            deletion.correlation_id,
            project_deleted.envelope.correlation_id
        );
        assert_eq!(deletion.actor_id, Some(ada.id));
        let read = call(
            &system,
            &ada,
            Method::GET,
            &format!("/api/v1/tasks/{}", id_of(task)),
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(system.task_events(id_of(&outside)).await.len(), 1);
    wait_until("no active schedule", Duration::from_secs(10), || async {
        let listed = call(&system, &root, Method::GET, schedules, None).await;
        listed.body["items"].as_array()?.is_empty().then_some(())
    })
    .await;
    // Once gone, a project takes no tasks.
    let late = create_in(&system, &ada, &project, "too late").await;
    assert_eq!(
        late.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        late.body
    );
    system.stop().await;
}

/// The frames about `task` among `frames`: its events and `revoked` frames.
fn about(frames: &[Value], task: Uuid) -> Vec<&Value> {
    let id = task.to_string();
    frames
        .iter()
        .filter(|frame| frame["task_id"] == id.as_str() || frame["event"]["task_id"] == id.as_str())
        .collect()
}

#[tokio::test]
async fn the_feed_shows_a_projects_tasks_to_its_members_and_revokes_them_on_removal() {
    const SOON: Duration = Duration::from_secs(5);
    let mut system = TestSystem::spawn().await;
    let Cast {
        ada,
        bob,
        cy,
        eve,
        root,
        project,
    } = cast(&system).await;
    let before = id_of(&create_in(&system, &ada, &project, "from before").await.body);
    system.wait_for_events("TASKS", 1).await;
    // A feed started now learns the memberships and the task from the streams.
    let feed = taskflow_livefeed::LiveFeed::start(&system.platform)
        .await
        .expect("the feed starts");
    system.replace_feed(feed).await;
    let connect = |user: &User| {
        let query = format!("?token={}&cursor=0", user.token);
        let base = system.base_url.clone();
        async move { FeedClient::connect(&base, &query).await }
    };
    let (mut cy_feed, mut eve_feed, mut root_feed) = (
        connect(&cy).await,
        connect(&eve).await,
        connect(&root).await,
    );
    for (feed, sees) in [
        (&mut cy_feed, true),
        (&mut eve_feed, false),
        (&mut root_feed, true),
    ] {
        let (replayed, _) = feed.until("ready", SOON).await;
        assert_eq!(
            about(&replayed, before).len(),
            usize::from(sees),
            "{replayed:?}"
        );
    }

    let live = id_of(&create_in(&system, &bob, &project, "live").await.body);
    for feed in [&mut cy_feed, &mut root_feed] {
        assert_eq!(
            feed.next_frame(SOON).await["event"]["task_id"],
            live.to_string()
        );
    }

    remove_member(&system, &ada, &project, &cy).await;
    let mut revoked = vec![
        cy_feed.next_frame(SOON).await,
        cy_feed.next_frame(SOON).await,
    ];
    revoked.sort_by_key(|frame| frame["task_id"].as_str().unwrap().to_owned());
    let mut expected = vec![
        json!({"type": "revoked", "task_id": before}),
        json!({"type": "revoked", "task_id": live}),
    ];
    expected.sort_by_key(|frame| frame["task_id"].as_str().unwrap().to_owned());
    assert_eq!(revoked, expected);

    // Nothing more of the project's tasks reaches Cy, live or on replay, and
    // nothing of them ever reached Eve: the next frame each gets is of a
    // task of their own.
    let path = format!("/api/v1/tasks/{before}");
    call(
        &system,
        &ada,
        Method::PUT,
        &path,
        Some(json!({"title": "later"})),
    )
    .await;
    for (feed, user) in [(&mut cy_feed, &cy), (&mut eve_feed, &eve)] {
        let own = system.create_task(user, json!({"title": "my own"})).await;
        assert_eq!(feed.next_frame(SOON).await["event"]["task_id"], own["id"]);
    }
    let mut replaying = connect(&cy).await;
    let (replayed, _) = replaying.until("ready", SOON).await;
    for task in [before, live] {
        assert!(
            about(&replayed, task)
                .iter()
                .all(|frame| frame["type"] != "event"),
            "{replayed:?}"
        );
    }
    system.stop().await;
}

async fn notified(system: &TestSystem, user: &User) -> Vec<Value> {
    let listed = call(system, user, Method::GET, "/api/v1/notifications", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn notifications_follow_the_access_rule_a_member_who_left_is_neither_told_nor_shown() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada,
        bob,
        cy,
        project,
        ..
    } = cast(&system).await;
    let soon = Utc::now() + chrono::Duration::milliseconds(300);
    let task = system
        .create_task(
            &bob,
            json!({"title": "remind me", "project_id": project, "reminder_time": soon,
                   "observer_ids": [cy.id]}),
        )
        .await;
    wait_until("Bob's reminder", Duration::from_secs(10), || async {
        let items = notified(&system, &bob).await;
        (items.len() == 1 && items[0]["task_id"] == task["id"]).then_some(())
    })
    .await;

    remove_member(&system, &ada, &project, &bob).await;
    system.settle_directories().await;
    assert_eq!(notified(&system, &bob).await, Vec::<Value>::new());

    // The completion tells the creator and the observers: Cy, not Bob, who
    // left the project.
    let path = format!("/api/v1/tasks/{}/complete", id_of(&task));
    let completed = call(&system, &ada, Method::POST, &path, None).await;
    assert_eq!(completed.status, StatusCode::OK, "{}", completed.body);
    wait_until(
        "Cy told of the completion",
        Duration::from_secs(10),
        || async {
            let items = notified(&system, &cy).await;
            items
                .iter()
                .any(|item| item["kind"] == "completed")
                .then_some(())
        },
    )
    .await;
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE recipient_id = $1 AND kind = 'completed'",
    )
    .bind(bob.id)
    .fetch_one(&system.service("notifier").pool)
    .await
    .unwrap();
    assert_eq!(told, 0);
    system.stop().await;
}

#[tokio::test]
async fn malformed_membership_and_role_events_go_to_the_dlq_and_grant_nothing() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada, eve, project, ..
    } = cast(&system).await;
    let forged = [
        (
            "audit.project.member_added",
            EventEnvelope::new(
                "project.member_added",
                None,
                Some(eve.id),
                "forged",
                json!({"project": project, "member": {"user_id": eve.id, "role": "owner"}}),
            ),
        ),
        (
            "audit.user.role_changed",
            EventEnvelope::new(
                "user.role_changed",
                None,
                None,
                "forged",
                json!({"user_id": eve.id, "role": "superuser"}),
            ),
        ),
    ];
    for (subject, envelope) in forged {
        let payload = serde_json::to_vec(&envelope).unwrap();
        system
            .inject(subject.into(), payload, &envelope.event_id.to_string())
            .await;
    }
    system
        .inject(
            "audit.project.member_added".into(),
            b"\0not json\xff".to_vec(),
            "garbage",
        )
        .await;
    for consumer in ["tasks-directory", "audit-directory", "scheduler-directory"] {
        wait_until(
            "three messages in the DLQ",
            Duration::from_secs(10),
            || async { (system.dlq_of(consumer).await.len() == 3).then_some(()) },
        )
        .await;
    }
    // Nothing was granted, and the directories move on: a real membership
    // counts at once.
    let refused = create_in(&system, &eve, &project, "forged").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let listed = call(&system, &eve, Method::GET, "/api/v1/tasks", None).await;
    assert_eq!(listed.body["items"], json!([]));
    add_member(&system, &ada, &project, &eve, "member").await;
    system.settle_directories().await;
    let created = create_in(&system, &eve, &project, "real").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    system.stop().await;
}

/// How many times the test adds and removes a member and reads at once.
const ROUNDS: usize = 200;

#[tokio::test]
async fn a_membership_change_is_in_effect_everywhere_when_it_answers() {
    let system = TestSystem::spawn().await;
    let Cast {
        ada, eve, project, ..
    } = cast(&system).await;
    let Watched {
        read,
        audit,
        schedules,
    } = watched(&system, &ada, &project, &ada).await;
    // What Eve reads of the task on each surface, right now.
    let reads = || async {
        let task = call(&system, &eve, Method::GET, &read, None).await.status;
        let count = |reply: Reply| reply.body["items"].as_array().map_or(usize::MAX, Vec::len);
        let records = count(call(&system, &eve, Method::GET, &audit, None).await);
        let reminders = count(call(&system, &eve, Method::GET, &schedules, None).await);
        (task, records, reminders)
    };
    for round in 0..ROUNDS {
        add_member(&system, &ada, &project, &eve, "viewer").await;
        assert_eq!(
            reads().await,
            (StatusCode::OK, 1, 1),
            "round {round}: granted"
        );
        remove_member(&system, &ada, &project, &eve).await;
        assert_eq!(
            reads().await,
            (StatusCode::NOT_FOUND, 0, 0),
            "round {round}: revoked"
        );
    }
    system.stop().await;
}
