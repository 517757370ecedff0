//! `/api/v1/users`: sent on to the identity service.

use axum::extract::State;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{GetProfile, GetPublicProfile, UpdateProfile};
use taskflow_schemas::commands::{ProfilePatch, UserRef};
use taskflow_schemas::user::{PublicProfile, UserProfile};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{Context, JsonBody, PathId};

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
    Context(context): Context,
) -> Result<axum::Json<UserProfile>, ApiError> {
    let me = UserRef { user_id: user.id };
    let profile = state.commands.call::<GetProfile>(&context, me).await?;
    Ok(axum::Json(profile))
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
    Context(context): Context,
    JsonBody(patch): JsonBody<ProfilePatch>,
) -> Result<axum::Json<UserProfile>, ApiError> {
    let profile = state
        .commands
        .call::<UpdateProfile>(&context, user.acting(patch))
        .await?;
    Ok(axum::Json(profile))
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
    Context(context): Context,
    PathId(user_id): PathId,
) -> Result<axum::Json<PublicProfile>, ApiError> {
    let profile = state
        .commands
        .call::<GetPublicProfile>(&context, UserRef { user_id })
        .await?;
    Ok(axum::Json(profile))
}
