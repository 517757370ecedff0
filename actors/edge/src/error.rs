//! The one error type of the edge and its one mapping to HTTP.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use taskflow_schemas::{ErrorBody, ErrorCode};

/// Any failure of a request, as the client will see it.
#[derive(Debug)]
pub struct ApiError {
    body: ErrorBody,
    /// When to try again, for a 429 or a 503 (`Retry-After`).
    retry_after: Duration,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from(ErrorBody::new(code, message))
    }

    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::from(ErrorBody::invalid(field, problem))
    }

    /// 429: `what` allows no more requests for now; try again after `wait`.
    pub fn rate_limited(what: &str, wait: Duration) -> Self {
        Self {
            retry_after: wait,
            ..Self::new(
                ErrorCode::RateLimited,
                format!(
                    "too many requests {what}; try again in {} s",
                    whole_seconds(wait)
                ),
            )
        }
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn unavailable(what: &str) -> Self {
        Self::new(
            ErrorCode::ServiceUnavailable,
            format!("{what} is unavailable, try again shortly"),
        )
    }

    pub fn code(&self) -> ErrorCode {
        self.body.code
    }
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> Self {
        Self {
            body,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// `Retry-After` counts whole seconds; never say 0 while a wait is due.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.body.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = self.body.code.as_str(), error = %self.body.error, "request failed");
        }
        let retry_after = HeaderValue::from(whole_seconds(self.retry_after).max(1));
        let mut response = (status, axum::Json(self.body)).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after);
            }
            _ => {}
        }
        response
    }
}
