//! The timer: one actor per scheduler instance that fires reminders on time.
//!
//! The database is the source of truth; the timer keeps only when it must
//! next look, so a reminder a year away costs a row and nothing else. It
//! looks again when that time comes, when a commit added a reminder
//! (Postgres `NOTIFY`, heard by every instance), and at least every
//! [`POLL`]. Firing claims rows with `SKIP LOCKED` and writes their events
//! to the outbox in the same transaction, so two instances never fire one
//! reminder and a crash never loses one: what fell due while no scheduler
//! ran fires as soon as one starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use taskflow_runtime::outbox::RelayHandle;
use tokio::task::JoinHandle;

use crate::reminders::{self, CHANNEL};

/// The longest the timer goes without looking at the table.
pub const POLL: Duration = Duration::from_secs(1);
/// Reminders fired per transaction; more due go in the next one at once.
const BATCH: i64 = 500;
/// How soon to look again at a due reminder another instance holds.
const HELD_ELSEWHERE: Duration = Duration::from_millis(50);
/// How soon to try again after the database failed.
const AFTER_FAILURE: Duration = Duration::from_millis(500);

pub struct ReminderTimer;

pub struct TimerArgs {
    pub pool: PgPool,
    pub relay: RelayHandle,
}

pub enum TimerMessage {
    /// A commit added a reminder, or the listener reconnected.
    Wake,
    /// A planned look; ignored when a later plan replaced it.
    Tick(u64),
}

pub struct TimerState {
    pool: PgPool,
    relay: RelayHandle,
    listener: JoinHandle<()>,
    woken: Arc<AtomicBool>,
    plan: u64,
}

impl Actor for ReminderTimer {
    type Msg = TimerMessage;
    type State = TimerState;
    type Arguments = TimerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TimerMessage>,
        args: TimerArgs,
    ) -> Result<TimerState, ActorProcessingErr> {
        let mut listener = PgListener::connect_with(&args.pool).await?;
        listener.listen(CHANNEL).await?;
        let woken = Arc::new(AtomicBool::new(false));
        let listener = tokio::spawn(listen(listener, myself.clone(), woken.clone()));
        myself.cast(TimerMessage::Wake)?;
        Ok(TimerState {
            pool: args.pool,
            relay: args.relay,
            listener,
            woken,
            plan: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<TimerMessage>,
        message: TimerMessage,
        state: &mut TimerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TimerMessage::Tick(plan) if plan != state.plan => return Ok(()),
            TimerMessage::Tick(_) => {}
            TimerMessage::Wake => state.woken.store(false, Ordering::Release),
        }
        let delay = match state.fire_due().await {
            Ok(delay) => delay,
            Err(error) => {
                tracing::warn!(service = "scheduler", %error, "the timer could not read its reminders; trying again");
                AFTER_FAILURE
            }
        };
        state.plan += 1;
        let plan = state.plan;
        myself.send_after(delay, move || TimerMessage::Tick(plan));
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<TimerMessage>,
        state: &mut TimerState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        Ok(())
    }
}

impl TimerState {
    /// Fires everything due now; how long until it must look again.
    async fn fire_due(&mut self) -> Result<Duration, sqlx::Error> {
        let mut fired = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let lateness = reminders::fire_due(&mut tx, Utc::now(), BATCH).await?;
            tx.commit().await?;
            for late in &lateness {
                let seconds = late.to_std().unwrap_or_default().as_secs_f64();
                metrics::histogram!("taskflow_reminder_lateness_seconds").record(seconds);
            }
            metrics::counter!("taskflow_reminders_fired_total").increment(lateness.len() as u64);
            fired += lateness.len();
            if (lateness.len() as i64) < BATCH {
                break;
            }
        }
        if fired > 0 {
            self.relay.wake();
            tracing::debug!(service = "scheduler", fired, "reminders fired");
        }
        let next = reminders::next_fire_at(&mut *self.pool.acquire().await?).await?;
        let now = Utc::now();
        Ok(match next {
            None => POLL,
            Some(at) if at > now => (at - now).to_std().unwrap_or_default().min(POLL),
            // Due but not fired: another instance holds it right now.
            Some(_) => HELD_ELSEWHERE,
        })
    }
}

/// Wakes the timer on each notification, and after a reconnection (when
/// notifications may have been missed); wakes coalesce.
async fn listen(mut listener: PgListener, timer: ActorRef<TimerMessage>, woken: Arc<AtomicBool>) {
    loop {
        match listener.try_recv().await {
            Ok(_) => {
                if !woken.swap(true, Ordering::AcqRel) && timer.cast(TimerMessage::Wake).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(service = "scheduler", %error, "reminder notifications lost; reconnecting");
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
}
