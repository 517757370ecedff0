//! An event as the outbox stores it, and how a write adds it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use taskflow_schemas::limits::MAX_EVENT_BYTES;
use taskflow_schemas::{ErrorBody, ErrorCode, EventEnvelope};

/// The head of the outbox insert, for a service that folds its write and its
/// event into one statement (`WITH write AS (...) INSERT INTO outbox ...`):
/// one round trip instead of four. Follow it with the five placeholders of
/// [`OutboxRecord::bind`], in parentheses.
#[macro_export]
macro_rules! outbox_insert {
    () => {
        "INSERT INTO outbox (event_id, subject, body, request_id, created_at) VALUES "
    };
}

/// The head of a many-row outbox insert: the five columns as arrays,
/// `$1` to `$5`, bound by [`OutboxRecord::bind_many`]. A service may put its
/// own write in front (`WITH write AS (... $6 ...)`), as with [`outbox_insert!`].
#[macro_export]
macro_rules! outbox_insert_many {
    () => {
        concat!(
            "INSERT INTO outbox (event_id, subject, body, request_id, created_at) ",
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::timestamptz[])"
        )
    };
}

/// An event as the outbox stores it.
#[derive(Clone)]
pub struct OutboxRecord {
    pub event_id: uuid::Uuid,
    pub subject: String,
    pub body: Vec<u8>,
    pub request_id: String,
    pub created_at: DateTime<Utc>,
}

impl OutboxRecord {
    /// The row of `event`, or `payload_too_large` when the event could not
    /// be published: refused before commit, so no row ever waits for a
    /// publish that cannot succeed.
    pub fn new(subject: String, event: &EventEnvelope) -> Result<Self, ErrorBody> {
        let body = serde_json::to_vec(event).expect("envelopes serialize");
        if body.len() > MAX_EVENT_BYTES {
            return Err(ErrorBody::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "this change makes an event of {} bytes; at most {MAX_EVENT_BYTES} can be published",
                    body.len()
                ),
            ));
        }
        Ok(Self {
            event_id: event.event_id,
            subject,
            body,
            request_id: event.correlation_id.clone(),
            created_at: event.occurred_at,
        })
    }

    /// Binds the five values of [`outbox_insert!`], in its column order.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.event_id)
            .bind(&self.subject)
            .bind(&self.body)
            .bind(&self.request_id)
            .bind(self.created_at)
    }

    /// Binds the five arrays of [`outbox_insert_many!`]: one element per record, in order.
    pub fn bind_many<'q>(
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        records: &[&'q OutboxRecord],
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let column = |value: fn(&'q OutboxRecord) -> &'q str| {
            records
                .iter()
                .map(|record| value(record))
                .collect::<Vec<_>>()
        };
        let event_ids: Vec<uuid::Uuid> = records.iter().map(|record| record.event_id).collect();
        let bodies: Vec<&[u8]> = records
            .iter()
            .map(|record| record.body.as_slice())
            .collect();
        let created: Vec<DateTime<Utc>> = records.iter().map(|record| record.created_at).collect();
        query
            .bind(event_ids)
            .bind(column(|record| record.subject.as_str()))
            .bind(bodies)
            .bind(column(|record| record.request_id.as_str()))
            .bind(created)
    }
}

/// Adds `event` to the outbox inside the caller's transaction; an event
/// too large to publish is refused (see [`OutboxRecord::new`]).
pub async fn enqueue<E: From<sqlx::Error> + From<ErrorBody>>(
    tx: &mut PgConnection,
    subject: &str,
    event: &EventEnvelope,
) -> Result<(), E> {
    let record = OutboxRecord::new(subject.to_owned(), event)?;
    enqueue_record(tx, &record).await?;
    Ok(())
}

/// Adds an event already made into a record, inside the caller's transaction.
pub async fn enqueue_record(
    tx: &mut PgConnection,
    record: &OutboxRecord,
) -> Result<(), sqlx::Error> {
    record
        .bind(sqlx::query(concat!(
            outbox_insert!(),
            "($1, $2, $3, $4, $5)"
        )))
        .execute(tx)
        .await?;
    Ok(())
}

/// Adds many records in one statement, inside the caller's transaction.
pub async fn enqueue_records(
    tx: &mut PgConnection,
    records: &[OutboxRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let records: Vec<&OutboxRecord> = records.iter().collect();
    OutboxRecord::bind_many(sqlx::query(outbox_insert_many!()), &records)
        .execute(tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_of(bytes: usize) -> EventEnvelope {
        let payload = serde_json::json!({ "note": "x".repeat(bytes) });
        EventEnvelope::new("task.updated", None, None, "r-1", payload)
    }

    #[test]
    fn an_event_too_large_to_publish_is_refused_before_it_is_stored() {
        let record = OutboxRecord::new("tasks.updated.x".into(), &event_of(1_000)).unwrap();
        assert_eq!(record.request_id, "r-1");
        let Err(refused) = OutboxRecord::new("tasks.updated.x".into(), &event_of(MAX_EVENT_BYTES))
        else {
            panic!("an event over the limit is refused")
        };
        assert_eq!(refused.code, ErrorCode::PayloadTooLarge);
    }
}
