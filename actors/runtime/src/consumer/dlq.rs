//! Where a consumer parks what it gives up on: `DLQ`, as `dlq.<consumer>`,
//! with why and where the message came from in headers.

use std::time::Duration;

use async_nats::jetstream::{self, Message};
use taskflow_schemas::EventEnvelope;

/// Header names of a DLQ message.
pub mod dlq_headers {
    pub const REASON: &str = "Taskflow-Dlq-Reason";
    pub const SUBJECT: &str = "Taskflow-Dlq-Subject";
    pub const STREAM: &str = "Taskflow-Dlq-Stream";
    pub const SEQUENCE: &str = "Taskflow-Dlq-Sequence";
    pub const CONSUMER: &str = "Taskflow-Dlq-Consumer";
}

/// Why a message went to the DLQ: the metric's `reason` label and the
/// first word of the `Taskflow-Dlq-Reason` header.
#[derive(Debug, Clone, Copy)]
pub(super) enum DlqReason {
    /// Not an envelope, or one outside the bounds every producer keeps.
    Malformed,
    /// The handler said it can never apply it.
    Rejected,
    /// It failed `MAX_DELIVER` times.
    MaxDeliver,
}

impl DlqReason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Rejected => "rejected",
            Self::MaxDeliver => "max_deliver",
        }
    }
}

/// The envelope in `payload`, or why it is not one this runtime takes.
pub(super) fn decode_envelope(payload: &[u8]) -> Result<EventEnvelope, String> {
    let envelope: EventEnvelope =
        serde_json::from_slice(payload).map_err(|error| error.to_string())?;
    if let Some(problem) = envelope.out_of_bounds() {
        return Err(problem);
    }
    // Refused as the API refuses it: no service can store it in `text` or
    // `jsonb`, so every consumer parks it alike instead of the one that tries.
    match taskflow_schemas::decode::field_with_nul(payload) {
        Some(field) => Err(format!("{field}: must not contain NUL characters")),
        None => Ok(envelope),
    }
}

/// How long a message waits before its next try after the DLQ refused it:
/// 200 ms, doubling, at most a minute.
pub(super) fn retry_delay(delivered: i64) -> Duration {
    let doublings = delivered.clamp(1, 10) as u32 - 1;
    (Duration::from_millis(200) * 2u32.pow(doublings)).min(Duration::from_secs(60))
}

/// Publishes `message` to `dlq.<consumer>` with why and where it came
/// from; `true` once the DLQ stream acknowledged it.
pub(super) async fn park(
    jetstream: &jetstream::Context,
    consumer: &str,
    message: &Message,
    (stream, stream_seq): (&str, u64),
    reason: &str,
) -> bool {
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
    headers.insert(dlq_headers::CONSUMER, consumer);
    let publish = jetstream::message::PublishMessage::build()
        .payload(message.payload.clone())
        .headers(headers)
        .message_id(format!("dlq-{consumer}-{stream}-{stream_seq}"));
    let subject = taskflow_schemas::subjects::dlq_subject(consumer);
    match jetstream.send_publish(subject, publish).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dlq_retry_delay_doubles_up_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(2), Duration::from_millis(400));
        assert_eq!(retry_delay(50), Duration::from_secs(60));
    }

    #[test]
    fn an_envelope_holding_nul_is_refused_by_the_field_that_holds_it() {
        let envelope = EventEnvelope::new(
            "task.created",
            Some(uuid::Uuid::now_v7()),
            None,
            "req-1",
            serde_json::json!({"task": {"title": "a\u{0}b"}}),
        );
        let reason = decode_envelope(&serde_json::to_vec(&envelope).unwrap()).unwrap_err();
        assert_eq!(
            reason,
            "payload.task.title: must not contain NUL characters"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use taskflow_schemas::limits::MAX_REQUEST_ID;

        proptest! {
            #[test]
            fn any_bytes_decode_to_an_envelope_or_a_reason_never_a_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            ) {
                let _ = decode_envelope(&bytes);
            }

            #[test]
            fn any_json_value_is_taken_or_refused_with_a_reason(
                text in "\\PC{0,200}",
                number in any::<i64>(),
            ) {
                for candidate in [
                    serde_json::json!({"event_id": text, "event_type": number}),
                    serde_json::json!([text, number]),
                    serde_json::json!(text),
                ] {
                    let bytes = serde_json::to_vec(&candidate).unwrap();
                    prop_assert!(decode_envelope(&bytes).is_err());
                }
            }

            #[test]
            fn an_envelope_reads_back_as_written_unless_its_correlation_id_breaks_the_bounds(
                event_type in "[a-z]{1,10}\\.[a-z_]{1,20}",
                correlation in "\\PC{0,200}",
                title in "\\PC{0,100}",
            ) {
                let envelope = EventEnvelope::new(
                    event_type,
                    Some(uuid::Uuid::now_v7()),
                    None,
                    correlation.clone(),
                    serde_json::json!({"task": {"title": title}}),
                );
                let bytes = serde_json::to_vec(&envelope).unwrap();
                let in_bounds = !correlation.is_empty()
                    && correlation.len() <= MAX_REQUEST_ID
                    && correlation.bytes().all(|byte| byte.is_ascii_graphic());
                match decode_envelope(&bytes) {
                    Ok(read) => {
                        prop_assert!(in_bounds, "{correlation:?} was taken");
                        prop_assert_eq!(read, envelope);
                    }
                    Err(reason) => {
                        prop_assert!(!in_bounds, "{correlation:?} refused: {reason}");
                        prop_assert!(reason.starts_with("correlation_id"), "{reason}");
                    }
                }
            }
        }
    }
}
