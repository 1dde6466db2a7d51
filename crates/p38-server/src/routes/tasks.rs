//! `/api/tasks`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_core::task::Task;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, parse_id};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_task))
        .routes(routes!(retry_task))
        .routes(routes!(cancel_task))
}

/// One task with its result, output, logs and resource use.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Task), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_task(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(s.app.get_task(&who, parse_id("task", &id)?).await?))
}

/// Queues a new attempt of a finished task (operator).
#[utoipa::path(post, path = "/api/tasks/{id}/retry", tag = "tasks", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 202, body = Task), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Task still queued or running", body = ErrorBody)))]
async fn retry_task(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.app.retry_task(&who, parse_id("task", &id)?).await?),
    ))
}

/// Cancels a queued or running task (operator); a running one is stopped.
#[utoipa::path(post, path = "/api/tasks/{id}/cancel", tag = "tasks", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Task), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Task already ended", body = ErrorBody)))]
async fn cancel_task(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(s.app.cancel_task(&who, parse_id("task", &id)?).await?))
}
