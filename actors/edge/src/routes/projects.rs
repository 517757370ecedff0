//! `/api/v1/projects`: sent on to the projects service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{
    AddMember, CreateProject, DeleteProject, GetProject, ListMembers, ListProjects, RemoveMember,
    UpdateProject,
};
use taskflow_schemas::commands::Page;
use taskflow_schemas::project::{
    MemberChange, MemberQuery, MemberRef, MembersOf, NewMember, NewProject, Project, ProjectMember,
    ProjectPatch, ProjectQuery, ProjectRef, ProjectUpdate,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{Context, JsonBody, MemberPath, PathId, QueryParams};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(add_member, list_members))
        .routes(routes!(remove_member))
}

/// Create a project; you become its owner.
#[utoipa::path(
    post, path = "/api/v1/projects", tag = "projects",
    request_body = NewProject,
    responses(
        (status = 201, body = Project),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_project(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    JsonBody(new): JsonBody<NewProject>,
) -> Result<Response, ApiError> {
    let project = state
        .commands
        .call::<CreateProject>(&context, user.acting(new))
        .await?;
    Ok((StatusCode::CREATED, Json(project)).into_response())
}

/// The projects you are a member of (admins: all), newest first.
#[utoipa::path(
    get, path = "/api/v1/projects", tag = "projects",
    params(ProjectQuery),
    responses(
        (status = 200, body = Page<Project>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a cursor this API did not give out"),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_projects(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    QueryParams(query): QueryParams<ProjectQuery>,
) -> Result<Json<Page<Project>>, ApiError> {
    let page = state
        .commands
        .call::<ListProjects>(&context, user.acting(query))
        .await?;
    Ok(Json(page))
}

/// One project (404 unless you are a member, or an admin).
#[utoipa::path(
    get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = Project),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn get_project(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    PathId(project_id): PathId,
) -> Result<Json<Project>, ApiError> {
    let project = state
        .commands
        .call::<GetProject>(&context, user.acting(ProjectRef { project_id }))
        .await?;
    Ok(Json(project))
}

/// Change a project's name or description (owners).
#[utoipa::path(
    patch, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = uuid::Uuid, Path)),
    request_body = ProjectPatch,
    responses(
        (status = 200, body = Project),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn update_project(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    PathId(project_id): PathId,
    JsonBody(patch): JsonBody<ProjectPatch>,
) -> Result<Json<Project>, ApiError> {
    let update = ProjectUpdate { project_id, patch };
    let project = state
        .commands
        .call::<UpdateProject>(&context, user.acting(update))
        .await?;
    Ok(Json(project))
}

/// Delete a project (owners). Its memberships end at once, and every task
/// of it is deleted, each with its own `task.deleted` caused by the
/// `project.deleted`, so the audit, the schedules (reminders and series end)
/// and the live feeds follow within moments.
#[utoipa::path(
    delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delete_project(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    PathId(project_id): PathId,
) -> Result<StatusCode, ApiError> {
    state
        .commands
        .call::<DeleteProject>(&context, user.acting(ProjectRef { project_id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a member, or change a member's role (owners). Demoting the last
/// owner is refused with 409.
#[utoipa::path(
    post, path = "/api/v1/projects/{id}/members", tag = "projects",
    params(("id" = uuid::Uuid, Path)),
    request_body = NewMember,
    responses(
        (status = 200, body = ProjectMember),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the project would have no owner"),
        (status = 422, body = ErrorBody, description = "no such user"),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn add_member(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    PathId(project_id): PathId,
    JsonBody(member): JsonBody<NewMember>,
) -> Result<Json<ProjectMember>, ApiError> {
    let change = MemberChange { project_id, member };
    let member = state
        .commands
        .call::<AddMember>(&context, user.acting(change))
        .await?;
    Ok(Json(member))
}

/// The project's members, oldest first.
#[utoipa::path(
    get, path = "/api/v1/projects/{id}/members", tag = "projects",
    params(("id" = uuid::Uuid, Path), MemberQuery),
    responses(
        (status = 200, body = Page<ProjectMember>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a cursor this API did not give out"),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_members(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    PathId(project_id): PathId,
    QueryParams(query): QueryParams<MemberQuery>,
) -> Result<Json<Page<ProjectMember>>, ApiError> {
    let of = MembersOf {
        project_id,
        limit: query.limit,
        cursor: query.cursor,
    };
    let page = state
        .commands
        .call::<ListMembers>(&context, user.acting(of))
        .await?;
    Ok(Json(page))
}

/// Remove a member (owners; a member may remove themselves). Removing the
/// last owner is refused with 409.
#[utoipa::path(
    delete, path = "/api/v1/projects/{id}/members/{user_id}", tag = "projects",
    params(("id" = uuid::Uuid, Path), ("user_id" = uuid::Uuid, Path)),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the project would have no owner"),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn remove_member(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    MemberPath(project_id, user_id): MemberPath,
) -> Result<StatusCode, ApiError> {
    let reference = MemberRef {
        project_id,
        user_id,
    };
    state
        .commands
        .call::<RemoveMember>(&context, user.acting(reference))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
