//! The statements a service runs again and again on its long-lived
//! connections stay index lookups as their tables grow. A connection
//! prepares each statement once; after a few runs Postgres may keep one
//! generic plan for it, made for the table as it was: a scan of a table of
//! three rows is the cheapest plan then, and stays the plan at 200,000
//! rows until the table is analyzed again. Each test runs the service's own
//! code on a small analyzed table, grows the table, and asks the same
//! connection how it would run the same prepared statement now.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use taskflow_schemas::task::Task;
use taskflow_system_tests::fixtures::task_created;
use taskflow_system_tests::service_databases::ServiceDatabases;
use uuid::Uuid;

const GROWN_TO: i64 = 200_000;

async fn run(connection: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// How `connection` would run its prepared statement that starts with
/// `start`, given `arguments` (SQL literals).
async fn prepared_plan(connection: &mut PgConnection, start: &str, arguments: &str) -> Value {
    let name: String = sqlx::query_scalar(
        "SELECT name FROM pg_prepared_statements WHERE starts_with(statement, $1)",
    )
    .bind(start)
    .fetch_one(&mut *connection)
    .await
    .unwrap_or_else(|error| panic!("no prepared statement starts with {start:?}: {error}"));
    let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE {name}({arguments})");
    let plan: sqlx::types::Json<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .persistent(false)
        .fetch_one(&mut *connection)
        .await
        .expect("the plan");
    plan.0[0]["Plan"].clone()
}

/// The first sequential scan in `plan`, if any.
fn sequential_scan(plan: &Value) -> Option<String> {
    if plan["Node Type"] == "Seq Scan" {
        return Some(plan["Relation Name"].as_str().unwrap_or("?").to_owned());
    }
    plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(sequential_scan)
}

fn assert_index_lookup(what: &str, plan: &Value) {
    if let Some(table) = sequential_scan(plan) {
        panic!(
            "{what} reads all of {table} after it grew:\n{}",
            serde_json::to_string_pretty(plan).unwrap_or_default()
        );
    }
}

/// One connection of the service's pool, as the service makes them.
async fn connection(pool: &PgPool) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    pool.acquire().await.expect("a connection")
}

// A unique index on a pending reminder's task makes this one a lookup
// whatever the plan cache does; held to it all the same, as the hottest
// statement of the scheduler.
#[tokio::test]
async fn a_reminder_reconciled_on_a_grown_table_is_found_by_its_task() {
    let databases = ServiceDatabases::connect(2).await;
    let mut connection = connection(&databases.scheduler).await;
    run(
        &mut connection,
        "INSERT INTO reminders (id, task_id, fire_at, status, task, cause_event_id, correlation_id) \
         SELECT gen_random_uuid(), gen_random_uuid(), now() + interval '1 day', 'pending', '{}', \
           gen_random_uuid(), 'seed' FROM generate_series(1, 3); \
         ANALYZE reminders",
    )
    .await;
    for n in 0..8 {
        let event = task_created(Uuid::now_v7(), &format!("task {n}"), "hot-plans");
        let task: Task = serde_json::from_value(event.payload["task"].clone()).unwrap();
        taskflow_scheduler::reminders::reconcile(&mut connection, &task, None, &event)
            .await
            .expect("a reminder reconciled");
    }
    run(
        &mut connection,
        &format!(
            "INSERT INTO reminders (id, task_id, fire_at, status, task, cause_event_id, correlation_id) \
             SELECT gen_random_uuid(), gen_random_uuid(), now() + interval '1 day', 'pending', '{{}}', \
               gen_random_uuid(), 'seed' FROM generate_series(1, {GROWN_TO})"
        ),
    )
    .await;
    let plan = prepared_plan(
        &mut connection,
        "UPDATE reminders SET status = 'cancelled'",
        &format!("'{}', NULL", Uuid::now_v7()),
    )
    .await;
    assert_index_lookup("cancelling a task's reminders", &plan);
    drop(connection);
    databases.drop().await;
}

#[tokio::test]
async fn the_relay_marks_a_batch_of_a_grown_outbox_by_its_ids() {
    let databases = ServiceDatabases::connect(2).await;
    let mut connection = connection(&databases.tasks).await;
    let seed = |rows: i64| {
        format!(
            "INSERT INTO outbox (event_id, subject, body, request_id, created_at) \
             SELECT gen_random_uuid(), 'tasks.x', '\\x00', 'seed', now() \
             FROM generate_series(1, {rows})"
        )
    };
    run(&mut connection, &(seed(3) + "; ANALYZE outbox")).await;
    for id in 1..=8_i64 {
        sqlx::query(taskflow_runtime::outbox::MARK_PUBLISHED)
            .bind(vec![id])
            .bind(vec![id])
            .bind(vec!["TASKS"])
            .execute(&mut *connection)
            .await
            .expect("a batch marked");
    }
    run(&mut connection, &seed(GROWN_TO)).await;
    let plan = prepared_plan(
        &mut connection,
        "UPDATE outbox SET published_at",
        "'{5,6}', '{5,6}', '{TASKS,TASKS}'",
    )
    .await;
    assert_index_lookup("marking a batch published", &plan);
    drop(connection);
    databases.drop().await;
}

#[tokio::test]
async fn the_search_for_a_lost_tail_reads_the_outbox_by_an_index() {
    let databases = ServiceDatabases::connect(2).await;
    let mut connection = connection(&databases.tasks).await;
    run(
        &mut connection,
        &format!(
            "INSERT INTO outbox (event_id, subject, body, request_id, created_at, published_at, stream, stream_seq) \
             SELECT gen_random_uuid(), 'tasks.x', '\\x00', 'seed', now(), now(), 'TASKS', i \
             FROM generate_series(1, {GROWN_TO}) i; \
             ANALYZE outbox"
        ),
    )
    .await;
    for (what, statement) in taskflow_runtime::outbox::LOST_TAIL_LOOKUPS {
        let explain = format!(
            "EXPLAIN (FORMAT JSON) {}",
            statement
                .replace("$1", "'TASKS'")
                .replace("$2", &(GROWN_TO / 2).to_string())
        );
        let plan: sqlx::types::Json<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
            .fetch_one(&mut *connection)
            .await
            .expect("the plan");
        assert_index_lookup(what, &plan.0[0]["Plan"]);
    }
    drop(connection);
    databases.drop().await;
}
