//! Consistency tokens: reading your own write in another service. A task
//! write asked with `Prefer: consistency-token` answers once its event is
//! on `TASKS`, with `Consistency-Token: tasks.<sequence>`; a read that sends
//! the token back waits, boundedly, until the service it asks has applied
//! the stream up to there (the audit's record, a reminder's schedule, a
//! notification). Without the token nothing waits: most clients never read
//! across services right after a write.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use futures::TryStreamExt;
use futures::future::join_all;
use taskflow_runtime::in_effect;
use taskflow_schemas::ErrorCode;
use taskflow_schemas::events::{TASK_COMPLETED, TASK_CREATED, TASK_DELETED, TASK_UPDATED};
use taskflow_schemas::subjects::{TASKS_STREAM, task_event_subject};
use tokio::time::Instant;
use uuid::Uuid;

use crate::EdgeState;
use crate::error::ApiError;

pub const TOKEN: HeaderName = HeaderName::from_static("consistency-token");
/// The `Prefer` (RFC 7240) preference that asks a write for its token.
const PREFERENCE: &str = "consistency-token";
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
/// How long a write waits for its event to be on the stream before it
/// answers without a token (the write is done: never an error for it).
const PUBLISHED_WITHIN: Duration = Duration::from_secs(2);

/// A place on `TASKS`: everything up to it, applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    seq: u64,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tasks.{}", self.seq)
    }
}

impl std::str::FromStr for Token {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let seq = text.strip_prefix("tasks.").ok_or(())?;
        // Digits only: `u64::from_str` would take a sign.
        if seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        seq.parse().map(|seq| Token { seq }).map_err(|_| ())
    }
}

/// Whether a write asked for its token: `Prefer: consistency-token`, alone
/// or among other preferences.
pub struct WantsToken(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for WantsToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(WantsToken(wanted(&parts.headers)))
    }
}

fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            let name = preference.split(';').next().unwrap_or_default();
            name.trim().eq_ignore_ascii_case(PREFERENCE)
        })
}

/// Adds the token of the task's event at `version` (any version for a
/// deletion) to `response`, once `TASKS` holds it; without one if that
/// takes longer than [`PUBLISHED_WITHIN`].
pub async fn attach(
    jetstream: &jetstream::Context,
    response: &mut Response,
    task_id: Uuid,
    version: Option<i64>,
) {
    let until = Instant::now() + PUBLISHED_WITHIN;
    let mut pause = Duration::from_millis(1);
    let token = loop {
        if let Some(token) = published(jetstream, task_id, version).await {
            break token;
        }
        if Instant::now() + pause > until {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&token.to_string()) {
        headers.insert(TOKEN, value);
        headers.insert(PREFERENCE_APPLIED, HeaderValue::from_static(PREFERENCE));
    }
}

/// The newest of the task's events on `TASKS`, if it is at `version` or
/// later: its place covers the write's event (a task's events are on the
/// stream in version order).
async fn published(
    jetstream: &jetstream::Context,
    task_id: Uuid,
    version: Option<i64>,
) -> Option<Token> {
    let stream = jetstream.get_stream_no_info(TASKS_STREAM).await.ok()?;
    let lasts = [TASK_CREATED, TASK_UPDATED, TASK_COMPLETED, TASK_DELETED].map(|event_type| {
        let subject = task_event_subject(event_type, task_id);
        let stream = &stream;
        async move { stream.get_last_raw_message_by_subject(&subject).await.ok() }
    });
    let newest = join_all(lasts)
        .await
        .into_iter()
        .flatten()
        .max_by_key(|message| message.sequence)?;
    let reached = match version {
        None => newest.subject.as_str() == task_event_subject(TASK_DELETED, task_id),
        Some(version) => version_of(&newest.payload).is_some_and(|held| held >= version),
    };
    reached.then_some(Token {
        seq: newest.sequence,
    })
}

fn version_of(payload: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        payload: Payload,
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        task: Version,
    }
    #[derive(serde::Deserialize)]
    struct Version {
        version: i64,
    }
    serde_json::from_slice::<Envelope>(payload)
        .ok()
        .map(|envelope| envelope.payload.task.version)
}

/// How far `TASKS` and its consumers are, as last asked. Every read that
/// waits on a token looks at the same answer: JetStream is asked at most
/// once per [`FRESH_FOR`], however many reads wait (a flood of them while
/// a service is down would otherwise be a flood of API requests).
#[derive(Default)]
pub struct TasksProgress {
    last: tokio::sync::Mutex<Option<Arc<Progress>>>,
}

struct Progress {
    asked: Instant,
    /// The stream's last sequence.
    end: u64,
    consumers: Vec<jetstream::consumer::Info>,
}

/// How long one look at the consumers serves every waiting read.
const FRESH_FOR: Duration = Duration::from_millis(20);

impl TasksProgress {
    /// The last look if it is fresh and began at or after `not_before`,
    /// else a new one, taken once for all who ask meanwhile; `None` if the
    /// server does not answer. A reader passes the moment it began: its
    /// token's event was on the stream by then, so a look from before could
    /// miss it (and take the token for one beyond the stream's end).
    async fn since(
        &self,
        jetstream: &jetstream::Context,
        not_before: Instant,
    ) -> Option<Arc<Progress>> {
        let mut last = self.last.lock().await;
        if let Some(progress) = last
            .as_ref()
            .filter(|p| p.asked >= not_before && p.asked.elapsed() < FRESH_FOR)
        {
            return Some(progress.clone());
        }
        let asked = Instant::now();
        let stream = jetstream.get_stream(TASKS_STREAM).await.ok()?;
        let end = stream.cached_info().state.last_sequence;
        let consumers = stream.consumers().try_collect().await.ok()?;
        let progress = Arc::new(Progress {
            asked,
            end,
            consumers,
        });
        *last = Some(progress.clone());
        Some(progress)
    }
}

/// A service whose reads follow `TASKS` through its consumers.
pub trait Follower {
    /// Its consumers are named `<SERVICE>-…`.
    const SERVICE: &'static str;
}

pub struct Audit;
pub struct Scheduler;
pub struct Notifier;

impl Follower for Audit {
    const SERVICE: &'static str = "audit";
}
impl Follower for Scheduler {
    const SERVICE: &'static str = "scheduler";
}
impl Follower for Notifier {
    const SERVICE: &'static str = "notifier";
}

/// A read of `F`'s data after the write whose `Consistency-Token` it
/// carries: extracted once `F` has applied `TASKS` up to the token, or
/// refused with 503 after [`in_effect::WITHIN`] (400 for a token this edge
/// never gave out). Without the header (or with an empty one), nothing
/// waits.
pub struct AppliedBy<F>(PhantomData<F>);

impl<F: Follower> FromRequestParts<EdgeState> for AppliedBy<F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &EdgeState) -> Result<Self, ApiError> {
        // An empty header carries no token, as an absent one.
        let Some(value) = parts.headers.get(TOKEN).filter(|value| !value.is_empty()) else {
            return Ok(Self(PhantomData));
        };
        let token: Token = value
            .to_str()
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "Consistency-Token",
                    "is not a token this API gave out (`tasks.<sequence>`)",
                )
            })?;
        let prefix = format!("{}-", F::SERVICE);
        let consumers = |name: &str| name.starts_with(&prefix);
        let began = Instant::now();
        let until = began + in_effect::WITHIN;
        let mut poll = in_effect::Poll::new(until);
        loop {
            let look = state.tasks_progress.since(&state.jetstream, began);
            let progress = tokio::time::timeout_at(until, look);
            // Beyond the stream's end (a stream that lost its tail since):
            // nothing to wait for.
            if let Ok(Some(progress)) = progress.await
                && (token.seq > progress.end
                    || in_effect::all_applied(&progress.consumers, &consumers, token.seq))
            {
                break;
            }
            poll.pause().await.map_err(|_| {
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    format!(
                        "the {} service has not applied the change yet; try again shortly",
                        F::SERVICE
                    ),
                )
            })?;
        }
        Ok(Self(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_the_streams_name_and_a_sequence() {
        let token: Token = "tasks.4512".parse().unwrap();
        assert_eq!(token, Token { seq: 4512 });
        assert_eq!(token.to_string(), "tasks.4512");
        for refused in [
            "",
            "tasks.",
            "tasks.+1",
            "tasks.-1",
            "tasks.1.5",
            "audit.4",
            "TASKS.4",
            "tasks.99999999999999999999999",
            "tasks.4\0",
        ] {
            assert!(refused.parse::<Token>().is_err(), "{refused:?}");
        }
    }

    #[test]
    fn a_token_is_wanted_by_its_preference_among_others() {
        let mut headers = HeaderMap::new();
        assert!(!wanted(&headers));
        headers.insert("prefer", HeaderValue::from_static("return=minimal"));
        assert!(!wanted(&headers));
        headers.append(
            "prefer",
            HeaderValue::from_static("respond-async, Consistency-Token ; x=1"),
        );
        assert!(wanted(&headers));
        headers.insert("prefer", HeaderValue::from_static("consistency-tokens"));
        assert!(!wanted(&headers));
    }
}
