//! `/api/v1/audit`: forwarded to the audit service.

use axum::extract::State;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::audit::{AuditQuery, AuditRecord, AuditRef};
use taskflow_schemas::commands::{Command, Page};
use taskflow_schemas::subjects::commands::audit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{PathId, QueryParams, RequestId};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(list_records))
        .routes(routes!(get_record))
}

/// The audit trail, oldest first: records of the tasks you can read (admins: all).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, body = Page<AuditRecord>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_records(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<axum::Json<Page<AuditRecord>>, ApiError> {
    let command = Command::new(user.principal(), query);
    Ok(axum::Json(
        state
            .commands
            .send(audit::LIST, &request_id, &command)
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/audit/{id}", tag = "audit",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = AuditRecord), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_record(
    State(state): State<EdgeState>,
    user: AuthUser,
    RequestId(request_id): RequestId,
    PathId(record_id): PathId,
) -> Result<axum::Json<AuditRecord>, ApiError> {
    let command = Command::new(user.principal(), AuditRef { record_id });
    Ok(axum::Json(
        state
            .commands
            .send(audit::GET, &request_id, &command)
            .await?,
    ))
}
