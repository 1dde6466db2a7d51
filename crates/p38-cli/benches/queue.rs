//! Queue and scheduler benchmarks against PostgreSQL, driving real `p38`
//! processes (release build):
//!
//! ```sh
//! cargo bench -p p38-cli --bench queue -- all            # everything, 5-minute lateness run
//! cargo bench -p p38-cli --bench queue -- throughput     # no-op jobs/s, 1 and 4 workers
//! cargo bench -p p38-cli --bench queue -- latency        # enqueue-to-start p50/p99
//! cargo bench -p p38-cli --bench queue -- lateness 300   # schedule lateness over N seconds
//! cargo bench -p p38-cli --bench queue -- memory         # RSS with 10,000 scheduled agents
//! ```
//!
//! Uses `P38_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), one fresh schema per
//! measurement. Times come from what the store recorded.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p38_core::agent::{AgentSettings, AgentStatus, NewAgent};
use p38_core::audit::NewAudit;
use p38_core::page::PageRequest;
use p38_core::store::{AgentStore, TaskStore};
use p38_core::task::{NewTask, TaskKind, TaskStatus, TaskSummary, Trigger};
use p38_core::time::now;
use p38_store::{SqlStore, StoreOptions};

fn base_url() -> String {
    std::env::var("P38_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn fresh(name: &str) -> (String, Arc<SqlStore>) {
    let schema = format!("p38bench_{name}");
    let url = format!("{}?schema={schema}", base_url());
    let s = SqlStore::connect(&url, StoreOptions::default())
        .await
        .expect("PostgreSQL");
    s.drop_schema(&schema).await.unwrap();
    s.close().await;
    let s = SqlStore::connect(
        &url,
        StoreOptions {
            max_connections: Some(16),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(s.pool()).await.ok();
    (url, Arc::new(s))
}

fn spawn(args: &[&str], url: &str, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_p38"))
        .args(args)
        .env("P38_DATABASE_URL", url)
        .env("P38_DATA_DIR", dir)
        .env("P38_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn agent(name: &str) -> NewAgent {
    NewAgent {
        name: name.into(),
        description: String::new(),
        code: "def run(ctx):\n    pass\n".into(),
        status: AgentStatus::Active,
        schedule: None,
        config: serde_json::json!({}),
        secrets: vec![],
        tools: vec![],
        network: false,
        allow_hosts: Vec::new(),
        settings: AgentSettings::default(),
        created_by: "bench".into(),
        next_fire_at: None,
        approved_by: Some("test".into()),
        generation_id: None,
    }
}

fn audit() -> NewAudit {
    NewAudit {
        actor: "bench".into(),
        action: "bench".into(),
        target: String::new(),
        detail: None,
    }
}

fn noop(agent_id: i64) -> NewTask {
    NewTask {
        agent_id,
        agent_version: 1,
        trigger: Trigger::Manual,
        kind: TaskKind::Noop,
        attempt: 1,
        retry_of: None,
        scheduled_at: now(),
    }
}

/// Tasks of an agent in a status: one COUNT, as the competitors' scripts
/// poll, so the polling costs the machine what theirs does.
async fn count(store: &SqlStore, agent: i64, status: TaskStatus) -> usize {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE agent_id = $1 AND status = $2")
            .bind(agent)
            .bind(status.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
    n as usize
}

async fn tasks(store: &SqlStore, agent: i64) -> Vec<TaskSummary> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = store
            .list_tasks(
                agent,
                None,
                PageRequest::parse(cursor.as_deref(), Some(500)).unwrap(),
            )
            .await
            .unwrap();
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn throughput(workers: usize, jobs: usize) {
    let (url, store) = fresh(&format!("tp{workers}")).await;
    let a = store.create_agent(agent("noop"), audit()).await.unwrap();
    // Bulk insert, then ANALYZE: the claim query's plan depends on it.
    for chunk in 0..jobs / 500 {
        let _ = chunk;
        let mut tx = store.pool().begin().await.unwrap();
        for _ in 0..500 {
            sqlx::query("INSERT INTO tasks (agent_id, agent_version, status, trigger_kind, kind, attempt, scheduled_at, created_at) VALUES ($1, 1, 'queued', 'manual', 'noop', 1, $2, $2)")
                .bind(a.id)
                .bind(now().timestamp_millis())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    sqlx::query("ANALYZE tasks")
        .execute(store.pool())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut kids: Vec<Child> = (0..workers)
        .map(|i| {
            spawn(
                &[
                    "worker",
                    "--insecure-no-sandbox",
                    "--worker-id",
                    &format!("b{i}"),
                    "--concurrency",
                    "16",
                ],
                &url,
                dir.path(),
            )
        })
        .collect();
    while count(&store, a.id, TaskStatus::Succeeded).await < jobs {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "throughput run took too long"
        );
    }
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    let all = tasks(&store, a.id).await;
    let first = all.iter().filter_map(|t| t.started_at).min().unwrap();
    let last = all.iter().filter_map(|t| t.completed_at).max().unwrap();
    let secs = (last - first).num_milliseconds() as f64 / 1000.0;
    println!(
        "throughput: {workers} worker process(es), {jobs} no-op jobs in {secs:.2} s = {:.0} jobs/s",
        jobs as f64 / secs
    );
}

async fn latency(samples: usize) {
    let (url, store) = fresh("lat").await;
    let a = store.create_agent(agent("noop"), audit()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut kid = spawn(
        &["worker", "--insecure-no-sandbox", "--worker-id", "lat"],
        &url,
        dir.path(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..samples {
        store.enqueue(noop(a.id), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while count(&store, a.id, TaskStatus::Succeeded).await < samples {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = kid.kill();
    let _ = kid.wait();
    let mut ms: Vec<f64> = tasks(&store, a.id)
        .await
        .iter()
        .map(|t| {
            (t.started_at.unwrap() - t.created_at)
                .num_microseconds()
                .unwrap() as f64
                / 1000.0
        })
        .collect();
    println!(
        "enqueue-to-start latency (LISTEN/NOTIFY, idle worker, {samples} jobs, ms resolution of stored times): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&mut ms, 0.5),
        pct(&mut ms, 0.99),
        pct(&mut ms, 1.0)
    );
}

async fn lateness(seconds: u64, agents: usize) {
    let (url, store) = fresh("late").await;
    let start_at = now() + chrono::Duration::seconds(5);
    let mut ids = Vec::new();
    for i in 0..agents {
        let mut na = agent(&format!("tick{i}"));
        na.schedule = Some("every 1s".into());
        na.next_fire_at = Some(start_at);
        ids.push(store.create_agent(na, audit()).await.unwrap().id);
    }
    let dir = tempfile::tempdir().unwrap();
    // The whole platform: scheduler, worker and the real sandbox; every
    // firing starts a real (trivial) agent run.
    let conc = agents.to_string();
    let mut kid = spawn(
        &["up", "--bind", "127.0.0.1:0", "--concurrency", &conc],
        &url,
        dir.path(),
    );
    tokio::time::sleep(Duration::from_secs(seconds + 5)).await;
    let _ = kid.kill();
    let _ = kid.wait();
    let (mut fire, mut start) = (Vec::new(), Vec::new());
    for id in ids {
        for t in tasks(&store, id).await {
            // When the run became claimable: its due time, or its creation if later.
            fire.push((t.created_at - t.scheduled_at).num_milliseconds().max(0) as f64);
            if let Some(s) = t.started_at {
                start.push((s - t.scheduled_at).num_milliseconds() as f64);
            }
        }
    }
    println!(
        "schedule lateness ({agents} agents on `every 1s` for {seconds} s, {} firings): firing (run claimable after its due time) p50 {:.0} ms, p99 {:.0} ms; run start after due time p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        fire.len(),
        pct(&mut fire, 0.5),
        pct(&mut fire, 0.99),
        pct(&mut start, 0.5),
        pct(&mut start, 0.99),
        pct(&mut start, 1.0)
    );
}

async fn memory(agents: usize) {
    let (url, store) = fresh("mem").await;
    let mut tx = store.pool().begin().await.unwrap();
    let far = (now() + chrono::Duration::hours(1)).timestamp_millis();
    for i in 0..agents {
        sqlx::query("INSERT INTO agents (name, description, code, status, schedule, config, secrets, tools, network, settings, version, created_by, created_at, updated_at, next_fire_at) VALUES ($1, '', 'def run(ctx):\n    pass\n', 'active', '0 * * * *', '{}', '[]', '[]', 0, '{}', 1, 'bench', $2, $2, $3)")
            .bind(format!("agent{i}"))
            .bind(now().timestamp_millis())
            .bind(far + i as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut kid = spawn(
        &["up", "--bind", "127.0.0.1:0", "--insecure-no-sandbox"],
        &url,
        dir.path(),
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", kid.id())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?")
        .to_string();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .to_string();
    let _ = kid.kill();
    let _ = kid.wait();
    println!(
        "memory of `p38 up` (API, scheduler, worker) with {agents} scheduled agents: {} (peak {})",
        rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        hwm.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let n: Option<u64> = args.get(1).and_then(|s| s.parse().ok());
    match what {
        "throughput" => {
            throughput(1, 5000).await;
            throughput(4, 5000).await;
        }
        "latency" => latency(200).await,
        "lateness" => lateness(n.unwrap_or(300), 10).await,
        "memory" => memory(10_000).await,
        "all" => {
            throughput(1, 5000).await;
            throughput(4, 5000).await;
            latency(200).await;
            memory(10_000).await;
            lateness(n.unwrap_or(300), 10).await;
        }
        other => eprintln!(
            "unknown benchmark {other:?}: throughput, latency, lateness [SECONDS], memory, all"
        ),
    }
}
