//! The inbox: the ids of the events a consumer applied, recorded in the
//! transaction of their effect (`consumed_events`).

use std::collections::HashSet;

use sqlx::PgConnection;
use uuid::Uuid;

/// Records `ids` for `consumer`; for each, `false` when it was already
/// recorded (applied before, or earlier in `ids`): only the first counts.
pub(super) async fn record(
    tx: &mut PgConnection,
    consumer: &str,
    ids: &[Uuid],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut recorded: HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO consumed_events (consumer, event_id) SELECT $1, unnest($2::uuid[]) \
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(ids)
    .fetch_all(tx)
    .await?
    .into_iter()
    .collect();
    Ok(ids.iter().map(|id| recorded.remove(id)).collect())
}
