//! `/api/v1/audit`: sent on to the audit service.

use axum::extract::State;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::audit::{AuditQuery, AuditRecord, AuditRef};
use taskflow_schemas::catalogue::{GetAuditRecord, ListAuditRecords};
use taskflow_schemas::commands::Page;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;
use crate::auth::AuthUser;
use crate::consistency::{AppliedBy, Audit};
use crate::error::ApiError;
use crate::extract::{Context, PathId, QueryParams};

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(routes!(list_records))
        .routes(routes!(get_record))
}

/// The audit trail, oldest first: records of the tasks you can read (admins: all).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery, ("Consistency-Token" = Option<String>, Header, nullable = false, pattern = r"^tasks\.[0-9]{1,19}$", description = "a write's token: answer once this service has applied it")),
    responses((status = 200, body = Page<AuditRecord>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_records(
    State(state): State<EdgeState>,
    user: AuthUser,
    _: AppliedBy<Audit>,
    Context(context): Context,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<axum::Json<Page<AuditRecord>>, ApiError> {
    let page = state
        .commands
        .call::<ListAuditRecords>(&context, user.acting(query))
        .await?;
    Ok(axum::Json(page))
}

#[utoipa::path(
    get, path = "/api/v1/audit/{id}", tag = "audit",
    params(("id" = uuid::Uuid, Path), ("Consistency-Token" = Option<String>, Header, nullable = false, pattern = r"^tasks\.[0-9]{1,19}$", description = "a write's token: answer once this service has applied it")),
    responses((status = 200, body = AuditRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_record(
    State(state): State<EdgeState>,
    user: AuthUser,
    _: AppliedBy<Audit>,
    Context(context): Context,
    PathId(record_id): PathId,
) -> Result<axum::Json<AuditRecord>, ApiError> {
    let record = state
        .commands
        .call::<GetAuditRecord>(&context, user.acting(AuditRef { record_id }))
        .await?;
    Ok(axum::Json(record))
}
