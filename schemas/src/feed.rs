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
/// and a check of that event's id. A NATS server that lost its unsynced tail
/// (a power loss) gives the lost sequences again to other events; the check
/// tells a cursor of the lost history from one of today's stream.
///
/// On the wire a cursor is a number below 2^53, so JavaScript clients hold
/// it exactly: `width` (6 bits) · `check` (47 − width bits) · `seq` (width
/// bits), where `width` is the bit length of `seq`. The check gets every bit
/// the sequence leaves: 27 bits in a stream's first million events, 17 at a
/// billion, 13 (the earlier fixed width) at 2^34. A number whose top bits
/// are 0 (0, or a bare sequence below 2^47) is a cursor without a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCursor {
    pub seq: u64,
    /// `None` for a cursor that carries no check.
    pub check: Option<u64>,
}

impl FeedCursor {
    /// Payload bits below the 6-bit width: the sequence and its check.
    const PAYLOAD_BITS: u32 = 47;
    const PAYLOAD_MASK: u64 = (1 << Self::PAYLOAD_BITS) - 1;
    /// The check of a number below 2^53 that is no cursor of this format,
    /// such as one of the earlier format (a 13-bit check above 40 bits of
    /// sequence): a check no event has, so that it gets `resync_required`
    /// rather than a refusal.
    const RETIRED: u64 = u64::MAX;

    /// The cursor of the event `event_id` at `seq`.
    pub fn of_event(seq: u64, event_id: &uuid::Uuid) -> Self {
        // The last 62 bits of a v7 id are random: no hash needed.
        let random = u64::from_be_bytes(event_id.as_bytes()[8..16].try_into().expect("8 bytes"));
        Self {
            seq,
            check: Some(random & Self::check_mask(seq)),
        }
    }

    /// A cursor at `seq` with no check (a message that is not an envelope).
    pub fn unchecked(seq: u64) -> Self {
        Self { seq, check: None }
    }

    /// The number a client holds; the sequence alone when it has no check.
    pub fn to_wire(self) -> u64 {
        match self.check {
            None => self.seq & Self::PAYLOAD_MASK,
            Some(check) => {
                let width = Self::width(self.seq);
                (u64::from(width) << Self::PAYLOAD_BITS)
                    | ((check & Self::check_mask(self.seq)) << width)
                    | self.seq
            }
        }
    }

    /// The cursor a client sent back, `None` for a number this feed never
    /// gives out.
    pub fn from_wire(wire: u64) -> Option<Self> {
        if wire >= 1 << 53 {
            return None;
        }
        let width = (wire >> Self::PAYLOAD_BITS) as u32;
        let payload = wire & Self::PAYLOAD_MASK;
        if width == 0 {
            return Some(Self::unchecked(payload));
        }
        let seq = payload & ((1 << width.min(Self::PAYLOAD_BITS)) - 1);
        if width > Self::PAYLOAD_BITS || Self::width(seq) != width {
            return Some(Self {
                seq: wire & ((1 << 40) - 1),
                check: Some(Self::RETIRED),
            });
        }
        Some(Self {
            seq,
            check: Some(payload >> width),
        })
    }

    /// How many bits a check holds at `seq`.
    pub fn check_bits(seq: u64) -> u32 {
        Self::PAYLOAD_BITS.saturating_sub(Self::width(seq))
    }

    fn width(seq: u64) -> u32 {
        u64::BITS - seq.leading_zeros()
    }

    fn check_mask(seq: u64) -> u64 {
        (1 << Self::check_bits(seq)) - 1
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
        for seq in [1, 41, 1 << 20, (1 << 34) + 5, (1 << 40) - 1, (1 << 47) - 1] {
            for _ in 0..200 {
                let cursor = FeedCursor::of_event(seq, &uuid::Uuid::now_v7());
                let wire = cursor.to_wire();
                assert!(wire < 1 << 53);
                assert_eq!(FeedCursor::from_wire(wire), Some(cursor));
            }
        }
    }

    #[test]
    fn the_check_takes_every_bit_the_sequence_leaves() {
        // A lost cursor whose sequence holds another event now passes once
        // in 2^bits: the fixed 13 bits passed once in 8,191.
        assert_eq!(FeedCursor::check_bits(1), 46);
        assert_eq!(FeedCursor::check_bits(1_000_000), 27);
        assert_eq!(FeedCursor::check_bits(1_000_000_000), 17);
        assert_eq!(FeedCursor::check_bits((1 << 34) - 1), 13);
        let seq = 999_999;
        let checks: std::collections::HashSet<_> = (0..2_000)
            .map(|_| FeedCursor::of_event(seq, &uuid::Uuid::now_v7()).check)
            .collect();
        assert!(checks.len() > 1_990, "{} distinct checks", checks.len());
    }

    #[test]
    fn a_bare_sequence_is_an_unchecked_cursor_and_larger_numbers_are_refused() {
        assert_eq!(FeedCursor::from_wire(0), Some(FeedCursor::unchecked(0)));
        assert_eq!(FeedCursor::from_wire(7), Some(FeedCursor::unchecked(7)));
        assert_eq!(FeedCursor::unchecked(7).to_wire(), 7);
        assert_eq!(FeedCursor::from_wire(1 << 53), None);
        assert_eq!(FeedCursor::from_wire(u64::MAX), None);
    }

    #[test]
    fn a_cursor_of_the_earlier_format_lies_beyond_the_stream_or_fails_its_check() {
        // 13 bits of check above 40 of sequence: its top six bits read as a
        // width of 0 or of 41 and more put it beyond any stream below 2^40
        // events; 48 and more, or a width its sequence does not fill, give
        // a check no event has.
        for check in [1, 127, 128, 3_000, 5_200, 6_143, 6_144, 8_191] {
            let earlier = (check << 40) | 41;
            let cursor = FeedCursor::from_wire(earlier).unwrap();
            for _ in 0..100 {
                let event = FeedCursor::of_event(cursor.seq, &uuid::Uuid::now_v7());
                assert!(cursor.seq >= 1 << 40 || cursor != event, "{check}");
            }
        }
    }
}
