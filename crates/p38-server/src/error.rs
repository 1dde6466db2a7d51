//! One error shape for every response:
//! `{"error":{"code":"validation","message":"...","field":"schedule"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use p38_core::Error;

/// The body of every error response (the CLI reads it too).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: malformed, validation, not_found,
    /// conflict, unauthorized, forbidden, too_large, unavailable, internal.
    pub code: String,
    /// A sentence for the user, saying what to do.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For agent code the static checks refuse: every finding, with its
    /// line and rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<p38_core::finding::CodeFinding>>,
}

/// An [`Error`] on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The status each error kind maps to.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Malformed(_) => StatusCode::BAD_REQUEST,
        Error::Validation { .. } | Error::CodeRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        // The one place a fault is logged: with its whole cause chain,
        // which the client never sees.
        let message = match &self.0 {
            Error::Internal { message, .. } => {
                tracing::error!(error = %self.0.report(), "internal error");
                format!("{message}; the server log has the details")
            }
            Error::Unavailable { message, .. } => {
                tracing::warn!(error = %self.0.report(), "dependency unavailable");
                message.clone()
            }
            e => e.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code().into(),
                message,
                field: self.0.field().map(str::to_string),
                findings: match &self.0 {
                    Error::CodeRejected { findings } => Some(findings.clone()),
                    _ => None,
                },
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;
