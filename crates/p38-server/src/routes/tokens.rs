//! `/api/tokens` (admin).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_app::dto::{CreateToken, CreatedToken};
use p38_core::auth::ApiToken;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Auth, parse_id};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Every token's metadata (never the token).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<ApiToken>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_tokens(State(s): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(s.app.list_tokens(&who).await?))
}

/// Creates a token; the response is the only time it is shown.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateToken, security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_token(&who, req).await?),
    ))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, minimum = 1, description = "A positive whole number")), security(("bearer" = [])),
    responses((status = 200, body = ApiToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiToken>> {
    Ok(Json(
        s.app.revoke_token(&who, parse_id("token", &id)?).await?,
    ))
}
