//! A failing store, through the real router in process (SQLite in a
//! temporary folder): the client gets the API's error shape with a message
//! for the user and none of the driver's text, and the server log has the
//! cause exactly once.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use p38_app::{App, AppConfig};
use p38_core::store::{NoSignal, Store};
use p38_server::{HttpConfig, router};
use p38_store::{SqlStore, StoreOptions};

/// What the server logged, for the assertions.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Api {
    router: Router,
    store: Arc<SqlStore>,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/p38.db", dir.path().display());
        let store = Arc::new(
            SqlStore::connect(&url, StoreOptions::default())
                .await
                .unwrap(),
        );
        let dyn_store: Arc<dyn Store> = store.clone();
        let app = App::new(dyn_store, Arc::new(NoSignal), AppConfig::default());
        let file = app.ensure_admin_token(dir.path()).await.unwrap().unwrap();
        let admin = std::fs::read_to_string(file).unwrap().trim().to_string();
        Api {
            router: router(app, &HttpConfig::default()),
            store,
            admin,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let req = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin))
            .body(Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Records every event of this thread (the test's runtime is
/// single-threaded) into the returned log, without colours.
fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_database_fault_is_a_500_without_driver_text_logged_once() {
    let api = Api::start().await;
    // The table every task read needs is gone: SQLite answers "no such
    // table: tasks", an error no retry fixes.
    sqlx::query("ALTER TABLE tasks RENAME TO tasks_gone")
        .execute(api.store.pool())
        .await
        .unwrap();
    let (log, _guard) = capture();
    let (status, body) = api.get("/api/tasks/1").await;
    assert_eq!(status, 500, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "internal", "{body}");
    assert_eq!(
        v["error"]["message"], "a database operation failed; the server log has the details",
        "{body}"
    );
    for driver_text in [
        "no such table",
        "tasks",
        "SELECT",
        "sqlite",
        "error returned",
    ] {
        assert!(
            !body.to_lowercase().contains(&driver_text.to_lowercase()),
            "{driver_text:?} in {body}"
        );
    }
    let log = log.text();
    assert_eq!(log.matches("no such table: tasks").count(), 1, "{log}");
    assert!(
        log.contains("internal error") && log.contains("a database operation failed: "),
        "{log}"
    );
}

#[tokio::test]
async fn a_closed_database_is_a_503_without_driver_text_logged_once() {
    let api = Api::start().await;
    api.store.close().await;
    let (log, _guard) = capture();
    let (status, body) = api.get("/api/agents").await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "unavailable", "{body}");
    assert_eq!(
        v["error"]["message"], "the database is not available right now; try again shortly",
        "{body}"
    );
    assert!(!body.contains("pool"), "{body}");
    let log = log.text();
    assert_eq!(log.matches("closed pool").count(), 1, "{log}");
    assert!(log.contains("dependency unavailable"), "{log}");
}
