//! `/api/generations`.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_core::generation::{Generation, GenerationStatus};
use p38_core::page::{Page, PageRequest};

use super::GenerationPageQuery;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, Auth, parse_id};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_generations))
        .routes(routes!(get_generation))
        .routes(routes!(cancel_generation))
}

/// Generations, newest first, each without its `report` (the iterations;
/// `GET /api/generations/{id}` has it).
#[utoipa::path(get, path = "/api/generations", tag = "agents", params(GenerationPageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Generation>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_generations(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<GenerationPageQuery>,
) -> ApiResult<Json<Page<Generation>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<GenerationStatus>)
        .transpose()?;
    Ok(Json(s.app.list_generations(&who, status, page).await?))
}

/// A generation: stage, iteration, tokens and cost so far, and the
/// iterations that ended (code, findings, tokens, cost); when done, the
/// full report and the agent it produced.
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

/// Stops a running generation (operator): it becomes `cancelled`, audited,
/// keeping the iterations that ended.
#[utoipa::path(post, path = "/api/generations/{id}/cancel", tag = "agents", params(("id" = i64, Path, minimum = 1, description = "A positive whole number")), security(("bearer" = [])),
    responses((status = 200, body = Generation), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Generation already ended", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn cancel_generation(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Generation>> {
    Ok(Json(
        s.app
            .cancel_generation(&who, parse_id("generation", &id)?)
            .await?,
    ))
}
