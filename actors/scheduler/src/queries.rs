//! The scheduler's commands: `ListSchedules` and `GetSchedule`, over its
//! reminders and series, for the users who may read their tasks.

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::FromRow;
use sqlx::PgPool;
use taskflow_runtime::access::{self, Query, ReadableList, Reader, Statement};
use taskflow_runtime::store::cursor;
use taskflow_schemas::commands::{Page, Principal, page_size};
use taskflow_schemas::schedule::{Schedule, ScheduleKind, ScheduleQuery, ScheduleRef};
use taskflow_schemas::task::{Recurrence, RecurrenceAnchor};
use taskflow_schemas::{ErrorBody, ErrorCode};
use uuid::Uuid;

use crate::recurrence::{self, Anchor};

/// Reminders and series as one relation, `schedules`.
const SCHEDULES: &str = "\
    SELECT * FROM ( \
      SELECT id, 'reminder' AS kind, task_id, task->>'title' AS title, \
             status = 'pending' AS is_active, status, \
             CASE WHEN status = 'pending' THEN fire_at END AS next_fire_at, fired_at, \
             NULL::jsonb AS recurrence, NULL::text AS timezone, NULL::timestamptz AS current_due, \
             NULL::smallint AS anchor_day, NULL::time AS anchor_time, \
             created_at, updated_at \
      FROM reminders \
      UNION ALL \
      SELECT id, 'series', current_task_id, title, is_active, \
             CASE WHEN is_active THEN 'active' ELSE 'ended' END, \
             CASE WHEN is_active THEN next_due END, NULL, \
             recurrence, timezone, current_due, anchor_day, anchor_time, \
             created_at, updated_at \
      FROM series \
    ) schedules";

/// A page of `schedules`, newest first, as a reader may see it (the access
/// rule's page), bound.
pub fn page_statement<'q>(
    statement: Statement,
    reader: &'q Reader,
    query: &ScheduleQuery,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Query<'q> {
    let sql = ReadableList {
        select: SCHEDULES,
        task_id: "schedules.task_id",
        filters: "($3::bool IS NULL OR is_active = $3) \
          AND ($4::uuid IS NULL OR task_id = $4) \
          AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))",
        also: None,
        order: "created_at DESC, id DESC",
        limit: "$7",
        by_project: None,
    }
    .sql(reader);
    reader
        .bind(access::unprepared(statement.of(sql)))
        .bind(query.is_active)
        .bind(query.task_id)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: Uuid,
    kind: String,
    task_id: Uuid,
    title: Option<String>,
    is_active: bool,
    status: String,
    next_fire_at: Option<DateTime<Utc>>,
    fired_at: Option<DateTime<Utc>>,
    recurrence: Option<serde_json::Value>,
    timezone: Option<String>,
    current_due: Option<DateTime<Utc>>,
    anchor_day: Option<i16>,
    anchor_time: Option<NaiveTime>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ScheduleRow {
    fn into_schedule(mut self) -> Schedule {
        let recurrence: Option<Recurrence> = self
            .recurrence
            .take()
            .and_then(|value| serde_json::from_value(value).ok());
        let next_fire_at = self
            .next_fire_at
            .or_else(|| self.preview(recurrence.as_ref()));
        Schedule {
            id: self.id,
            kind: if self.kind == "series" {
                ScheduleKind::Series
            } else {
                ScheduleKind::Reminder
            },
            task_id: self.task_id,
            title: self.title.unwrap_or_default(),
            is_active: self.is_active,
            status: self.status,
            next_fire_at,
            fired_at: self.fired_at,
            recurrence,
            timezone: self.timezone,
            current_due: self.current_due,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// A going series counted from its due date knows its next due date
    /// before the completion: the same arithmetic the completion will do.
    fn preview(&self, rule: Option<&Recurrence>) -> Option<DateTime<Utc>> {
        let rule = rule.filter(|rule| rule.anchor == RecurrenceAnchor::Due)?;
        if !self.is_active {
            return None;
        }
        let zone = self.timezone.as_deref()?.parse().ok()?;
        let anchor = Anchor {
            day: self.anchor_day? as u32,
            time: self.anchor_time?,
        };
        let due = self.current_due?;
        recurrence::next_due(rule, zone, anchor, Some(due), due)
    }
}

pub struct ScheduleQueries {
    pool: PgPool,
}

impl ScheduleQueries {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn list(
        &self,
        actor: Principal,
        query: ScheduleQuery,
    ) -> Result<Page<Schedule>, ErrorBody> {
        let limit = page_size(query.limit)?;
        let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
        let reader = self.reader(actor).await?;
        let limit_plus_one = i64::from(limit) + 1;
        let rows: Vec<ScheduleRow> =
            page_statement(Statement::Run, &reader, &query, after, limit_plus_one)
                .try_map(|row| ScheduleRow::from_row(&row))
                .fetch_all(&self.pool)
                .await
                .map_err(database_error)?;
        let schedules = rows.into_iter().map(ScheduleRow::into_schedule).collect();
        Ok(Page::cut(schedules, limit as usize, |schedule| {
            cursor::encode(schedule.created_at, schedule.id)
        }))
    }

    pub async fn get(
        &self,
        actor: Principal,
        reference: ScheduleRef,
    ) -> Result<Schedule, ErrorBody> {
        let reader = self.reader(actor).await?;
        let sql = format!(
            "{SCHEDULES} WHERE id = $3 AND {}",
            reader.row_condition("schedules.task_id")
        );
        let row: Option<ScheduleRow> = reader
            .bind(access::unprepared(sql))
            .bind(reference.schedule_id)
            .try_map(|row| ScheduleRow::from_row(&row))
            .fetch_optional(&self.pool)
            .await
            .map_err(database_error)?;
        row.map(ScheduleRow::into_schedule)
            .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "schedule not found"))
    }

    /// Whose schedules `actor` sees, as the directory says now.
    async fn reader(&self, actor: Principal) -> Result<Reader, ErrorBody> {
        Reader::of(&self.pool, actor.id)
            .await
            .map_err(database_error)
    }
}

fn database_error(error: sqlx::Error) -> ErrorBody {
    taskflow_runtime::store::postgres::error_body("scheduler", &error)
}
