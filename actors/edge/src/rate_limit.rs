//! The edge's rate limits (`TASKFLOW_RATE_LIMIT_*`): every request per
//! client address, authenticated requests per user, and login and register
//! more strictly, per address and per account. A refusal is a 429 with
//! `Retry-After`, counted in `taskflow_http_rate_limited_total{limit}`.
//!
//! The address is the TCP peer's: behind a proxy every client shares the
//! proxy's, so limit per client there or raise `TASKFLOW_RATE_LIMIT_IP`.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::settings::{Rate, RateLimits};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::error::ApiError;

/// How often keys that have been quiet long enough to be full again are
/// forgotten, so the limiters' memory follows the active clients only.
const FORGET_EVERY: Duration = Duration::from_secs(60);

pub struct Limits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    auth_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    auth_per_account: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limits {
    /// The limiters of `limits`, with a task that keeps their memory small
    /// for as long as they are in use.
    pub fn start(limits: &RateLimits) -> Arc<Self> {
        let this = Arc::new(Self {
            per_ip: limiter(limits.per_ip),
            per_user: limiter(limits.per_user),
            auth_per_ip: limiter(limits.auth_per_ip),
            auth_per_account: limiter(limits.auth_per_account),
        });
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                limits.forget_quiet_keys();
            }
        });
        this
    }

    fn forget_quiet_keys(&self) {
        fn forget<K: Hash + Eq + Clone>(limiter: &Option<DefaultKeyedRateLimiter<K>>) {
            if let Some(limiter) = limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        forget(&self.per_ip);
        forget(&self.per_user);
        forget(&self.auth_per_ip);
        forget(&self.auth_per_account);
    }

    pub fn check_user(&self, user: Uuid) -> Result<(), ApiError> {
        check(&self.per_user, &user, "for this user")
    }

    /// Login and register, per account: the email as the user typed it,
    /// folded the way identity folds it.
    pub fn check_account(&self, email: &str) -> Result<(), ApiError> {
        check(
            &self.auth_per_account,
            &email.trim().to_lowercase(),
            "for this account",
        )
    }
}

fn limiter<K: Hash + Eq + Clone>(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<K>> {
    rate.map(|rate| {
        let burst = NonZeroU32::new(rate.count).expect("settings refuse a rate of 0");
        let quota = Quota::with_period(rate.period / rate.count)
            .expect("a rate's period is positive")
            .allow_burst(burst);
        RateLimiter::keyed(quota)
    })
}

fn check<K: Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
    what: &'static str,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        metrics::counter!("taskflow_http_rate_limited_total", "limit" => what).increment(1);
        ApiError::rate_limited(
            what,
            not_until.wait_time_from(DefaultClock::default().now()),
        )
    })
}

/// Every request but the operational ones, per client address; login and
/// register also by the stricter limit.
pub async fn per_address(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let operational = path == "/metrics" || path.starts_with("/health");
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let (Some(ip), false) = (peer, operational) {
        let auth = path.starts_with("/api/v1/auth/");
        let checked = check(&limits.per_ip, &ip, "from this address").and_then(|()| {
            if auth {
                check(&limits.auth_per_ip, &ip, "to sign in from this address")
            } else {
                Ok(())
            }
        });
        if let Err(refused) = checked {
            return refused.into_response();
        }
    }
    next.run(request).await
}
