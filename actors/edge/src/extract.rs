//! Extractors whose rejections are the contract's error shape and name the
//! offending field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use taskflow_runtime::bus::CommandContext;
use taskflow_schemas::commands::TaskRef;
use taskflow_schemas::subjects::IDEMPOTENCY_KEY_HEADER;
use taskflow_schemas::{ErrorCode, decode, limits};
use uuid::Uuid;

use crate::error::ApiError;

/// A JSON body decoded into `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        if bytes.is_empty() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "a JSON body is required",
            ));
        }
        // Serde would read a struct from an array too; every body here is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "the body must be a JSON object",
            ));
        }
        decode::json(&bytes).map(JsonBody).map_err(ApiError::from)
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else {
        ApiError::new(ErrorCode::ValidationFailed, rejection.body_text())
    }
}

/// The query string decoded into `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        decode::query(parts.uri.query().unwrap_or_default())
            .map(QueryParams)
            .map_err(ApiError::from)
    }
}

/// The `{id}` of the path as a UUID.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid("id", "missing from the path"))?;
        raw.parse()
            .map(PathId)
            .map_err(|_| ApiError::invalid("id", format!("`{raw}` is not a UUID")))
    }
}

/// The `{id}` and `{user_id}` of a member's path, as UUIDs.
pub struct MemberPath(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for MemberPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((project, user)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid("id", "missing from the path"))?;
        let parse = |field: &str, raw: &str| {
            raw.parse::<Uuid>()
                .map_err(|_| ApiError::invalid(field, format!("`{raw}` is not a UUID")))
        };
        Ok(MemberPath(parse("id", &project)?, parse("user_id", &user)?))
    }
}

/// What the command a request becomes carries besides its body: the
/// client's `X-Request-Id` (or the one the edge gave it).
pub struct Context(pub CommandContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get(crate::REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| Uuid::now_v7().to_string());
        Ok(Context(CommandContext::new(id)))
    }
}

/// `If-Match: 3` (or `"3"`, `W/"3"`): the task version the client last saw.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let bare = text.trim_start_matches("W/").trim_matches('"');
        bare.parse()
            .map(|version| IfMatch(Some(version)))
            .map_err(|_| ApiError::invalid("If-Match", "must be a task version, e.g. \"3\""))
    }
}

/// The task a write names: the path's id, and the version `If-Match` expects.
pub struct TargetTask(pub TaskRef);

impl<S: Send + Sync> FromRequestParts<S> for TargetTask {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let PathId(task_id) = PathId::from_request_parts(parts, state).await?;
        let IfMatch(expected_version) = IfMatch::from_request_parts(parts, state).await?;
        Ok(TargetTask(TaskRef {
            task_id,
            expected_version,
        }))
    }
}

/// The `Idempotency-Key` header, if sent.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(value) => {
                let bytes = value.as_bytes();
                if !limits::is_valid_idempotency_key(bytes) {
                    return Err(ApiError::invalid(
                        IDEMPOTENCY_KEY_HEADER,
                        limits::IDEMPOTENCY_KEY_RULE,
                    ));
                }
                Ok(IdempotencyKey(Some(
                    String::from_utf8_lossy(bytes).into_owned(),
                )))
            }
        }
    }
}
