//! `/api/v1/users`: forwarded to the identity service.

use axum::extract::State;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::commands::{Command, ProfilePatch, UserRef};
use taskflow_schemas::subjects::commands::identity;
use taskflow_schemas::user::{PublicProfile, UserProfile};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathId, RequestId};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me))
        .routes(routes!(get_user))
}

#[utoipa::path(
    get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, body = UserProfile), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_me(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
) -> Result<axum::Json<UserProfile>, ApiError> {
    let body = UserRef { user_id: user.id };
    Ok(axum::Json(
        state
            .commands
            .send(identity::GET_PROFILE, &request_id, &body)
            .await?,
    ))
}

/// Change your name, time zone (IANA) or email notifications.
#[utoipa::path(
    patch, path = "/api/v1/users/me", tag = "users",
    request_body = ProfilePatch,
    responses((status = 200, body = UserProfile), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn patch_me(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    JsonBody(patch): JsonBody<ProfilePatch>,
) -> Result<axum::Json<UserProfile>, ApiError> {
    let command = Command::new(user.principal(), patch);
    Ok(axum::Json(
        state
            .commands
            .send(identity::UPDATE_PROFILE, &request_id, &command)
            .await?,
    ))
}

/// Another user's public profile.
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = PublicProfile), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_user(
    State(state): State<EdgeState>,
    _user: AuthUser,
    RequestId(request_id): RequestId,
    PathId(user_id): PathId,
) -> Result<axum::Json<PublicProfile>, ApiError> {
    let body = UserRef { user_id };
    Ok(axum::Json(
        state
            .commands
            .send(identity::GET_PUBLIC_PROFILE, &request_id, &body)
            .await?,
    ))
}
