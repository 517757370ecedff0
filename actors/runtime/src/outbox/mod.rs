//! The transactional outbox: a write commits its event in the same
//! transaction as its effect ([`enqueue`]); the [`OutboxRelay`] actor then
//! publishes committed rows to JetStream in `id` order (rows a stream lost
//! first, in the order it had them), with
//! `Nats-Msg-Id = event_id`, and marks them published only after the stream
//! acknowledged them.
//!
//! The runtime's own migrations (`migrations/runtime`) create the `outbox`
//! table in every service database.
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
mod janitor;
mod lost_tail;
mod parking;
mod record;
mod relay;

pub use lost_tail::LOST_TAIL_LOOKUPS;
pub use record::{OutboxRecord, enqueue, enqueue_record, enqueue_records};
pub use relay::{MARK_PUBLISHED, OutboxRelay, RelayHandle, RelayMessage};
