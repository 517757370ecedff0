//! Access changes in effect before their reply: a membership change (or a
//! role change) is committed with its event, but each service decides
//! access from its own directory, which applies the event a moment later.
//! A reply that came before that moment would be a grant that is not there
//! yet, or worse a revocation that is not. [`everywhere`] waits, bounded,
//! until every service's directory has applied everything this service
//! published so far. A profile change (a time zone, the email setting)
//! waits the same way for the services that follow profiles, and a read
//! that carries a consistency token for the consumers of the service it
//! asks ([`all_applied`]).

use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use futures::TryStreamExt;
use sqlx::PgPool;
use taskflow_schemas::subjects::AUDIT_STREAM;
use taskflow_schemas::{ErrorBody, ErrorCode};
use tokio::time::Instant;

/// The consumers that decide access: `<service>-directory`.
pub const DIRECTORIES: &[&str] = &["-directory"];
/// The consumers that act on a user's profile as well: `<service>-users`.
pub const PROFILES: &[&str] = &["-directory", "-users"];

/// How long apart the outbox and the consumers are asked again: soon at
/// first (a change is usually in effect within milliseconds), then less
/// often, so that waiters during an outage do not load the server.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(100);

/// How long a command waits for its change to be in effect everywhere
/// before it answers 503 (the change saved, the client retries).
pub const WITHIN: Duration = Duration::from_secs(5);

/// When to stop waiting: `at_most` from now, or the caller's `deadline` if
/// that comes first.
pub fn until(deadline: Option<SystemTime>, at_most: Duration) -> Instant {
    let left = deadline
        .and_then(|deadline| deadline.duration_since(SystemTime::now()).ok())
        .map_or(at_most, |left| left.min(at_most));
    Instant::now() + left
}

/// What a client is told when its change is saved but not yet known to be
/// in effect everywhere: a 503 it may retry (the retry waits anew).
pub fn not_yet_body() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::ServiceUnavailable,
        "the change is saved but not yet in effect everywhere; try again shortly",
    )
}

/// Why a change is not known to be in effect everywhere.
#[derive(Debug, thiserror::Error)]
pub enum NotInEffect {
    #[error("not every service applied the change in time")]
    TimedOut,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Waits until every row of `pool`'s outbox committed so far is on `AUDIT`
/// and every consumer on it whose name ends in one of `followers` (see
/// [`DIRECTORIES`], [`PROFILES`]) acknowledged it, or `until` passes.
pub async fn everywhere(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    followers: &[&str],
    until: Instant,
) -> Result<(), NotInEffect> {
    let newest: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM outbox")
        .fetch_one(pool)
        .await?;
    let mut poll = Poll::new(until);
    // Published: the relay was woken by the commit.
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND id <= $1)",
        )
        .bind(newest)
        .fetch_one(pool)
        .await?;
        if !waiting {
            break;
        }
        poll.pause().await?;
    }
    // The newest of them on AUDIT (or a later one: waiting for more is
    // harmless); none within the janitor's hour, nothing to wait for.
    let Some(seq): Option<i64> =
        sqlx::query_scalar("SELECT max(stream_seq) FROM outbox WHERE stream = $1")
            .bind(AUDIT_STREAM)
            .fetch_one(pool)
            .await?
    else {
        return Ok(());
    };
    let follows = |name: &str| followers.iter().any(|end| name.ends_with(end));
    while !applied_on_audit(jetstream, &follows, seq as u64).await {
        poll.pause().await?;
    }
    Ok(())
}

/// Pauses between two looks, growing from [`FIRST_POLL`] to
/// [`LONGEST_POLL`]; times out rather than sleep past `until`.
pub struct Poll {
    until: Instant,
    next: Duration,
}

impl Poll {
    pub fn new(until: Instant) -> Self {
        Self {
            until,
            next: FIRST_POLL,
        }
    }

    pub async fn pause(&mut self) -> Result<(), NotInEffect> {
        let now = Instant::now();
        if now >= self.until {
            metrics::counter!("taskflow_changes_not_in_effect_total").increment(1);
            return Err(NotInEffect::TimedOut);
        }
        tokio::time::sleep(self.next.min(self.until - now)).await;
        self.next = (self.next * 2).min(LONGEST_POLL);
        Ok(())
    }
}

/// Whether each consumer on `AUDIT` that `consumers` names acknowledged
/// `seq`; a server that does not answer counts as not yet.
async fn applied_on_audit(
    jetstream: &jetstream::Context,
    consumers: &(dyn Fn(&str) -> bool + Sync),
    seq: u64,
) -> bool {
    let Ok(stream) = jetstream.get_stream_no_info(AUDIT_STREAM).await else {
        return false;
    };
    let listed: Result<Vec<_>, _> = stream.consumers().try_collect().await;
    listed.is_ok_and(|listed| all_applied(&listed, consumers, seq))
}

/// Whether each of `listed` that `consumers` names acknowledged `seq`.
pub fn all_applied(
    listed: &[jetstream::consumer::Info],
    consumers: &(dyn Fn(&str) -> bool + Sync),
    seq: u64,
) -> bool {
    // A consumer's ack floor is the last event of its subjects it
    // acknowledged: at `seq` or past it, or, with nothing pending and
    // nothing in flight, every event of its subjects up to the stream's
    // end (which `seq` is before) is applied.
    listed
        .iter()
        .filter(|consumer| consumers(&consumer.name))
        .all(|consumer| {
            consumer.ack_floor.stream_sequence >= seq
                || (consumer.num_pending == 0 && consumer.num_ack_pending == 0)
        })
}
