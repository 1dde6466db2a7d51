//! `GET /api/generations/{id}`.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_core::generation::Generation;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, Auth, parse_id};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_generation))
}

/// A generation: stage, iteration, findings and cost so far; when done,
/// the report of every iteration and the agent it produced.
#[utoipa::path(get, path = "/api/generations/{id}", tag = "agents", params(("id" = i64, Path, minimum = 1, description = "A positive whole number")), security(("bearer" = [])),
    responses((status = 200, body = Generation), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_generation(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Generation>> {
    Ok(Json(
        s.app
            .get_generation(&who, parse_id("generation", &id)?)
            .await?,
    ))
}
