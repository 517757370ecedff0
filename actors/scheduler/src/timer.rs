//! The timer: one actor per scheduler instance that fires reminders on time.
//!
//! The database is the source of truth; the timer keeps only when it must
//! next look, so a reminder a year away costs a row and nothing else. It
//! looks again when that time comes, when a commit added a reminder
//! (Postgres `NOTIFY`, heard by every instance), and at least every
//! [`POLL`]. What is due is fired by up to [`FIRERS`] transactions at once,
//! so one commit's wait on the disk does not hold back the reminders due a
//! few milliseconds later. Firing claims rows with `SKIP LOCKED` and writes
//! their events to the outbox in the same transaction, so two firers or two
//! instances never fire one reminder and a crash never loses one: what fell
//! due while no scheduler ran fires as soon as one starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use taskflow_runtime::outbox::RelayHandle;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::reminders::{self, CHANNEL};

/// The longest the timer goes without looking at the table.
pub const POLL: Duration = Duration::from_secs(1);
/// Firing transactions at once.
pub const FIRERS: usize = 4;
/// Reminders fired per transaction; a full one looks again at once.
const BATCH: i64 = 500;
/// How soon to look again when every firer is busy.
const ALL_BUSY: Duration = Duration::from_millis(20);
/// How soon to try again after the database failed.
const AFTER_FAILURE: Duration = Duration::from_millis(500);

pub struct ReminderTimer;

pub struct TimerArgs {
    pub pool: PgPool,
    pub relay: RelayHandle,
}

pub enum TimerMessage {
    /// A commit added a reminder, a firer filled its batch, or the listener
    /// reconnected: look now.
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
    permits: Arc<Semaphore>,
    firers: JoinSet<()>,
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
            permits: Arc::new(Semaphore::new(FIRERS)),
            firers: JoinSet::new(),
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
        while state.firers.try_join_next().is_some() {}
        let delay = match state.look(&myself).await {
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
        state.firers.abort_all();
        Ok(())
    }
}

impl TimerState {
    /// Starts a firer if something is due; how long until it must look again.
    async fn look(&mut self, myself: &ActorRef<TimerMessage>) -> Result<Duration, sqlx::Error> {
        let now = Utc::now();
        let (due, next) = reminders::due_and_next(&mut *self.pool.acquire().await?, now).await?;
        let all_busy = due && !self.fire(myself);
        let until_next = |at: DateTime<Utc>| (at - now).to_std().unwrap_or_default();
        Ok(match next {
            _ if all_busy => ALL_BUSY,
            Some(at) => until_next(at).min(POLL),
            None => POLL,
        })
    }

    /// Fires what is due on a task of its own; false when every firer is busy.
    fn fire(&mut self, myself: &ActorRef<TimerMessage>) -> bool {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return false;
        };
        let (pool, relay, timer) = (self.pool.clone(), self.relay.clone(), myself.clone());
        self.firers.spawn(async move {
            let _permit = permit;
            match fire_batch(&pool).await {
                Ok(fired) => {
                    if fired > 0 {
                        relay.wake();
                    }
                    // A full batch: more may be due.
                    if fired as i64 == BATCH {
                        let _ = timer.cast(TimerMessage::Wake);
                    }
                }
                Err(error) => {
                    tracing::warn!(service = "scheduler", %error, "reminders could not be fired; the next look tries again");
                }
            }
        });
        true
    }
}

/// One firing transaction; how many it fired.
async fn fire_batch(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let lateness = reminders::fire_due(&mut tx, Utc::now(), BATCH).await?;
    tx.commit().await?;
    for late in &lateness {
        let seconds = late.to_std().unwrap_or_default().as_secs_f64();
        metrics::histogram!("taskflow_reminder_lateness_seconds").record(seconds);
    }
    metrics::counter!("taskflow_reminders_fired_total").increment(lateness.len() as u64);
    Ok(lateness.len())
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
