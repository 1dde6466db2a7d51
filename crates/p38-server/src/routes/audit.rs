//! `GET /api/audit` (admin).

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use p38_core::audit::AuditEntry;
use p38_core::page::{Page, PageRequest};

use super::PageQuery;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_audit(
    State(s): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(s.app.list_audit(&who, page).await?))
}
