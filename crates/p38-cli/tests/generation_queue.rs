//! Generations are tasks on the one queue: a `p38 worker` apart from the
//! API writes the agent; a worker killed mid-generation is replaced by
//! another through the task's lease; and generations have slots of their
//! own, so a long one never holds up an agent's run. The model is the
//! loopback fake of `fake_model`; the facts are read from what the store
//! and the API recorded (which worker, which attempt), never from timing.

mod fake_model;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use p38_store::{SqlStore, StoreOptions};

use fake_model::*;

/// A PostgreSQL schema of its own, dropped at the end, and a data folder.
struct Db {
    url: String,
    schema: String,
    store: Arc<SqlStore>,
    dir: tempfile::TempDir,
}

impl Db {
    async fn new(test: &str) -> Option<Db> {
        let base = match std::env::var("P38_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                p38_testkit::missing(&format!("{test}: P38_TEST_DATABASE_URL is not set"));
                return None;
            }
        };
        if !p38_testkit::sandbox_available() {
            return None;
        }
        let schema = format!("p38g_{test}_{}", std::process::id());
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}schema={schema}");
        let store = SqlStore::connect(&url, StoreOptions::default())
            .await
            .expect("PostgreSQL reachable");
        store.drop_schema(&schema).await.unwrap();
        store.close().await;
        let store = Arc::new(
            SqlStore::connect(&url, StoreOptions::default())
                .await
                .unwrap(),
        );
        Some(Db {
            url,
            schema,
            store,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    async fn done(self) {
        self.store.drop_schema(&self.schema).await.unwrap();
    }
}

/// Every call answers at once with clean code.
async fn clean(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    f.requests.lock().unwrap().push((None, body));
    Json(answer(CLEAN))
}

fn admin_token(data: &std::path::Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// Starts a generation through the API; returns its id.
async fn start_generation(url: &str, token: &str) -> i64 {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/agents"))
        .bearer_auth(token)
        .json(&json!({ "description": HEBREW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let g = r.json::<Value>().await.unwrap();
    assert_eq!(g["stage"], "queued", "{g}");
    assert!(g["task_id"].as_i64().is_some(), "queued as a task: {g}");
    g["id"].as_i64().unwrap()
}

/// The generation once it is no longer running.
async fn ended_generation(
    url: &str,
    token: &str,
    id: i64,
    log: &Arc<std::sync::Mutex<String>>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, g) = call(
            reqwest::Method::GET,
            &format!("{url}/api/generations/{id}"),
            token,
        )
        .await;
        if g["status"] != "running" {
            return g;
        }
        assert!(
            Instant::now() < deadline,
            "the generation never ended: {g}\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_apart_from_the_api_writes_the_agent() {
    let Some(db) = Db::new("apart").await else {
        return;
    };
    let (fake, llm) = serve_fake(post(clean)).await;
    let env = [("P38_DATABASE_URL", db.url.as_str())];
    let data = db.dir.path().to_path_buf();
    let (_serve, url, _) = start_p38(&["serve", "--bind", "127.0.0.1:0"], &data, &llm, &env);
    let token = admin_token(&data);
    let id = start_generation(&url, &token).await;
    let (_worker, _, log) = start_p38(&["worker", "--worker-id", "writer"], &data, &llm, &env);

    let g = ended_generation(&url, &token, id, &log).await;
    assert_eq!(g["status"], "succeeded", "{g}");
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
    // Its task is a task like any other: which worker ran it, when, and
    // what it made; it has no agent of its own.
    let (s, task) = call(
        reqwest::Method::GET,
        &format!("{url}/api/tasks/{}", g["task_id"]),
        &token,
    )
    .await;
    assert_eq!(s, 200, "{task}");
    assert_eq!(task["kind"], "generation", "{task}");
    assert_eq!(task["generation_id"], id, "{task}");
    assert!(task.get("agent_id").is_none(), "{task}");
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["worker"], "writer",
        "the worker process ran it: {task}"
    );
    assert_eq!(task["result"]["agent_id"], g["agent_id"], "{task}");
    let (_, agent) = call(
        reqwest::Method::GET,
        &format!("{url}/api/agents/{}", g["agent_id"]),
        &token,
    )
    .await;
    assert_eq!(agent["status"], "pending_approval", "{agent}");
    assert_eq!(agent["generation_id"], id);
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_generation_is_replaced_through_the_task_lease() {
    let Some(db) = Db::new("killed").await else {
        return;
    };
    let (fake, llm) = serve_fake(post(hang_once)).await;
    let env = [("P38_DATABASE_URL", db.url.as_str())];
    let data = db.dir.path().to_path_buf();
    let (_serve, url, _) = start_p38(&["serve", "--bind", "127.0.0.1:0"], &data, &llm, &env);
    let token = admin_token(&data);
    let lease = ["--lease-seconds", "2"];
    let (mut doomed, _, _) = start_p38(
        &["worker", "--worker-id", "doomed", lease[0], lease[1]],
        &data,
        &llm,
        &env,
    );
    let id = start_generation(&url, &token).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.requests.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the model was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker dies while the model is thinking.
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    let (_rescuer, _, log) = start_p38(
        &["worker", "--worker-id", "rescuer", lease[0], lease[1]],
        &data,
        &llm,
        &env,
    );

    let g = ended_generation(&url, &token, id, &log).await;
    assert_eq!(g["status"], "succeeded", "{g}");
    assert_eq!(
        fake.requests.lock().unwrap().len(),
        2,
        "run once more, not more"
    );
    let (_, task) = call(
        reqwest::Method::GET,
        &format!("{url}/api/tasks/{}", g["task_id"]),
        &token,
    )
    .await;
    assert_eq!(task["worker"], "rescuer", "{task}");
    assert_eq!(task["attempt"], 2, "within the attempts: {task}");
    assert_eq!(task["status"], "succeeded", "{task}");
    db.done().await;
}

/// With one slot for runs and one for generations, a generation waiting on
/// the model does not stop an agent from running meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_generation_does_not_hold_up_an_agent_run() {
    if !p38_testkit::sandbox_available() {
        return;
    }
    let (fake, llm) = serve_fake(post(hang_once)).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("P38_CONCURRENCY", "1"),
        ("P38_GENERATION_CONCURRENCY", "1"),
    ];
    let (_up, url, log) = start_up(&data, &llm, &env);
    let token = admin_token(&data);
    let id = start_generation(&url, &token).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.requests.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the model was never called:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/agents"))
        .bearer_auth(&token)
        .json(&json!({"name": "quick", "code": "def run(ctx):\n    return 42\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = http
        .post(format!("{url}/api/agents/quick/execute"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let task = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let (_, done) = call(
        reqwest::Method::GET,
        &format!("{url}/api/tasks/{task}?wait=60"),
        &token,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], 42);
    let (_, g) = call(
        reqwest::Method::GET,
        &format!("{url}/api/generations/{id}"),
        &token,
    )
    .await;
    assert_eq!(
        g["status"], "running",
        "the generation still waits for the model: {g}"
    );
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
}
