//! A loopback model provider for the tests that generate agents: it
//! answers in Anthropic's Messages API format and records every request;
//! and `p38` processes started against it.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub const HEBREW: &str = "צור לי סוכן שעוקב אחרי מניות של טסלה ומתריע כשהמחיר עולה ב-5%";
pub const KEY: &str = "test-anthropic-key-canary-8f2e";

pub const BROKEN: &str = "\"\"\"Watch Tesla.\"\"\"\nAPI_KEY = \"sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ\"\n\n\ndef run(ctx)\n    \"\"\"Broken.\"\"\"\n    return API_KEY\n";
pub const CLEAN: &str = "\"\"\"Watch a price and alert when it rises 5 percent.\"\"\"\n\n\ndef run(ctx):\n    \"\"\"Compare the price with the baseline kept in state.\"\"\"\n    price = float(ctx.config.get(\"price\", 100))\n    base = ctx.state.setdefault(\"baseline\", price)\n    change = (price - base) / base * 100\n    alert = change >= 5\n    if alert:\n        ctx.log.warning(\"price rose %.1f%%\", change)\n    return {\"price\": price, \"change\": round(change, 2), \"alert\": alert}\n";
pub const TEST: &str = "def test_run(ctx):\n    \"\"\"Run once and check the shape.\"\"\"\n    result = run(ctx)\n    assert \"alert\" in result\n";

/// A request the fake provider received: its `x-api-key` and its body.
pub type Seen = (Option<String>, Value);

#[derive(Clone, Default)]
pub struct Fake {
    pub requests: Arc<Mutex<Vec<Seen>>>,
}

pub fn answer(code: &str) -> Value {
    let spec = json!({
        "name": "tesla-watch", "description": "Watch Tesla and alert on a 5% rise", "code": code,
        "schedule": "every 5m", "secrets": [], "tools": [], "network": false, "test": TEST,
    });
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": spec.to_string()}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1000, "output_tokens": 300}
    })
}

/// A `p38` process, killed when dropped.
pub struct Up(pub Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `route` as the fake provider's Messages endpoint on a loopback
/// port; returns what it records and its base URL.
pub async fn serve_fake(route: axum::routing::MethodRouter<Fake>) -> (Fake, String) {
    let fake = Fake::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/messages", route)
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, llm)
}

/// Starts `p38 up` against the fake provider; returns it, its URL and its
/// log (stderr, collected as it comes).
pub fn start_up(data: &Path, llm: &str, env: &[(&str, &str)]) -> (Up, String, Arc<Mutex<String>>) {
    start_p38(&["up", "--bind", "127.0.0.1:0"], data, llm, env)
}

/// Starts `p38 ARGS` (`up`, `serve` or `worker`) against the fake
/// provider, with its key; returns it once it has started, with the URL
/// of its API (empty for a worker) and its log.
pub fn start_p38(
    args: &[&str],
    data: &Path,
    llm: &str,
    env: &[(&str, &str)],
) -> (Up, String, Arc<Mutex<String>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_p38"));
    cmd.args(args)
        .env("P38_DATA_DIR", data)
        .env("P38_WORKSPACE_QUOTA", "walk") // no image left mounted in the temporary folder
        .env("P38_LLM_BASE_URL", llm)
        .env("ANTHROPIC_API_KEY", KEY)
        .env("P38_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    let worker_only = args.first() == Some(&"worker");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(u) = line.split("listening on ").nth(1) {
                let _ = tx.send(u.trim().to_string());
            } else if worker_only && line.contains("worker started") {
                let _ = tx.send(String::new());
            }
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    let up = Up(child);
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("p38 {args:?} started:\n{}", log.lock().unwrap()));
    (up, url, log)
}

/// The first call never answers; every later one answers with clean code.
pub async fn hang_once(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    let n = {
        let mut r = f.requests.lock().unwrap();
        r.push((None, body));
        r.len()
    };
    if n == 1 {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    Json(answer(CLEAN))
}

/// `GET` or `POST` with the admin token: status and body.
pub async fn call(method: reqwest::Method, url: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
