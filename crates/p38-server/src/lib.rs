//! Project38's HTTP API: axum routes that parse a request, call one
//! application service and map its error; bearer-token auth; one JSON error
//! shape; and the OpenAPI 3.1 document generated from the handlers
//! themselves (`GET /openapi.json`), so it cannot drift from the code.
#![deny(missing_docs)]

pub mod error;
pub mod extract;
mod openapi;
mod routes;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use p38_app::App;
use p38_core::Error;

use crate::error::ApiError;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The application services.
    pub app: App,
}

/// HTTP limits.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// The routes and the OpenAPI document generated from them.
fn routes_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(routes::health::routes())
        .merge(routes::agents::routes())
        .merge(routes::tasks::routes())
        .merge(routes::tokens::routes())
        .merge(routes::audit::routes())
        .merge(routes::secrets::routes())
        .merge(routes::generations::routes())
        .split_for_parts();
    (api, openapi::finish(doc))
}

/// The OpenAPI document `GET /openapi.json` serves, without a server.
pub fn openapi_document() -> serde_json::Value {
    serde_json::to_value(routes_and_document().1).unwrap_or_default()
}

/// The whole API as one router.
pub fn router(app: App, http: &HttpConfig) -> Router {
    let (api, doc) = routes_and_document();
    api.route(
        "/openapi.json",
        axum::routing::get(move || std::future::ready(axum::Json(doc.clone()))),
    )
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .with_state(AppState { app })
    .layer(DefaultBodyLimit::max(http.max_body_bytes))
    .layer(CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send>| {
            ApiError(Error::internal("a request handler panicked")).into_response()
        },
    ))
    .layer(TraceLayer::new_for_http())
}

async fn not_found() -> Response {
    ApiError(Error::NotFound {
        what: "route",
        id: "(see /openapi.json for the routes)".into(),
    })
    .into_response()
}

async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": "this route does not accept that method; see /openapi.json"}});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let mut handle = tokio::spawn(async move { server.await });
    tokio::select! {
        r = &mut handle => return r.unwrap_or(Ok(())),
        _ = rx => {}
    }
    match tokio::time::timeout(grace, &mut handle).await {
        Ok(r) => r.unwrap_or(Ok(())),
        Err(_) => {
            handle.abort();
            Ok(())
        }
    }
}
