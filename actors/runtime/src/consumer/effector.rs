//! The second kind of event handler: an [`Effector`], whose effect lies
//! outside the database (an email, a webhook). In the event's transaction
//! it only decides what to do, and the runtime records each effect as a
//! row of `effect_deliveries` beside the event's id; after the commit a
//! [`Deliveries`] actor performs the pending effects, outside any
//! transaction, with retries, backoff and a status per delivery:
//! `pending` → `done`, or `failed` after [`MAX_ATTEMPTS`] or a permanent error.
//!
//! An effect is performed at least once: a crash between performing it and
//! recording it means performing it again, so an external call should carry
//! a key the other side can deduplicate on (the delivery's id).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};

use super::{ConsumedEvent, EventHandler, HandlerError};

/// Tries before a delivery that keeps failing is `failed`.
pub const MAX_ATTEMPTS: i32 = 8;
/// How long one instance holds a delivery it is performing.
const LEASE: Duration = Duration::from_secs(60);
/// The safety net for retries that came due and deliveries of other instances.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// Deliveries claimed, and performed at once, per round.
const ROUND: i64 = 32;

/// Why an effect could not be performed.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    /// It may succeed later (the mail server is down): tried again with backoff.
    #[error("retryable: {0}")]
    Retry(String),
    /// It never will (the address is refused): the delivery is `failed` at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A consumer whose effect is outside the database.
pub trait Effector: Send + Sync + 'static {
    /// What is recorded per delivery (JSON), and handed back to perform it.
    type Effect: Serialize + DeserializeOwned + Send + Sync;

    /// Tries before a delivery that keeps failing with retryable errors is
    /// `failed`: [`MAX_ATTEMPTS`] for an effect that may be given up (an
    /// email), `i32::MAX` for one that must happen once its cause is
    /// committed (the next task of a series), retried every 5 minutes at
    /// most once the backoff is spent.
    const MAX_ATTEMPTS: i32 = MAX_ATTEMPTS;

    /// Inside the event's transaction: the effects it asks for (often none
    /// or one). It may write the service's own rows in `tx` too.
    fn plan(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> impl Future<Output = Result<Vec<Self::Effect>, HandlerError>> + Send;

    /// Whether `event` asks for no effect and writes nothing, whatever the
    /// state (see [`EventHandler::ignores`]). False by default.
    fn ignores(&self, event: &ConsumedEvent) -> bool {
        let _ = event;
        false
    }

    /// After the commit, outside any transaction: performs one effect;
    /// `delivery` is the delivery's id, stable across its retries.
    fn perform(
        &self,
        delivery: i64,
        effect: &Self::Effect,
    ) -> impl Future<Output = Result<(), EffectError>> + Send;

    /// In the transaction that records how an attempt ended (`attempts`
    /// counts it): the effector may keep a status of its own (a
    /// notification's) and add events to its outbox. None by default.
    fn settled(
        &self,
        tx: &mut PgConnection,
        effect: &Self::Effect,
        attempts: i32,
        settlement: Settlement<'_>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let _ = (tx, effect, attempts, settlement);
        async { Ok(()) }
    }

    /// After that transaction committed (to wake the service's relay).
    fn after_settled(&self) {}

    /// After a transaction that planned effects committed (the same).
    fn committed(&self) {}
}

/// How an attempt at an effect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement<'a> {
    Done,
    /// It failed and is tried again later.
    Retrying {
        reason: &'a str,
    },
    /// It failed for good: a permanent error, or [`Effector::MAX_ATTEMPTS`] tries.
    Failed {
        reason: &'a str,
    },
}

/// The delay before retry `attempt` (1-based): 200 ms, doubling, at most 5 minutes.
pub fn backoff(attempt: i32) -> Duration {
    let doublings = attempt.clamp(1, 12) as u32 - 1;
    (Duration::from_millis(200) * 2u32.pow(doublings)).min(Duration::from_secs(300))
}

/// The [`EventHandler`] of an effector: records its planned effects.
pub(crate) struct Recorder<E> {
    pub consumer: String,
    pub effector: Arc<E>,
    pub deliveries: DeliveriesHandle,
}

impl<E: Effector> EventHandler for Recorder<E> {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        let effects = self.effector.plan(tx, event).await?;
        if effects.is_empty() {
            return Ok(());
        }
        let effects: Vec<serde_json::Value> = effects
            .iter()
            .map(|effect| serde_json::to_value(effect).expect("effects serialize"))
            .collect();
        sqlx::query(
            "INSERT INTO effect_deliveries (consumer, event_id, effect) \
             SELECT $1, $2, unnest($3::jsonb[])",
        )
        .bind(&self.consumer)
        .bind(event.envelope.event_id)
        .bind(&effects)
        .execute(tx)
        .await?;
        Ok(())
    }

    fn ignores(&self, event: &ConsumedEvent) -> bool {
        self.effector.ignores(event)
    }

    fn committed(&self) {
        self.effector.committed();
        self.deliveries.wake();
    }
}

/// Wakes the deliveries after a commit; wakes coalesce.
#[derive(Clone)]
pub(crate) struct DeliveriesHandle {
    actor: ActorRef<DeliveriesMessage>,
    pending: Arc<AtomicBool>,
}

impl DeliveriesHandle {
    fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.actor.cast(DeliveriesMessage::Wake);
        }
    }
}

pub(crate) enum DeliveriesMessage {
    Wake,
    Tick,
}

/// Performs an effector's pending deliveries.
pub(crate) struct Deliveries<E>(std::marker::PhantomData<fn() -> E>);

pub(crate) struct DeliveriesState<E> {
    consumer: String,
    pool: PgPool,
    effector: Arc<E>,
    pending: Arc<AtomicBool>,
}

impl<E: Effector> Deliveries<E> {
    /// Spawns the deliveries of `consumer` under `supervisor`.
    pub(crate) async fn spawn_under(
        supervisor: ractor::ActorCell,
        consumer: String,
        pool: PgPool,
        effector: Arc<E>,
    ) -> Result<DeliveriesHandle, ractor::SpawnErr> {
        let pending = Arc::new(AtomicBool::new(false));
        let state = DeliveriesState {
            consumer,
            pool,
            effector,
            pending: pending.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, Deliveries::<E>(Default::default()), state, supervisor)
                .await?;
        Ok(DeliveriesHandle { actor, pending })
    }
}

impl<E: Effector> Actor for Deliveries<E> {
    type Msg = DeliveriesMessage;
    type State = DeliveriesState<E>;
    type Arguments = DeliveriesState<E>;

    async fn pre_start(
        &self,
        myself: ActorRef<DeliveriesMessage>,
        state: DeliveriesState<E>,
    ) -> Result<DeliveriesState<E>, ActorProcessingErr> {
        myself.send_interval(TICK_EVERY, || DeliveriesMessage::Tick);
        // Whatever an earlier run left pending goes out now.
        myself.cast(DeliveriesMessage::Wake)?;
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<DeliveriesMessage>,
        message: DeliveriesMessage,
        state: &mut DeliveriesState<E>,
    ) -> Result<(), ActorProcessingErr> {
        if let DeliveriesMessage::Wake = message {
            state.pending.store(false, Ordering::Release);
        }
        loop {
            match state.round().await {
                Ok(performed) if performed == ROUND as usize => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(consumer = %state.consumer, %error, "deliveries could not be read; retrying at the next tick");
                    break;
                }
            }
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    effect: serde_json::Value,
    attempts: i32,
}

/// How one delivery ended this time.
enum Outcome {
    Done,
    RetryAfter(Duration, String),
    Failed(String),
}

impl<E: Effector> DeliveriesState<E> {
    /// Claims the deliveries that are due, performs them at once, records
    /// how each went; the number claimed.
    async fn round(&self) -> Result<usize, sqlx::Error> {
        let claimed: Vec<Claimed> = sqlx::query_as(
            "UPDATE effect_deliveries SET attempts = attempts + 1, \
                 next_attempt_at = now() + make_interval(secs => $3) \
             WHERE id IN (SELECT id FROM effect_deliveries \
                 WHERE consumer = $1 AND status = 'pending' AND next_attempt_at <= now() \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, effect, attempts",
        )
        .bind(&self.consumer)
        .bind(ROUND)
        .bind(LEASE.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let outcomes =
            futures::future::join_all(claimed.iter().map(|delivery| self.perform(delivery))).await;
        for (delivery, (outcome, effect)) in claimed.iter().zip(outcomes) {
            self.record(delivery, outcome, effect.as_ref()).await?;
        }
        Ok(claimed.len())
    }

    async fn perform(&self, delivery: &Claimed) -> (Outcome, Option<E::Effect>) {
        let effect: E::Effect = match serde_json::from_value(delivery.effect.clone()) {
            Ok(effect) => effect,
            Err(error) => return (Outcome::Failed(format!("unreadable effect: {error}")), None),
        };
        let outcome = self.attempt(delivery, &effect).await;
        (outcome, Some(effect))
    }

    async fn attempt(&self, delivery: &Claimed, effect: &E::Effect) -> Outcome {
        match self.effector.perform(delivery.id, effect).await {
            Ok(()) => Outcome::Done,
            Err(EffectError::Permanent(reason)) => Outcome::Failed(reason),
            Err(EffectError::Retry(reason)) if delivery.attempts >= E::MAX_ATTEMPTS => {
                Outcome::Failed(format!("failed {} attempts: {reason}", delivery.attempts))
            }
            Err(EffectError::Retry(reason)) => {
                Outcome::RetryAfter(backoff(delivery.attempts), reason)
            }
        }
    }

    async fn record(
        &self,
        delivery: &Claimed,
        outcome: Outcome,
        effect: Option<&E::Effect>,
    ) -> Result<(), sqlx::Error> {
        let consumer = self.consumer.clone();
        let (label, query) = match &outcome {
            Outcome::Done => (
                "done",
                sqlx::query(
                    "UPDATE effect_deliveries SET status = 'done', finished_at = now(), \
                     last_error = NULL WHERE id = $1",
                )
                .bind(delivery.id),
            ),
            Outcome::RetryAfter(delay, reason) => (
                "retry",
                sqlx::query(
                    "UPDATE effect_deliveries SET last_error = $2, \
                     next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                )
                .bind(delivery.id)
                .bind(reason)
                .bind(delay.as_secs_f64()),
            ),
            Outcome::Failed(reason) => (
                "failed",
                sqlx::query(
                    "UPDATE effect_deliveries SET status = 'failed', finished_at = now(), \
                     last_error = $2 WHERE id = $1",
                )
                .bind(delivery.id)
                .bind(reason),
            ),
        };
        if let Outcome::Failed(reason) | Outcome::RetryAfter(_, reason) = &outcome {
            tracing::warn!(
                consumer,
                delivery = delivery.id,
                attempts = delivery.attempts,
                outcome = label,
                reason,
                "an effect did not succeed"
            );
        }
        metrics::counter!("taskflow_effects_total", "consumer" => consumer, "outcome" => label)
            .increment(1);
        let mut tx = self.pool.begin().await?;
        query.execute(&mut *tx).await?;
        if let Some(effect) = effect {
            let settlement = match &outcome {
                Outcome::Done => Settlement::Done,
                Outcome::RetryAfter(_, reason) => Settlement::Retrying { reason },
                Outcome::Failed(reason) => Settlement::Failed { reason },
            };
            self.effector
                .settled(&mut tx, effect, delivery.attempts, settlement)
                .await?;
        }
        tx.commit().await?;
        self.effector.after_settled();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(300));
    }
}
