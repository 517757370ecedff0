//! The tasks service writes plain creates that arrive together as one
//! group: one statement, one commit, each caller answered after it.
//!
//! A group is forced by holding a lock on the tasks table: the first create
//! waits on it, and those behind it queue for the next group.

use std::collections::HashSet;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use taskflow_schemas::commands::NewTask;
use taskflow_schemas::{ErrorBody, ErrorCode};
use taskflow_system_tests::{TestSystem, id_of, wait_until};
use taskflow_tasks::error::TasksError;
use taskflow_tasks::group_commit::CreateGroups;
use taskflow_tasks::service::{Caller, event_record};
use uuid::Uuid;

type Insert = Pin<Box<dyn Future<Output = Result<(), TasksError>> + Send>>;

/// A create as the service makes it, through `groups`.
fn create(groups: &CreateGroups, actor: Uuid, title: &str) -> (Uuid, Insert) {
    let new = NewTask {
        title: title.into(),
        ..Default::default()
    };
    let task = taskflow_tasks::rules::new_task(Uuid::now_v7(), actor, Utc::now(), new)
        .expect("a valid task");
    let caller = Caller::acting_on(actor, "group-commit".into(), Uuid::now_v7());
    let (_, record) = event_record(&caller, "task.created", &task, Default::default()).unwrap();
    let groups = groups.clone();
    let id = task.id;
    (
        id,
        Box::pin(async move { groups.insert(task, record).await }),
    )
}

/// Holds the tasks table against inserts until dropped or committed.
async fn lock_tasks(system: &TestSystem) -> PgConnection {
    let options = system.tasks().pool.connect_options();
    let mut blocker = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE tasks IN SHARE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    blocker
}

/// Waits until an insert into the tasks database waits on a lock.
async fn an_insert_waits(system: &TestSystem) {
    let database = system.settings.database_name("tasks");
    wait_until(
        "the first group to wait on the lock",
        Duration::from_secs(10),
        || async {
            let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&database)
        .fetch_one(&system.tasks().pool)
        .await
        .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await;
}

/// How many transactions wrote the tasks `ids`.
async fn transactions_of(system: &TestSystem, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM tasks WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(&system.tasks().pool)
        .await
        .unwrap()
}

/// Queues `inserts` behind the blocked group: a first poll puts each in the queue.
fn queue(inserts: &mut [Insert]) {
    for insert in inserts {
        assert!(
            insert.as_mut().now_or_never().is_none(),
            "waits for its group"
        );
    }
}

/// A first create writing while the tasks table is locked, and creates
/// queued behind it for the next group.
struct Stalled {
    blocker: PgConnection,
    first_id: Uuid,
    first: tokio::task::JoinHandle<Result<(), TasksError>>,
    ids: Vec<Uuid>,
    queued: Vec<Insert>,
}

async fn stall_a_group(system: &TestSystem, groups: &CreateGroups, titles: &[String]) -> Stalled {
    let actor = Uuid::now_v7();
    let blocker = lock_tasks(system).await;
    let (first_id, first) = create(groups, actor, "first");
    let first = tokio::spawn(first);
    an_insert_waits(system).await;
    let (ids, mut queued): (Vec<Uuid>, Vec<Insert>) = titles
        .iter()
        .map(|title| create(groups, actor, title))
        .unzip();
    queue(&mut queued);
    Stalled {
        blocker,
        first_id,
        first,
        ids,
        queued,
    }
}

impl Stalled {
    /// Lets the first group's insert go on.
    async fn release(&mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.blocker)
            .await
            .unwrap();
    }
}

fn titles(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix} {n}")).collect()
}

#[tokio::test]
async fn creates_that_arrive_during_a_commit_share_the_next_one() {
    let system = TestSystem::spawn().await;
    let groups = CreateGroups::new(system.tasks().pool.clone());
    let mut stalled = stall_a_group(&system, &groups, &titles("queued", 20)).await;
    stalled.release().await;
    let Stalled {
        first_id,
        first,
        ids,
        queued,
        ..
    } = stalled;

    first.await.unwrap().expect("the first create commits");
    for outcome in futures::future::join_all(queued).await {
        outcome.expect("every queued create commits");
    }
    assert_eq!(transactions_of(&system, &[first_id]).await, 1);
    assert_eq!(
        transactions_of(&system, &ids).await,
        1,
        "the 20 share one commit"
    );
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE convert_from(body, 'UTF8')::jsonb->>'task_id' = ANY($1)",
    )
    .bind(ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .fetch_one(&system.tasks().pool)
    .await
    .unwrap();
    assert_eq!(events, 20, "each task's event is in the outbox once");
    system.stop().await;
}

#[tokio::test]
async fn a_group_the_database_refuses_is_written_one_by_one_and_only_the_bad_create_fails() {
    let system = TestSystem::spawn().await;
    let groups = CreateGroups::new(system.tasks().pool.clone());
    // The API refuses NUL before this point; here it reaches Postgres, which
    // refuses it too, failing the whole statement.
    let mut queued_titles = titles("good", 5);
    queued_titles.insert(2, "bad \0 title".into());
    let mut stalled = stall_a_group(&system, &groups, &queued_titles).await;
    stalled.release().await;
    let Stalled {
        first,
        mut ids,
        queued,
        ..
    } = stalled;
    let bad_id = ids.remove(2);

    first.await.unwrap().expect("the first create commits");
    let mut outcomes = futures::future::join_all(queued).await;
    let refused = outcomes.remove(2).expect_err("the NUL title is refused");
    let body: ErrorBody = refused.into_body();
    assert_eq!(body.code, ErrorCode::ValidationFailed, "{body:?}");
    for outcome in outcomes {
        outcome.expect("the others commit");
    }
    assert_eq!(
        transactions_of(&system, &[bad_id]).await,
        0,
        "nothing of it is stored"
    );
    assert_eq!(transactions_of(&system, &ids).await, 5, "one commit each");
    system.stop().await;
}

#[tokio::test]
async fn concurrent_creates_through_http_are_each_stored_and_published_once() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let replies = futures::future::join_all((0..48).map(|n| {
        system.call(
            Method::POST,
            "/api/v1/tasks",
            Some(&ada.token),
            Some(json!({"title": format!("concurrent {n}"), "labels": ["x", "y"]})),
        )
    }))
    .await;
    let mut ids = HashSet::new();
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let read = system
            .call(
                Method::GET,
                &format!("/api/v1/tasks/{}", id_of(&reply.body)),
                Some(&ada.token),
                None,
            )
            .await;
        assert_eq!(read.body, reply.body, "the reply is what was stored");
        ids.insert(id_of(&reply.body));
    }
    assert_eq!(ids.len(), 48);
    let events = system.wait_for_events("TASKS", 48).await;
    let published: HashSet<Uuid> = events
        .iter()
        .filter_map(|event| event.envelope.task_id)
        .collect();
    assert_eq!(published, ids, "each create's event once");
    system.stop().await;
}

#[tokio::test]
async fn a_group_whose_connection_is_killed_mid_write_fails_alone_and_the_next_group_goes_through()
{
    let system = TestSystem::spawn().await;
    let groups = CreateGroups::new(system.tasks().pool.clone());
    let mut stalled = stall_a_group(&system, &groups, &titles("queued", 3)).await;
    // What a database restart does to the session writing the first group.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND wait_event_type = 'Lock'",
    )
    .bind(system.settings.database_name("tasks"))
    .fetch_all(&system.tasks().pool)
    .await
    .unwrap();
    assert_eq!(killed, vec![true]);

    let refused = (&mut stalled.first)
        .await
        .unwrap()
        .expect_err("its connection died");
    let body = refused.into_body();
    assert_eq!(body.code, ErrorCode::ServiceUnavailable, "{body:?}");
    stalled.release().await;
    for outcome in futures::future::join_all(stalled.queued).await {
        outcome.expect("the next group commits on a live connection");
    }
    assert_eq!(transactions_of(&system, &[stalled.first_id]).await, 0);
    assert_eq!(transactions_of(&system, &stalled.ids).await, 1);
    system.stop().await;
}
