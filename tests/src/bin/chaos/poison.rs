//! Poison the harness injects while it kills things: on the subjects the
//! services consume, messages that are no envelope, or valid JSON of the
//! wrong shape. Each must end in the DLQ (or be skipped) without stalling a
//! consumer; the DLQ must hold nothing else.

use std::collections::HashSet;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;

use crate::rng::Rng;

/// What the harness injected (and the server acknowledged).
#[derive(Default)]
pub struct Injected {
    pub bodies: HashSet<Vec<u8>>,
}

/// Publishes one poison message drawn from `rng`; an unacknowledged publish
/// (NATS is down) is not counted.
pub async fn inject(js: &jetstream::Context, rng: &mut Rng, injected: &mut Injected) {
    let nonce = rng.next();
    let task = uuid::Uuid::from_u64_pair(nonce, rng.next());
    let (subject, body): (String, Vec<u8>) = match rng.below(5) {
        0 => (
            format!("tasks.created.{task}"),
            format!("{{\"event_id\": {nonce}, \0 \u{1}").into_bytes().into_iter().chain([0xff, 0xfe]).collect(),
        ),
        1 => (format!("tasks.updated.{task}"), format!("[{nonce}, \"poison\"]").into_bytes()),
        2 => (
            format!("reminders.due.{task}"),
            format!(r#"{{"event_id":"{task}","event_type":"reminder.due","schema_version":"one","poison":{nonce}}}"#)
                .into_bytes(),
        ),
        3 => (
            "audit.user.registered".to_owned(),
            format!(r#"{{"poison":{nonce},"payload":[]}}"#).into_bytes(),
        ),
        _ => (
            "audit.project.member_added".to_owned(),
            format!(r#"{{"event_id":"not an id","occurred_at":{nonce},"payload":null}}"#).into_bytes(),
        ),
    };
    let publish = PublishMessage::build()
        .payload(body.clone().into())
        .message_id(task.to_string());
    let acked = match js.send_publish(subject, publish).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    if acked {
        injected.bodies.insert(body);
    }
}
