//! Workspaces carried between hosts: `p38 serve` and two `p38 worker`
//! processes with data folders of their own (two hosts, as far as
//! workspaces go) on one PostgreSQL, where `--workspace-carry auto`
//! carries workspaces. What a run writes on one worker is there for the
//! next run on the other; an agent over its quota is not carried; a
//! deleted agent's archives are gone. Facts come from the store and the
//! data folders, never from timing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p38_core::agent::{AgentSettings, AgentStatus, NewAgent};
use p38_core::audit::NewAudit;
use p38_core::store::{AgentStore, TaskStore, WorkspaceArchiveStore};
use p38_core::task::{NewTask, Task, TaskKind, Trigger};
use p38_core::time::now;
use p38_store::{SqlStore, StoreOptions};

/// A `p38` child process, stopped on drop.
struct Proc(Child);

impl Proc {
    fn spawn(args: &[&str], data_dir: &Path, url: &str) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_p38"))
            .args(args)
            .env("P38_DATA_DIR", data_dir)
            .env("P38_DATABASE_URL", url)
            .env("P38_LOG", "warn")
            .env_remove("P38_WORKSPACE_CARRY")
            // Plain folders: an image left mounted in the temporary folder
            // would outlive the test.
            .env("P38_WORKSPACE_QUOTA", "walk")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc(child)
    }

    /// SIGTERM, then waits for the exit (runs end, none is left).
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        while self.0.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "p38 did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// Queues a run of `agent` and waits until it ended.
async fn run(store: &SqlStore, agent: i64) -> Task {
    let t = store
        .enqueue(
            NewTask {
                agent_id: agent,
                agent_version: 1,
                trigger: Trigger::Manual,
                kind: TaskKind::Agent,
                attempt: 1,
                retry_of: None,
                scheduled_at: now(),
            },
            None,
        )
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let now = store.get_task(t.id).await.unwrap().unwrap();
        if now.status.is_final() {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "task {} did not end",
            t.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts its runs in a file of its workspace, and says which it saw.
const COUNTER_FILE_CODE: &str = "import os\n\ndef run(ctx):\n    p = '/workspace/notes/counter.txt'\n    n = int(open(p).read()) if os.path.exists(p) else 0\n    os.makedirs('/workspace/notes', exist_ok=True)\n    open(p, 'w').write(str(n + 1))\n    return n + 1\n";

/// Writes 2 MiB into a workspace whose quota is 1 MiB.
const HOG_CODE: &str =
    "def run(ctx):\n    open('/workspace/big', 'wb').write(b'x' * (2 << 20))\n    return 1\n";

fn counter_on(data_dir: &Path, agent: i64) -> String {
    let p: PathBuf = data_dir.join(format!("workspaces/{agent}/notes/counter.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_follows_its_agent_from_worker_to_worker() {
    let base = match std::env::var("P38_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => return p38_testkit::missing("P38_TEST_DATABASE_URL is not set"),
    };
    if !p38_testkit::sandbox_available() {
        return;
    }
    let schema = format!("p38carry_{}", std::process::id());
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
    let dir = tempfile::tempdir().unwrap();
    let (serve_dir, a_dir, b_dir) = (
        dir.path().join("api"),
        dir.path().join("host-a"),
        dir.path().join("host-b"),
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _serve = Proc::spawn(
        &["serve", "--bind", &format!("127.0.0.1:{port}")],
        &serve_dir,
        &url,
    );
    let counter = store
        .create_agent(
            agent("carried", COUNTER_FILE_CODE, AgentSettings::default()),
            audit(),
        )
        .await
        .unwrap();

    // Run 1 on worker A only.
    let a = Proc::spawn(&["worker", "--worker-id", "a"], &a_dir, &url);
    let first = run(&store, counter.id).await;
    assert_eq!(first.worker.as_deref(), Some("a"));
    assert_eq!(
        first.result,
        Some(serde_json::json!(1)),
        "{:?}",
        first.error
    );
    let v1 = store
        .latest_workspace_archive(counter.id)
        .await
        .unwrap()
        .expect("run 1 stored the workspace");
    assert_eq!((v1.version, v1.saved_by_task), (1, Some(first.id)));
    a.stop();

    // Run 2 on worker B, a fresh data folder: it sees run 1's file.
    let b = Proc::spawn(&["worker", "--worker-id", "b"], &b_dir, &url);
    let second = run(&store, counter.id).await;
    assert_eq!(second.worker.as_deref(), Some("b"));
    assert_eq!(
        second.result,
        Some(serde_json::json!(2)),
        "run 2 on another host read what run 1 wrote: {:?}",
        second.error
    );
    assert_eq!(counter_on(&b_dir, counter.id), "2");
    assert_eq!(counter_on(&a_dir, counter.id), "1", "A's copy is stale now");
    b.stop();

    // Run 3 back on A: its stale copy is replaced by run 2's.
    let a = Proc::spawn(&["worker", "--worker-id", "a"], &a_dir, &url);
    let third = run(&store, counter.id).await;
    assert_eq!(third.worker.as_deref(), Some("a"));
    assert_eq!(
        third.result,
        Some(serde_json::json!(3)),
        "{:?}",
        third.error
    );
    assert_eq!(counter_on(&a_dir, counter.id), "3");
    let v3 = store.latest_workspace_archive(counter.id).await.unwrap();
    assert_eq!(v3.map(|v| v.version), Some(3));

    // A workspace past its quota is not carried, and the run says why.
    let hog = store
        .create_agent(
            agent(
                "hog",
                HOG_CODE,
                AgentSettings {
                    workspace_mb: Some(1),
                    ..Default::default()
                },
            ),
            audit(),
        )
        .await
        .unwrap();
    let over = run(&store, hog.id).await;
    let error = over.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("workspace quota exceeded"),
        "{:?}: {error}",
        over.status
    );
    assert_eq!(store.latest_workspace_archive(hog.id).await.unwrap(), None);
    a.stop();

    // Deleting the agent (through the API) deletes its archives.
    let token = std::fs::read_to_string(serve_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let deleted = reqwest::Client::new()
        .delete(format!("http://127.0.0.1:{port}/api/agents/{}", counter.id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(
        store.latest_workspace_archive(counter.id).await.unwrap(),
        None
    );
    for v in 1..=3 {
        assert_eq!(
            store.workspace_archive_bytes(counter.id, v).await.unwrap(),
            None
        );
    }
    store.drop_schema(&schema).await.unwrap();
}
