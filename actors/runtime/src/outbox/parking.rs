//! Rows the server can never take, set aside with why.

use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use sqlx::PgConnection;

use super::relay::OutboxRow;

/// Sets aside rows the server can never take (too large for it, say), with
/// why, so that the rows behind them flow on: marked published, with a
/// `parked_reason` and no `stream_seq`, they are never sent again.
pub(super) async fn park(
    connection: &mut PgConnection,
    service: &'static str,
    parked: &[(&OutboxRow, String)],
) -> Result<(), sqlx::Error> {
    for (row, reason) in parked {
        tracing::error!(service, event_id = %row.event_id, subject = %row.subject, reason, "outbox row parked: it can never be published");
    }
    let ids: Vec<i64> = parked.iter().map(|(row, _)| row.id).collect();
    let reasons: Vec<&str> = parked.iter().map(|(_, reason)| reason.as_str()).collect();
    sqlx::query(
        "UPDATE outbox SET published_at = now(), parked_reason = batch.reason \
         FROM unnest($1::bigint[], $2::text[]) AS batch(id, reason) WHERE outbox.id = batch.id",
    )
    .bind(&ids)
    .bind(&reasons)
    .execute(connection)
    .await?;
    metrics::counter!("taskflow_outbox_parked_total", "service" => service)
        .increment(parked.len() as u64);
    Ok(())
}

/// Whether the server will refuse this message however often it is sent:
/// only these are parked; everything else is retried.
pub(super) fn is_permanent(error: &PublishError) -> bool {
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded => true,
        PublishErrorKind::Other => std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
            .is_some_and(|api| {
                matches!(
                    api.error_code(),
                    jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
                        | jetstream::ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM
                )
            }),
        _ => false,
    }
}
