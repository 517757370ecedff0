//! `/api/v1/auth`: sent on to the identity service.

use axum::extract::State;
use axum::http::StatusCode;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{Login, Register};
use taskflow_schemas::commands::{Credentials, Registration, Session};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::error::ApiError;
use crate::extract::{Context, JsonBody};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

/// Create an account; the reply carries a bearer token.
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = Registration,
    responses((status = 201, body = Session), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn register(
    State(state): State<EdgeState>,
    Context(context): Context,
    JsonBody(registration): JsonBody<Registration>,
) -> Result<(StatusCode, axum::Json<Session>), ApiError> {
    state.limits.check_account(&registration.email)?;
    let session = state
        .commands
        .call::<Register>(&context, registration)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(session)))
}

#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = Credentials,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody))
)]
async fn login(
    State(state): State<EdgeState>,
    Context(context): Context,
    JsonBody(credentials): JsonBody<Credentials>,
) -> Result<axum::Json<Session>, ApiError> {
    state.limits.check_account(&credentials.email)?;
    let session = state.commands.call::<Login>(&context, credentials).await?;
    Ok(axum::Json(session))
}
