//! The transactional outbox: a write commits its event in the same
//! transaction as its effect ([`enqueue`]); the [`OutboxRelay`] actor then
//! publishes committed rows to JetStream in `id` order, with
//! `Nats-Msg-Id = event_id`, and marks them published only after the stream
//! acknowledged them.
//!
//! Each service's migrations create the `outbox` table:
//! `id bigserial, event_id uuid, subject text, body bytea, request_id text,
//! created_at, published_at, stream_seq, parked_reason`, indexed by `id` and by a partial
//! index on the unpublished rows.
//!
//! Ordering: rows of one task are inserted under that task's row lock, so
//! their ids follow commit order; the relay publishes a batch pipelined on one
//! connection (the server stores them in send order) and, on a failure,
//! resumes at the first unacknowledged row, so what the stream holds is always
//! a prefix of the outbox order, duplicates removed by `Nats-Msg-Id`.
//! A row the server can never take (larger than its `max_payload`, say) is
//! parked with its reason instead of being retried for ever, so one bad row
//! never holds up the ones behind it.
//! Several instances may run a relay: the one whose session holds the relay's
//! advisory lock publishes; the others retry the lock at every sweep and take
//! over when that session ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sqlx::{PgConnection, PgPool};
use taskflow_schemas::limits::MAX_EVENT_BYTES;
use taskflow_schemas::subjects::REQUEST_ID_HEADER;
use taskflow_schemas::{ErrorBody, ErrorCode, EventEnvelope};
use tokio::sync::watch;

/// Rows published per round trip.
const BATCH_SIZE: i64 = 256;
/// The safety net: rows written by another instance, or left by a failure.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the backlog gauge is refreshed and old rows deleted.
const JANITOR_EVERY: Duration = Duration::from_secs(5);
/// Published rows are kept this long, then deleted, at most this many at a time.
const RETENTION: &str = "1 hour";
const CLEANUP_BATCH: i64 = 10_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// One key for every relay of every service: each service has its own database.
const RELAY_LOCK: i64 = 0x7461_736b_666c_6f77;

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

/// An event as the outbox stores it.
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
    /// Rows were committed, or NATS is back: publish now.
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
    pub nats_connections: watch::Receiver<u64>,
    pub jetstream: jetstream::Context,
    pub wake_pending: Arc<AtomicBool>,
}

pub struct RelayState {
    service: &'static str,
    pool: PgPool,
    /// To skip publishing while disconnected: a reconnection wakes the relay.
    nats: async_nats::Client,
    /// Counts (re)connections to NATS: a new one means the server may have
    /// restarted without its unsynced tail.
    nats_connections: watch::Receiver<u64>,
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
    /// At start and after every NATS reconnection, before it publishes
    /// anything new, the relay checks that the streams still hold what they
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
            nats_connections: platform.nats_connections.clone(),
            jetstream: platform.jetstream.clone(),
            wake_pending: wake_pending.clone(),
        };
        let janitor_pool = args.pool.clone();
        let (actor, _) = Actor::spawn_linked(None, OutboxRelay, args, supervisor.clone()).await?;
        Actor::spawn_linked(None, OutboxJanitor, (service, janitor_pool), supervisor).await?;
        let mut connections = platform.nats_connections.clone();
        connections.mark_unchanged();
        let relay = actor.clone();
        tokio::spawn(async move {
            while connections.changed().await.is_ok() {
                if relay.cast(RelayMessage::Wake).is_err() {
                    return;
                }
            }
        });
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
            nats_connections: args.nats_connections,
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
            return Err(RelayError::Nats("not connected".into()));
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
    /// lost go out again before anything newer, in `id` order.
    async fn check_streams(&mut self) -> Result<(), RelayError> {
        let connected = *self.nats_connections.borrow();
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
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
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
                    failure = Some(RelayError::Nats(error.to_string()));
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
                    failure.get_or_insert(RelayError::Nats(error.to_string()));
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
            sqlx::query(
                "UPDATE outbox SET published_at = now(), stream_seq = batch.seq, stream = batch.stream \
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS batch(id, seq, stream) \
                 WHERE outbox.id = batch.id",
            )
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
async fn recover_lost_tail(
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
        let stream = jetstream
            .get_stream_no_info(&name)
            .await
            .map_err(|error| RelayError::Nats(error.to_string()))?;
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
            "UPDATE outbox SET published_at = NULL, stream_seq = NULL, stream = NULL \
             WHERE stream = $1 AND stream_seq >= $2",
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

/// The published row with the lowest `stream_seq` at or after `seq` (or,
/// `newest`, the one with the highest), as (event id, stream sequence).
async fn row_at_or_after(
    connection: &mut PgConnection,
    stream: &str,
    seq: i64,
    newest: bool,
) -> Result<Option<(uuid::Uuid, i64)>, sqlx::Error> {
    let query = if newest {
        "SELECT event_id, stream_seq FROM outbox WHERE stream = $1 AND stream_seq <= $2 \
         ORDER BY stream_seq DESC LIMIT 1"
    } else {
        "SELECT event_id, stream_seq FROM outbox WHERE stream = $1 AND stream_seq >= $2 \
         ORDER BY stream_seq LIMIT 1"
    };
    sqlx::query_as(query)
        .bind(stream)
        .bind(seq)
        .fetch_optional(connection)
        .await
}

/// Whether the stream holds the row's message at its recorded sequence.
async fn intact(
    stream: &jetstream::stream::Stream<()>,
    (event_id, seq): &(uuid::Uuid, i64),
) -> Result<bool, RelayError> {
    match stream.get_raw_message(*seq as u64).await {
        Ok(message) => Ok(message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .is_some_and(|id| id.as_str() == event_id.to_string())),
        Err(error) => match error.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(false),
            LastRawMessageErrorKind::JetStream(api)
                if api.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND =>
            {
                Ok(false)
            }
            _ => Err(RelayError::Nats(error.to_string())),
        },
    }
}

/// Sets aside rows the server can never take (too large for it, say), with
/// why, so that the rows behind them flow on: marked published, with a
/// `parked_reason` and no `stream_seq`, they are never sent again.
async fn park(
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
fn is_permanent(error: &PublishError) -> bool {
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

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    event_id: uuid::Uuid,
    subject: String,
    body: Vec<u8>,
    request_id: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("nats: {0}")]
    Nats(String),
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
