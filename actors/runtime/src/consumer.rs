//! The one way a service consumes a stream: a [`StreamConsumer`] actor owns a
//! durable pull consumer, hands each event to the service's [`EventHandler`]
//! inside a database transaction that also records the event's id, and acks
//! only after that transaction committed.
//!
//! - A redelivered or re-injected event finds its id recorded and changes
//!   nothing (the `consumed_events` table of the service's database:
//!   `consumer text, event_id uuid, primary key (consumer, event_id)`).
//! - An unknown `schema_version` is logged, counted, acked and skipped.
//! - A message that is not an envelope, a handler that rejects an event, and
//!   an event that failed `MAX_DELIVER` times go to `DLQ` as
//!   `dlq.<consumer>`, with the reason and the original subject, stream and
//!   sequence in headers; then the message is terminated. One bad message
//!   never holds up the ones behind it for longer than its retries.
//! - A retryable failure (the database is down) is answered with a nak and a
//!   growing delay.
//!
//! Any number of instances may run the same consumer: the server spreads the
//! messages over them, and the recorded ids keep effects single.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message};
use futures::{FutureExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sqlx::{PgConnection, PgPool};
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::envelope::SCHEMA_VERSION;
use tracing::Instrument;

use crate::Platform;
use crate::postgres::DatabaseErrorKind;

/// Deliveries before an event that keeps failing goes to the DLQ.
pub const MAX_DELIVER: i64 = 5;
/// A message not acked by then (its consumer died) is delivered again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages per pull request, and how long one waits for them.
const BATCH: usize = 256;
/// Events applied in one transaction, at most.
const GROUP: usize = 128;
const PULL_EXPIRES: Duration = Duration::from_millis(500);
/// How often the lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Header names of a DLQ message.
pub mod dlq_headers {
    pub const REASON: &str = "Taskflow-Dlq-Reason";
    pub const SUBJECT: &str = "Taskflow-Dlq-Subject";
    pub const STREAM: &str = "Taskflow-Dlq-Stream";
    pub const SEQUENCE: &str = "Taskflow-Dlq-Sequence";
    pub const CONSUMER: &str = "Taskflow-Dlq-Consumer";
}

/// One event, decoded, with where it came from.
#[derive(Debug, Clone)]
pub struct ConsumedEvent {
    pub envelope: EventEnvelope,
    pub subject: String,
    pub stream: String,
    pub stream_seq: u64,
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Something it depends on failed; the same event may succeed later.
    #[error("retryable: {0}")]
    Retry(String),
    /// The event can never be applied (it contradicts what the handler
    /// needs); it goes to the DLQ at once.
    #[error("rejected: {0}")]
    Reject(String),
}

impl From<sqlx::Error> for HandlerError {
    /// Data the handler's tables refuse fails the same way every time: it
    /// goes to the DLQ. Everything else may succeed on a later delivery.
    fn from(error: sqlx::Error) -> Self {
        match crate::postgres::classify(&error) {
            DatabaseErrorKind::Refused | DatabaseErrorKind::Constraint { .. } => {
                Self::Reject(error.to_string())
            }
            DatabaseErrorKind::Unavailable | DatabaseErrorKind::Internal => {
                Self::Retry(error.to_string())
            }
        }
    }
}

/// What a service does with each event of one consumer.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` inside `tx`; the runtime has recorded its id in the
    /// same transaction and commits both, or neither.
    fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies several events, in order, inside one transaction. The default
    /// applies them one at a time; a handler that can write them together
    /// (multi-row statements) should.
    fn apply_batch(
        &self,
        tx: &mut PgConnection,
        events: &[&ConsumedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for event in events {
                self.apply(tx, event).await?;
            }
            Ok(())
        }
    }
}

/// Why a message went to the DLQ: the metric's `reason` label and the
/// first word of the `Taskflow-Dlq-Reason` header.
#[derive(Debug, Clone, Copy)]
enum DlqReason {
    /// Not an envelope, or one outside the bounds every producer keeps.
    Malformed,
    /// The handler said it can never apply it.
    Rejected,
    /// It failed `MAX_DELIVER` times.
    MaxDeliver,
}

impl DlqReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Rejected => "rejected",
            Self::MaxDeliver => "max_deliver",
        }
    }
}

/// The envelope in `payload`, or why it is not one this runtime takes.
fn decode_envelope(payload: &[u8]) -> Result<EventEnvelope, String> {
    let envelope: EventEnvelope =
        serde_json::from_slice(payload).map_err(|error| error.to_string())?;
    match envelope.out_of_bounds() {
        Some(problem) => Err(problem),
        None => Ok(envelope),
    }
}

/// How long a message waits before its next try after the DLQ refused it:
/// 200 ms, doubling, at most a minute.
fn dlq_retry_delay(delivered: i64) -> Duration {
    let doublings = delivered.clamp(1, 10) as u32 - 1;
    (Duration::from_millis(200) * 2u32.pow(doublings)).min(Duration::from_secs(60))
}

/// A decoded message on its way through.
struct Prepared {
    message: Message,
    event: ConsumedEvent,
    delivered: i64,
    span: tracing::Span,
}

impl Prepared {
    fn parts(&self) -> (&ConsumedEvent, &tracing::Span) {
        (&self.event, &self.span)
    }
}

/// A durable consumer: its name (also the DLQ subject's last token), stream
/// and subjects.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub service: &'static str,
    pub durable: String,
    pub stream: &'static str,
    pub subjects: Vec<String>,
}

pub struct StreamConsumer<H>(std::marker::PhantomData<fn() -> H>);

impl<H> Default for StreamConsumer<H> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

pub struct ConsumerArgs<H> {
    pub spec: ConsumerSpec,
    pub platform: Platform,
    pub pool: PgPool,
    pub handler: H,
}

pub struct ConsumerState<H> {
    spec: ConsumerSpec,
    jetstream: jetstream::Context,
    consumer: PullConsumer,
    pool: PgPool,
    handler: H,
    lag_checked: Instant,
}

pub enum ConsumerMessage {
    /// Pull the next batch and process it.
    Pull,
    /// Messages in the stream not yet acked by this consumer.
    Lag(RpcReplyPort<u64>),
}

impl<H: EventHandler> Actor for StreamConsumer<H> {
    type Msg = ConsumerMessage;
    type State = ConsumerState<H>;
    type Arguments = ConsumerArgs<H>;

    async fn pre_start(
        &self,
        myself: ActorRef<ConsumerMessage>,
        args: ConsumerArgs<H>,
    ) -> Result<ConsumerState<H>, ActorProcessingErr> {
        let spec = args.spec;
        let stream = args.platform.jetstream.get_stream(spec.stream).await?;
        let config = pull::Config {
            durable_name: Some(spec.durable.clone()),
            description: Some(format!("{} service", spec.service)),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            // The server never gives up on a message by itself: this runtime
            // counts deliveries and parks a message in the DLQ after
            // MAX_DELIVER, and one whose DLQ publish failed stays pending.
            max_deliver: -1,
            filter_subjects: spec.subjects.clone(),
            max_ack_pending: 10_000,
            ..Default::default()
        };
        // Create or update, so a changed setting reaches an existing consumer.
        let consumer: PullConsumer = stream.create_consumer(config).await?;
        myself.cast(ConsumerMessage::Pull)?;
        tracing::info!(service = spec.service, consumer = %spec.durable, stream = spec.stream, "consuming");
        Ok(ConsumerState {
            spec,
            jetstream: args.platform.jetstream.clone(),
            consumer,
            pool: args.pool,
            handler: args.handler,
            lag_checked: Instant::now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ConsumerMessage>,
        message: ConsumerMessage,
        state: &mut ConsumerState<H>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConsumerMessage::Pull => {
                if let Err(error) = state.pull_batch().await {
                    tracing::warn!(consumer = %state.spec.durable, %error, "pull failed; retrying");
                    myself.send_after(Duration::from_millis(500), || ConsumerMessage::Pull);
                } else {
                    // Refused only while draining, when no more pulls are wanted.
                    let _ = myself.cast(ConsumerMessage::Pull);
                }
                if state.lag_checked.elapsed() >= LAG_EVERY {
                    state.lag_checked = Instant::now();
                    if let Ok(lag) = state.lag().await {
                        metrics::gauge!("taskflow_consumer_lag", "consumer" => state.spec.durable.clone()).set(lag as f64);
                    }
                }
            }
            ConsumerMessage::Lag(reply) => {
                let _ = reply.send(state.lag().await.unwrap_or(u64::MAX));
            }
        }
        Ok(())
    }
}

impl<H: EventHandler> ConsumerState<H> {
    async fn pull_batch(&mut self) -> Result<(), async_nats::Error> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await?;
        // Whatever has arrived together is applied in one transaction.
        while let Some(first) = batch.next().await {
            let mut group = vec![first?];
            while group.len() < GROUP {
                match batch.next().now_or_never() {
                    Some(Some(message)) => group.push(message?),
                    _ => break,
                }
            }
            self.process_group(group).await;
        }
        Ok(())
    }

    async fn lag(&mut self) -> Result<u64, async_nats::Error> {
        let info = self.consumer.info().await?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Applies the group's events in one transaction and acks them; if that
    /// fails, goes through them one by one so the failing one is dealt with
    /// alone (retried, or parked in the DLQ) and the others go through.
    async fn process_group(&self, messages: Vec<Message>) {
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(event) = self.prepare(message).await {
                events.push(event);
            }
        }
        match events.len() {
            0 => {}
            1 => self.process_one(events.pop().expect("one event")).await,
            _ => match self
                .apply_all(&events.iter().map(Prepared::parts).collect::<Vec<_>>())
                .await
            {
                Ok(first_times) => {
                    for (event, first) in events.iter().zip(first_times) {
                        self.applied(&event.message, first).await;
                    }
                }
                Err(error) => {
                    tracing::debug!(consumer = %self.spec.durable, %error, "a group failed; one by one");
                    for event in events {
                        self.process_one(event).await;
                    }
                }
            },
        }
    }

    /// Decodes the message; a malformed one goes to the DLQ and an unknown
    /// schema version is skipped, both acked here.
    async fn prepare(&self, message: Message) -> Option<Prepared> {
        let (stream, stream_seq, delivered) = match message.info() {
            Ok(info) => (info.stream.to_owned(), info.stream_sequence, info.delivered),
            Err(_) => (self.spec.stream.to_owned(), 0, 1),
        };
        if delivered > 1 {
            metrics::counter!("taskflow_consumer_redeliveries_total", "consumer" => self.spec.durable.clone()).increment(1);
        }
        let envelope = match decode_envelope(&message.payload) {
            Ok(envelope) => envelope,
            Err(problem) => {
                self.dead_letter(
                    &message,
                    &stream,
                    stream_seq,
                    DlqReason::Malformed,
                    &problem,
                )
                .await;
                return None;
            }
        };
        let span = tracing::info_span!(
            "event",
            service = self.spec.service,
            consumer = %self.spec.durable,
            event_id = %envelope.event_id,
            event_type = %envelope.event_type,
            task_id = ?envelope.task_id,
            request_id = %envelope.correlation_id,
        );
        if envelope.schema_version != SCHEMA_VERSION {
            span.in_scope(|| {
                tracing::warn!(
                    schema_version = envelope.schema_version,
                    "unknown schema_version; skipped"
                )
            });
            self.count_skip("unknown_schema_version");
            self.ack(&message, AckKind::Ack).await;
            return None;
        }
        let event = ConsumedEvent {
            envelope,
            subject: message.subject.to_string(),
            stream,
            stream_seq,
        };
        Some(Prepared {
            message,
            event,
            delivered,
            span,
        })
    }

    async fn process_one(&self, prepared: Prepared) {
        let Prepared {
            message,
            event,
            delivered,
            span,
        } = prepared;
        let (stream, stream_seq) = (event.stream.as_str(), event.stream_seq);
        match self.apply_all(&[(&event, &span)]).await {
            Ok(first) => self.applied(&message, first[0]).await,
            Err(HandlerError::Reject(reason)) => {
                self.dead_letter(&message, stream, stream_seq, DlqReason::Rejected, &reason)
                    .await;
            }
            Err(HandlerError::Retry(reason)) if delivered >= MAX_DELIVER => {
                let reason = format!("failed {delivered} deliveries: {reason}");
                self.dead_letter(&message, stream, stream_seq, DlqReason::MaxDeliver, &reason)
                    .await;
            }
            Err(HandlerError::Retry(reason)) => {
                let delay = Duration::from_millis(200 * 2u64.pow(delivered.clamp(1, 6) as u32 - 1));
                span.in_scope(|| {
                    tracing::warn!(%reason, delivered, retry_in_ms = delay.as_millis() as u64, "event failed; will retry")
                });
                self.ack(&message, AckKind::Nak(Some(delay))).await;
            }
        }
    }

    async fn applied(&self, message: &Message, first: bool) {
        if first {
            metrics::counter!("taskflow_consumer_applied_total", "consumer" => self.spec.durable.clone()).increment(1);
        } else {
            self.count_skip("duplicate");
        }
        self.ack(message, AckKind::Ack).await;
    }

    /// Records the ids and applies the events in one transaction; for each,
    /// `false` when its id was already recorded (nothing changed).
    async fn apply_all(
        &self,
        events: &[(&ConsumedEvent, &tracing::Span)],
    ) -> Result<Vec<bool>, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<uuid::Uuid> = events
            .iter()
            .map(|(event, _)| event.envelope.event_id)
            .collect();
        let mut recorded: HashSet<uuid::Uuid> = sqlx::query_scalar(
            "INSERT INTO consumed_events (consumer, event_id) SELECT $1, unnest($2::uuid[]) \
             ON CONFLICT DO NOTHING RETURNING event_id",
        )
        .bind(&self.spec.durable)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        // An id twice in one group (injected twice) is applied once: the first.
        let first_times: Vec<bool> = ids.iter().map(|id| recorded.remove(id)).collect();
        let fresh: Vec<&ConsumedEvent> = events
            .iter()
            .zip(&first_times)
            .filter_map(|(&(event, _), first)| first.then_some(event))
            .collect();
        match events {
            [(_, span)] => {
                self.handler
                    .apply_batch(&mut tx, &fresh)
                    .instrument((*span).clone())
                    .await?
            }
            _ => self.handler.apply_batch(&mut tx, &fresh).await?,
        }
        tx.commit().await?;
        Ok(first_times)
    }

    /// Parks the message on `DLQ` with why, then terminates it; if the DLQ
    /// cannot take it, naks it with a growing delay: the server keeps it
    /// (no server-side MaxDeliver), so it is never lost.
    async fn dead_letter(
        &self,
        message: &Message,
        stream: &str,
        stream_seq: u64,
        kind: DlqReason,
        detail: &str,
    ) {
        let reason = format!("{}: {detail}", kind.as_str());
        tracing::error!(consumer = %self.spec.durable, stream, stream_seq, reason, "to the DLQ");
        let mut headers = async_nats::HeaderMap::new();
        // Header values are one line of visible text; the reason may quote
        // anything the message held.
        let printable: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(512)
            .collect();
        headers.insert(dlq_headers::REASON, printable.as_str());
        headers.insert(dlq_headers::SUBJECT, message.subject.as_str());
        headers.insert(dlq_headers::STREAM, stream);
        headers.insert(dlq_headers::SEQUENCE, stream_seq.to_string().as_str());
        headers.insert(dlq_headers::CONSUMER, self.spec.durable.as_str());
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .headers(headers)
            .message_id(format!("dlq-{}-{stream}-{stream_seq}", self.spec.durable));
        let subject = taskflow_schemas::subjects::dlq_subject(&self.spec.durable);
        let parked = match self.jetstream.send_publish(subject, publish).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if parked {
            metrics::counter!("taskflow_consumer_dlq_total", "consumer" => self.spec.durable.clone(), "reason" => kind.as_str())
                .increment(1);
            self.ack(message, AckKind::Term).await;
        } else {
            let delivered = message.info().map_or(1, |info| info.delivered);
            let delay = dlq_retry_delay(delivered);
            metrics::counter!("taskflow_consumer_dlq_failures_total", "consumer" => self.spec.durable.clone())
                .increment(1);
            tracing::warn!(consumer = %self.spec.durable, stream_seq, retry_in_ms = delay.as_millis() as u64, "the DLQ refused the message; it stays pending");
            self.ack(message, AckKind::Nak(Some(delay))).await;
        }
    }

    fn count_skip(&self, reason: &'static str) {
        metrics::counter!("taskflow_consumer_skipped_total", "consumer" => self.spec.durable.clone(), "reason" => reason)
            .increment(1);
    }

    async fn ack(&self, message: &Message, kind: AckKind) {
        if let Err(error) = message.ack_with(kind).await {
            // Not acked means delivered again, and the recorded id absorbs it.
            tracing::warn!(consumer = %self.spec.durable, %error, "ack failed");
        }
    }
}
