//! The relay actor: publishes committed rows in `id` order, marks them
//! published once the stream acknowledged them, and backs off on failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sqlx::{PgConnection, PgPool};
use taskflow_schemas::subjects::REQUEST_ID_HEADER;

use super::janitor::OutboxJanitor;
use super::lost_tail::recover_lost_tail;
use super::parking::{is_permanent, park};

/// Rows published per round trip.
const BATCH_SIZE: i64 = 256;
/// The safety net: rows written by another instance, left by a failure, or
/// waiting for NATS to come back.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// One key for every relay of every service: each service has its own database.
const RELAY_LOCK: i64 = 0x7461_736b_666c_6f77;

/// Wakes the relay after a commit. Wakes coalesce: while one is pending,
/// more cost nothing.
#[derive(Clone)]
pub struct RelayHandle {
    actor: ActorRef<RelayMessage>,
    wake_pending: Arc<AtomicBool>,
}

impl RelayHandle {
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.actor.cast(RelayMessage::Wake);
        }
    }

    pub fn actor(&self) -> &ActorRef<RelayMessage> {
        &self.actor
    }
}

pub enum RelayMessage {
    /// Rows were committed: publish now.
    Wake,
    /// The periodic sweep, and the retry after a failure.
    Sweep,
    /// Answers with how many rows wait to be published.
    Backlog(ractor::RpcReplyPort<i64>),
}

pub struct OutboxRelay;

pub struct RelayArgs {
    pub service: &'static str,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub wake_pending: Arc<AtomicBool>,
}

pub struct RelayState {
    service: &'static str,
    pool: PgPool,
    /// To skip publishing while disconnected, and to count its connections.
    nats: async_nats::Client,
    /// The connection count the streams were last checked at; `None` before
    /// the first check (a server may have lost data while this process was down).
    checked_at_connection: Option<u64>,
    jetstream: jetstream::Context,
    wake_pending: Arc<AtomicBool>,
    /// Set while a retry is scheduled; grows on each failure.
    backoff: Option<Duration>,
    /// A session of its own, outside the pool: it holds the relay lock
    /// (a session advisory lock) for as long as it lives.
    connection: Option<PgConnection>,
    /// Whether `connection` holds the lock: only one relay per database publishes.
    leader: bool,
}

impl OutboxRelay {
    /// Spawns the relay under `supervisor` and returns the handle writers wake it with.
    ///
    /// At start and after every NATS reconnection (seen at the next sweep,
    /// within [`SWEEP_EVERY`]), before it publishes anything new, the relay checks that the streams still hold what they
    /// acknowledged (see [`recover_lost_tail`]): a restarted
    /// server keeps only what it had synced to disk.
    pub async fn spawn_under(
        supervisor: ractor::ActorCell,
        service: &'static str,
        pool: PgPool,
        platform: &crate::Platform,
    ) -> Result<RelayHandle, ractor::SpawnErr> {
        let wake_pending = Arc::new(AtomicBool::new(false));
        let args = RelayArgs {
            service,
            pool,
            nats: platform.nats.clone(),
            jetstream: platform.jetstream.clone(),
            wake_pending: wake_pending.clone(),
        };
        let janitor_pool = args.pool.clone();
        let (actor, _) = Actor::spawn_linked(None, OutboxRelay, args, supervisor.clone()).await?;
        Actor::spawn_linked(None, OutboxJanitor, (service, janitor_pool), supervisor).await?;
        Ok(RelayHandle {
            actor,
            wake_pending,
        })
    }
}

impl Actor for OutboxRelay {
    type Msg = RelayMessage;
    type State = RelayState;
    type Arguments = RelayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RelayArgs,
    ) -> Result<RelayState, ActorProcessingErr> {
        myself.send_interval(SWEEP_EVERY, || RelayMessage::Sweep);
        // Whatever an earlier run left unpublished goes out now.
        myself.cast(RelayMessage::Wake)?;
        Ok(RelayState {
            service: args.service,
            pool: args.pool,
            nats: args.nats,
            checked_at_connection: None,
            jetstream: args.jetstream,
            wake_pending: args.wake_pending,
            backoff: None,
            connection: None,
            leader: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: RelayMessage,
        state: &mut RelayState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RelayMessage::Wake => {
                state.wake_pending.store(false, Ordering::Release);
                if state.backoff.is_none() {
                    state.drain(&myself).await;
                }
            }
            RelayMessage::Sweep => state.drain(&myself).await,
            RelayMessage::Backlog(reply) => {
                let _ = reply.send(state.backlog().await.unwrap_or(-1));
            }
        }
        Ok(())
    }
}

impl RelayState {
    /// Publishes until nothing is left; on failure schedules a retry with backoff.
    async fn drain(&mut self, myself: &ActorRef<RelayMessage>) {
        loop {
            match self.publish_batch().await {
                Ok(count) => {
                    if self.backoff.take().is_some() {
                        tracing::info!(service = self.service, "outbox relay recovered");
                    }
                    if count < BATCH_SIZE as usize {
                        return;
                    }
                }
                Err(error) => {
                    let delay = self
                        .backoff
                        .map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF));
                    self.backoff = Some(delay);
                    metrics::counter!("taskflow_outbox_relay_failures_total", "service" => self.service)
                        .increment(1);
                    tracing::warn!(service = self.service, %error, retry_in_ms = delay.as_millis() as u64, "outbox relay failed");
                    myself.send_after(delay, || RelayMessage::Sweep);
                    return;
                }
            }
        }
    }

    /// The connection that holds the relay lock, opened (and the lock
    /// tried) when missing; `None` while another instance holds the lock.
    async fn leader_connection(&mut self) -> Result<Option<&mut PgConnection>, sqlx::Error> {
        if self.connection.is_none() {
            let mut connection = self.pool.acquire().await?.detach();
            // Losing a "published" mark in a crash only means publishing
            // again, which `Nats-Msg-Id` absorbs: no need to wait for the disk.
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut connection)
                .await?;
            self.connection = Some(connection);
            self.leader = false;
        }
        let connection = self.connection.as_mut().expect("just set");
        if !self.leader {
            self.leader = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut *connection)
                .await?;
            if self.leader {
                tracing::info!(service = self.service, "this relay publishes the outbox");
            }
        }
        Ok(self.leader.then_some(connection))
    }

    async fn publish_batch(&mut self) -> Result<usize, RelayError> {
        if self.nats.connection_state() != async_nats::connection::State::Connected {
            return Err(RelayError::NotConnected);
        }
        let result = self.publish_batch_as_leader().await;
        if let Err(RelayError::Database(_)) = &result {
            // A broken session also lost the lock; start over next time.
            self.connection = None;
            self.leader = false;
        }
        result
    }

    /// Once per NATS connection, before publishing on it: rows the streams
    /// lost go out again before anything newer, in the order the stream had them.
    ///
    /// The connection is counted by the client's own statistics, which it
    /// bumps before it reports itself connected: the platform's count comes
    /// a moment later, through the client's events, and a batch sent in
    /// that moment put a task's newer versions on a stream that had lost
    /// its older ones, which then went out after them.
    async fn check_streams(&mut self) -> Result<(), RelayError> {
        let connected = self
            .nats
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Acquire);
        if self.checked_at_connection == Some(connected) {
            return Ok(());
        }
        let (service, jetstream) = (self.service, self.jetstream.clone());
        let Some(connection) = self.leader_connection().await? else {
            return Ok(());
        };
        recover_lost_tail(connection, &jetstream, service).await?;
        self.checked_at_connection = Some(connected);
        Ok(())
    }

    async fn publish_batch_as_leader(&mut self) -> Result<usize, RelayError> {
        let service = self.service;
        let jetstream = self.jetstream.clone();
        self.check_streams().await?;
        let Some(connection) = self.leader_connection().await? else {
            return Ok(0);
        };
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, event_id, subject, body, request_id, created_at FROM outbox \
             WHERE published_at IS NULL ORDER BY lost_seq, id LIMIT $1",
        )
        .bind(BATCH_SIZE)
        .fetch_all(&mut *connection)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }

        let mut pending = Vec::with_capacity(rows.len());
        let mut parked: Vec<(&OutboxRow, String)> = Vec::new();
        let mut failure = None;
        for row in &rows {
            let message = PublishMessage::build()
                .payload(Bytes::from(row.body.clone()))
                .message_id(row.event_id.to_string())
                .header(REQUEST_ID_HEADER, row.request_id.as_str());
            match jetstream.send_publish(row.subject.clone(), message).await {
                Ok(ack) => pending.push((row, ack)),
                Err(error) if is_permanent(&error) => parked.push((row, error.to_string())),
                Err(error) => {
                    failure = Some(RelayError::Publish(error));
                    break;
                }
            }
        }
        let mut ids = Vec::with_capacity(pending.len());
        let mut sequences = Vec::with_capacity(pending.len());
        let mut streams = Vec::with_capacity(pending.len());
        for (row, ack) in pending {
            match ack.await {
                Ok(ack) => {
                    ids.push(row.id);
                    sequences.push(ack.sequence as i64);
                    streams.push(ack.stream);
                    let waited = (Utc::now() - row.created_at).to_std().unwrap_or_default();
                    metrics::histogram!("taskflow_outbox_commit_to_stream_seconds", "service" => service)
                        .record(waited.as_secs_f64());
                }
                Err(error) if is_permanent(&error) => parked.push((row, error.to_string())),
                Err(error) => {
                    // Later acks may be fine, but we resume at the first gap so
                    // the stream keeps the outbox's order.
                    failure.get_or_insert(RelayError::Publish(error));
                    break;
                }
            }
        }
        let published = ids.len();
        tracing::debug!(
            service,
            rows = rows.len(),
            oldest_ms = (Utc::now() - rows[0].created_at).num_milliseconds(),
            "relay batch acknowledged"
        );
        if published > 0 {
            sqlx::query(MARK_PUBLISHED)
                .bind(&ids)
                .bind(&sequences)
                .bind(&streams)
                .execute(&mut *connection)
                .await?;
            metrics::counter!("taskflow_outbox_published_total", "service" => service)
                .increment(published as u64);
        }
        if !parked.is_empty() {
            park(connection, service, &parked).await?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(published + parked.len()),
        }
    }

    async fn backlog(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
    }
}

/// Marks a batch published: ids, the sequences and streams that took them.
pub const MARK_PUBLISHED: &str = "UPDATE outbox SET published_at = now(), stream_seq = batch.seq, stream = batch.stream \
     FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS batch(id, seq, stream) \
     WHERE outbox.id = batch.id";

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    pub(super) id: i64,
    pub(super) event_id: uuid::Uuid,
    pub(super) subject: String,
    pub(super) body: Vec<u8>,
    pub(super) request_id: String,
    pub(super) created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("nats is not connected")]
    NotConnected,
    #[error("publish: {0}")]
    Publish(#[from] jetstream::context::PublishError),
    #[error("stream lookup: {0}")]
    StreamLookup(#[from] jetstream::context::GetStreamError),
    #[error("reading back the stream: {0}")]
    ReadBack(#[from] jetstream::stream::LastRawMessageError),
}
