//! The router in process, driven like a client drives `p38 up`: the same
//! calls as the end-to-end suite's `Server` (`req`, `raw`, `get`, `post`,
//! `create_token`, ...), answered by `tower::ServiceExt::oneshot` over a
//! temporary SQLite store with no workers, so a test moved here from the
//! end-to-end suite keeps its assertions word for word and costs no
//! process start.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use p38_app::secrets::SecretsAdmin;
use p38_app::{App, AppConfig};
use p38_core::store::{NoSignal, Store};
use p38_server::{HttpConfig, router};
use p38_store::{SqlStore, StoreOptions};

/// An agent that returns at once.
pub const OK_CODE: &str = "def run(ctx):\n    return {\"ok\": True}\n";
/// An agent that counts its runs in its state.
pub const COUNTER_CODE: &str = "def run(ctx):\n    n = ctx.state.get(\"count\", 0) + 1\n    ctx.state[\"count\"] = n\n    ctx.log.info(\"run %d\", n)\n    print(\"hello\", n)\n    return {\"count\": n}\n";

/// An agent that sleeps for a minute.
pub const SLEEP_CODE: &str = "import time\n\ndef run(ctx):\n    time.sleep(60)\n    return {}\n";

/// The database `/health` reports: the store here is always SQLite.
pub fn backend() -> &'static str {
    "sqlite"
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    /// Asserts the status and the API's error shape, and returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, field: Option<&str>) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status} ({code}, field {field:?}), got {}: {}",
            self.status, self.text
        );
        let err = &self.body["error"];
        assert!(
            err.is_object(),
            "error body must be {{\"error\":{{...}}}}: {}",
            self.text
        );
        assert_eq!(err["code"], code, "error code in {}", self.text);
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error message must be a non-empty string: {}",
            self.text
        );
        if let Some(f) = field {
            assert_eq!(err["field"], f, "error field in {}", self.text);
        }
        err
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {}: {}",
            self.status, self.text
        );
        &self.body
    }
}

/// The API of one fresh SQLite store, with the admin token `p38 up` writes
/// on first start.
pub struct Server {
    rt: tokio::runtime::Runtime,
    router: Router,
    /// The admin token.
    pub token: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The router with the server's default limits.
    pub fn start() -> Server {
        Server::start_with(HttpConfig::default())
    }

    /// The router with these HTTP limits (`P38_MAX_BODY_BYTES`).
    pub fn start_with(http: HttpConfig) -> Server {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (router, token) = rt.block_on(async {
            let url = format!("sqlite://{}/p38.db", dir.path().display());
            let store: Arc<dyn Store> = Arc::new(
                SqlStore::connect(&url, StoreOptions::default())
                    .await
                    .unwrap(),
            );
            // As `p38 up` builds it: local secrets, and code given through
            // the API passing the factory's static checks.
            let key = p38_secrets::MasterKey::generate();
            let app = App::new(store, Arc::new(NoSignal), AppConfig::default())
                .with_secrets(SecretsAdmin {
                    cipher: Arc::new(p38_secrets::LocalCipher::new(key)),
                    chain: Arc::new(p38_secrets::ChainResolver::new(
                        Vec::new(),
                        p38_secrets::DEFAULT_CACHE_TTL,
                    )),
                })
                .with_code_checker(Arc::new(p38_factory::StaticChecks::default()));
            let file = app.ensure_admin_token(dir.path()).await.unwrap().unwrap();
            let token = std::fs::read_to_string(file).unwrap().trim().to_string();
            (router(app, &http), token)
        });
        Server {
            rt,
            router,
            token,
            _dir: dir,
        }
    }

    /// A request with any method, token and body; never panics on status.
    pub fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty));
        self.send(req.unwrap())
    }

    fn send(&self, req: Request<Body>) -> Resp {
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            Resp {
                status,
                headers,
                text,
                body,
            }
        })
    }

    /// A JSON request with a token.
    pub fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let ct = body.map(|_| "application/json");
        self.raw(method, path, token, ct, bytes)
    }

    /// GET /api/agents with one raw header.
    pub fn http_with_header(&self, name: &str, value: &str) -> Resp {
        let req = Request::builder()
            .uri("/api/agents")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        self.send(req)
    }

    /// GET as admin.
    pub fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, Some(&self.token), None)
    }

    /// POST as admin.
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.req(Method::POST, path, Some(&self.token), Some(body))
    }

    /// PATCH as admin.
    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.req(Method::PATCH, path, Some(&self.token), Some(body))
    }

    /// DELETE as admin.
    pub fn delete(&self, path: &str) -> Resp {
        self.req(Method::DELETE, path, Some(&self.token), None)
    }

    /// Creates a token with this scope; returns (id, token).
    pub fn create_token(&self, scope: &str) -> (i64, String) {
        let r = self.post(
            "/api/tokens",
            &json!({"name": format!("{scope}-tok"), "scope": scope}),
        );
        let b = r.expect(201);
        (
            b["id"].as_i64().expect("token id"),
            b["token"].as_str().expect("token").to_string(),
        )
    }

    /// Creates an agent (admin) with these code and extra fields; panics unless 201.
    pub fn create_agent(&self, name: &str, code: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "code": code});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        self.post("/api/agents", &body).expect(201).clone()
    }

    /// Queues a manual run (admin) and returns the task; no worker runs it.
    pub fn execute(&self, agent: &str) -> Value {
        self.post(&format!("/api/agents/{agent}/execute"), &json!({}))
            .expect(202)
            .clone()
    }
}
