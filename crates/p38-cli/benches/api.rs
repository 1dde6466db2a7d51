//! The HTTP API under load, on SQLite and on PostgreSQL (release build):
//!
//! ```sh
//! cargo bench -p p38-cli --bench api -- all     # both measurements
//! cargo bench -p p38-cli --bench api -- list    # GET /api/agents (100 agents) and one agent under wrk
//! cargo bench -p p38-cli --bench api -- deep    # page 1 vs deep pages of 1,000,000 tasks
//! ```
//!
//! Each measurement starts a real `p38 up` on a fresh database: a SQLite
//! file, and a fresh schema of `P38_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`; skipped with a message when
//! it does not answer). `list` needs `wrk` (`apt-get install wrk`).

mod common;

use std::process::Command;
use std::time::Instant;

use base64::Engine;
use p38_store::{SqlStore, StoreOptions};

use common::Server;

use common::TRIVIAL_AGENT as AGENT;
const HISTORY: i64 = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for backend in ["sqlite", "postgres"] {
        let Some(db) = rt.block_on(Db::fresh(backend)) else {
            continue;
        };
        if matches!(what, "all" | "list") {
            list(&db);
        }
        if matches!(what, "all" | "deep") {
            deep(&db, &rt);
        }
    }
}

/// A fresh database and its data folder.
struct Db {
    backend: &'static str,
    url: String,
    dir: tempfile::TempDir,
}

impl Db {
    async fn fresh(backend: &'static str) -> Option<Db> {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            "sqlite" => format!("sqlite://{}/p38.db", dir.path().display()),
            _ => {
                let base = std::env::var("P38_BENCH_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let url = format!("{base}?schema=p38bench_api");
                match SqlStore::connect(&url, StoreOptions::default()).await {
                    Ok(s) => {
                        s.drop_schema("p38bench_api").await.unwrap();
                        s.close().await;
                    }
                    Err(e) => {
                        println!("SKIP postgres: {e}");
                        return None;
                    }
                }
                url
            }
        };
        Some(Db { backend, url, dir })
    }
}

/// `GET /api/agents?limit=100` with 100 agents, and `GET /api/agents/{id}`
/// of one of them, each under wrk at 32 connections.
fn list(db: &Db) {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("SKIP list: wrk is not installed (apt-get install wrk)");
        return;
    }
    let s = Server::start(Some(&db.url), &db.dir.path().join("p38-data"));
    let mut ids = Vec::new();
    for i in 0..100 {
        let a = s.post(
            "/api/agents",
            serde_json::json!({"name": format!("agent-{i:03}"), "code": AGENT, "schedule": "every 1h"}),
        );
        ids.push(a["id"].as_i64().unwrap());
    }
    let page = s.get("/api/agents?limit=100");
    let body: serde_json::Value = page.json().unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 100);
    for (what, path) in [
        (
            "GET /api/agents (100 agents)",
            "/api/agents?limit=100".to_string(),
        ),
        (
            "GET /api/agents/{id} (one agent)",
            format!("/api/agents/{}", ids[49]),
        ),
    ] {
        let (rps, p50, p99) = wrk(&s, &path);
        println!(
            "{:<9} {what}, wrk -t2 -c32 -d10s: {rps} requests/s, p50 {p50}, p99 {p99}",
            db.backend,
        );
    }
}

/// wrk's requests/s, p50 and p99 for `path` as the admin; panics on any
/// answer but 2xx.
fn wrk(s: &Server, path: &str) -> (String, String, String) {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {}", s.token))
        .arg(format!("{}{path}", s.base))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    if text.contains("Non-2xx") {
        println!("{text}");
        panic!("wrk saw error responses");
    }
    (field("Requests/sec:"), field("50%"), field("99%"))
}

/// Page 1 and pages deep in a 1,000,000-task history of one agent. The
/// HTTP calls run outside the async runtime (reqwest's blocking client
/// must not be driven from inside one).
fn deep(db: &Db, rt: &tokio::runtime::Runtime) {
    let s = Server::start(Some(&db.url), &db.dir.path().join("p38-data"));
    let agent = s.post(
        "/api/agents",
        serde_json::json!({"name": "busy", "code": AGENT}),
    );
    let agent_id = agent["id"].as_i64().unwrap();
    let t = Instant::now();
    rt.block_on(fill_history(&db.url, agent_id));
    println!(
        "{:<9} inserted {HISTORY} tasks in {:.1} s",
        db.backend,
        t.elapsed().as_secs_f64()
    );
    let first = s.get(&format!("/api/agents/{agent_id}/tasks?limit=50"));
    let body: serde_json::Value = first.json().unwrap();
    let newest = body["items"][0]["id"].as_i64().unwrap();
    let cursor =
        |id: i64| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{id}"));
    let mut rows = Vec::new();
    for (name, before) in [
        ("page 1".to_string(), None),
        ("page 10,000".to_string(), Some(newest + 1 - 50 * 9_999)),
        (
            "last page (20,000)".to_string(),
            Some(newest + 1 - 50 * 19_999),
        ),
    ] {
        let path = match before {
            None => format!("/api/agents/{agent_id}/tasks?limit=50"),
            Some(id) => format!(
                "/api/agents/{agent_id}/tasks?limit=50&cursor={}",
                cursor(id)
            ),
        };
        let mut ms = Vec::new();
        for i in 0..220 {
            let t = Instant::now();
            let r = s.get(&path);
            let v: serde_json::Value = r.json().unwrap();
            let d = t.elapsed();
            assert_eq!(v["items"].as_array().unwrap().len(), 50, "{name}");
            if i >= 20 {
                ms.push(d.as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        rows.push((name, ms[ms.len() / 2], ms[ms.len() * 99 / 100]));
    }
    for (name, p50, p99) in rows {
        println!(
            "{:<9} GET tasks, 50 per page, {name:<19} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms",
            db.backend
        );
    }
}

/// Writes the history directly: a million runs through the queue would
/// measure the queue, not the listing.
async fn fill_history(url: &str, agent_id: i64) {
    let store = SqlStore::connect(url, StoreOptions::default())
        .await
        .unwrap();
    let sql = format!(
        "INSERT INTO tasks (agent_id, agent_version, status, trigger_kind, attempt, scheduled_at, \
         started_at, completed_at, result, duration_ms, created_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {HISTORY}) \
         SELECT {agent_id}, 1, 'succeeded', 'schedule', 1, i * 1000, i * 1000, i * 1000 + 20, \
         '{{\"ok\": true}}', 20, i * 1000 FROM n"
    );
    // Only numbers of our own are formatted into this statement.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.ok();
    store.close().await;
}
