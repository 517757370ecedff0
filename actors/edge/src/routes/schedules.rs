//! `/api/v1/schedules`: sent on to the scheduler.

use axum::extract::State;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{GetSchedule, ListSchedules};
use taskflow_schemas::commands::Page;
use taskflow_schemas::schedule::{Schedule, ScheduleQuery, ScheduleRef};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::consistency::{AppliedBy, Scheduler};
use crate::error::ApiError;
use crate::extract::{Context, PathId, QueryParams};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules))
        .routes(routes!(get_schedule))
}

/// Reminders and recurrence series of the tasks you can read (admins: all),
/// newest first, each with when it next fires.
#[utoipa::path(
    get, path = "/api/v1/schedules", tag = "schedules",
    params(ScheduleQuery, ("Consistency-Token" = Option<String>, Header, nullable = false, pattern = r"^tasks\.[0-9]{1,19}$", description = "a write's token: answer once this service has applied it")),
    responses(
        (status = 200, body = Page<Schedule>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a cursor this API did not give out"),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_schedules(
    State(state): State<EdgeState>,
    user: AuthUser,
    _: AppliedBy<Scheduler>,
    Context(context): Context,
    QueryParams(query): QueryParams<ScheduleQuery>,
) -> Result<axum::Json<Page<Schedule>>, ApiError> {
    let page = state
        .commands
        .call::<ListSchedules>(&context, user.acting(query))
        .await?;
    Ok(axum::Json(page))
}

/// One reminder or series (404 unless you can read its task).
#[utoipa::path(
    get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = uuid::Uuid, Path), ("Consistency-Token" = Option<String>, Header, nullable = false, pattern = r"^tasks\.[0-9]{1,19}$", description = "a write's token: answer once this service has applied it")),
    responses(
        (status = 200, body = Schedule),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn get_schedule(
    State(state): State<EdgeState>,
    user: AuthUser,
    _: AppliedBy<Scheduler>,
    Context(context): Context,
    PathId(schedule_id): PathId,
) -> Result<axum::Json<Schedule>, ApiError> {
    let schedule = state
        .commands
        .call::<GetSchedule>(&context, user.acting(ScheduleRef { schedule_id }))
        .await?;
    Ok(axum::Json(schedule))
}
