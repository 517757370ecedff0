//! `/api/v1/tasks`: forwarded to the tasks service.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use taskflow_schemas::ErrorBody;
use taskflow_schemas::commands::{
    Command, NewTask, Page, TaskPatch, TaskQuery, TaskRef, UpdateTask,
};
use taskflow_schemas::subjects::commands::tasks;
use taskflow_schemas::task::Task;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{IdempotencyKey, IfMatch, JsonBody, PathId, QueryParams, RequestId};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(create_task, list_tasks))
        .routes(routes!(get_task, put_task, patch_task, delete_task))
        .routes(routes!(complete_task))
}

/// Sends a command whose reply is a task, and answers with that task as the
/// service wrote it, its version as the `ETag` (for `If-Match`).
async fn task_reply<B: serde::Serialize>(
    state: &EdgeState,
    subject: &'static str,
    request_id: &str,
    command: &B,
    status: StatusCode,
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Version {
        version: i64,
    }
    let task = state
        .commands
        .send_raw(subject, request_id, command)
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(Version { version }) = serde_json::from_str(task.get())
        && let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        headers.insert(header::ETAG, etag);
    }
    Ok((status, headers, String::from(Box::<str>::from(task))).into_response())
}

/// Create a task. With `Idempotency-Key`, a retry returns the first response.
#[utoipa::path(
    post, path = "/api/v1/tasks", tag = "tasks",
    request_body = NewTask,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses(
        (status = 201, body = Task),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the same key is still in flight"),
        (status = 422, body = ErrorBody, description = "the key was used with another body"),
    ),
    security(("bearer" = []))
)]
async fn create_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(mut new): JsonBody<NewTask>,
) -> Result<Response, ApiError> {
    new.idempotency_key = key;
    let command = Command::new(user.principal(), new);
    task_reply(
        &state,
        tasks::CREATE,
        &request_id,
        &command,
        StatusCode::CREATED,
    )
    .await
}

/// The tasks you created, are assigned or observe, newest first.
#[utoipa::path(
    get, path = "/api/v1/tasks", tag = "tasks",
    params(TaskQuery),
    responses((status = 200, body = Page<Task>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_tasks(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    QueryParams(query): QueryParams<TaskQuery>,
) -> Result<axum::Json<Page<Task>>, ApiError> {
    let command = Command::new(user.principal(), query);
    Ok(axum::Json(
        state
            .commands
            .send(tasks::LIST, &request_id, &command)
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    PathId(task_id): PathId,
) -> Result<Response, ApiError> {
    let command = Command::new(
        user.principal(),
        TaskRef {
            task_id,
            expected_version: None,
        },
    );
    task_reply(&state, tasks::GET, &request_id, &command, StatusCode::OK).await
}

/// Change the fields given; `null` clears a field.
#[utoipa::path(
    put, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = TaskPatch,
    responses(
        (status = 200, body = Task), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn put_task(
    state: State<EdgeState>,
    user: AuthUser,
    request_id: RequestId,
    id: PathId,
    if_match: IfMatch,
    body: JsonBody<TaskPatch>,
) -> Result<Response, ApiError> {
    update(state, user, request_id, id, if_match, body).await
}

/// The same as `PUT`.
#[utoipa::path(
    patch, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = TaskPatch,
    responses((status = 200, body = Task), (status = 412, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn patch_task(
    state: State<EdgeState>,
    user: AuthUser,
    request_id: RequestId,
    id: PathId,
    if_match: IfMatch,
    body: JsonBody<TaskPatch>,
) -> Result<Response, ApiError> {
    update(state, user, request_id, id, if_match, body).await
}

async fn update(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    PathId(task_id): PathId,
    IfMatch(expected_version): IfMatch,
    JsonBody(patch): JsonBody<TaskPatch>,
) -> Result<Response, ApiError> {
    let command = Command::new(
        user.principal(),
        UpdateTask {
            task_id,
            expected_version,
            patch,
        },
    );
    task_reply(&state, tasks::UPDATE, &request_id, &command, StatusCode::OK).await
}

#[utoipa::path(
    delete, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn delete_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    PathId(task_id): PathId,
    IfMatch(expected_version): IfMatch,
) -> Result<StatusCode, ApiError> {
    let command = Command::new(
        user.principal(),
        TaskRef {
            task_id,
            expected_version,
        },
    );
    // The reply (the deleted task) is not shown: no need to decode it.
    state
        .commands
        .send_raw(tasks::DELETE, &request_id, &command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Complete a task; completing a completed task returns it unchanged.
#[utoipa::path(
    post, path = "/api/v1/tasks/{id}/complete", tag = "tasks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn complete_task(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    PathId(task_id): PathId,
    IfMatch(expected_version): IfMatch,
) -> Result<Response, ApiError> {
    let command = Command::new(
        user.principal(),
        TaskRef {
            task_id,
            expected_version,
        },
    );
    task_reply(
        &state,
        tasks::COMPLETE,
        &request_id,
        &command,
        StatusCode::OK,
    )
    .await
}
