//! The durable queue and the scheduler across processes: several `p38
//! worker` and `p38 serve` processes against one PostgreSQL (each test in
//! its own schema), plus single-process checks on SQLite. Facts are
//! checked from what the store recorded (start and end times, workers,
//! attempts), never from timing inside the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p38_core::agent::{AgentSettings, AgentStatus, NewAgent, OverlapPolicy};
use p38_core::audit::NewAudit;
use p38_core::page::PageRequest;
use p38_core::store::{AgentStore, TaskStore};
use p38_core::task::{NewTask, TaskKind, TaskStatus, TaskSummary, Trigger};
use p38_core::time::now;
use p38_store::{SqlStore, StoreOptions};

fn pg_url() -> Option<String> {
    match std::env::var("P38_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => None,
    }
}

fn have_bwrap() -> bool {
    p38_testkit::sandbox_available()
}

/// A PostgreSQL schema of its own, dropped at the end.
struct Db {
    url: String,
    schema: String,
    store: Arc<SqlStore>,
    dir: tempfile::TempDir,
}

impl Db {
    async fn new(test: &str) -> Option<Db> {
        let Some(base) = pg_url() else {
            p38_testkit::missing(&format!("{test}: P38_TEST_DATABASE_URL is not set"));
            return None;
        };
        if !have_bwrap() {
            return None;
        }
        let schema = format!("p38q_{test}_{}", std::process::id());
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

/// A `p38` child process, killed on drop.
struct Proc(Child);

impl Proc {
    fn spawn(args: &[&str], data_dir: &Path, url: &str) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_p38"))
            .args(args)
            .env("P38_DATA_DIR", data_dir)
            .env("P38_DATABASE_URL", url)
            .env("P38_LOG", "warn")
            // Plain folders: these processes are killed, and an image left
            // mounted in the temporary folder would outlive the test.
            .env("P38_WORKSPACE_QUOTA", "walk")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc(child)
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap();
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(name: &str, code: &str, settings: AgentSettings) -> NewAgent {
    NewAgent {
        name: name.into(),
        description: String::new(),
        code: code.into(),
        status: AgentStatus::Active,
        schedule: None,
        config: serde_json::json!({}),
        secrets: vec![],
        tools: vec![],
        network: false,
        allow_hosts: Vec::new(),
        settings,
        created_by: "test".into(),
        next_fire_at: None,
        approved_by: Some("test".into()),
        generation_id: None,
    }
}

fn audit() -> NewAudit {
    NewAudit {
        actor: "test".into(),
        action: "test".into(),
        target: String::new(),
        detail: None,
    }
}

fn task(agent_id: i64, kind: TaskKind) -> NewTask {
    NewTask {
        agent_id,
        agent_version: 1,
        trigger: Trigger::Manual,
        kind,
        attempt: 1,
        retry_of: None,
        scheduled_at: now(),
    }
}

async fn all_tasks(store: &SqlStore, agent: i64) -> Vec<TaskSummary> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_tasks(
                agent,
                None,
                PageRequest::parse(cursor.as_deref(), Some(500)).unwrap(),
            )
            .await
            .unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Largest number of intervals open at once.
fn max_overlap(tasks: &[&TaskSummary]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for t in tasks {
        let (Some(s), Some(e)) = (t.started_at, t.completed_at) else {
            continue;
        };
        edges.push((s.timestamp_millis(), 1));
        edges.push((e.timestamp_millis(), -1));
    }
    // Ends sort before starts at the same millisecond.
    edges.sort();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_drain_1000_runs_each_exactly_once() {
    let Some(db) = Db::new("drain").await else {
        return;
    };
    let a = db
        .store
        .create_agent(
            agent(
                "noop",
                "def run(ctx):\n    pass\n",
                AgentSettings::default(),
            ),
            audit(),
        )
        .await
        .unwrap();
    for _ in 0..1000 {
        db.store
            .enqueue(task(a.id, TaskKind::Noop), None)
            .await
            .unwrap();
    }
    // Every claim of every task, as the database sees it: a no-op task
    // claimed twice still ends succeeded once, so the row alone cannot
    // tell. Each statement that sets a row running (a claim) adds a line,
    // also when the row was running already.
    for sql in [
        "CREATE TABLE test_claims (task_id BIGINT NOT NULL, worker TEXT)",
        "CREATE FUNCTION test_record_claim() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO test_claims (task_id, worker) VALUES (NEW.id, NEW.worker); RETURN NEW; END $$",
        "CREATE TRIGGER test_claims AFTER UPDATE OF status ON tasks FOR EACH ROW \
         WHEN (NEW.status = 'running') EXECUTE FUNCTION test_record_claim()",
    ] {
        sqlx::query(sql).execute(db.store.pool()).await.unwrap();
    }
    let workers: Vec<Proc> = (0..3)
        .map(|i| {
            Proc::spawn(
                &[
                    "worker",
                    "--worker-id",
                    &format!("w{i}"),
                    "--concurrency",
                    "5",
                ],
                db.dir.path(),
                &db.url,
            )
        })
        .collect();
    let store = db.store.clone();
    wait_until(Duration::from_secs(120), "1000 no-op runs", || {
        let store = store.clone();
        async move {
            store
                .list_tasks(a.id, Some(TaskStatus::Queued), PageRequest::first(1))
                .await
                .unwrap()
                .items
                .is_empty()
                && store
                    .list_tasks(a.id, Some(TaskStatus::Running), PageRequest::first(1))
                    .await
                    .unwrap()
                    .items
                    .is_empty()
        }
    })
    .await;
    drop(workers);
    let tasks = all_tasks(&db.store, a.id).await;
    assert_eq!(tasks.len(), 1000);
    assert!(
        tasks
            .iter()
            .all(|t| t.status == TaskStatus::Succeeded && t.attempt == 1),
        "each completed exactly once, first time"
    );
    let by: std::collections::BTreeSet<_> = tasks.iter().filter_map(|t| t.worker.clone()).collect();
    assert!(by.len() >= 2, "the work was shared: {by:?}");
    let claims: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT task_id, worker FROM test_claims ORDER BY task_id")
            .fetch_all(db.store.pool())
            .await
            .unwrap();
    let mut per_task: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (id, worker) in claims {
        per_task
            .entry(id)
            .or_default()
            .push(worker.unwrap_or_default());
    }
    let twice: Vec<_> = per_task.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{} tasks claimed more than once, e.g. {:?}",
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(per_task.len(), 1000, "every task's claim was recorded");
    for t in &tasks {
        assert_eq!(
            per_task[&t.id].first(),
            t.worker.as_ref(),
            "task {} was claimed by the worker that ran it",
            t.id
        );
    }
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_runs_across_workers_run_once_and_respect_concurrency_limits() {
    let Some(db) = Db::new("limits").await else {
        return;
    };
    // Each run appends a line to its agent's workspace: lines = executions.
    let code = "import time\ndef run(ctx):\n    open('/workspace/runs', 'a').write('x\\n')\n    time.sleep(0.3)\n";
    let mut ids = Vec::new();
    for i in 0..6 {
        let a = db
            .store
            .create_agent(
                agent(&format!("a{i}"), code, AgentSettings::default()),
                audit(),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            db.store
                .enqueue(task(a.id, TaskKind::Agent), None)
                .await
                .unwrap();
        }
        ids.push(a.id);
    }
    let workers: Vec<Proc> = (0..3)
        .map(|i| {
            Proc::spawn(
                &[
                    "worker",
                    "--worker-id",
                    &format!("w{i}"),
                    "--concurrency",
                    "2",
                ],
                db.dir.path(),
                &db.url,
            )
        })
        .collect();
    let store = db.store.clone();
    let ids2 = ids.clone();
    wait_until(Duration::from_secs(180), "18 runs", || {
        let (store, ids) = (store.clone(), ids2.clone());
        async move {
            for id in ids {
                if all_tasks(&store, id)
                    .await
                    .iter()
                    .any(|t| !t.status.is_final())
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
    drop(workers);
    let mut every = Vec::new();
    for id in &ids {
        let tasks = all_tasks(&db.store, *id).await;
        assert!(
            tasks.iter().all(|t| t.status == TaskStatus::Succeeded),
            "{tasks:?}"
        );
        let per_agent: Vec<&TaskSummary> = tasks.iter().collect();
        assert_eq!(
            max_overlap(&per_agent),
            1,
            "runs of one agent never overlap"
        );
        let lines = std::fs::read_to_string(
            db.dir
                .path()
                .join("workspaces")
                .join(id.to_string())
                .join("runs"),
        )
        .unwrap();
        assert_eq!(lines.lines().count(), 3, "each run executed exactly once");
        every.extend(tasks);
    }
    for w in ["w0", "w1", "w2"] {
        let mine: Vec<&TaskSummary> = every
            .iter()
            .filter(|t| t.worker.as_deref() == Some(w))
            .collect();
        assert!(
            max_overlap(&mine) <= 2,
            "worker {w} ran more than its concurrency at once"
        );
    }
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing() {
    let Some(db) = Db::new("sigkill").await else {
        return;
    };
    let code = "import time\ndef run(ctx):\n    open('/workspace/starts', 'a').write('%d\\n' % ctx.run.attempt)\n    time.sleep(3)\n    return ctx.run.attempt\n";
    let a = db
        .store
        .create_agent(agent("victim", code, AgentSettings::default()), audit())
        .await
        .unwrap();
    let t = db
        .store
        .enqueue(task(a.id, TaskKind::Agent), None)
        .await
        .unwrap();
    let first = Proc::spawn(
        &["worker", "--worker-id", "doomed", "--lease-seconds", "2"],
        db.dir.path(),
        &db.url,
    );
    let store = db.store.clone();
    wait_until(Duration::from_secs(30), "the doomed worker to start the run", || {
        let store = store.clone();
        async move { store.get_task(t.id).await.unwrap().unwrap().status == TaskStatus::Running }
    })
    .await;
    first.signal("-KILL");
    drop(first);
    let _second = Proc::spawn(
        &["worker", "--worker-id", "rescuer", "--lease-seconds", "2"],
        db.dir.path(),
        &db.url,
    );
    wait_until(
        Duration::from_secs(60),
        "the rescuer to finish the task",
        || {
            let store = store.clone();
            async move {
                store
                    .get_task(t.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .status
                    .is_final()
            }
        },
    )
    .await;
    let done = db.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.worker.as_deref(), Some("rescuer"));
    assert_eq!(
        done.attempt, 2,
        "the agent sees that this is its second attempt"
    );
    assert_eq!(done.result, Some(serde_json::json!(2)));
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_never_double_fire_and_one_takes_over() {
    let Some(db) = Db::new("sched").await else {
        return;
    };
    let settings = AgentSettings {
        overlap: Some(OverlapPolicy::Queue),
        ..Default::default()
    };
    let mut na = agent("ticker", "def run(ctx):\n    pass\n", settings);
    na.schedule = Some("every 1s".into());
    na.next_fire_at = Some(now() + chrono::Duration::seconds(1));
    let a = db.store.create_agent(na, audit()).await.unwrap();
    let mut procs: std::collections::BTreeMap<&str, Proc> = ["s1", "s2"]
        .into_iter()
        .map(|id| {
            let p = Proc::spawn(
                &["serve", "--bind", "127.0.0.1:0", "--worker-id", id],
                db.dir.path(),
                &db.url,
            );
            (id, p)
        })
        .collect();
    let store = db.store.clone();
    let holder = || {
        let store = store.clone();
        async move {
            sqlx::query_as::<_, (String,)>("SELECT holder FROM scheduler_lease WHERE id = 1")
                .fetch_optional(store.pool())
                .await
                .unwrap()
                .map(|(h,)| h)
        }
    };
    let fired_after = |at: chrono::DateTime<chrono::Utc>| {
        let store = store.clone();
        async move {
            all_tasks(&store, a.id)
                .await
                .iter()
                .filter(|t| t.scheduled_at > at)
                .count()
        }
    };
    let started = now();
    wait_until(
        Duration::from_secs(30),
        "three firings by the first leader",
        || async { fired_after(started).await >= 3 },
    )
    .await;
    // Kill whichever holds the lease; the other must take over.
    let leader = holder().await.expect("a scheduler leads");
    let (dead, survivor) = match leader.as_str() {
        "s1:scheduler" => ("s1", "s2"),
        "s2:scheduler" => ("s2", "s1"),
        other => panic!("unknown lease holder {other}"),
    };
    let mut killed = procs.remove(dead).unwrap();
    killed.signal("-KILL");
    assert!(killed.wait_exit(Duration::from_secs(10)).is_some());
    let killed_at = now();
    wait_until(
        Duration::from_secs(40),
        "three firings after the leader died (the other took over)",
        || async { fired_after(killed_at).await >= 3 },
    )
    .await;
    assert_eq!(
        holder().await.as_deref(),
        Some(format!("{survivor}:scheduler").as_str()),
        "the survivor holds the lease"
    );
    assert!(
        procs
            .get_mut(survivor)
            .unwrap()
            .0
            .try_wait()
            .unwrap()
            .is_none(),
        "the survivor still runs"
    );
    let tasks = all_tasks(&db.store, a.id).await;
    let mut instants: Vec<i64> = tasks
        .iter()
        .map(|t| t.scheduled_at.timestamp_millis())
        .collect();
    let n = instants.len();
    instants.sort_unstable();
    instants.dedup();
    assert_eq!(instants.len(), n, "an instant was fired twice");
    drop(procs);
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hands_unfinished_runs_to_another_worker() {
    let Some(db) = Db::new("graceful").await else {
        return;
    };
    let code = "import time\ndef run(ctx):\n    time.sleep(4)\n    return 'done'\n";
    let a = db
        .store
        .create_agent(agent("slow", code, AgentSettings::default()), audit())
        .await
        .unwrap();
    let t = db
        .store
        .enqueue(task(a.id, TaskKind::Agent), None)
        .await
        .unwrap();
    let mut first = Proc::spawn(
        &["worker", "--worker-id", "leaving", "--shutdown-grace", "1"],
        db.dir.path(),
        &db.url,
    );
    let store = db.store.clone();
    wait_until(Duration::from_secs(30), "the run to start", || {
        let store = store.clone();
        async move { store.get_task(t.id).await.unwrap().unwrap().status == TaskStatus::Running }
    })
    .await;
    first.signal("-TERM");
    let status = first
        .wait_exit(Duration::from_secs(15))
        .expect("worker exits after SIGTERM");
    assert!(status.success());
    let released = db.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(
        released.status,
        TaskStatus::Queued,
        "handed back, not lost and not cancelled"
    );
    let _second = Proc::spawn(
        &["worker", "--worker-id", "staying"],
        db.dir.path(),
        &db.url,
    );
    wait_until(Duration::from_secs(60), "another worker to run it", || {
        let store = store.clone();
        async move {
            store
                .get_task(t.id)
                .await
                .unwrap()
                .unwrap()
                .status
                .is_final()
        }
    })
    .await;
    let done = db.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.worker.as_deref()),
        (TaskStatus::Succeeded, Some("staying"))
    );
    db.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_backoff_and_cron_fires_on_the_second() {
    if !have_bwrap() {
        return;
    }
    // Single process on SQLite: `p38 up`.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p38.db", dir.path().display());
    let store = Arc::new(
        SqlStore::connect(&url, StoreOptions::default())
            .await
            .unwrap(),
    );
    let settings = AgentSettings {
        max_retries: Some(3),
        retry_base_seconds: Some(1),
        ..Default::default()
    };
    let failing = store
        .create_agent(
            agent(
                "failing",
                "def run(ctx):\n    raise RuntimeError('nope')\n",
                settings,
            ),
            audit(),
        )
        .await
        .unwrap();
    let mut cron = agent(
        "cron",
        "def run(ctx):\n    return ctx.run.scheduled_at\n",
        AgentSettings {
            overlap: Some(OverlapPolicy::Queue),
            ..Default::default()
        },
    );
    cron.schedule = Some("*/2 * * * * *".into());
    cron.next_fire_at = p38_core::schedule::Schedule::parse("*/2 * * * * *")
        .unwrap()
        .next_after(now(), AgentSettings::default().tz());
    let cron = store.create_agent(cron, audit()).await.unwrap();
    store
        .enqueue(task(failing.id, TaskKind::Agent), None)
        .await
        .unwrap();
    let _up = Proc::spawn(&["up", "--bind", "127.0.0.1:0"], dir.path(), &url);
    let s = store.clone();
    wait_until(Duration::from_secs(60), "four attempts", || {
        let s = s.clone();
        async move {
            all_tasks(&s, failing.id)
                .await
                .iter()
                .filter(|t| t.status.is_final())
                .count()
                == 4
        }
    })
    .await;
    let mut tries = all_tasks(&store, failing.id).await;
    tries.sort_by_key(|t| t.attempt);
    assert_eq!(
        tries.iter().map(|t| t.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let first = tries[0].id;
    for (i, expected) in [(1usize, 1.0f64), (2, 2.0), (3, 4.0)] {
        let t = &tries[i];
        assert_eq!((t.trigger, t.retry_of), (Trigger::Retry, Some(first)));
        let gap = (t.scheduled_at - tries[i - 1].completed_at.unwrap()).num_milliseconds() as f64
            / 1000.0;
        // The retry's time is set as the run ends, up to 10 % later for
        // jitter; the failure's completion is stamped when it is stored,
        // which on a busy machine can be a moment later still.
        assert!(
            gap >= expected - 0.5 && gap <= expected * 1.1 + 0.2,
            "retry {i}: {gap} s, expected {expected} s"
        );
    }
    // Cron with seconds: every firing lands on an even second, none twice.
    let s = store.clone();
    wait_until(
        Duration::from_secs(60),
        "three cron runs that ended",
        || {
            let s = s.clone();
            async move {
                all_tasks(&s, cron.id)
                    .await
                    .iter()
                    .filter(|t| t.status.is_final())
                    .count()
                    >= 3
            }
        },
    )
    .await;
    let mut fired = all_tasks(&store, cron.id).await;
    fired.sort_by_key(|t| t.scheduled_at);
    for t in &fired {
        assert_eq!(t.scheduled_at.timestamp_subsec_millis(), 0);
        assert_eq!(t.scheduled_at.timestamp() % 2, 0);
        assert_eq!(t.trigger, Trigger::Schedule);
    }
    let mut at: Vec<_> = fired.iter().map(|t| t.scheduled_at).collect();
    at.dedup();
    assert_eq!(at.len(), fired.len());
    // A firing starts right away, or, queued behind the run before it
    // (overlap: queue), right after that run ended.
    let started_late: Vec<i64> = fired
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let free = i
                .checked_sub(1)
                .and_then(|p| fired[p].completed_at)
                .map_or(t.scheduled_at, |c| c.max(t.scheduled_at));
            t.started_at.map(|s| (s - free).num_milliseconds())
        })
        .collect();
    assert!(
        started_late.iter().all(|ms| *ms < 3000),
        "runs start right after their firing: {started_late:?}"
    );
    let _ = PathBuf::new();
}

/// A secret written through the API of one process reaches a worker in
/// another process at once (PostgreSQL NOTIFY), not when the worker's
/// cache runs out (5 minutes by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_changed_through_one_process_reaches_workers_elsewhere_at_once() {
    let Some(db) = Db::new("secretsync").await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _serve = Proc::spawn(
        &["serve", "--bind", &format!("127.0.0.1:{port}")],
        db.dir.path(),
        &db.url,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let h = http.clone();
    let b = base.clone();
    wait_until(Duration::from_secs(30), "p38 serve to answer", || {
        let (h, b) = (h.clone(), b.clone());
        async move { h.get(format!("{b}/health")).send().await.is_ok() }
    })
    .await;
    let token = std::fs::read_to_string(db.dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let put = |value: &'static str| {
        let r = http
            .put(format!("{base}/api/secrets/API_KEY"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "value": value }))
            .send();
        async move {
            let r = r.await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    put("first-value-0001").await;
    let _worker = Proc::spawn(&["worker"], db.dir.path(), &db.url);
    let mut a = agent(
        "reader",
        "def run(ctx):\n    return ctx.secrets['API_KEY'][::-1]\n",
        AgentSettings::default(),
    );
    a.secrets = vec!["API_KEY".into()];
    let a = db.store.create_agent(a, audit()).await.unwrap();
    let run_once = |store: Arc<SqlStore>| async move {
        let t = store
            .enqueue(task(a.id, TaskKind::Agent), None)
            .await
            .unwrap();
        let s = store.clone();
        wait_until(
            Duration::from_secs(60),
            "the worker to run the agent",
            || {
                let s = s.clone();
                async move { s.get_task(t.id).await.unwrap().unwrap().status.is_final() }
            },
        )
        .await;
        let done = store.get_task(t.id).await.unwrap();
        let t = done.unwrap();
        assert_eq!(t.status, TaskStatus::Succeeded, "{:?}", t.error);
        t.result.unwrap()
    };
    assert_eq!(run_once(db.store.clone()).await, "1000-eulav-tsrif");
    // The worker has the first value cached now; the API changes it. The
    // notification reaches the worker in a moment, well before the cache's
    // 5 minutes: runs see the new value within 30 s.
    put("second-value-0002").await;
    let start = Instant::now();
    loop {
        let seen = run_once(db.store.clone()).await;
        if seen == "2000-eulav-dnoces" {
            break;
        }
        assert_eq!(seen, "1000-eulav-tsrif");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker in the other process still used the cached old value"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.done().await;
}
