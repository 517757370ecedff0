//! `/api/v1/notifications`: sent on to the notifier.

use axum::extract::State;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{ListNotifications, MarkNotificationRead};
use taskflow_schemas::commands::Page;
use taskflow_schemas::notification::{Notification, NotificationQuery, NotificationRef};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::consistency::{AppliedBy, Notifier};
use crate::error::ApiError;
use crate::extract::{Context, PathId, QueryParams};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
}

/// Your notifications, newest first: one per channel (`in_app`, and
/// `email` when you enabled it), with how sending went.
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications",
    params(NotificationQuery, ("Consistency-Token" = Option<String>, Header, nullable = false, pattern = r"^tasks\.[0-9]{1,19}$", description = "a write's token: answer once this service has applied it")),
    responses(
        (status = 200, body = Page<Notification>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a cursor this API did not give out"),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_notifications(
    State(state): State<EdgeState>,
    user: AuthUser,
    _: AppliedBy<Notifier>,
    Context(context): Context,
    QueryParams(query): QueryParams<NotificationQuery>,
) -> Result<axum::Json<Page<Notification>>, ApiError> {
    let page = state
        .commands
        .call::<ListNotifications>(&context, user.acting(query))
        .await?;
    Ok(axum::Json(page))
}

/// Marks one of your notifications read (again: unchanged).
#[utoipa::path(
    post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = uuid::Uuid, Path), ("Consistency-Token" = Option<String>, Header, nullable = false, pattern = r"^tasks\.[0-9]{1,19}$", description = "a write's token: answer once this service has applied it")),
    responses(
        (status = 200, body = Notification),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn mark_read(
    State(state): State<EdgeState>,
    user: AuthUser,
    _: AppliedBy<Notifier>,
    Context(context): Context,
    PathId(notification_id): PathId,
) -> Result<axum::Json<Notification>, ApiError> {
    let notification = state
        .commands
        .call::<MarkNotificationRead>(&context, user.acting(NotificationRef { notification_id }))
        .await?;
    Ok(axum::Json(notification))
}
