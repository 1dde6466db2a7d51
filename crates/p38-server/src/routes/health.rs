//! `GET /health` and `GET /`, the routes without auth.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_app::dto::{ApiRoot, Health};

use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(root))
}

/// Liveness, version and database reachability (no auth).
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "Healthy", body = Health), (status = 503, description = "Database unreachable", body = Health)))]
async fn health(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    let h = s.app.health().await;
    let code = if h.database_reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(h))
}

/// The API's name and version, with links to the OpenAPI document and
/// /health (no auth).
#[utoipa::path(get, path = "/", tag = "system",
    responses((status = 200, description = "What this server is", body = ApiRoot)))]
async fn root(State(s): State<AppState>) -> Json<ApiRoot> {
    Json(s.app.root())
}
