//! `/api/agents`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_app::dto::{AgentView, CreateAgent, DeletedAgent, RejectAgent, UpdateAgent};
use p38_core::agent::{AgentState, AgentStatus, AgentVersion};
use p38_core::generation::Generation;
use p38_core::page::{Page, PageRequest};
use p38_core::task::{Task, TaskStatus, TaskSummary};

use super::{AgentPageQuery, TaskPageQuery};
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, OptionalApiJson};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(list_versions))
        .routes(routes!(get_state))
        .routes(routes!(execute_agent))
        .routes(routes!(approve_agent))
        .routes(routes!(reject_agent))
        .routes(routes!(list_agent_tasks))
}

/// Agents, newest first.
#[utoipa::path(get, path = "/api/agents", tag = "agents", params(AgentPageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AgentView>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_agents(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<AgentPageQuery>,
) -> ApiResult<Json<Page<AgentView>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<AgentStatus>)
        .transpose()?;
    Ok(Json(s.app.list_agents(&who, status, page).await?))
}

/// Creates an agent (admin): from its code (201 with the agent), or, when
/// only a description is given, by generating it (202 with the generation to
/// follow at `GET /api/generations/{id}`).
#[utoipa::path(post, path = "/api/agents", tag = "agents", request_body = CreateAgent, security(("bearer" = [])),
    responses((status = 201, body = AgentView), (status = 202, description = "Generation started", body = Generation),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, description = "Generation not configured", body = ErrorBody)))]
async fn create_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<CreateAgent>,
) -> ApiResult<Response> {
    if req.code.is_none() && !req.description.trim().is_empty() {
        let g = s.app.start_generation(&who, req).await?;
        return Ok((StatusCode::ACCEPTED, Json(g)).into_response());
    }
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_agent(&who, req).await?),
    )
        .into_response())
}

/// One agent, by id or name, with its next scheduled runs.
#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 200, body = AgentView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(s.app.get_agent(&who, &id).await?))
}

/// Changes an agent (admin; operators may change `status` alone to pause or resume).
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents", request_body = UpdateAgent, params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateAgent>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(s.app.update_agent(&who, &id, req).await?))
}

/// How to delete an agent.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteAgentQuery {
    /// Leave the agent's workspace (its files) on disk instead of removing
    /// it (default false).
    #[serde(default)]
    keep_workspace: bool,
}

/// Deletes an agent with its tasks, versions, state and (unless
/// `keep_workspace=true`) its workspace on this host (admin). Its running
/// tasks are cancelled.
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Agent id or name"), DeleteAgentQuery), security(("bearer" = [])),
    responses((status = 200, body = DeletedAgent), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteAgentQuery>,
) -> ApiResult<Json<DeletedAgent>> {
    Ok(Json(s.app.delete_agent(&who, &id, q.keep_workspace).await?))
}

/// Every kept code version, newest first.
#[utoipa::path(get, path = "/api/agents/{id}/versions", tag = "agents", params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 200, body = Vec<AgentVersion>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<AgentVersion>>> {
    Ok(Json(s.app.agent_versions(&who, &id).await?))
}

/// The state the agent carries between runs.
#[utoipa::path(get, path = "/api/agents/{id}/state", tag = "agents", params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 200, body = AgentState), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_state(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AgentState>> {
    Ok(Json(s.app.agent_state(&who, &id).await?))
}

/// Queues a manual run (operator); answers at once with the queued task.
#[utoipa::path(post, path = "/api/agents/{id}/execute", tag = "agents", params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 202, body = Task), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Agent not active or paused", body = ErrorBody)))]
async fn execute_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.app.execute_agent(&who, &id).await?),
    ))
}

/// An agent's tasks, newest first, cursor-paginated: captured output is left out and the result and error are cut to 500 characters (`GET /api/tasks/{id}` has the whole task).
#[utoipa::path(get, path = "/api/agents/{id}/tasks", tag = "tasks", params(("id" = String, Path, description = "Agent id or name"), TaskPageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<TaskSummary>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_agent_tasks(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TaskPageQuery>,
) -> ApiResult<Json<Page<TaskSummary>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<TaskStatus>)
        .transpose()?;
    Ok(Json(s.app.list_tasks(&who, &id, status, page).await?))
}

/// Approves an agent waiting for approval (operator): it becomes active and its schedule starts.
#[utoipa::path(post, path = "/api/agents/{id}/approve", tag = "agents", request_body(content = Option<Approve>, description = "Optional (none, or null, approves what is there now): the version that was reviewed"), params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 200, body = AgentView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Agent not waiting for approval", body = ErrorBody)))]
async fn approve_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
    OptionalApiJson(req): OptionalApiJson<Approve>,
) -> ApiResult<Json<AgentView>> {
    // The body is optional: `{"version": N}` approves only the version the
    // approver reviewed.
    let req = req.unwrap_or_default();
    Ok(Json(s.app.approve_agent(&who, &id, req.version).await?))
}

/// `POST /api/agents/{id}/approve` (optional body).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approve {
    /// The code version that was reviewed; a newer one is a conflict.
    #[serde(default)]
    #[schema(minimum = 1)]
    version: Option<i64>,
}

/// Rejects an agent waiting for approval (operator): it becomes `rejected`
/// and never runs until a change of what the approval covers sends it back
/// to approval. The reason is audited.
#[utoipa::path(post, path = "/api/agents/{id}/reject", tag = "agents", request_body = RejectAgent, params(("id" = String, Path, description = "Agent id or name")), security(("bearer" = [])),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Agent not waiting for approval", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reject_agent(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RejectAgent>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(s.app.reject_agent(&who, &id, req).await?))
}
