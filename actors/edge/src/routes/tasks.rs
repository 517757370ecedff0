//! `/api/v1/tasks`: sent on to the tasks service.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use taskflow_runtime::bus::CommandContext;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::catalogue::{
    Command, CompleteTask, CreateTask, DeleteTask, GetTask, ListTasks, UpdateTask,
};
use taskflow_schemas::commands::{NewTask, Page, TaskPatch, TaskQuery, TaskRef, TaskUpdate};
use taskflow_schemas::task::Task;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::consistency::{self, WantsToken};
use crate::error::ApiError;
use crate::extract::{Context, IdempotencyKey, JsonBody, PathId, QueryParams, TargetTask};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(create_task, list_tasks))
        .routes(routes!(get_task, put_task, patch_task, delete_task))
        .routes(routes!(complete_task))
}

/// Sends `C`, and answers with the task it replies as the service wrote
/// it, its version as the `ETag` (for `If-Match`), and for a write asked
/// with `Prefer: consistency-token` the token of its event.
async fn task_reply<C: Command<Reply = Task>>(
    state: &EdgeState,
    context: &CommandContext,
    request: C::Request,
    status: StatusCode,
    wants_token: bool,
) -> Result<Response, ApiError> {
    let task = state.commands.call::<C>(context, request).await?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", task.version));
    let (task_id, version) = (task.id, task.version);
    let mut response = (status, axum::Json(task)).into_response();
    if let Ok(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if wants_token {
        consistency::attach(&state.jetstream, &mut response, task_id, Some(version)).await;
    }
    Ok(response)
}

/// Create a task: yours alone, or in a project where you are an owner or
/// a member. With `Idempotency-Key`, a retry returns the first response.
#[utoipa::path(
    post, path = "/api/v1/tasks", tag = "tasks",
    request_body = NewTask,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe"), ("Prefer" = Option<String>, Header, description = "`consistency-token`: answer with the write's `Consistency-Token`, for reads in other services")),
    responses(
        (status = 201, body = Task),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "you are a viewer of the project"),
        (status = 409, body = ErrorBody, description = "the same key is still in flight"),
        (status = 422, body = ErrorBody, description = "the key was used with another body; \
            `project_id` is not a project of yours; `assignee_id` or `observer_ids` \
            names someone who is not a user, or not a member of the project"),
    ),
    security(("bearer" = []))
)]
async fn create_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    IdempotencyKey(key): IdempotencyKey,
    WantsToken(wants_token): WantsToken,
    JsonBody(new): JsonBody<NewTask>,
) -> Result<Response, ApiError> {
    let context = context.with_idempotency_key(key);
    let new = user.acting(new);
    task_reply::<CreateTask>(&state, &context, new, StatusCode::CREATED, wants_token).await
}

/// The tasks you may read, newest first: those you are assigned or
/// observe, your own outside projects, and every task of your projects
/// (admins: every task).
#[utoipa::path(
    get, path = "/api/v1/tasks", tag = "tasks",
    params(TaskQuery),
    responses((status = 200, body = Page<Task>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_tasks(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    QueryParams(query): QueryParams<TaskQuery>,
) -> Result<axum::Json<Page<Task>>, ApiError> {
    let page = state
        .commands
        .call::<ListTasks>(&context, user.acting(query))
        .await?;
    Ok(axum::Json(page))
}

/// A task you may read (404 for one you may not).
#[utoipa::path(
    get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Task), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    PathId(task_id): PathId,
) -> Result<Response, ApiError> {
    let reference = user.acting(TaskRef {
        task_id,
        expected_version: None,
    });
    task_reply::<GetTask>(&state, &context, reference, StatusCode::OK, false).await
}

/// Change the fields given; `null` clears a field. Its creator changes a
/// task outside projects, owners and members one in a project; moving it to
/// another project (`project_id`) needs that in both.
#[utoipa::path(
    put, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header), ("Prefer" = Option<String>, Header, description = "`consistency-token`: answer with the write's `Consistency-Token`, for reads in other services")),
    request_body = TaskPatch,
    responses(
        (status = 200, body = Task), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "you may read the task, or the target project, but not write it"),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "the target project is not yours, or someone named is not a member of it"),
    ),
    security(("bearer" = []))
)]
async fn put_task(
    state: State<EdgeState>,
    user: AuthUser,
    context: Context,
    target: TargetTask,
    wants_token: WantsToken,
    body: JsonBody<TaskPatch>,
) -> Result<Response, ApiError> {
    update(state, user, context, target, wants_token, body).await
}

/// The same as `PUT`.
#[utoipa::path(
    patch, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header), ("Prefer" = Option<String>, Header, description = "`consistency-token`: answer with the write's `Consistency-Token`, for reads in other services")),
    request_body = TaskPatch,
    responses(
        (status = 200, body = Task), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn patch_task(
    state: State<EdgeState>,
    user: AuthUser,
    context: Context,
    target: TargetTask,
    wants_token: WantsToken,
    body: JsonBody<TaskPatch>,
) -> Result<Response, ApiError> {
    update(state, user, context, target, wants_token, body).await
}

async fn update(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    target: TargetTask,
    WantsToken(wants_token): WantsToken,
    JsonBody(patch): JsonBody<TaskPatch>,
) -> Result<Response, ApiError> {
    let TargetTask(TaskRef {
        task_id,
        expected_version,
    }) = target;
    let update = TaskUpdate {
        task_id,
        expected_version,
        patch,
    };
    let update = user.acting(update);
    task_reply::<UpdateTask>(&state, &context, update, StatusCode::OK, wants_token).await
}

/// Delete a task: who may change it may delete it.
#[utoipa::path(
    delete, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header), ("Prefer" = Option<String>, Header, description = "`consistency-token`: answer with the write's `Consistency-Token`, for reads in other services")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn delete_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    target: TargetTask,
    WantsToken(wants_token): WantsToken,
) -> Result<Response, ApiError> {
    let TargetTask(reference) = target;
    let task_id = reference.task_id;
    state
        .commands
        .call::<DeleteTask>(&context, user.acting(reference))
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if wants_token {
        consistency::attach(&state.jetstream, &mut response, task_id, None).await;
    }
    Ok(response)
}

/// Complete a task; completing a completed task returns it unchanged.
/// Who may change it may complete it, and so may its assignee and observers.
#[utoipa::path(
    post, path = "/api/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header), ("Prefer" = Option<String>, Header, description = "`consistency-token`: answer with the write's `Consistency-Token`, for reads in other services")),
    responses((status = 200, body = Task), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn complete_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    Context(context): Context,
    target: TargetTask,
    WantsToken(wants_token): WantsToken,
) -> Result<Response, ApiError> {
    let TargetTask(reference) = target;
    let reference = user.acting(reference);
    task_reply::<CompleteTask>(&state, &context, reference, StatusCode::OK, wants_token).await
}
