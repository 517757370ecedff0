//! The outbox janitor: the backlog gauge, and old published rows deleted.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sqlx::PgPool;

/// How often the backlog gauge is refreshed and old rows deleted.
const JANITOR_EVERY: Duration = Duration::from_secs(5);
/// Published rows are kept this long, then deleted, at most this many at a time.
const RETENTION: &str = "1 hour";
const CLEANUP_BATCH: i64 = 10_000;

/// Keeps the outbox small and its backlog visible, away from the relay's
/// hot path: a slow cleanup never delays a publish.
pub struct OutboxJanitor;

pub enum JanitorMessage {
    Tick,
}

pub struct JanitorState {
    service: &'static str,
    pool: PgPool,
}

impl Actor for OutboxJanitor {
    type Msg = JanitorMessage;
    type State = JanitorState;
    type Arguments = (&'static str, PgPool);

    async fn pre_start(
        &self,
        myself: ActorRef<JanitorMessage>,
        (service, pool): (&'static str, PgPool),
    ) -> Result<JanitorState, ActorProcessingErr> {
        myself.send_interval(JANITOR_EVERY, || JanitorMessage::Tick);
        Ok(JanitorState { service, pool })
    }

    async fn handle(
        &self,
        _: ActorRef<JanitorMessage>,
        JanitorMessage::Tick: JanitorMessage,
        state: &mut JanitorState,
    ) -> Result<(), ActorProcessingErr> {
        let backlog =
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .persistent(false)
                .fetch_one(&state.pool)
                .await;
        if let Ok(backlog) = backlog {
            metrics::gauge!("taskflow_outbox_backlog", "service" => state.service)
                .set(backlog as f64);
        }
        if let Err(error) = delete_expired(&state.pool).await {
            tracing::debug!(service = state.service, %error, "outbox cleanup skipped");
        }
        Ok(())
    }
}

/// Deletes the expired rows among the oldest [`CLEANUP_BATCH`]: rows expire
/// roughly in `id` order, so these find them without reading the table.
///
/// Two statements, each planned afresh (`persistent(false)`): a plan cached
/// while the table was small kept scanning the whole table once it was
/// large, and so did a single `DELETE ... WHERE id IN (subquery)`, whose
/// planner read every row to filter on `published_at` first.
async fn delete_expired(pool: &PgPool) -> Result<(), sqlx::Error> {
    let expired: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM (SELECT id, published_at FROM outbox ORDER BY id LIMIT {CLEANUP_BATCH}) oldest \
         WHERE published_at < now() - interval '{RETENTION}'"
    )))
    .persistent(false)
    .fetch_all(pool)
    .await?;
    if expired.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&expired)
        .persistent(false)
        .execute(pool)
        .await?;
    Ok(())
}
