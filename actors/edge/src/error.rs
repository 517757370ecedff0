//! The one error type of the edge and its one mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use taskflow_schemas::{ErrorBody, ErrorCode};

/// Any failure of a request, as the client will see it.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(code, message))
    }

    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self(ErrorBody::invalid(field, problem))
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
        self.0.code
    }
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> Self {
        Self(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = self.0.code.as_str(), error = %self.0.error, "request failed");
        }
        let mut response = (status, axum::Json(self.0)).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
