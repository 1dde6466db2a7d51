//! `/api/tasks`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::time::Duration;

use serde::Deserialize;
use utoipa::IntoParams;

use p38_app::tasks::MAX_WAIT;
use p38_core::Error;
use p38_core::task::Task;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, Auth, parse_id};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_task))
        .routes(routes!(retry_task))
        .routes(routes!(cancel_task))
}

/// `GET /api/tasks/{id}` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// Seconds to wait, 0 to 60, for a queued or running task to end
    /// before answering (a long poll); without it, the task as it is now.
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
}

/// One task with its result, output, logs and resource use; with `wait`,
/// once it has ended (or when the wait is over).
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", params(("id" = i64, Path, minimum = 1, description = "A positive whole number"), WaitQuery), security(("bearer" = [])),
    responses((status = 200, body = Task), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_task(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<Json<Task>> {
    let id = parse_id("task", &id)?;
    let task = match q.wait {
        None | Some(0) => s.app.get_task(&who, id).await?,
        Some(w) if w > MAX_WAIT.as_secs() => {
            return Err(Error::validation(
                "wait",
                format!("wait is at most {} seconds", MAX_WAIT.as_secs()),
            )
            .into());
        }
        Some(w) => s.app.wait_task(&who, id, Duration::from_secs(w)).await?,
    };
    Ok(Json(task))
}

/// Queues a new attempt of a finished task (operator).
#[utoipa::path(post, path = "/api/tasks/{id}/retry", tag = "tasks", params(("id" = i64, Path, minimum = 1, description = "A positive whole number")), security(("bearer" = [])),
    responses((status = 202, body = Task), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Task still queued or running", body = ErrorBody)))]
async fn retry_task(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.app.retry_task(&who, parse_id("task", &id)?).await?),
    ))
}

/// Cancels a queued or running task (operator); a running one is stopped.
#[utoipa::path(post, path = "/api/tasks/{id}/cancel", tag = "tasks", params(("id" = i64, Path, minimum = 1, description = "A positive whole number")), security(("bearer" = [])),
    responses((status = 200, body = Task), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Task already ended", body = ErrorBody)))]
async fn cancel_task(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(s.app.cancel_task(&who, parse_id("task", &id)?).await?))
}
