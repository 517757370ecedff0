//! The frames of the WebSocket live feed (`GET /ws`).

use serde::{Deserialize, Serialize};

use crate::envelope::EventEnvelope;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// The first frame, unless the token came as `?token=`; may carry the
    /// cursor to resume from.
    Authenticate {
        token: String,
        #[serde(default)]
        cursor: Option<u64>,
    },
    /// Replay everything after `cursor` (see [`FeedCursor`]), then go on live.
    Resume { cursor: u64 },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authenticated, and the replay (if any) is over: live from here.
    Ready { cursor: u64 },
    /// A task event the user may see; `cursor` is its place (see [`FeedCursor`]).
    Event {
        cursor: u64,
        event: Box<EventEnvelope>,
    },
    /// One of the user's in-app notifications.
    Notification { notification: serde_json::Value },
    /// The stream no longer holds what came after the asked cursor (it is
    /// older than what the stream keeps, or of a history the NATS server
    /// lost): reload over REST, then continue from `cursor`.
    ResyncRequired { cursor: u64 },
    /// Bad input (or a slow client); the connection closes after it.
    Error { error: String, code: FeedErrorCode },
}

/// Why the feed closes a connection: the `code` of its error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedErrorCode {
    /// A `?token=`/`?cursor=` or a cursor this feed never gave out.
    ValidationFailed,
    /// No token, a bad one, or one for another user than the connection's.
    Unauthorized,
    /// A client frame that is not JSON text of a known type, or too large.
    BadFrame,
    /// The first frame is not `authenticate`.
    BadFirstFrame,
    /// The user holds as many connections as they may.
    TooManyConnections,
    /// More resumes in a minute than one connection may ask for.
    TooManyResumes,
    /// The token expired before a fresh `authenticate` came.
    TokenExpired,
    /// The client read too slowly and fell behind: resume from its cursor.
    SlowConsumer,
    /// The feed is restarting: resume from the last cursor.
    ServiceUnavailable,
    /// A replay could not reach its end: resume later from the cursor given.
    ReplayFailed,
}

impl FeedErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::BadFrame => "bad_frame",
            Self::BadFirstFrame => "bad_first_frame",
            Self::TooManyConnections => "too_many_connections",
            Self::TooManyResumes => "too_many_resumes",
            Self::TokenExpired => "token_expired",
            Self::SlowConsumer => "slow_consumer",
            Self::ServiceUnavailable => "service_unavailable",
            Self::ReplayFailed => "replay_failed",
        }
    }
}

/// Where a feed client is: the `TASKS` sequence of the last event it got,
/// in the low [`FeedCursor::SEQ_BITS`] bits of the cursor, and above them a
/// check of that event's id (1 to 8191; 0 for a cursor that carries none,
/// such as 0 or a bare sequence). A NATS server that lost its unsynced tail
/// (a power loss) gives the lost sequences again to other events; the check
/// tells a cursor of the lost history from one of today's stream. Cursors
/// stay below 2^53, so JavaScript clients hold them exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCursor {
    pub seq: u64,
    pub check: u16,
}

impl FeedCursor {
    pub const SEQ_BITS: u32 = 40;
    const SEQ_MASK: u64 = (1 << Self::SEQ_BITS) - 1;
    const CHECKS: u16 = 8191;

    /// The cursor of the event `event_id` at `seq`.
    pub fn of_event(seq: u64, event_id: &uuid::Uuid) -> Self {
        // The last bytes of a v7 id are random: no hash needed.
        let bytes = event_id.as_bytes();
        let low = u16::from_be_bytes([bytes[14], bytes[15]]);
        Self {
            seq,
            check: 1 + low % Self::CHECKS,
        }
    }

    /// A cursor at `seq` with no check (a message that is not an envelope).
    pub fn unchecked(seq: u64) -> Self {
        Self { seq, check: 0 }
    }

    /// The number a client holds; the sequence alone when it has no check.
    pub fn to_wire(self) -> u64 {
        (u64::from(self.check) << Self::SEQ_BITS) | (self.seq & Self::SEQ_MASK)
    }

    /// The cursor a client sent back, `None` for a number this feed never
    /// gives out.
    pub fn from_wire(wire: u64) -> Option<Self> {
        let check = wire >> Self::SEQ_BITS;
        (check <= u64::from(Self::CHECKS)).then_some(Self {
            seq: wire & Self::SEQ_MASK,
            check: check as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_written_as_their_names() {
        for code in [
            FeedErrorCode::ValidationFailed,
            FeedErrorCode::Unauthorized,
            FeedErrorCode::BadFrame,
            FeedErrorCode::BadFirstFrame,
            FeedErrorCode::TooManyConnections,
            FeedErrorCode::TooManyResumes,
            FeedErrorCode::TokenExpired,
            FeedErrorCode::SlowConsumer,
            FeedErrorCode::ServiceUnavailable,
            FeedErrorCode::ReplayFailed,
        ] {
            let written = serde_json::to_value(code).unwrap();
            assert_eq!(written, code.as_str());
            assert_eq!(
                serde_json::from_value::<FeedErrorCode>(written).unwrap(),
                code
            );
        }
    }

    #[test]
    fn a_cursor_round_trips_below_two_to_the_53() {
        for seq in [0, 1, 41, (1 << 40) - 1] {
            for _ in 0..200 {
                let cursor = FeedCursor::of_event(seq, &uuid::Uuid::now_v7());
                assert!((1..=8191).contains(&cursor.check));
                let wire = cursor.to_wire();
                assert!(wire < 1 << 53);
                assert_eq!(FeedCursor::from_wire(wire), Some(cursor));
            }
        }
    }

    #[test]
    fn a_bare_sequence_is_an_unchecked_cursor_and_larger_numbers_are_refused() {
        assert_eq!(FeedCursor::from_wire(7), Some(FeedCursor::unchecked(7)));
        assert_eq!(FeedCursor::unchecked(7).to_wire(), 7);
        assert_eq!(FeedCursor::from_wire(1 << 53), None);
        assert_eq!(FeedCursor::from_wire(u64::MAX), None);
    }
}
