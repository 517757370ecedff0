//! Error codes shared by command replies and HTTP responses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong, in a form a program can branch on. The edge maps each
/// code to one HTTP status (see `ErrorCode::http_status`), in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    IdempotencyKeyInFlight,
    PreconditionFailed,
    PayloadTooLarge,
    IdempotencyKeyReused,
    Unprocessable,
    RateLimited,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            Self::ValidationFailed => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::IdempotencyKeyInFlight => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::IdempotencyKeyReused | Self::Unprocessable => 422,
            Self::RateLimited => 429,
            Self::ServiceUnavailable => 503,
            Self::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Unprocessable => "unprocessable",
            Self::RateLimited => "rate_limited",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }
}

/// The error shape of every HTTP response and every command reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// For people: what went wrong, naming the field where one is at fault.
    pub error: String,
    pub code: ErrorCode,
    /// The offending field of a validation error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            code,
            field: None,
        }
    }

    /// 400: the field does not match the documented schema.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            error: format!("{field}: {problem}"),
            code: ErrorCode::ValidationFailed,
            field: Some(field.to_owned()),
        }
    }

    /// 422: the field matches the schema, but a rule that depends on other
    /// fields, on stored state, or on values no schema can list refuses it.
    pub fn refused(field: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            code: ErrorCode::Unprocessable,
            ..Self::invalid(field, problem)
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.code.as_str())
    }
}

impl std::error::Error for ErrorBody {}
