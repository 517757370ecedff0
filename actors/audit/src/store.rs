//! The audit database: every query of this service.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
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

/// Records the event; an event already recorded (re-injected under a new
/// consumer, say) is left as it was.
pub async fn insert_record(
    conn: &mut PgConnection,
    event: &ConsumedEvent,
    changes: &[AuditChange],
) -> Result<(), sqlx::Error> {
    let envelope = &event.envelope;
    sqlx::query(
        "INSERT INTO audit_records (id, event_id, event_type, task_id, actor_id, correlation_id, causation_id, \
         changes, payload, occurred_at, stream, stream_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(envelope.event_id)
    .bind(&envelope.event_type)
    .bind(envelope.task_id)
    .bind(envelope.actor_id)
    .bind(&envelope.correlation_id)
    .bind(envelope.causation_id)
    .bind(Json(changes))
    .bind(Json(&envelope.payload))
    .bind(envelope.occurred_at)
    .bind(&event.stream)
    .bind(event.stream_seq as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Who may read the task's records, unless a newer version already said so.
pub async fn set_task_readers(
    conn: &mut PgConnection,
    task_id: Uuid,
    readers: &[Uuid],
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO task_access (task_id, readers, version) VALUES ($1, $2, $3) \
         ON CONFLICT (task_id) DO UPDATE SET readers = EXCLUDED.readers, version = EXCLUDED.version \
         WHERE task_access.version <= EXCLUDED.version",
    )
    .bind(task_id)
    .bind(readers)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// The records `reader` may see (all for `None`, an admin): records of tasks
/// they can read, and their own records that concern no task.
const VISIBLE: &str = "($1::uuid IS NULL \
     OR task_id IN (SELECT task_id FROM task_access WHERE $1 = ANY(readers)) \
     OR (task_id IS NULL AND actor_id = $1))";

pub async fn list(
    pool: &PgPool,
    reader: Option<Uuid>,
    query: &AuditQuery,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM audit_records WHERE {VISIBLE} \
         AND ($2::uuid IS NULL OR event_id > $2) \
         AND ($3::uuid IS NULL OR task_id = $3) \
         AND ($4::text IS NULL OR event_type = $4) \
         AND ($5::uuid IS NULL OR actor_id = $5) \
         AND ($6::text IS NULL OR correlation_id = $6) \
         AND ($7::timestamptz IS NULL OR occurred_at >= $7) \
         AND ($8::timestamptz IS NULL OR occurred_at < $8) \
         ORDER BY event_id LIMIT $9",
        columns!()
    );
    let rows: Vec<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(reader)
        .bind(after)
        .bind(query.task_id)
        .bind(query.event_type.as_deref())
        .bind(query.actor_id)
        .bind(query.correlation_id.as_deref())
        .bind(query.since)
        .bind(query.until)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(AuditRecord::from).collect())
}

pub async fn get(
    pool: &PgPool,
    reader: Option<Uuid>,
    id: Uuid,
) -> Result<Option<AuditRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM audit_records WHERE {VISIBLE} AND id = $2",
        columns!()
    );
    let row: Option<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(reader)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(AuditRecord::from))
}

/// How many records there are (for tests and the bench).
pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM audit_records")
        .fetch_one(pool)
        .await
}
