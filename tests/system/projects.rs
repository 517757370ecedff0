//! Projects and memberships: who may see and change a project, the
//! last-owner rule, and the `project.*` events.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use taskflow_schemas::project::ProjectRole;
use taskflow_system_tests::{Reply, TestSystem, User, wait_until};

async fn as_user(
    system: &TestSystem,
    user: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    system.call(method, path, Some(&user.token), body).await
}

#[tokio::test]
async fn members_read_owners_manage_and_strangers_see_nothing() {
    let system = TestSystem::spawn().await;
    let (ada, bob, cy) = (
        system.register("Ada").await,
        system.register("Bob").await,
        system.register("Cy").await,
    );
    let root = system.register("Root").await;
    let root = system.make_admin(root).await;
    system.settle_directories().await;

    let created = as_user(
        &system,
        &ada,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "  Launch  ", "description": "the big one"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["name"], "Launch");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/projects/{id}");
    let members = format!("{path}/members");

    let added = as_user(
        &system,
        &ada,
        Method::POST,
        &members,
        Some(json!({"user_id": bob.id, "role": "viewer"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["role"], "viewer");

    assert_eq!(
        as_user(&system, &bob, Method::GET, &path, None)
            .await
            .status,
        200
    );
    assert_eq!(
        as_user(&system, &cy, Method::GET, &path, None).await.status,
        404
    );
    assert_eq!(
        as_user(&system, &root, Method::GET, &path, None)
            .await
            .status,
        200
    );
    let rename = Some(json!({"name": "Renamed"}));
    let refused = as_user(&system, &bob, Method::PATCH, &path, rename.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let hidden = as_user(&system, &cy, Method::PATCH, &path, rename.clone()).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let by_admin = as_user(&system, &root, Method::PATCH, &path, rename.clone()).await;
    assert_eq!(
        by_admin.status,
        StatusCode::FORBIDDEN,
        "admins write by the rules"
    );
    let renamed = as_user(&system, &ada, Method::PATCH, &path, rename).await;
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(
        renamed.body["version"], 3,
        "created, Bob added, renamed: every change counts"
    );

    let listed = |user: &User| {
        let token = user.token.clone();
        let system = &system;
        async move {
            let reply = system
                .call(Method::GET, "/api/v1/projects", Some(&token), None)
                .await;
            reply.body["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(
        (listed(&ada).await, listed(&bob).await, listed(&cy).await),
        (1, 1, 0)
    );
    let roster = as_user(&system, &bob, Method::GET, &members, None).await;
    let roles: Vec<&str> = roster.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "viewer"]);
    let first = as_user(
        &system,
        &bob,
        Method::GET,
        &format!("{members}?limit=1"),
        None,
    )
    .await;
    assert_eq!(first.body["items"][0]["role"], "owner");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = format!("{members}?limit=1&cursor={cursor}");
    let second = as_user(&system, &bob, Method::GET, &rest, None).await;
    assert_eq!(second.body["items"][0]["user_id"], bob.id.to_string());
    assert_eq!(second.body["next_cursor"], Value::Null);

    let stranger = as_user(
        &system,
        &ada,
        Method::POST,
        &members,
        Some(json!({"user_id": uuid::Uuid::now_v7(), "role": "member"})),
    )
    .await;
    assert_eq!(stranger.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(stranger.body["field"], "user_id");

    // A member may leave; then the project is hidden from them.
    let leave = format!("{members}/{}", bob.id);
    assert_eq!(
        as_user(&system, &bob, Method::DELETE, &leave, None)
            .await
            .status,
        204
    );
    assert_eq!(
        as_user(&system, &bob, Method::GET, &path, None)
            .await
            .status,
        404
    );

    let gone = as_user(&system, &ada, Method::DELETE, &path, None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        as_user(&system, &ada, Method::GET, &path, None)
            .await
            .status,
        404
    );
    system.stop().await;
}

#[tokio::test]
async fn a_project_always_keeps_an_owner_and_every_change_is_an_event() {
    let system = TestSystem::spawn().await;
    let (ada, bob) = (system.register("Ada").await, system.register("Bob").await);
    system.settle_directories().await;
    let project = as_user(
        &system,
        &ada,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "Ops"})),
    )
    .await;
    let id = project.body["id"].as_str().unwrap().to_owned();
    let members = format!("/api/v1/projects/{id}/members");
    let ada_member = format!("{members}/{}", ada.id);

    let demote = as_user(
        &system,
        &ada,
        Method::POST,
        &members,
        Some(json!({"user_id": ada.id, "role": "member"})),
    )
    .await;
    assert_eq!(demote.status, StatusCode::CONFLICT, "{}", demote.body);
    let remove = as_user(&system, &ada, Method::DELETE, &ada_member, None).await;
    assert_eq!(remove.status, StatusCode::CONFLICT);

    // With a second owner, the first may step down.
    let promote = Some(json!({"user_id": bob.id, "role": "owner"}));
    assert_eq!(
        as_user(&system, &ada, Method::POST, &members, promote)
            .await
            .status,
        200
    );
    let step_down = Some(json!({"user_id": ada.id, "role": "viewer"}));
    let stepped = as_user(&system, &ada, Method::POST, &members, step_down).await;
    assert_eq!(stepped.status, 200, "{}", stepped.body);
    assert_eq!(
        as_user(
            &system,
            &ada,
            Method::DELETE,
            &format!("/api/v1/projects/{id}"),
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN,
        "a viewer may not delete it"
    );

    let events = wait_until("the project events", Duration::from_secs(10), || async {
        let events: Vec<_> = system
            .stream_events("AUDIT")
            .await
            .into_iter()
            .filter(|event| event.envelope.event_type.starts_with("project."))
            .collect();
        (events.len() >= 3).then_some(events)
    })
    .await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.envelope.event_type.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "project.created",
            "project.member_added",
            "project.member_role_changed"
        ]
    );
    assert_eq!(events[0].subject, "audit.project.created");
    let changed = &events[2].envelope;
    assert_eq!(changed.payload["member"]["user_id"], ada.id.to_string());
    assert_eq!(changed.payload["member"]["role"], "viewer");
    assert_eq!(changed.payload["previous_role"], "owner");
    assert_eq!(changed.actor_id, Some(ada.id));
    system.stop().await;
}

#[tokio::test]
async fn hostile_project_input_is_refused_by_name_and_changes_nothing() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let create = |body: Value| {
        let system = &system;
        let token = ada.token.clone();
        async move {
            system
                .call(Method::POST, "/api/v1/projects", Some(&token), Some(body))
                .await
        }
    };
    for (body, field) in [
        (json!({"name": "a\u{0}b"}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": " \t\n"}), "name"),
        (
            json!({"name": "ok", "description": "d".repeat(2_001)}),
            "description",
        ),
        (json!({"name": "ok", "owner": "me"}), "owner"),
        (json!({"name": ["not", "text"]}), "name"),
    ] {
        let refused = create(body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.body
        );
        assert_eq!(refused.body["field"], field, "{body}: {}", refused.body);
    }
    let project = create(json!({"name": "kept"})).await;
    let id = project.body["id"].as_str().unwrap();
    let members = format!("/api/v1/projects/{id}/members");
    for body in [
        json!({"user_id": ada.id, "role": "emperor"}),
        json!({"user_id": "not-a-uuid", "role": "owner"}),
        json!({"role": "owner"}),
    ] {
        let refused = as_user(&system, &ada, Method::POST, &members, Some(body.clone())).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.body
        );
    }
    let bad_path = as_user(
        &system,
        &ada,
        Method::DELETE,
        &format!("{members}/not-a-uuid"),
        None,
    )
    .await;
    assert_eq!(bad_path.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_path.body["field"], "user_id");
    let listed = as_user(&system, &ada, Method::GET, "/api/v1/projects", None).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        1,
        "only the good one"
    );
    let roster = as_user(&system, &ada, Method::GET, &members, None).await;
    assert_eq!(
        roster.body["items"].as_array().unwrap().len(),
        1,
        "only its owner"
    );
    let bad_cursor = format!("{members}?cursor=AAAA");
    let refused = as_user(&system, &ada, Method::GET, &bad_cursor, None).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    system.stop().await;
}

#[tokio::test]
async fn members_read_their_project_s_history_in_the_audit_and_others_do_not() {
    let system = TestSystem::spawn().await;
    let (ada, bob, cy) = (
        system.register("Ada").await,
        system.register("Bob").await,
        system.register("Cy").await,
    );
    let created = as_user(
        &system,
        &ada,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "Launch"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let members = format!(
        "/api/v1/projects/{}/members",
        created.body["id"].as_str().unwrap()
    );
    let added = as_user(
        &system,
        &ada,
        Method::POST,
        &members,
        Some(json!({"user_id": bob.id, "role": "viewer"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let history = |user: &User| {
        let (system, token) = (&system, user.token.clone());
        async move {
            let page = system
                .call(Method::GET, "/api/v1/audit?limit=200", Some(&token), None)
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|record| record["event_type"].as_str().unwrap().to_owned())
                .filter(|event_type| event_type.starts_with("project."))
                .collect::<Vec<_>>()
        }
    };
    let project_history = ["project.created", "project.member_added"];
    // Bob, a viewer who did none of it, reads it; each record once for Ada
    // who did all of it.
    let seen = wait_until("the project's records", Duration::from_secs(10), || async {
        let seen = history(&bob).await;
        (seen.len() == 2).then_some(seen)
    })
    .await;
    assert_eq!(seen, project_history);
    assert_eq!(history(&ada).await, project_history);
    assert_eq!(
        history(&cy).await,
        Vec::<String>::new(),
        "a stranger reads none"
    );
    let record = system
        .call(
            Method::GET,
            "/api/v1/audit?event_type=project.created",
            Some(&bob.token),
            None,
        )
        .await;
    let id = record.body["items"][0]["id"].as_str().unwrap().to_owned();
    let one = |user: &User| {
        let (system, token, path) = (&system, user.token.clone(), format!("/api/v1/audit/{id}"));
        async move { system.call(Method::GET, &path, Some(&token), None).await }
    };
    assert_eq!(one(&bob).await.status, StatusCode::OK);
    assert_eq!(one(&cy).await.status, StatusCode::NOT_FOUND);

    // Bob leaves: the project's history is no longer his to read.
    let left = as_user(
        &system,
        &bob,
        Method::DELETE,
        &format!("{members}/{}", bob.id),
        None,
    )
    .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.body);
    wait_until(
        "Bob to lose the project's records",
        Duration::from_secs(10),
        || async { (history(&bob).await == ["project.member_removed"]).then_some(()) },
    )
    .await;
    assert_eq!(one(&bob).await.status, StatusCode::NOT_FOUND);
    system.stop().await;
}

/// A project event as the projects service publishes it, at `version` of
/// the project, stored at `seq`.
fn membership_event(
    event_type: &str,
    project: uuid::Uuid,
    version: i64,
    user: uuid::Uuid,
    seq: u64,
) -> taskflow_runtime::consumer::ConsumedEvent {
    let now = chrono::Utc::now();
    let payload = json!({
        "project": {"id": project, "name": "p", "description": null, "created_by": user,
                    "version": version, "created_at": now, "updated_at": now},
        "member": {"project_id": project, "user_id": user, "role": "member", "added_at": now}
    });
    taskflow_runtime::consumer::ConsumedEvent {
        envelope: taskflow_schemas::EventEnvelope::new(
            event_type,
            None,
            Some(user),
            "order",
            payload,
        ),
        subject: format!("audit.{event_type}"),
        stream: "AUDIT".into(),
        stream_seq: seq,
    }
}

fn role_event(
    user: uuid::Uuid,
    role: &str,
    version: i64,
    seq: u64,
) -> taskflow_runtime::consumer::ConsumedEvent {
    let payload = json!({"user_id": user, "role": role, "version": version});
    taskflow_runtime::consumer::ConsumedEvent {
        envelope: taskflow_schemas::EventEnvelope::new(
            "user.role_changed",
            None,
            None,
            "order",
            payload,
        ),
        subject: "audit.user.role_changed".into(),
        stream: "AUDIT".into(),
        stream_seq: seq,
    }
}

#[tokio::test]
async fn after_a_lost_tail_a_directory_orders_changes_by_their_producer_s_version() {
    use taskflow_runtime::directory;
    let databases = taskflow_system_tests::service_databases::ServiceDatabases::connect(2).await;
    let pool = &databases.tasks;
    let (project, user) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let apply = |event: taskflow_runtime::consumer::ConsumedEvent| async move {
        let mut tx = pool.begin().await.unwrap();
        directory::apply(&mut tx, &event).await.expect("applied");
        tx.commit().await.unwrap();
    };
    // Added at sequence 5,000; the server then lost everything from 4,870
    // on: the removal that followed came at 4,871, and the addition again
    // (republished) at 4,872.
    apply(membership_event(
        "project.member_added",
        project,
        2,
        user,
        5000,
    ))
    .await;
    assert_eq!(
        directory::role_in(pool, project, user).await.unwrap(),
        Some(ProjectRole::Member)
    );
    apply(membership_event(
        "project.member_removed",
        project,
        3,
        user,
        4871,
    ))
    .await;
    apply(membership_event(
        "project.member_added",
        project,
        2,
        user,
        4872,
    ))
    .await;
    assert_eq!(
        directory::role_in(pool, project, user).await.unwrap(),
        None,
        "the removal is newer than the addition, whatever their sequences"
    );
    // The same for a role taken back.
    apply(role_event(user, "admin", 1, 5001)).await;
    assert!(directory::is_admin(pool, user).await.unwrap());
    apply(role_event(user, "member", 2, 4873)).await;
    apply(role_event(user, "admin", 1, 4874)).await;
    assert!(
        !directory::is_admin(pool, user).await.unwrap(),
        "the role was taken back"
    );
    databases.drop().await;
}
