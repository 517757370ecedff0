//! The request id: a client may send its own `X-Request-Id`, which then
//! travels into every event's `correlation_id`, NATS headers and the audit
//! index; one outside the bounds is refused here, before anything uses it.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use taskflow_schemas::limits::{REQUEST_ID_RULE, is_valid_request_id};
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::REQUEST_ID;
use crate::error::ApiError;

/// Refuses a request whose `X-Request-Id` is not 1 to 128 visible ASCII
/// characters, or is sent more than once.
pub async fn check(request: Request, next: Next) -> Response {
    let mut sent = request.headers().get_all(REQUEST_ID).iter();
    let valid = match (sent.next(), sent.next()) {
        (None, _) => true,
        (Some(value), None) => is_valid_request_id(value.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if valid {
        next.run(request).await
    } else {
        ApiError::invalid("X-Request-Id", REQUEST_ID_RULE).into_response()
    }
}

/// Requests without an `X-Request-Id` get a UUID v7.
#[derive(Clone, Copy)]
pub struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}
