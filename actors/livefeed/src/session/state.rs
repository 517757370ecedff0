//! The session's decisions, apart from the socket and the streams: what a
//! client's frames ask for, how many resumes a connection may ask for,
//! where live frames start after a replay, which of the hub's frames are
//! new to the client, and what a replayed event becomes for the viewer.

use std::time::Duration;

use taskflow_schemas::feed::{ClientFrame, FeedCursor, FeedErrorCode};
use tokio::time::Instant;
use uuid::Uuid;

use crate::event::Delivery;

/// Resumes one connection may ask for in a minute.
pub const RESUMES_PER_MINUTE: usize = 10;

/// Why a session ends early: the code of its error frame and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub FeedErrorCode, pub String);

impl Refusal {
    pub fn new(code: FeedErrorCode, message: impl Into<String>) -> Self {
        Self(code, message.into())
    }
}

/// The token and cursor of a first frame, which must be `authenticate`.
pub fn first_frame(text: &str) -> Result<(String, Option<u64>), Refusal> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Authenticate { token, cursor }) => Ok((token, cursor)),
        _ => Err(Refusal::new(
            FeedErrorCode::BadFirstFrame,
            r#"the first frame must be {"type":"authenticate","token":"..."}"#,
        )),
    }
}

/// What a client asks for once it is served.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// Start again from this cursor.
    Resume(u64),
    /// Keep the session with this fresh token.
    Refresh(String),
    /// Not a frame of the protocol: the session ends.
    Refused(Refusal),
}

impl ClientRequest {
    pub fn of(text: &str) -> Self {
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Resume { cursor }) => Self::Resume(cursor),
            Ok(ClientFrame::Authenticate { token, .. }) => Self::Refresh(token),
            Err(error) => Self::Refused(Refusal::new(
                FeedErrorCode::BadFrame,
                format!("not a client frame: {error}"),
            )),
        }
    }
}

/// The resumes a connection asked for in the last minute.
#[derive(Debug, Default)]
pub struct ResumeBudget(Vec<Instant>);

impl ResumeBudget {
    /// Whether one more resume may go ahead at `now`; it counts if so.
    pub fn take(&mut self, now: Instant) -> bool {
        self.0
            .retain(|at| now.duration_since(*at) < Duration::from_secs(60));
        if self.0.len() >= RESUMES_PER_MINUTE {
            return false;
        }
        self.0.push(now);
        true
    }
}

/// Where live frames start once the session is registered with the hub at
/// `head`: a replay may have read past the head (a hub still catching up
/// after NATS came back), and what it sent is not sent again. After a
/// resync the client starts over from the head.
pub fn live_from(replayed_to: Option<FeedCursor>, resync: bool, head: FeedCursor) -> FeedCursor {
    match replayed_to {
        Some(replayed) if !resync && replayed.seq > head.seq => replayed,
        _ => head,
    }
}

/// Whether a hub frame at `seq` is new to a client whose stream frames went
/// up to `seen_to`: frames outside the stream's order (a notification, a
/// `revoked` of a membership change, `seq` 0) always are.
pub fn is_fresh(seq: u64, seen_to: FeedCursor) -> bool {
    seq == 0 || seq > seen_to.seq
}

/// What a replayed event becomes for the viewer. A replay shows tasks as
/// the viewer may read them now (`readable_now`, by the task's last event
/// in the replay): the events of a task they still read, and the `revoked`
/// at the change that took away one they no longer read.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    Event,
    Revoked(Uuid),
    Skipped,
}

pub fn replayed(delivery: Delivery, readable_now: bool) -> Replayed {
    match delivery {
        Delivery::Event if readable_now => Replayed::Event,
        Delivery::Revoked(task_id) if !readable_now => Replayed::Revoked(task_id),
        _ => Replayed::Skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_authenticates_and_nothing_else_does() {
        assert_eq!(
            first_frame(r#"{"type":"authenticate","token":"t","cursor":7}"#),
            Ok(("t".into(), Some(7)))
        );
        for text in [
            r#"{"type":"resume","cursor":7}"#,
            r#"{"type":"authenticate"}"#,
            "not json",
        ] {
            assert_eq!(
                first_frame(text).unwrap_err().0,
                FeedErrorCode::BadFirstFrame
            );
        }
    }

    #[test]
    fn a_served_client_resumes_refreshes_or_is_refused() {
        assert_eq!(
            ClientRequest::of(r#"{"type":"resume","cursor":41}"#),
            ClientRequest::Resume(41)
        );
        assert_eq!(
            ClientRequest::of(r#"{"type":"authenticate","token":"fresh"}"#),
            ClientRequest::Refresh("fresh".into())
        );
        for text in [
            r#"{"type":"resume","cursor":-1}"#,
            r#"{"type":"resume","cursor":1,"extra":true}"#,
            r#"{"type":"subscribe"}"#,
            "[]",
        ] {
            match ClientRequest::of(text) {
                ClientRequest::Refused(Refusal(code, _)) => {
                    assert_eq!(code, FeedErrorCode::BadFrame, "{text}")
                }
                other => panic!("{text} gave {other:?}"),
            }
        }
    }

    #[test]
    fn ten_resumes_a_minute_then_none_until_the_first_is_a_minute_old() {
        let start = Instant::now();
        let mut budget = ResumeBudget::default();
        for n in 0..RESUMES_PER_MINUTE as u64 {
            assert!(budget.take(start + Duration::from_secs(n)));
        }
        assert!(!budget.take(start + Duration::from_secs(30)));
        assert!(!budget.take(start + Duration::from_secs(59)));
        assert!(budget.take(start + Duration::from_secs(60)));
    }

    #[test]
    fn live_frames_start_after_whatever_the_client_was_sent_last() {
        let head = FeedCursor::unchecked(10);
        let behind = FeedCursor::unchecked(8);
        let ahead = FeedCursor::unchecked(12);
        assert_eq!(live_from(None, false, head), head);
        assert_eq!(live_from(Some(behind), false, head), head);
        assert_eq!(live_from(Some(ahead), false, head), ahead);
        assert_eq!(
            live_from(Some(ahead), true, head),
            head,
            "a resync starts at the head"
        );
        assert!(is_fresh(0, ahead), "a notification is never a duplicate");
        assert!(!is_fresh(12, ahead) && is_fresh(13, ahead));
    }

    #[test]
    fn a_replay_shows_tasks_as_the_viewer_may_read_them_now() {
        let task = Uuid::now_v7();
        assert_eq!(replayed(Delivery::Event, true), Replayed::Event);
        assert_eq!(replayed(Delivery::Event, false), Replayed::Skipped);
        assert_eq!(
            replayed(Delivery::Revoked(task), false),
            Replayed::Revoked(task)
        );
        assert_eq!(replayed(Delivery::Revoked(task), true), Replayed::Skipped);
        assert_eq!(replayed(Delivery::Nothing, true), Replayed::Skipped);
    }
}
