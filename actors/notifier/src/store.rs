//! The notifier's database: every query of this service.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use taskflow_runtime::access::{self, Query, ReadableList, Reader, Statement};
use taskflow_schemas::notification::{
    Channel, Notification, NotificationKind, NotificationQuery, NotificationStatus,
};
use uuid::Uuid;

const COLUMNS: &str = "id, recipient_id, task_id, kind, channel, status, attempts, error, \
    message, source_event_id, created_at, sent_at, read_at";

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    recipient_id: Uuid,
    task_id: Option<Uuid>,
    kind: String,
    channel: String,
    status: String,
    attempts: i32,
    error: Option<String>,
    message: String,
    source_event_id: Uuid,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Notification {
            id: row.id,
            recipient_id: row.recipient_id,
            task_id: row.task_id,
            kind: match row.kind.as_str() {
                "reminder" => NotificationKind::Reminder,
                "assigned" => NotificationKind::Assigned,
                _ => NotificationKind::Completed,
            },
            channel: match row.channel.as_str() {
                "email" => Channel::Email,
                _ => Channel::InApp,
            },
            status: status_of(&row.status),
            attempts: row.attempts,
            error: row.error,
            message: row.message,
            source_event_id: row.source_event_id,
            created_at: row.created_at,
            sent_at: row.sent_at,
            read_at: row.read_at,
        }
    }
}

fn status_of(text: &str) -> NotificationStatus {
    match text {
        "sent" => NotificationStatus::Sent,
        "failed" => NotificationStatus::Failed,
        _ => NotificationStatus::Pending,
    }
}

pub fn status_text(status: NotificationStatus) -> &'static str {
    match status {
        NotificationStatus::Pending => "pending",
        NotificationStatus::Sent => "sent",
        NotificationStatus::Failed => "failed",
    }
}

/// A notification about to be stored.
pub struct NewNotification<'a> {
    pub recipient: Uuid,
    pub task_id: Option<Uuid>,
    pub kind: NotificationKind,
    pub channel: Channel,
    pub message: &'a str,
    pub source_event_id: Uuid,
    pub correlation_id: &'a str,
}

impl NewNotification<'_> {
    /// One id per source event, recipient and channel.
    pub fn id(&self) -> Uuid {
        let mut name = self.recipient.as_bytes().to_vec();
        name.extend_from_slice(self.channel.as_str().as_bytes());
        Uuid::new_v5(&self.source_event_id, &name)
    }
}

/// Stores `new` (in-app ones as sent at once, email ones pending); `None`
/// when it was stored before.
pub async fn insert(
    tx: &mut PgConnection,
    new: &NewNotification<'_>,
) -> Result<Option<Notification>, sqlx::Error> {
    let (status, sent_at) = match new.channel {
        Channel::InApp => ("sent", Some(Utc::now())),
        Channel::Email => ("pending", None),
    };
    let query = format!(
        "INSERT INTO notifications (id, recipient_id, task_id, kind, channel, status, message, \
           source_event_id, correlation_id, sent_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    );
    let row: Option<NotificationRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(new.id())
        .bind(new.recipient)
        .bind(new.task_id)
        .bind(new.kind.as_str())
        .bind(new.channel.as_str())
        .bind(status)
        .bind(new.message)
        .bind(new.source_event_id)
        .bind(new.correlation_id)
        .bind(sent_at)
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Notification::from))
}

/// Records how the latest try at an email went.
pub async fn settle(
    tx: &mut PgConnection,
    id: Uuid,
    status: NotificationStatus,
    attempts: i32,
    error: Option<&str>,
) -> Result<Option<Notification>, sqlx::Error> {
    let query = format!(
        "UPDATE notifications SET status = $2, attempts = $3, error = $4, \
           sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row: Option<NotificationRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .bind(status_text(status))
        .bind(attempts)
        .bind(error)
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Notification::from))
}

/// `recipient`'s notifications, newest first, after the cursor
/// `(created_at, id)`: one about a task only while `reader` (the recipient,
/// as the directory sees them) may read the task, by the access rule's page.
pub async fn list(
    pool: &PgPool,
    reader: &Reader,
    recipient: Uuid,
    query: &NotificationQuery,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let rows: Vec<NotificationRow> =
        list_statement(Statement::Run, reader, recipient, query, after, limit)
            .try_map(|row| NotificationRow::from_row(&row))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The statement of [`list`], bound.
pub fn list_statement<'q>(
    statement: Statement,
    reader: &'q Reader,
    recipient: Uuid,
    query: &NotificationQuery,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Query<'q> {
    let select = format!("SELECT {COLUMNS} FROM notifications");
    let sql = ReadableList {
        select: &select,
        task_id: "notifications.task_id",
        filters: "recipient_id = $9 \
           AND ($3::text IS NULL OR status = $3) \
           AND ($4::uuid IS NULL OR task_id = $4) \
           AND ($5::bool IS NULL OR (read_at IS NULL) = $5) \
           AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))",
        also: Some("notifications.task_id IS NULL"),
        order: "created_at DESC, id DESC",
        limit: "$8",
        by_project: None,
    }
    .sql(reader);
    reader
        .bind(access::unprepared(statement.of(sql)))
        .bind(query.status.map(status_text))
        .bind(query.task_id)
        .bind(query.unread)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
        .bind(recipient)
}

/// Marks the recipient's notification read (once; the first time is kept).
pub async fn mark_read(
    pool: &PgPool,
    recipient: Uuid,
    id: Uuid,
) -> Result<Option<Notification>, sqlx::Error> {
    let query = format!(
        "UPDATE notifications SET read_at = coalesce(read_at, now()) \
         WHERE id = $1 AND recipient_id = $2 RETURNING {COLUMNS}"
    );
    let row: Option<NotificationRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .bind(recipient)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Notification::from))
}

/// Where and whether a user wants email, as identity last announced it.
#[derive(sqlx::FromRow)]
pub struct Recipient {
    pub email: String,
    pub name: String,
    pub email_notifications: bool,
}

pub async fn recipient(
    tx: &mut PgConnection,
    user: Uuid,
) -> Result<Option<Recipient>, sqlx::Error> {
    sqlx::query_as("SELECT email, name, email_notifications FROM recipients WHERE user_id = $1")
        .bind(user)
        .fetch_optional(tx)
        .await
}

/// Keeps the recipient as of `profile_version`, unless a newer profile was
/// kept already (two instances may commit a user's events out of order).
pub async fn keep_recipient(
    tx: &mut PgConnection,
    user: Uuid,
    recipient: &Recipient,
    profile_version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recipients (user_id, email, name, email_notifications, profile_version) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, \
           email_notifications = EXCLUDED.email_notifications, \
           profile_version = EXCLUDED.profile_version \
         WHERE recipients.profile_version <= EXCLUDED.profile_version",
    )
    .bind(user)
    .bind(&recipient.email)
    .bind(&recipient.name)
    .bind(recipient.email_notifications)
    .bind(profile_version)
    .execute(tx)
    .await?;
    Ok(())
}
