//! The tasks database: every query of this service, and nothing else.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use taskflow_runtime::access::{
    self, Query, ReadableList, Reader, ReadersColumns, Statement, TaskReaders,
};
use taskflow_runtime::outbox::OutboxRecord;
use taskflow_schemas::commands::TaskQuery;
use taskflow_schemas::task::{Priority, Recurrence, Task, TaskStatus};
use uuid::Uuid;

macro_rules! columns {
    () => {
        "id, project_id, title, description, status, priority, labels, creator_id, assignee_id, \
         observer_ids, due_date, reminder_time, reminder_offset_minutes, recurrence, series_id, \
         version, created_at, updated_at, completed_at"
    };
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    project_id: Option<Uuid>,
    title: String,
    description: Option<String>,
    status: String,
    priority: String,
    labels: Vec<String>,
    creator_id: Uuid,
    assignee_id: Option<Uuid>,
    observer_ids: Vec<Uuid>,
    due_date: Option<DateTime<Utc>>,
    reminder_time: Option<DateTime<Utc>>,
    reminder_offset_minutes: Option<i32>,
    recurrence: Option<Json<Recurrence>>,
    series_id: Option<Uuid>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl From<TaskRow> for Task {
    fn from(row: TaskRow) -> Self {
        Task {
            id: row.id,
            project_id: row.project_id,
            title: row.title,
            description: row.description,
            // The table's CHECK constraints admit only known values.
            status: TaskStatus::parse(&row.status).unwrap_or(TaskStatus::Pending),
            priority: Priority::parse(&row.priority).unwrap_or_default(),
            labels: row.labels,
            creator_id: row.creator_id,
            assignee_id: row.assignee_id,
            observer_ids: row.observer_ids,
            due_date: row.due_date,
            reminder_time: row.reminder_time,
            reminder_offset_minutes: row.reminder_offset_minutes,
            recurrence: row.recurrence.map(|json| json.0),
            series_id: row.series_id,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            completed_at: row.completed_at,
        }
    }
}

macro_rules! insert_task {
    () => {
        concat!(
            "INSERT INTO tasks (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        )
    };
}

/// Inserts the task, its readers and its event in one statement (one
/// round trip, one commit), and with an `Idempotency-Key` the key, its
/// request and the response beside them.
pub async fn insert_with_event(
    conn: impl PgExecutor<'_>,
    task: &Task,
    event: &OutboxRecord,
    key: Option<&IdempotentCreate<'_>>,
) -> Result<(), sqlx::Error> {
    let query = match key {
        None => sqlx::query(concat!(
            "WITH task AS (",
            insert_task!(),
            "), ",
            taskflow_runtime::access_keep!("$25", "$26", "$27", "$28", "$29"),
            " ",
            taskflow_runtime::outbox_insert!(),
            "($20, $21, $22, $23, $24)"
        )),
        Some(_) => sqlx::query(concat!(
            "WITH task AS (",
            insert_task!(),
            "), ",
            taskflow_runtime::access_keep!("$25", "$26", "$27", "$28", "$29"),
            ", key AS (INSERT INTO idempotency_keys (user_id, key, request, response, completed_at) \
             VALUES ($30, $31, $32, $33, now()) ON CONFLICT (user_id, key) DO UPDATE \
             SET request = EXCLUDED.request, response = EXCLUDED.response, \
             completed_at = EXCLUDED.completed_at) ",
            taskflow_runtime::outbox_insert!(),
            "($20, $21, $22, $23, $24)"
        )),
    };
    let readers = ReadersColumns::of([&TaskReaders::of(task)]);
    let query = readers.bind(event.bind(bind_task(query, task)));
    let query = match key {
        None => query,
        Some(key) => query
            .bind(key.user)
            .bind(key.key)
            .bind(Json(key.request))
            .bind(Json(key.response)),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Inserts many tasks, their readers and their events in one statement:
/// one round trip and one commit for a whole group (see `group_commit`).
/// The tasks go as one JSON array, whose fields are the table's columns;
/// their readers as another; the events as arrays.
pub async fn insert_many_with_events(
    conn: impl PgExecutor<'_>,
    tasks: &[&Task],
    events: &[&OutboxRecord],
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(concat!(
        "WITH task AS (INSERT INTO tasks (",
        columns!(),
        ") SELECT ",
        columns!(),
        " FROM jsonb_populate_recordset(NULL::tasks, $6)), ",
        taskflow_runtime::access_keep!("$7", "$8", "$9", "$10", "$11"),
        " ",
        taskflow_runtime::outbox_insert_many!()
    ));
    let readers: Vec<TaskReaders> = tasks.iter().map(|task| TaskReaders::of(task)).collect();
    let readers = ReadersColumns::of(&readers);
    let query = OutboxRecord::bind_many(query, events).bind(Json(tasks));
    readers.bind(query).execute(conn).await?;
    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds every column of the task, in `columns!()` order.
fn bind_task<'q>(query: PgQuery<'q>, task: &'q Task) -> PgQuery<'q> {
    query
        .bind(task.id)
        .bind(task.project_id)
        .bind(&task.title)
        .bind(&task.description)
        .bind(task.status.as_str())
        .bind(task.priority.as_str())
        .bind(&task.labels)
        .bind(task.creator_id)
        .bind(task.assignee_id)
        .bind(&task.observer_ids)
        .bind(task.due_date)
        .bind(task.reminder_time)
        .bind(task.reminder_offset_minutes)
        .bind(task.recurrence.as_ref().map(Json))
        .bind(task.series_id)
        .bind(task.version)
        .bind(task.created_at)
        .bind(task.updated_at)
        .bind(task.completed_at)
}

/// Writes every field of `task`, which was read `FOR UPDATE` in this
/// transaction (id, creator and creation time are written back unchanged),
/// and who may read it now.
pub async fn update(conn: &mut PgConnection, task: &Task) -> Result<(), sqlx::Error> {
    let query = sqlx::query(concat!(
        "UPDATE tasks SET (",
        columns!(),
        ") = ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) WHERE id = $1"
    ));
    bind_task(query, task).execute(&mut *conn).await?;
    access::keep(conn, &[TaskReaders::of(task)]).await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    access::forget(conn, &[id]).await
}

/// Locks every task of `project` until the transaction ends.
pub async fn lock_project(conn: &mut PgConnection, project: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT id FROM tasks WHERE project_id = $1 FOR UPDATE")
        .bind(project)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes every task of `project`, and returns them as they were.
pub async fn delete_project(
    conn: &mut PgConnection,
    project: Uuid,
) -> Result<Vec<Task>, sqlx::Error> {
    let rows: Vec<TaskRow> = sqlx::query_as(concat!(
        "DELETE FROM tasks WHERE project_id = $1 RETURNING ",
        columns!()
    ))
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    access::forget(conn, &ids).await?;
    Ok(rows.into_iter().map(Task::from).collect())
}

pub async fn find(conn: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Task>, sqlx::Error> {
    let row: Option<TaskRow> =
        sqlx::query_as(concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(Task::from))
}

/// Reads the task and locks it until the transaction ends, so the changes
/// of one task (and their outbox rows) are serialized.
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Task>, sqlx::Error> {
    let row: Option<TaskRow> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Task::from))
}

/// The tasks `reader` may read that match `query`, newest first, after the
/// task `after` (the cursor), at most `limit`: the access rule's page
/// ([`ReadableList`]) over the filters, each served by an index.
pub async fn list(
    pool: &PgPool,
    reader: &Reader,
    query: &TaskQuery,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Task>, sqlx::Error> {
    let rows: Vec<TaskRow> = list_statement(Statement::Run, reader, query, after, limit)
        .try_map(|row| TaskRow::from_row(&row))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Task::from).collect())
}

/// The statement of [`list`], bound.
pub fn list_statement<'q>(
    statement: Statement,
    reader: &'q Reader,
    query: &'q TaskQuery,
    after: Option<Uuid>,
    limit: i64,
) -> Query<'q> {
    let sql = ReadableList {
        select: concat!("SELECT ", columns!(), " FROM tasks"),
        task_id: "tasks.id",
        filters: "($3::uuid IS NULL OR id < $3) \
          AND ($4::text IS NULL OR status = $4) \
          AND ($5::text IS NULL OR priority = $5) \
          AND ($6::uuid IS NULL OR assignee_id = $6) \
          AND ($7::uuid IS NULL OR project_id = $7) \
          AND ($8::timestamptz IS NULL OR due_date < $8) \
          AND ($9::timestamptz IS NULL OR due_date >= $9) \
          AND ($10::text IS NULL OR title ILIKE $10 OR description ILIKE $10)",
        also: None,
        order: "id DESC",
        limit: "$11",
        by_project: None,
    }
    .sql(reader);
    reader
        .bind(access::unprepared(statement.of(sql)))
        .bind(after)
        .bind(query.status.map(TaskStatus::as_str))
        .bind(query.priority.map(Priority::as_str))
        .bind(query.assignee_id)
        .bind(query.project_id)
        .bind(query.due_before)
        .bind(query.due_after)
        .bind(query.q.as_deref().map(contains_pattern))
        .bind(limit)
}

/// An `ILIKE` pattern that finds `text` anywhere, its own `%`, `_` and `\`
/// taken as they are (trigram indexes serve it: migrations/tasks/0004).
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A create made once per `Idempotency-Key`: whose key, the request it
/// must come with again, and the response a retry gets.
pub struct IdempotentCreate<'a> {
    pub user: Uuid,
    pub key: &'a str,
    pub request: &'a serde_json::Value,
    pub response: &'a serde_json::Value,
}

/// Takes `user`'s `key` until the transaction ends; `false` while another
/// transaction holds it (a request with the same key in flight). Postgres
/// lets go of it when the transaction ends, however it ends, and when the
/// connection dies with the process that held it.
pub async fn lock_key(conn: &mut PgConnection, user: Uuid, key: &str) -> Result<bool, sqlx::Error> {
    let (high, _) = Uuid::new_v5(&user, key.as_bytes()).as_u64_pair();
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(high as i64)
        .fetch_one(conn)
        .await
}

/// A key used before: the request it came with and the response it got.
pub struct UsedKey {
    pub request: serde_json::Value,
    pub response: Option<serde_json::Value>,
}

pub async fn used_key(
    conn: &mut PgConnection,
    user: Uuid,
    key: &str,
) -> Result<Option<UsedKey>, sqlx::Error> {
    let row: Option<(Json<serde_json::Value>, Option<Json<serde_json::Value>>)> = sqlx::query_as(
        "SELECT request, response FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(request, response)| UsedKey {
        request: request.0,
        response: response.map(|json| json.0),
    }))
}
