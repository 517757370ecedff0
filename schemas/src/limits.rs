//! Bounds on what a client controls and what travels into events, headers
//! and indexes. A value past one of them is refused where it enters, so it
//! can never reach a stream, a header or an index that would choke on it.

/// A task's title, in characters.
pub const MAX_TITLE: usize = 200;
/// A task's description, in characters.
pub const MAX_DESCRIPTION: usize = 10_000;
/// Labels of one task.
pub const MAX_LABELS: usize = 20;
/// One label, in characters.
pub const MAX_LABEL: usize = 50;
/// Observers of one task.
pub const MAX_OBSERVERS: usize = 50;
/// The largest `recurrence.interval`.
pub const MAX_INTERVAL: u32 = 365;
/// A reminder may come at most a year (in minutes) before the due date.
pub const MAX_REMINDER_OFFSET: i32 = 525_600;
/// The longest search text (`?q=`), in characters.
pub const MAX_SEARCH: usize = 200;

// The OpenAPI document repeats these numbers in the types' `#[schema]`
// attributes, which take literals only (utoipa#1322); the edge's tests hold
// the document to them.

/// The longest `X-Request-Id` kept; it becomes every event's `correlation_id`.
pub const MAX_REQUEST_ID: usize = 128;

/// The largest event an outbox accepts. Well under NATS's default
/// `max_payload` (1 MiB), headers included, so whatever commits can be
/// published. A task at every field's maximum makes an update event of
/// about 200 KB.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// The longest `event_type` a consumer accepts (`task.completed` and the like).
pub const MAX_EVENT_TYPE: usize = 64;

/// Whether `value` may serve as a request id: 1 to [`MAX_REQUEST_ID`]
/// visible ASCII characters (no space, no control character).
pub fn is_valid_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// The longest `Idempotency-Key` kept, as the IETF draft's examples allow.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Whether `value` may serve as an idempotency key: 1 to
/// [`MAX_IDEMPOTENCY_KEY`] visible ASCII characters, over HTTP and NATS alike.
pub fn is_valid_idempotency_key(value: &[u8]) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// What a client is told about a bad idempotency key.
pub const IDEMPOTENCY_KEY_RULE: &str = "must be 1 to 255 visible ASCII characters";

/// The pattern of a text field that must say something: no NUL, and not
/// only spaces, tabs and line breaks (what the services trim).
pub const NOT_BLANK: &str = r"^[^\u0000]*[^\u0000\t\n\r ][^\u0000]*$";

/// What the services trim from text fields before storing them.
pub const TRIMMED: [char; 4] = [' ', '\t', '\n', '\r'];

/// What a client is told about a bad request id.
pub const REQUEST_ID_RULE: &str = "must be 1 to 128 visible ASCII characters";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(is_valid_request_id(b"cli-1"));
        assert!(is_valid_request_id("x".repeat(MAX_REQUEST_ID).as_bytes()));
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id(
            "x".repeat(MAX_REQUEST_ID + 1).as_bytes()
        ));
        assert!(!is_valid_request_id(b"has space"));
        assert!(!is_valid_request_id(b"tab\there"));
        assert!(!is_valid_request_id("caf\u{e9}".as_bytes()));
        assert!(!is_valid_request_id(b"nul\0"));
    }
}
