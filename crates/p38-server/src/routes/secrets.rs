//! `/api/secrets` (admin): values go in, never come out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_core::store::SecretMeta;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Auth};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
        .routes(routes!(reload_secrets))
}

/// `PUT /api/secrets/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSecret {
    /// The value (at least 4 characters). Never returned by any route.
    #[schema(min_length = 4)]
    value: String,
}

/// Every local secret's name, version and times (never a value).
#[utoipa::path(get, path = "/api/secrets", tag = "secrets", security(("bearer" = [])),
    responses((status = 200, body = Vec<SecretMeta>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_secrets(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<Json<Vec<SecretMeta>>> {
    Ok(Json(s.app.list_secrets(&who).await?))
}

/// Sets a secret in the local encrypted backend.
#[utoipa::path(put, path = "/api/secrets/{name}", tag = "secrets", request_body = PutSecret, params(("name" = String, Path, pattern = "^[A-Z][A-Z0-9_]{0,63}$", description = "Upper-case letters, digits and _, starting with a letter")), security(("bearer" = [])),
    responses((status = 200, body = SecretMeta), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_secret(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
    req: Result<ApiJson<PutSecret>, crate::error::ApiError>,
) -> ApiResult<Json<SecretMeta>> {
    // serde's messages quote the offending value; for a secret that value
    // may be the secret itself, so the error is replaced by a fixed one.
    let ApiJson(req) = req.map_err(|e| match e.0 {
        p38_core::Error::Validation { .. } => crate::error::ApiError(p38_core::Error::validation(
            "value",
            "the body must be {\"value\": \"...\"} with the value as a string",
        )),
        other => crate::error::ApiError(other),
    })?;
    Ok(Json(s.app.put_secret(&who, &name, &req.value).await?))
}

/// Deletes a secret from the local backend.
#[utoipa::path(delete, path = "/api/secrets/{name}", tag = "secrets", params(("name" = String, Path, pattern = "^[A-Z][A-Z0-9_]{0,63}$", description = "Upper-case letters, digits and _, starting with a letter")), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_secret(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_secret(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Drops the secret cache: the next run reads every backend again.
#[utoipa::path(post, path = "/api/secrets/reload", tag = "secrets", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn reload_secrets(State(s): State<AppState>, Auth(who): Auth) -> ApiResult<StatusCode> {
    s.app.reload_secrets(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}
