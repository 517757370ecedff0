//! Every list of every service stays a bounded index scan as its tables
//! grow: each list's very statement, with the values a request gives it, is
//! planned by Postgres against tables seeded with tens of thousands of rows
//! (a reader of most of them, one of a few, a project member, an admin),
//! and no plan may read a large table from end to end.

use serde_json::Value;
use sqlx::PgPool;
use taskflow_runtime::access::{Query, Reader, Statement};
use taskflow_schemas::audit::AuditQuery;
use taskflow_schemas::commands::TaskQuery;
use taskflow_schemas::notification::{NotificationQuery, NotificationStatus};
use taskflow_schemas::schedule::ScheduleQuery;
use taskflow_schemas::task::{Priority, TaskStatus};
use taskflow_system_tests::service_databases::ServiceDatabases;
use uuid::Uuid;

/// Tables that grow with use; a sequential scan of one fails the test.
const LARGE: [&str; 7] = [
    "tasks",
    "access_tasks",
    "access_named",
    "audit_records",
    "reminders",
    "series",
    "notifications",
];
const ROWS: i64 = 200_000;
const PAGE: i64 = 51;

const DENSE: Uuid = Uuid::from_u128(0xa1);
const SPARSE: Uuid = Uuid::from_u128(0xa2);
const MEMBER: Uuid = Uuid::from_u128(0xa3);
const PROJECT: Uuid = Uuid::from_u128(0xb1);

/// `ROWS` tasks (one in 1,200 of `SPARSE`, one in 6 in `PROJECT`, the rest
/// `DENSE`'s own), their access rows, and `MEMBER` in `PROJECT`; each
/// database adds its own rows of those tasks.
const SEED_ACCESS: &str = "
    CREATE TEMPORARY TABLE seed AS
    SELECT i,
        ('01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS id,
        CASE WHEN i % 6 = 0 THEN '00000000-0000-0000-0000-0000000000b1'::uuid END AS project_id,
        CASE WHEN i % 1200 = 5 THEN '00000000-0000-0000-0000-0000000000a2'::uuid
             ELSE '00000000-0000-0000-0000-0000000000a1'::uuid END AS creator_id
    FROM generate_series(1, $1::bigint) i;
    INSERT INTO access_tasks (task_id, project_id, version) SELECT id, project_id, 1 FROM seed;
    INSERT INTO access_named (user_id, task_id) SELECT creator_id, id FROM seed WHERE project_id IS NULL;
    INSERT INTO directory_users (user_id) VALUES
        ('00000000-0000-0000-0000-0000000000a1'), ('00000000-0000-0000-0000-0000000000a2'),
        ('00000000-0000-0000-0000-0000000000a3');
    INSERT INTO directory_projects (project_id) VALUES ('00000000-0000-0000-0000-0000000000b1');
    INSERT INTO directory_members (project_id, user_id, role, seq) VALUES
        ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a3', 'member', 1);
";

const SEED_TASKS: &str = "
    INSERT INTO tasks (id, project_id, title, description, status, priority, creator_id,
        assignee_id, version, created_at, updated_at, due_date)
    SELECT id, project_id,
        'task number ' || i || CASE WHEN i % 100000 = 7 THEN ' needle' ELSE '' END,
        CASE WHEN i % 3 = 0 THEN 'a description of task ' || i END,
        CASE WHEN i % 100000 = 7 THEN 'pending' WHEN i % 2 = 0 THEN 'complete' ELSE 'in_progress' END,
        CASE WHEN i % 100000 = 7 THEN 'urgent' ELSE 'medium' END,
        creator_id, CASE WHEN i % 10 = 0 THEN creator_id END, 1, now(), now(),
        CASE WHEN i % 4 = 0 THEN '2031-01-01'::timestamptz END
    FROM seed;
";

const SEED_AUDIT: &str = "
    INSERT INTO audit_records (id, event_id, event_type, task_id, actor_id, correlation_id,
        changes, payload, occurred_at, stream, stream_seq)
    SELECT gen_random_uuid(), gen_random_uuid(),
        CASE WHEN i % 100000 = 7 THEN 'task.completed' ELSE 'task.created' END,
        id, creator_id, 'request-' || i, '[]', '{}', now() - (i || ' seconds')::interval,
        'TASKS', i
    FROM seed;
    INSERT INTO audit_records (id, event_id, event_type, task_id, actor_id, correlation_id,
        changes, payload, occurred_at, stream, stream_seq)
    SELECT gen_random_uuid(), gen_random_uuid(), 'user.updated', NULL,
        '00000000-0000-0000-0000-0000000000a1', 'profile-' || i, '[]', '{}', now(), 'AUDIT', i
    FROM generate_series(1, 2000) i;
";

const SEED_SCHEDULER: &str = "
    INSERT INTO reminders (id, task_id, fire_at, status, task, cause_event_id, correlation_id)
    SELECT gen_random_uuid(), id, now() + (i || ' seconds')::interval,
        CASE WHEN i % 3 = 0 THEN 'pending' ELSE 'fired' END,
        jsonb_build_object('title', 'task number ' || i), gen_random_uuid(), 'request-' || i
    FROM seed;
    INSERT INTO series (id, current_task_id, title, recurrence, anchor_day, anchor_time, timezone,
        is_active, current_due)
    SELECT gen_random_uuid(), id, 'task number ' || i,
        '{\"frequency\": \"daily\", \"interval\": 1, \"anchor\": \"due\"}', 1, '09:00', 'UTC',
        i % 2 = 0, now()
    FROM seed WHERE i % 10 = 0;
";

const SEED_NOTIFIER: &str = "
    INSERT INTO notifications (id, recipient_id, task_id, kind, channel, status, message,
        source_event_id, correlation_id)
    SELECT gen_random_uuid(), recipient, id, 'assigned', 'in_app',
        CASE WHEN i % 100000 = 7 THEN 'failed' ELSE 'sent' END, 'a notice', gen_random_uuid(),
        'request-' || i
    FROM seed, unnest(ARRAY[creator_id, '00000000-0000-0000-0000-0000000000a3'::uuid]) recipient;
";

async fn seed(pool: &PgPool, own: &str) {
    let access = SEED_ACCESS.replace("$1::bigint", &ROWS.to_string());
    let mut conn = pool.acquire().await.expect("a connection");
    for sql in [access.as_str(), own, "ANALYZE"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *conn)
            .await
            .expect("the seed");
    }
}

/// Readers a list is asked by.
fn readers() -> Vec<(&'static str, Reader)> {
    let member = |user| Reader::Member {
        user,
        projects: Vec::new(),
    };
    vec![
        ("a reader of most rows", member(DENSE)),
        ("a reader of few rows", member(SPARSE)),
        (
            "a project member",
            Reader::Member {
                user: MEMBER,
                projects: vec![PROJECT],
            },
        ),
        ("an admin", Reader::Admin),
    ]
}

/// The first sequential scan of a large table in `plan`, if any.
fn full_scan(plan: &Value) -> Option<String> {
    if plan["Node Type"] == "Seq Scan"
        && let Some(table) = plan["Relation Name"].as_str()
        && LARGE.contains(&table)
    {
        return Some(table.to_owned());
    }
    plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(full_scan)
}

async fn assert_indexed(pool: &PgPool, what: &str, statement: Query<'_>) {
    let row: (sqlx::types::Json<Value>,) = statement
        .try_map(|row| sqlx::FromRow::from_row(&row))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    let plan = &row.0.0[0]["Plan"];
    if let Some(table) = full_scan(plan) {
        panic!(
            "{what} reads all of {table}:\n{}",
            serde_json::to_string_pretty(plan).unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn every_list_of_every_service_is_an_index_scan_as_its_tables_grow() {
    let databases = ServiceDatabases::connect(2).await;
    seed(&databases.tasks, SEED_TASKS).await;
    seed(&databases.audit, SEED_AUDIT).await;
    seed(&databases.scheduler, SEED_SCHEDULER).await;
    seed(&databases.notifier, SEED_NOTIFIER).await;
    let explain = Statement::Explain;
    let some_task: Uuid = sqlx::query_scalar("SELECT id FROM tasks ORDER BY id LIMIT 1 OFFSET 100")
        .fetch_one(&databases.tasks)
        .await
        .expect("a task");
    let cursor = Some(some_task);
    let year =
        |y: i32| Some(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, y, 1, 1, 0, 0, 0).unwrap());
    let tasks = [
        ("", TaskQuery::default()),
        (
            "pending and urgent",
            TaskQuery {
                status: Some(TaskStatus::Pending),
                priority: Some(Priority::Urgent),
                ..Default::default()
            },
        ),
        (
            "complete",
            TaskQuery {
                status: Some(TaskStatus::Complete),
                ..Default::default()
            },
        ),
        (
            "due before 2030",
            TaskQuery {
                due_before: year(2030),
                ..Default::default()
            },
        ),
        (
            "due after 2030",
            TaskQuery {
                due_after: year(2030),
                ..Default::default()
            },
        ),
        (
            "assigned",
            TaskQuery {
                assignee_id: Some(DENSE),
                ..Default::default()
            },
        ),
        (
            "in the project",
            TaskQuery {
                project_id: Some(PROJECT),
                ..Default::default()
            },
        ),
        (
            "searched",
            TaskQuery {
                q: Some("needle".into()),
                ..Default::default()
            },
        ),
        (
            "searched, no match",
            TaskQuery {
                q: Some("zzzznomatch".into()),
                ..Default::default()
            },
        ),
    ];
    for (who, reader) in readers() {
        for (filter, query) in &tasks {
            for after in [None, cursor] {
                let what = format!("tasks {filter} for {who} (after {after:?})");
                let statement =
                    taskflow_tasks::store::list_statement(explain, &reader, query, after, PAGE);
                assert_indexed(&databases.tasks, &what, statement).await;
            }
        }
        let audits = [
            ("", AuditQuery::default()),
            (
                "of a task",
                AuditQuery {
                    task_id: Some(some_task),
                    ..Default::default()
                },
            ),
            (
                "of a type",
                AuditQuery {
                    event_type: Some("task.completed".into()),
                    ..Default::default()
                },
            ),
            (
                "of an actor",
                AuditQuery {
                    actor_id: Some(SPARSE),
                    ..Default::default()
                },
            ),
            (
                "of a request",
                AuditQuery {
                    correlation_id: Some("request-77".into()),
                    ..Default::default()
                },
            ),
            (
                "since a moment",
                AuditQuery {
                    since: Some(chrono::Utc::now() - chrono::Duration::seconds(30)),
                    ..Default::default()
                },
            ),
        ];
        for (filter, query) in &audits {
            for after in [None, Some(ROWS / 2)] {
                let what = format!("audit {filter} for {who} (after {after:?})");
                let statement =
                    taskflow_audit::store::list_statement(explain, &reader, query, after, PAGE);
                assert_indexed(&databases.audit, &what, statement).await;
            }
        }
        for (filter, query) in [
            ("", ScheduleQuery::default()),
            (
                "active",
                ScheduleQuery {
                    is_active: Some(true),
                    ..Default::default()
                },
            ),
            (
                "of a task",
                ScheduleQuery {
                    task_id: Some(some_task),
                    ..Default::default()
                },
            ),
        ] {
            let what = format!("schedules {filter} for {who}");
            let statement =
                taskflow_scheduler::queries::page_statement(explain, &reader, &query, None, PAGE);
            assert_indexed(&databases.scheduler, &what, statement).await;
        }
        let recipient = match &reader {
            Reader::Member { user, .. } => *user,
            Reader::Admin => DENSE,
        };
        for (filter, query) in [
            ("", NotificationQuery::default()),
            (
                "unread",
                NotificationQuery {
                    unread: Some(true),
                    ..Default::default()
                },
            ),
            (
                "failed",
                NotificationQuery {
                    status: Some(NotificationStatus::Failed),
                    ..Default::default()
                },
            ),
        ] {
            let what = format!("notifications {filter} for {who}");
            let statement = taskflow_notifier::store::list_statement(
                explain, &reader, recipient, &query, None, PAGE,
            );
            assert_indexed(&databases.notifier, &what, statement).await;
        }
    }
    databases.drop().await;
}
