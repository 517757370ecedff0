//! Applying a group of messages in three steps, which a consumer overlaps
//! with its neighbours' (the next group decodes while this one commits):
//! decode; record their ids and apply them in one transaction, or, when that
//! fails, one by one, so the failing message is dealt with alone (retried,
//! or parked in the DLQ) and the others go through; ack.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message};
use sqlx::PgPool;
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::envelope::SCHEMA_VERSION;
use tracing::Instrument;

use super::dlq::{self, DlqReason};
use super::{ConsumedEvent, ConsumerSpec, EventHandler, HandlerError, MAX_DELIVER, inbox};

/// What every worker of one consumer shares.
pub(super) struct GroupApplier<H> {
    pub spec: ConsumerSpec,
    pub jetstream: jetstream::Context,
    pub pool: PgPool,
    pub handler: Arc<H>,
}

/// A decoded message on its way through.
pub(super) struct Prepared {
    message: Message,
    event: ConsumedEvent,
    delivered: i64,
    span: tracing::Span,
}

impl Prepared {
    pub fn message(&self) -> &Message {
        &self.message
    }
}

/// A message whose event is committed, to ack; `first` is false when its id
/// was already recorded (a redelivery that changed nothing).
pub(super) struct Applied {
    message: Message,
    first: bool,
}

impl<H: EventHandler> GroupApplier<H> {
    /// Decodes a group; what needs no transaction (a malformed message, an
    /// unknown schema version, an event the handler ignores) is dealt with
    /// and acked here.
    pub async fn prepare_all(&self, messages: Vec<Message>) -> Vec<Prepared> {
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(event) = self.prepare(message).await {
                events.push(event);
            }
        }
        events
    }

    /// Applies the events in one transaction; if that fails, goes through
    /// them one by one, each failure dealt with alone. Returns what was
    /// committed, to ack with [`GroupApplier::acknowledge`].
    pub async fn apply(&self, mut events: Vec<Prepared>) -> Vec<Applied> {
        if events.len() == 1 {
            return self
                .process_one(events.pop().expect("one event"))
                .await
                .into_iter()
                .collect();
        }
        let parts: Vec<_> = events.iter().map(|e| (&e.event, &e.span)).collect();
        match self.apply_all(&parts).await {
            Ok(first_times) => events
                .into_iter()
                .zip(first_times)
                .map(|(event, first)| Applied {
                    message: event.message,
                    first,
                })
                .collect(),
            Err(error) => {
                tracing::debug!(consumer = %self.spec.durable, %error, "a group failed; one by one");
                let mut applied = Vec::with_capacity(events.len());
                for event in events {
                    applied.extend(self.process_one(event).await);
                }
                applied
            }
        }
    }

    /// Acks what was committed.
    pub async fn acknowledge(&self, applied: Vec<Applied>) {
        let (first, again) = applied.iter().fold((0, 0), |(first, again), applied| {
            if applied.first {
                (first + 1, again)
            } else {
                (first, again + 1)
            }
        });
        metrics::counter!("taskflow_consumer_applied_total", "consumer" => self.spec.durable.clone()).increment(first);
        if again > 0 {
            metrics::counter!("taskflow_consumer_skipped_total", "consumer" => self.spec.durable.clone(), "reason" => "duplicate")
                .increment(again);
        }
        for applied in applied {
            self.ack(&applied.message, AckKind::Ack).await;
        }
    }

    /// Decodes the message; a malformed one goes to the DLQ, and an unknown
    /// schema version and an event the handler ignores are skipped, all
    /// acked here.
    async fn prepare(&self, message: Message) -> Option<Prepared> {
        let (stream, stream_seq, delivered) = match message.info() {
            Ok(info) => (info.stream.to_owned(), info.stream_sequence, info.delivered),
            Err(_) => (self.spec.stream.to_owned(), 0, 1),
        };
        if delivered > 1 {
            metrics::counter!("taskflow_consumer_redeliveries_total", "consumer" => self.spec.durable.clone()).increment(1);
        }
        let envelope = match dlq::decode_envelope(&message.payload) {
            Ok(envelope) => envelope,
            Err(problem) => {
                let from = (stream.as_str(), stream_seq);
                self.dead_letter(&message, from, delivered, DlqReason::Malformed, &problem)
                    .await;
                return None;
            }
        };
        if envelope.schema_version != SCHEMA_VERSION {
            self.span_of(&envelope).in_scope(|| {
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
        // Before the span: most events a handler ignores cost it nothing else.
        if self.handler.ignores(&event) {
            self.count_skip("ignored");
            self.ack(&message, AckKind::Ack).await;
            return None;
        }
        let span = self.span_of(&event.envelope);
        Some(Prepared {
            message,
            event,
            delivered,
            span,
        })
    }

    /// The span of an event's handling, which every log line about it carries.
    fn span_of(&self, envelope: &EventEnvelope) -> tracing::Span {
        tracing::info_span!(
            "event",
            service = self.spec.service,
            consumer = %self.spec.durable,
            event_id = %envelope.event_id,
            event_type = %envelope.event_type,
            task_id = ?envelope.task_id,
            request_id = %envelope.correlation_id,
        )
    }

    /// Applies one event; a failure is dealt with here (retried later, or
    /// parked in the DLQ).
    async fn process_one(&self, prepared: Prepared) -> Option<Applied> {
        let Prepared {
            message,
            event,
            delivered,
            span,
        } = prepared;
        let from = (event.stream.as_str(), event.stream_seq);
        let error = match self.apply_all(&[(&event, &span)]).await {
            Ok(first) => {
                return Some(Applied {
                    message,
                    first: first[0],
                });
            }
            Err(error) => error,
        };
        match error {
            HandlerError::Reject(reason) => {
                self.dead_letter(&message, from, delivered, DlqReason::Rejected, &reason)
                    .await;
            }
            HandlerError::Retry(reason) if delivered >= MAX_DELIVER => {
                let reason = format!("failed {delivered} deliveries: {reason}");
                self.dead_letter(&message, from, delivered, DlqReason::MaxDeliver, &reason)
                    .await;
            }
            HandlerError::Retry(reason) => {
                let delay = Duration::from_millis(200 * 2u64.pow(delivered.clamp(1, 6) as u32 - 1));
                span.in_scope(|| {
                    tracing::warn!(%reason, delivered, retry_in_ms = delay.as_millis() as u64, "event failed; will retry")
                });
                self.ack(&message, AckKind::Nak(Some(delay))).await;
            }
        }
        None
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
        let first_times = inbox::record(&mut tx, &self.spec.durable, &ids).await?;
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
        if !fresh.is_empty() {
            self.handler.committed();
        }
        Ok(first_times)
    }

    /// Parks the message on `DLQ` with why, then terminates it; if the DLQ
    /// cannot take it, naks it with a growing delay: the server keeps it
    /// (no server-side MaxDeliver), so it is never lost.
    async fn dead_letter(
        &self,
        message: &Message,
        from: (&str, u64),
        delivered: i64,
        kind: DlqReason,
        detail: &str,
    ) {
        let consumer = self.spec.durable.as_str();
        let reason = format!("{}: {detail}", kind.as_str());
        tracing::error!(
            consumer,
            stream = from.0,
            stream_seq = from.1,
            reason,
            "to the DLQ"
        );
        if dlq::park(&self.jetstream, consumer, message, from, &reason).await {
            metrics::counter!("taskflow_consumer_dlq_total", "consumer" => consumer.to_owned(), "reason" => kind.as_str())
                .increment(1);
            self.ack(message, AckKind::Term).await;
        } else {
            let delay = dlq::retry_delay(delivered);
            metrics::counter!("taskflow_consumer_dlq_failures_total", "consumer" => consumer.to_owned())
                .increment(1);
            tracing::warn!(
                consumer,
                stream_seq = from.1,
                retry_in_ms = delay.as_millis() as u64,
                "the DLQ refused the message; it stays pending"
            );
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
