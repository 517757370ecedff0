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
                .fetch_one(&state.pool)
                .await;
        if let Ok(backlog) = backlog {
            metrics::gauge!("taskflow_outbox_backlog", "service" => state.service)
                .set(backlog as f64);
        }
        // The oldest rows come first in `id` order, so looking at the first
        // few thousand finds every expired one without scanning the table.
        let query = format!(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT {CLEANUP_BATCH}) \
             AND published_at < now() - interval '{RETENTION}'"
        );
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(query))
            .execute(&state.pool)
            .await
        {
            tracing::debug!(service = state.service, %error, "outbox cleanup skipped");
        }
        Ok(())
    }
}
