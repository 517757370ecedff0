//! Feed cursors held against the stream. A NATS server that comes back
//! without its unsynced tail (a power loss) hands the lost sequences to
//! other events, so a sequence alone no longer says where a client is: the
//! check in its cursor must match the event the stream holds there now.

use async_nats::jetstream;
use serde::Deserialize;
use taskflow_runtime::bus::nats::message_at;
use taskflow_schemas::feed::FeedCursor;
use taskflow_schemas::subjects::TASKS_STREAM;

/// The cursor of the message `payload` at `seq`: checked by its envelope's
/// `event_id`, unchecked for a message that is no envelope.
pub fn of_message(seq: u64, payload: &[u8]) -> FeedCursor {
    #[derive(Deserialize)]
    struct Id {
        event_id: uuid::Uuid,
    }
    match serde_json::from_slice::<Id>(payload) {
        Ok(id) => FeedCursor::of_event(seq, &id.event_id),
        Err(_) => FeedCursor::unchecked(seq),
    }
}

/// The cursor of what `stream` holds at `seq` now, `None` if it holds
/// nothing there (aged out, deleted, or not written yet).
pub async fn stored_at(
    jetstream: &jetstream::Context,
    stream: &str,
    seq: u64,
) -> Result<Option<FeedCursor>, String> {
    if seq == 0 {
        return Ok(None);
    }
    let stream = jetstream
        .get_stream_no_info(stream)
        .await
        .map_err(|error| error.to_string())?;
    let message = message_at(&stream, seq)
        .await
        .map_err(|error| error.to_string())?;
    Ok(message.map(|message| of_message(seq, &message.payload)))
}

/// Whether `cursor` is a place in today's stream: 0 always is; a checked
/// cursor must find its event where it left it; an unchecked one must not
/// lie beyond the stream's end.
pub async fn still_holds(
    jetstream: &jetstream::Context,
    cursor: FeedCursor,
    end: u64,
) -> Result<bool, String> {
    if cursor.seq == 0 {
        return Ok(true);
    }
    if cursor.seq > end {
        return Ok(false);
    }
    if cursor.check.is_none() {
        return Ok(true);
    }
    Ok(stored_at(jetstream, TASKS_STREAM, cursor.seq).await? == Some(cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_checked_by_its_event_id_and_anything_else_is_not() {
        let id = uuid::Uuid::now_v7();
        let envelope = format!(r#"{{"event_id":"{id}","event_type":"task.created"}}"#);
        assert_eq!(
            of_message(9, envelope.as_bytes()),
            FeedCursor::of_event(9, &id)
        );
        assert_eq!(of_message(9, b"not json"), FeedCursor::unchecked(9));
    }
}
