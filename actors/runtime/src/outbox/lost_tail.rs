//! After a NATS restart: the rows whose messages the streams lost, found
//! and published again.

use async_nats::jetstream;
use sqlx::PgConnection;

use super::relay::RelayError;
use crate::bus::nats::message_at;

/// Finds, for each stream this outbox published to, the rows whose message
/// the stream no longer holds, and marks them unpublished so they go out
/// again, however long ago they were acknowledged.
///
/// A server that restarts without its unsynced tail loses a suffix of each
/// stream, so the rows still intact are a prefix in `stream_seq` order: the
/// newest is checked first (one request when nothing was lost, the usual
/// case), then a binary search finds the first lost row. A message counts
/// as intact when the stream holds it at the recorded sequence with the
/// row's `Nats-Msg-Id` (another publisher may have taken that sequence since).
pub(super) async fn recover_lost_tail(
    connection: &mut PgConnection,
    jetstream: &jetstream::Context,
    service: &'static str,
) -> Result<(), RelayError> {
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream FROM outbox WHERE stream IS NOT NULL AND stream_seq IS NOT NULL",
    )
    .fetch_all(&mut *connection)
    .await?;
    for name in streams {
        let stream = jetstream.get_stream_no_info(&name).await?;
        let newest = row_at_or_after(connection, &name, i64::MAX, true).await?;
        let Some(newest) = newest else { continue };
        if intact(&stream, &newest).await? {
            continue;
        }
        // Every row before `low` is intact; every row from `high` on is lost.
        let mut high = newest.1;
        let mut low = row_at_or_after(connection, &name, 0, false)
            .await?
            .map_or(high, |oldest| oldest.1);
        while low < high {
            let middle = low + (high - low) / 2;
            match row_at_or_after(connection, &name, middle, false).await? {
                Some(row) if row.1 < high => {
                    if intact(&stream, &row).await? {
                        low = row.1 + 1;
                    } else {
                        high = row.1;
                    }
                }
                // No row between `middle` and `high`.
                _ => high = middle,
            }
        }
        let lost_from = high;
        let republished = sqlx::query(
            "UPDATE outbox SET published_at = NULL, lost_seq = stream_seq, stream_seq = NULL, \
             stream = NULL WHERE stream = $1 AND stream_seq >= $2",
        )
        .bind(&name)
        .bind(lost_from)
        .execute(&mut *connection)
        .await?
        .rows_affected();
        tracing::warn!(service, stream = %name, from_seq = lost_from, rows = republished, "the stream lost acknowledged events; publishing them again");
        metrics::counter!("taskflow_outbox_republished_total", "service" => service)
            .increment(republished);
    }
    Ok(())
}

/// The statements of the search, named, for a test of their plans: the
/// newest published row of a stream at or before a sequence, and the oldest
/// at or after one.
pub const LOST_TAIL_LOOKUPS: [(&str, &str); 2] = [
    (
        "the newest row of a stream",
        "SELECT event_id, stream_seq FROM outbox WHERE stream = $1 AND stream_seq <= $2 \
         ORDER BY stream_seq DESC LIMIT 1",
    ),
    (
        "the oldest row of a stream from a sequence",
        "SELECT event_id, stream_seq FROM outbox WHERE stream = $1 AND stream_seq >= $2 \
         ORDER BY stream_seq LIMIT 1",
    ),
];

/// The published row with the lowest `stream_seq` at or after `seq` (or,
/// `newest`, the one with the highest), as (event id, stream sequence).
async fn row_at_or_after(
    connection: &mut PgConnection,
    stream: &str,
    seq: i64,
    newest: bool,
) -> Result<Option<(uuid::Uuid, i64)>, sqlx::Error> {
    let [(_, newest_at_or_before), (_, oldest_at_or_after)] = LOST_TAIL_LOOKUPS;
    let query = if newest {
        newest_at_or_before
    } else {
        oldest_at_or_after
    };
    sqlx::query(sqlx::AssertSqlSafe(query))
        .bind(stream)
        .bind(seq)
        .try_map(|row| sqlx::FromRow::from_row(&row))
        .fetch_optional(connection)
        .await
}

/// Whether the stream holds the row's message at its recorded sequence.
async fn intact(
    stream: &jetstream::stream::Stream<()>,
    (event_id, seq): &(uuid::Uuid, i64),
) -> Result<bool, RelayError> {
    let message = message_at(stream, *seq as u64).await?;
    Ok(message.is_some_and(|message| {
        message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .is_some_and(|id| id.as_str() == event_id.to_string())
    }))
}
