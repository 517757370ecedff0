//! `/api/v1/connections`: the live-feed clients of this edge.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::EdgeState;

pub fn router() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(routes!(connections))
}

#[derive(Serialize, ToSchema)]
struct Connections {
    count: usize,
}

/// How many WebSocket clients this edge serves now.
#[utoipa::path(get, path = "/api/v1/connections", tag = "operations", responses((status = 200, body = Connections)))]
async fn connections(State(state): State<EdgeState>) -> axum::Json<Connections> {
    axum::Json(Connections {
        count: (state.connections)().await,
    })
}
