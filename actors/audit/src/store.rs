//! The audit database: every query of this service.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use taskflow_runtime::access::{self, ByProject, Query, ReadableList, Reader, Statement};
use taskflow_runtime::consumer::ConsumedEvent;
use taskflow_schemas::audit::{AuditChange, AuditQuery, AuditRecord};
use uuid::Uuid;

macro_rules! columns {
    () => {
        "id, event_id, event_type, task_id, actor_id, correlation_id, causation_id, changes, payload, \
         occurred_at, recorded_at, stream, stream_seq"
    };
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    task_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    correlation_id: String,
    causation_id: Option<Uuid>,
    changes: Json<Vec<AuditChange>>,
    payload: Json<serde_json::Value>,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    stream: String,
    stream_seq: i64,
}

impl From<RecordRow> for AuditRecord {
    fn from(row: RecordRow) -> Self {
        AuditRecord {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            task_id: row.task_id,
            actor_id: row.actor_id,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            changes: row.changes.0,
            payload: row.payload.0,
            occurred_at: row.occurred_at,
            recorded_at: row.recorded_at,
            stream: row.stream,
            stream_seq: row.stream_seq,
        }
    }
}

/// One key for every audit writer: see [`insert_records`].
const RECORDING_ORDER_LOCK: i64 = 0x6175_6469_745f_7365;

/// Records the events, one multi-row statement; an event already recorded
/// (re-injected under a new consumer, say) is left as it was.
///
/// Writers take a transaction lock first, so the records' `recorded_seq`
/// values become visible in the order they were taken: a reader following
/// the trail by `recorded_seq` never has a record appear behind its cursor.
/// Call it last in the transaction: the lock is held until commit.
pub async fn insert_records(
    conn: &mut PgConnection,
    records: &[(&ConsumedEvent, Vec<AuditChange>)],
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RECORDING_ORDER_LOCK)
        .execute(&mut *conn)
        .await?;
    let mut columns = RecordColumns::default();
    for (event, changes) in records {
        let envelope = &event.envelope;
        columns.id.push(Uuid::now_v7());
        columns.event_id.push(envelope.event_id);
        columns.event_type.push(envelope.event_type.clone());
        columns.task_id.push(envelope.task_id);
        columns.actor_id.push(envelope.actor_id);
        columns.correlation_id.push(envelope.correlation_id.clone());
        columns.causation_id.push(envelope.causation_id);
        columns.changes.push(Json(changes));
        columns.payload.push(Json(&envelope.payload));
        columns.occurred_at.push(envelope.occurred_at);
        columns.stream.push(event.stream.clone());
        columns.stream_seq.push(event.stream_seq as i64);
        columns.project.push(project_of(envelope));
    }
    // A new record of a task in a project is placed with it (see
    // `place_moved`), and a project's own record in it, in the same
    // statement.
    sqlx::query(
        "WITH recorded AS (INSERT INTO audit_records (id, event_id, event_type, task_id, actor_id, \
         correlation_id, causation_id, changes, payload, occurred_at, stream, stream_seq) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::uuid[], \
         $8::jsonb[], $9::jsonb[], $10::timestamptz[], $11::text[], $12::bigint[]) \
         ON CONFLICT (event_id) DO NOTHING RETURNING recorded_seq, task_id, event_id) \
         INSERT INTO record_projects (recorded_seq, task_id, project_id) \
         SELECT recorded.recorded_seq, recorded.task_id, access_tasks.project_id \
         FROM recorded JOIN access_tasks ON access_tasks.task_id = recorded.task_id \
         WHERE access_tasks.project_id IS NOT NULL \
         UNION ALL \
         SELECT recorded.recorded_seq, NULL, own.project_id \
         FROM recorded JOIN unnest($2::uuid[], $13::uuid[]) AS own(event_id, project_id) \
           ON own.event_id = recorded.event_id \
         WHERE recorded.task_id IS NULL AND own.project_id IS NOT NULL",
    )
    .bind(&columns.id)
    .bind(&columns.event_id)
    .bind(&columns.event_type)
    .bind(&columns.task_id)
    .bind(&columns.actor_id)
    .bind(&columns.correlation_id)
    .bind(&columns.causation_id)
    .bind(&columns.changes)
    .bind(&columns.payload)
    .bind(&columns.occurred_at)
    .bind(&columns.stream)
    .bind(&columns.stream_seq)
    .bind(&columns.project)
    .execute(conn)
    .await?;
    Ok(())
}

/// Places every record of `tasks` (whose project changed) in their project
/// as the access rule now has it, or in none. Call it after the tasks'
/// readers are kept and before new records are inserted.
pub async fn place_moved(conn: &mut PgConnection, tasks: &[Uuid]) -> Result<(), sqlx::Error> {
    if tasks.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM record_projects WHERE task_id = ANY($1)")
        .bind(tasks)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO record_projects (recorded_seq, task_id, project_id) \
         SELECT r.recorded_seq, r.task_id, a.project_id \
         FROM audit_records r JOIN access_tasks a ON a.task_id = r.task_id \
         WHERE r.task_id = ANY($1) AND a.project_id IS NOT NULL",
    )
    .bind(tasks)
    .execute(conn)
    .await?;
    Ok(())
}

/// The rows of [`insert_records`], one vector per column.
#[derive(Default)]
struct RecordColumns<'a> {
    id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    task_id: Vec<Option<Uuid>>,
    actor_id: Vec<Option<Uuid>>,
    correlation_id: Vec<String>,
    causation_id: Vec<Option<Uuid>>,
    changes: Vec<Json<&'a Vec<AuditChange>>>,
    payload: Vec<Json<&'a serde_json::Value>>,
    occurred_at: Vec<DateTime<Utc>>,
    stream: Vec<String>,
    stream_seq: Vec<i64>,
    /// The project a project's own record belongs to.
    project: Vec<Option<Uuid>>,
}

/// The project of a project's own event (`project.*`, of no task).
fn project_of(envelope: &taskflow_schemas::EventEnvelope) -> Option<Uuid> {
    if envelope.task_id.is_some() || !envelope.event_type.starts_with("project.") {
        return None;
    }
    envelope.payload["project"]["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// A reader's own records that concern no task, which they see besides
/// those of the tasks they may read, less those of their projects (which
/// the project's branch of the page lists).
const OWN_RECORDS: &str = "audit_records.task_id IS NULL AND audit_records.actor_id = $1 \
     AND NOT EXISTS (SELECT 1 FROM record_projects rp \
       WHERE rp.recorded_seq = audit_records.recorded_seq AND rp.project_id = ANY($2))";

/// A project's own record, of a project the reader is a member of.
const PROJECT_RECORD: &str = "EXISTS (SELECT 1 FROM record_projects rp \
     WHERE rp.recorded_seq = audit_records.recorded_seq AND rp.task_id IS NULL \
       AND rp.project_id = ANY($2))";

/// A listed record and its place in recording order (a page's cursor). It
/// serializes as the record alone, so a page's size is the size of what
/// the client gets.
#[derive(serde::Serialize)]
pub struct ListedRecord {
    #[serde(skip)]
    pub recorded_seq: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// The records `reader` may see in recording order after `after`: those
/// of the tasks they may read now (the access rule's page,
/// [`ReadableList`]) and their own that concern no task.
pub async fn list(
    pool: &PgPool,
    reader: &Reader,
    query: &AuditQuery,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<ListedRecord>, sqlx::Error> {
    let rows: Vec<ListedRow> = list_statement(Statement::Run, reader, query, after, limit)
        .try_map(|row| ListedRow::from_row(&row))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ListedRecord {
            recorded_seq: row.recorded_seq,
            record: AuditRecord::from(row.record),
        })
        .collect())
}

/// The statement of [`list`], bound.
pub fn list_statement<'q>(
    statement: Statement,
    reader: &'q Reader,
    query: &'q AuditQuery,
    after: Option<i64>,
    limit: i64,
) -> Query<'q> {
    let sql = ReadableList {
        select: concat!("SELECT ", columns!(), ", recorded_seq FROM audit_records"),
        task_id: "audit_records.task_id",
        filters: "($3::bigint IS NULL OR recorded_seq > $3) \
         AND ($4::uuid IS NULL OR task_id = $4) \
         AND ($5::text IS NULL OR event_type = $5) \
         AND ($6::uuid IS NULL OR actor_id = $6) \
         AND ($7::text IS NULL OR correlation_id = $7) \
         AND ($8::timestamptz IS NULL OR occurred_at >= $8) \
         AND ($9::timestamptz IS NULL OR occurred_at < $9)",
        also: Some(OWN_RECORDS),
        order: "recorded_seq",
        limit: "$10",
        by_project: Some(ByProject {
            table: "record_projects",
            key: "recorded_seq",
            // A filter that picks few rows has an index to start from; a
            // page that picks by time or by nothing walks the project's.
            in_order: query.task_id.is_none()
                && query.event_type.is_none()
                && query.actor_id.is_none()
                && query.correlation_id.is_none(),
        }),
    }
    .sql(reader);
    reader
        .bind(access::unprepared(statement.of(sql)))
        .bind(after)
        .bind(query.task_id)
        .bind(query.event_type.as_deref())
        .bind(query.actor_id)
        .bind(query.correlation_id.as_deref())
        .bind(query.since)
        .bind(query.until)
        .bind(limit)
}

#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    record: RecordRow,
    recorded_seq: i64,
}

pub async fn get(
    pool: &PgPool,
    reader: &Reader,
    id: Uuid,
) -> Result<Option<AuditRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM audit_records WHERE id = $3 AND ({} OR ({OWN_RECORDS}) OR {PROJECT_RECORD})",
        columns!(),
        reader.row_condition("audit_records.task_id"),
    );
    let row: Option<RecordRow> = reader
        .bind(access::unprepared(sql))
        .bind(id)
        .try_map(|row| RecordRow::from_row(&row))
        .fetch_optional(pool)
        .await?;
    Ok(row.map(AuditRecord::from))
}
