//! Real agents in the real sandbox, through the real store and worker:
//! each fact the runtime promises, with its own assertion.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use p38_core::agent::{AgentSettings, AgentStatus, NewAgent};
use p38_core::audit::NewAudit;
use p38_core::store::{AgentStore, Store, TaskStore};
use p38_core::task::{NewTask, Task, TaskKind, TaskStatus, Trigger};
use p38_core::time::now;
use p38_runtime::{Executor, LocalSignal, RuntimeConfig, Worker};
use p38_sandbox::{Sandbox, SandboxConfig};
use p38_store::{SqlStore, StoreOptions};
use tokio::sync::watch;

struct Rig {
    dir: tempfile::TempDir,
    store: Arc<SqlStore>,
    wake: LocalSignal,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
}

fn have_bwrap() -> bool {
    p38_testkit::sandbox_available()
}

impl Rig {
    async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/p38.db", dir.path().display());
        let store = Arc::new(
            SqlStore::connect(&url, StoreOptions::default())
                .await
                .unwrap(),
        );
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_p38"));
        let sandbox = tokio::task::spawn_blocking(move || {
            Sandbox::new(SandboxConfig::new(
                "/usr/bin/python3",
                vec![exe.into_os_string(), "__sandbox-init".into()],
            ))
        })
        .await
        .unwrap()
        .expect("sandbox available");
        let mut cfg = RuntimeConfig::new(dir.path());
        cfg.heartbeat = Duration::from_millis(200);
        cfg.poll = Duration::from_millis(100);
        // As the server's worker does: the runner precompiled.
        let exec = Arc::new(
            Executor::new(sandbox, Arc::new(p38_secrets::EnvResolver), cfg)
                .unwrap()
                .precompile_runner(),
        );
        assert!(
            dir.path().join("runtime/runner.pyc").is_file(),
            "the runner was not precompiled"
        );
        let wake = LocalSignal::default();
        let (stop, rx) = watch::channel(false);
        let w = Worker::new(store.clone() as Arc<dyn Store>, exec, wake.tasks.clone());
        let worker = tokio::spawn(w.run(rx, Duration::from_secs(5)));
        Rig {
            dir,
            store,
            wake,
            stop,
            worker,
        }
    }

    async fn agent(&self, name: &str, code: &str, tweak: impl FnOnce(&mut NewAgent)) -> i64 {
        let mut a = NewAgent {
            name: name.into(),
            description: String::new(),
            code: code.into(),
            status: AgentStatus::Active,
            schedule: None,
            config: serde_json::json!({"greeting": "hi"}),
            secrets: vec![],
            tools: vec![],
            network: false,
            allow_hosts: Vec::new(),
            settings: AgentSettings::default(),
            created_by: "test".into(),
            next_fire_at: None,
            approved_by: Some("test".into()),
            generation_id: None,
        };
        tweak(&mut a);
        let audit = NewAudit {
            actor: "test".into(),
            action: "agent.create".into(),
            target: String::new(),
            detail: None,
        };
        self.store.create_agent(a, audit).await.unwrap().id
    }

    async fn enqueue(&self, agent: i64) -> i64 {
        let t = NewTask {
            agent_id: agent,
            agent_version: 1,
            trigger: Trigger::Manual,
            kind: TaskKind::Agent,
            attempt: 1,
            retry_of: None,
            scheduled_at: now(),
        };
        let id = self.store.enqueue(t, None).await.unwrap().id;
        self.wake.tasks.notify_one();
        id
    }

    async fn wait(&self, task: i64, limit: Duration) -> Task {
        let start = Instant::now();
        loop {
            let t = self.store.get_task(task).await.unwrap().unwrap();
            if t.status.is_final() {
                return t;
            }
            assert!(
                start.elapsed() < limit,
                "task {task} still {:?} after {limit:?}",
                t.status
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn run(&self, name: &str, code: &str, tweak: impl FnOnce(&mut NewAgent)) -> Task {
        let a = self.agent(name, code, tweak).await;
        let t = self.enqueue(a).await;
        self.wait(t, Duration::from_secs(60)).await
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.worker.await;
    }

    /// Stops the worker and closes the database, then scans its files for
    /// `secret`. The database file must be there and hold `stored`, text
    /// the runs are known to have stored, so a scan of a missing or wrong
    /// file fails instead of passing; the WAL is scanned too when it is
    /// left (closing the last connection checkpoints and removes it).
    async fn stop_and_scan(self, secret: &str, stored: &str) {
        let _ = self.stop.send(true);
        let _ = self.worker.await;
        self.store.close().await;
        let mut files = Vec::new();
        for f in ["p38.db", "p38.db-wal"] {
            match std::fs::read(self.dir.path().join(f)) {
                Ok(bytes) => files.push((f, bytes)),
                Err(e) if f != "p38.db" && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("cannot read {f}: {e}"),
            }
        }
        let has = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(
            files.iter().any(|(_, b)| has(b, stored)),
            "the scanned files do not hold {stored:?}: not the run's database"
        );
        for (f, bytes) in &files {
            assert!(!has(bytes, secret), "canary found in {f}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_result_and_logs_are_captured_apart() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = r#"
import sys
def run(ctx):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    ctx.log.info("hello %s", ctx.config["greeting"])
    return {"answer": 42, "run": ctx.run.task_id, "attempt": ctx.run.attempt}
"#;
    let t = rig.run("io", code, |_| {}).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{:?}", t.error);
    assert_eq!(t.stdout.as_deref().map(str::trim), Some("to stdout"));
    assert_eq!(t.stderr.as_deref().map(str::trim), Some("to stderr"));
    let r = t.result.unwrap();
    assert_eq!(r["answer"], 42);
    assert_eq!(r["run"], t.id);
    assert_eq!(r["attempt"], 1);
    assert_eq!(t.logs.unwrap()[0]["message"], "hello hi");
    assert!(t.duration_ms.unwrap() > 0 && t.peak_memory_kb.unwrap() > 0);
    assert!(!t.unsandboxed);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_carried_across_150_consecutive_runs() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = "def run(ctx):\n    ctx.state['n'] = ctx.state.get('n', 0) + 1\n    return ctx.state['n']\n";
    let a = rig.agent("counter", code, |_| {}).await;
    let mut last = 0;
    for _ in 0..150 {
        last = rig.enqueue(a).await;
    }
    let t = rig.wait(last, Duration::from_secs(300)).await;
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(
        t.result,
        Some(serde_json::json!(150)),
        "the 150th run saw the 149 before it"
    );
    let st = rig.store.get_state(a).await.unwrap().unwrap();
    assert_eq!(st.state["n"], 150);
    assert_eq!(st.run_count, 150);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_leaves_state_as_it_was_and_history_tells_of_it() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = r#"
def run(ctx):
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    if ctx.config.get("fail") and len(ctx.history) == 1:
        raise ValueError("boom")
    return {"n": ctx.state["n"], "history": [h["status"] for h in ctx.history]}
"#;
    let a = rig
        .agent("flaky", code, |a| {
            a.config = serde_json::json!({"fail": true})
        })
        .await;
    let t1 = rig.enqueue(a).await;
    assert_eq!(
        rig.wait(t1, Duration::from_secs(30)).await.status,
        TaskStatus::Succeeded
    );
    let t2 = rig.enqueue(a).await;
    let failed = rig.wait(t2, Duration::from_secs(30)).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let err = failed.error.unwrap();
    assert!(
        err.contains("ValueError: boom")
            && err.contains("agent.py")
            && err.contains(r#"raise ValueError("boom")"#),
        "the traceback names the agent's file and shows its line: {err}"
    );
    assert_eq!(
        rig.store.get_state(a).await.unwrap().unwrap().state["n"],
        1,
        "failed run did not save state"
    );
    let t3 = rig.enqueue(a).await;
    let ok = rig.wait(t3, Duration::from_secs(30)).await;
    let r = ok.result.unwrap();
    assert_eq!(
        r["n"], 2,
        "the run after a failure starts from the last good state"
    );
    assert_eq!(r["history"], serde_json::json!(["failed", "succeeded"]));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_plain_json_and_agent_tracebacks_show_their_lines() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = r#"
import traceback


def run(ctx):
    try:
        1 / 0
    except ZeroDivisionError:
        tb = traceback.format_exc()
    ctx.state["text"] = "é ✓ 😀 \"quoted\"\n"
    return {"tb": tb, "run": [ctx.run.task_id, ctx.run.attempt, ctx.run.trigger],
            "text": ctx.state["text"], "big": 2 ** 62, "f": -0.125, "none": None}
"#;
    let a = rig.agent("plain", code, |_| {}).await;
    let t = rig.enqueue(a).await;
    let done = rig.wait(t, Duration::from_secs(30)).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let r = done.result.unwrap();
    let tb = r["tb"].as_str().unwrap();
    assert!(tb.contains("1 / 0") && tb.contains("agent.py"), "{tb}");
    assert_eq!(r["run"], serde_json::json!([t, 1, "manual"]));
    assert_eq!(r["text"], "\u{e9} \u{2713} \u{1F600} \"quoted\"\n");
    assert_eq!(r["big"], 1i64 << 62);
    assert_eq!(r["f"], -0.125);
    assert!(r["none"].is_null());
    let st = rig.store.get_state(a).await.unwrap().unwrap();
    assert_eq!(st.state["text"], r["text"]);

    // NaN and Infinity are not JSON: a clear error, not an unreadable reply.
    let nan = rig
        .agent(
            "nan",
            "def run(ctx):\n    return {\"x\": float(\"nan\")}\n",
            |_| {},
        )
        .await;
    let t = rig.enqueue(nan).await;
    let failed = rig.wait(t, Duration::from_secs(30)).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let err = failed.error.unwrap();
    assert!(err.contains("not JSON-serialisable"), "{err}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fills_its_workspace_quota_is_stopped_and_says_so() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = r#"
import time


def run(ctx):
    for i in range(50):
        with open(f"chunk-{i}", "wb") as f:
            f.write(b"x" * (1 << 20))
        time.sleep(0.05)
    return "wrote 50 MiB"
"#;
    let a = rig
        .agent("hoarder", code, |a| {
            a.settings.workspace_mb = Some(2);
            a.settings.max_retries = Some(0);
        })
        .await;
    let t = rig.enqueue(a).await;
    let done = rig.wait(t, Duration::from_secs(30)).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let err = done.error.unwrap();
    assert!(
        err.contains("workspace quota exceeded") && err.contains("2 MiB"),
        "{err}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_state_fails_the_run_clearly() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let t = rig
        .run(
            "fat",
            "def run(ctx):\n    ctx.state['x'] = 'a' * 2_000_000\n",
            |_| {},
        )
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error.unwrap().contains("ctx.state is"),
        "names the state limit"
    );
    rig.stop().await;
}

/// An agent that writes its own reply to the runner's pipe and leaves
/// before the runner can: the host must not take the reply's word.
fn forging(reply: &str, then: &str) -> String {
    format!(
        "import json, os, sys\ndef run(ctx):\n    state = ctx.state\n    os.write(4, json.dumps({reply}).encode())\n    sys.stdout.flush()\n    {then}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replies_are_recorded_as_what_really_happened() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let started = now();

    // A state over the cap, written past the runner's own check.
    let fat = rig
        .run(
            "forged-state",
            &forging(
                r#"{"ok": True, "result": 1, "state": {"x": "a" * 3_000_000}}"#,
                "os._exit(0)",
            ),
            |_| {},
        )
        .await;
    assert_eq!(fat.status, TaskStatus::Failed, "{:?}", fat.error);
    assert!(
        fat.error.as_deref().unwrap().contains("ctx.state is"),
        "{:?}",
        fat.error
    );
    let fat_state = rig
        .store
        .get_state(fat.target.agent_id().unwrap())
        .await
        .unwrap();
    assert!(
        fat_state.is_none_or(|s| s.state == serde_json::json!({})),
        "the forged state was not kept"
    );

    // A result over settings.max_result_kb, returned the ordinary way and
    // forged.
    let small = |a: &mut NewAgent| a.settings.max_result_kb = Some(4);
    let big = rig
        .run(
            "big-result",
            "def run(ctx):\n    return 'r' * 10_000\n",
            small,
        )
        .await;
    assert_eq!(big.status, TaskStatus::Failed);
    assert!(
        big.error
            .as_deref()
            .unwrap()
            .contains("settings.max_result_kb"),
        "{:?}",
        big.error
    );
    assert!(big.result.is_none());
    let forged_big = rig
        .run(
            "forged-result",
            &forging(
                r#"{"ok": True, "result": "r" * 10_000, "state": {}}"#,
                "os._exit(0)",
            ),
            small,
        )
        .await;
    assert_eq!(forged_big.status, TaskStatus::Failed);
    assert!(
        forged_big
            .error
            .as_deref()
            .unwrap()
            .contains("settings.max_result_kb")
    );
    assert!(forged_big.result.is_none());

    // Thousands of log lines with made-up levels and times, written past
    // the runner's own cap.
    let logs = rig
        .run(
            "forged-logs",
            "import json, os\ndef run(ctx):\n    for i in range(5000):\n        os.write(4, (json.dumps({'log': {'level': '\\x1b[2Kcritical', 'message': 'm%d' % i, 'at': '1999-01-01T00:00:00Z'}}) + '\\n').encode())\n    os.write(4, json.dumps({'ok': True, 'result': 1, 'state': {}, 'logs_dropped': 0}).encode())\n    os._exit(0)\n",
            |_| {},
        )
        .await;
    assert_eq!(logs.status, TaskStatus::Succeeded, "{:?}", logs.error);
    let lines = logs.logs.unwrap();
    let lines = lines.as_array().unwrap();
    assert_eq!(
        lines.len(),
        1001,
        "1000 lines and the note of what was dropped"
    );
    assert!(
        lines
            .iter()
            .all(|l| ["debug", "info", "warning", "error"].contains(&l["level"].as_str().unwrap()))
    );
    assert!(
        lines[1000]["message"]
            .as_str()
            .unwrap()
            .contains("4000 more log lines were dropped")
    );
    for l in lines {
        let at: chrono::DateTime<chrono::Utc> = l["at"].as_str().unwrap().parse().unwrap();
        assert!(
            at >= started - chrono::Duration::seconds(1),
            "a time from before the run: {l}"
        );
    }

    // "ok" written, then the process fails: a failure, with the real status.
    let after = rig
        .run(
            "ok-then-crash",
            &forging(
                r#"{"ok": True, "result": "fine", "state": {"n": 1}}"#,
                "os._exit(3)",
            ),
            |_| {},
        )
        .await;
    assert_eq!(after.status, TaskStatus::Failed);
    assert_eq!(after.exit_code, Some(3));
    assert!(
        after
            .error
            .as_deref()
            .unwrap()
            .contains("exited with code 3"),
        "{:?}",
        after.error
    );
    assert!(after.result.is_none());
    let raised = rig
        .run(
            "ok-then-raise",
            &forging(
                r#"{"ok": True, "result": "fine", "state": {}}"#,
                "raise RuntimeError('boom')",
            ),
            |_| {},
        )
        .await;
    assert_eq!(raised.status, TaskStatus::Failed, "{:?}", raised.result);
    let killed = rig
        .run(
            "ok-then-killed",
            &forging(
                r#"{"ok": True, "result": "fine", "state": {}}"#,
                "import signal; os.kill(os.getpid(), signal.SIGKILL)",
            ),
            |_| {},
        )
        .await;
    assert_eq!(killed.status, TaskStatus::Failed);
    assert_eq!(killed.signal, Some(9));

    // Log lines of a run that is then stopped are kept, with the host's
    // times in order.
    let stopped = rig
        .run(
            "logs-then-timeout",
            "import time\ndef run(ctx):\n    ctx.log.info('first')\n    time.sleep(0.5)\n    ctx.log.warning('second')\n    time.sleep(60)\n",
            |a| a.settings.timeout_seconds = Some(2),
        )
        .await;
    assert_eq!(stopped.status, TaskStatus::TimedOut);
    let kept = stopped.logs.unwrap();
    let kept = kept.as_array().unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        (kept[0]["message"].as_str(), kept[1]["level"].as_str()),
        (Some("first"), Some("warning"))
    );
    let t0: chrono::DateTime<chrono::Utc> = kept[0]["at"].as_str().unwrap().parse().unwrap();
    let t1: chrono::DateTime<chrono::Utc> = kept[1]["at"].as_str().unwrap().parse().unwrap();
    assert!(
        t1 - t0 >= chrono::Duration::milliseconds(150),
        "timed on arrival: {t0} {t1}"
    );

    // An ordinary failure shows its real exit status.
    let plain = rig
        .run(
            "plain-failure",
            "def run(ctx):\n    raise ValueError('no')\n",
            |_| {},
        )
        .await;
    assert_eq!(plain.status, TaskStatus::Failed);
    assert_eq!(plain.exit_code, Some(1), "a failed run does not exit 0");
    assert!(plain.error.unwrap().starts_with("ValueError: no"));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_agent_and_its_children_are_killed_at_the_timeout() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = r#"
import os, time
def run(ctx):
    for _ in range(3):
        if os.fork() == 0:
            while True:
                with open("/workspace/child-%d" % os.getpid(), "a") as f:
                    f.write("x")
                time.sleep(0.05)
    while True:
        pass
"#;
    let start = Instant::now();
    let t = rig
        .run("spin", code, |a| {
            a.settings.timeout_seconds = Some(2);
            // Its retry (2 s later) would be a new run spinning; only the
            // timed-out run's children are watched here.
            a.settings.max_retries = Some(0);
        })
        .await;
    assert_eq!(t.status, TaskStatus::TimedOut);
    assert!(t.error.unwrap().contains("timed out"));
    assert!(start.elapsed() < Duration::from_secs(20));
    // The children are gone: their files stop growing.
    let ws = rig
        .dir
        .path()
        .join("workspaces")
        .join(t.target.agent_id().unwrap().to_string());
    let size = || -> u64 {
        std::fs::read_dir(&ws)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let before = size();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(size(), before, "no child process survived the timeout");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_outside_the_address_space_counts_against_memory_mb() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    // memfd pages are no address space: only the run's cgroup sees them.
    // The agent reports success from inside the bomb, which must not count.
    let memfd = "import os\ndef run(ctx):\n    fds = []\n    for i in range(32):\n        fd = os.memfd_create(f'm{i}', 0x0008)\n        fds.append(fd)\n        for _ in range(32):\n            os.write(fd, b'x' * (1 << 20))\n    return 'held 1 GiB'\n";
    let t = rig
        .run("memfd", memfd, |a| a.settings.memory_mb = Some(256))
        .await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    let error = t.error.as_deref().unwrap();
    assert!(
        error.starts_with("memory limit exceeded (256 MiB)"),
        "{error}"
    );
    let peak = t.peak_memory_kb.unwrap();
    assert!((200 * 1024..=264 * 1024).contains(&peak), "peak {peak} KiB");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_fork_bomb_and_disk_filler_are_stopped_and_recorded() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let memory = "def run(ctx):\n    hog = []\n    while True:\n        hog.append(bytearray(50 * 1024 * 1024))\n";
    let t = rig
        .run("mem", memory, |a| a.settings.memory_mb = Some(256))
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error
            .as_deref()
            .unwrap()
            .contains("memory limit exceeded"),
        "{:?}",
        t.error
    );

    let fork = "import os\ndef run(ctx):\n    while True:\n        os.fork()\n";
    let t = rig
        .run("forks", fork, |a| a.settings.processes = Some(16))
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error.as_deref().unwrap().contains("BlockingIOError")
            || t.error
                .as_deref()
                .unwrap()
                .contains("Resource temporarily unavailable"),
        "{:?}",
        t.error
    );

    let disk = "def run(ctx):\n    with open('/workspace/big', 'wb') as f:\n        while True:\n            f.write(b'x' * 1048576)\n";
    let t = rig
        .run("disk", disk, |a| a.settings.max_file_mb = Some(8))
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error.as_deref().unwrap().contains("File too large"),
        "{:?}",
        t.error
    );
    let big = rig
        .dir
        .path()
        .join("workspaces")
        .join(t.target.agent_id().unwrap().to_string())
        .join("big");
    assert!(std::fs::metadata(big).unwrap().len() <= 8 * 1024 * 1024);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_is_out_of_reach() {
    if !have_bwrap() {
        return;
    }
    // A canary in the host's environment (the worker's own), which the
    // sandbox's cleared environment must not pass on.
    let canary = "p38-host-canary-3c9d71";
    set_env("P38_TEST_HOST_CANARY", canary);
    assert_eq!(std::env::var("P38_TEST_HOST_CANARY").as_deref(), Ok(canary));
    let rig = Rig::new().await;
    // Another agent's workspace with a file in it, and the database file.
    let other = rig.dir.path().join("workspaces").join("999");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.txt"), "other agent's data").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        r#"
import os, socket, ctypes
def attempt(f):
    try:
        f()
        return "ALLOWED"
    except Exception as e:
        return "denied: " + type(e).__name__

def run(ctx):
    out = {{}}
    out["shadow"] = attempt(lambda: open("/etc/shadow").read())
    out["database"] = attempt(lambda: open({db:?}).read())
    out["other_workspace"] = attempt(lambda: open({other:?}).read())
    # Every environment the agent can read: its own, and any process's it
    # sees (PID 1, the init shim, refuses: it is not dumpable).
    seen = {{"self": "\0".join(k + "=" + v for k, v in os.environ.items())}}
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            seen[pid] = open("/proc/%s/environ" % pid, "rb").read().decode(errors="replace")
        except OSError as e:
            seen[pid] = "refused: " + type(e).__name__
    out["environs"] = seen
    out["pid1_comm"] = open("/proc/1/comm").read().strip()
    out["write_usr"] = attempt(lambda: open("/usr/p38-x", "w").write("x"))
    out["write_root"] = attempt(lambda: open("/p38-x", "w").write("x"))
    out["write_tmp"] = attempt(lambda: open("/tmp/ok", "w").write("x"))
    out["write_workspace"] = attempt(lambda: open("/workspace/ok", "w").write("x"))
    out["connect_host"] = attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
    libc = ctypes.CDLL(None, use_errno=True)
    out["ptrace"] = libc.ptrace(0, 0, None, None)
    return out
"#,
        db = rig.dir.path().join("p38.db").display().to_string(),
        other = other.join("secret.txt").display().to_string(),
        port = port,
    );
    let t = rig.run("prober", &code, |_| {}).await;
    assert_eq!(
        t.status,
        TaskStatus::Succeeded,
        "{:?} {:?}",
        t.error,
        t.stderr
    );
    let mut r = t.result.unwrap();
    // Checked apart, and never printed: they may hold the host's environment.
    let environs = r.as_object_mut().unwrap().remove("environs").unwrap();
    assert!(
        r["shadow"].as_str().unwrap().starts_with("denied"),
        "/etc/shadow: {r}"
    );
    assert!(
        r["database"].as_str().unwrap().starts_with("denied"),
        "database file: {r}"
    );
    assert!(
        r["other_workspace"].as_str().unwrap().starts_with("denied"),
        "other workspace: {r}"
    );
    let environs = environs.as_object().unwrap();
    assert!(
        environs["self"].as_str().unwrap().contains("PATH="),
        "the agent's own environment was read"
    );
    for (pid, env) in environs {
        let env = env.as_str().unwrap();
        assert!(
            !env.contains("P38_TEST_HOST_CANARY") && !env.contains(canary),
            "the host's environment reached the sandbox (/proc/{pid}/environ, or os.environ for self)"
        );
    }
    assert_eq!(r["pid1_comm"], "p38-init", "PID 1 is the init shim: {r}");
    assert!(r["write_usr"].as_str().unwrap().starts_with("denied"));
    assert!(r["write_root"].as_str().unwrap().starts_with("denied"));
    assert_eq!(r["write_tmp"], "ALLOWED");
    assert_eq!(r["write_workspace"], "ALLOWED");
    assert!(
        r["connect_host"].as_str().unwrap().starts_with("denied"),
        "no network permission: {r}"
    );
    assert_eq!(r["ptrace"], -1, "ptrace is refused");

    // With the network permission the same connection goes through.
    let net = format!(
        "import socket\ndef run(ctx):\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n    return 'connected'\n"
    );
    let t = rig.run("netter", &net, |a| a.network = true).await;
    assert_eq!(
        t.result,
        Some(serde_json::json!("connected")),
        "{:?}",
        t.error
    );
    drop(listener);
    rig.stop().await;
}

#[allow(unsafe_code)]
fn set_env(k: &str, v: &str) {
    // SAFETY: set before any thread of this test reads the environment;
    // each test uses its own variable names.
    unsafe { std::env::set_var(k, v) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_masked_everywhere_they_are_stored() {
    if !have_bwrap() {
        return;
    }
    let canary = "sk-canary-7f3e9a1c5b";
    set_env("P38_SECRET_CANARY_KEY", canary);
    set_env("P38_SECRET_OTHER_KEY", "sk-other-0000aaaa");
    let rig = Rig::new().await;
    let code = r#"
import base64, sys
def run(ctx):
    key = ctx.secrets["CANARY_KEY"]
    print("stdout", key)
    print("b64", base64.b64encode(("xx" + key).encode()).decode(), file=sys.stderr)
    ctx.log.warning("log %s", key)
    # The value split across two writes, flushed in between.
    sys.stdout.write("split " + key[:6]); sys.stdout.flush()
    sys.stdout.write(key[6:] + " end\n"); sys.stdout.flush()
    ctx.state["k"] = key
    try:
        ctx.secrets["OTHER_KEY"]
    except KeyError as e:
        print("undeclared:", e)
    return {"echo": key, "nested": [key + "!"]}
"#;
    let t = rig
        .run("leaky", code, |a| a.secrets = vec!["CANARY_KEY".into()])
        .await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{:?}", t.error);
    let all = serde_json::to_string(&t).unwrap();
    assert!(!all.contains(canary), "canary leaked into the task: {all}");
    assert!(t.stdout.as_deref().unwrap().contains("***"));
    assert!(
        t.stdout.as_deref().unwrap().contains("split *** end"),
        "a value split across writes is masked"
    );
    assert!(
        t.stdout
            .as_deref()
            .unwrap()
            .contains("not available to this agent"),
        "undeclared secret refused"
    );
    let raise = "def run(ctx):\n    raise RuntimeError('bad key ' + ctx.secrets['CANARY_KEY'])\n";
    let t = rig
        .run("raiser", raise, |a| a.secrets = vec!["CANARY_KEY".into()])
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        !t.error.as_deref().unwrap().contains(canary)
            && t.error.as_deref().unwrap().contains("***")
    );
    let state = rig
        .store
        .get_state(t.target.agent_id().unwrap() - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.state["k"], "***");
    // Nothing in the database file (or its WAL) holds the canary.
    rig.stop_and_scan(canary, "split *** end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_so_far_is_masked_and_holds_no_part_of_a_secret() {
    if !have_bwrap() {
        return;
    }
    let canary = "sk-livecanary-42f00d";
    set_env("P38_SECRET_LIVE_KEY", canary);
    let rig = Rig::new().await;
    // Half of the value is written, then the run waits for `go`.
    let code = r#"
import os, sys, time
def run(ctx):
    key = ctx.secrets["LIVE_KEY"]
    print("before " * 8)
    ctx.log.info("log %s", key)
    sys.stdout.write("split " + key[:7]); sys.stdout.flush()
    for _ in range(600):
        if os.path.exists("/workspace/go"):
            break
        time.sleep(0.05)
    sys.stdout.write(key[7:] + " end\n")
    return 1
"#;
    let a = rig
        .agent("live-leaky", code, |a| a.secrets = vec!["LIVE_KEY".into()])
        .await;
    let id = rig.enqueue(a).await;
    let running = wait_for(&rig, id, "the masked output so far", |t| {
        t.status == TaskStatus::Running
            && t.logs
                .as_ref()
                .is_some_and(|l| l[0]["message"] == "log ***")
    })
    .await;
    let so_far = running.stdout.unwrap();
    assert!(so_far.starts_with("before before"), "{so_far:?}");
    assert!(
        !so_far.contains(&canary[..7]),
        "half a secret shown: {so_far:?}"
    );
    std::fs::write(
        rig.dir
            .path()
            .join("workspaces")
            .join(a.to_string())
            .join("go"),
        "",
    )
    .unwrap();
    let done = rig.wait(id, Duration::from_secs(30)).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert!(done.stdout.unwrap().ends_with("split *** end\n"));
    rig.stop_and_scan(canary, "split *** end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_but_unset_secret_fails_the_run_by_name() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let t = rig
        .run("needy", "def run(ctx):\n    return 1\n", |a| {
            a.secrets = vec!["NEVER_SET_ANYWHERE".into()]
        })
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(t.error.unwrap().contains("P38_SECRET_NEVER_SET_ANYWHERE"));
    rig.stop().await;
}

/// Host pids of the processes whose command line holds `token`.
fn pids_with(token: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.windows(token.len()).any(|w| w == token.as_bytes()))
        {
            out.push(pid);
        }
    }
    out
}

/// A process's identity on the host: its pid and start time (so a pid
/// reused by another process does not count as the same one).
fn process_identity(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces): state is
    // the first, ppid the second, start time the twentieth.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some((pid, fields.get(19)?.to_string()))
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Waits (up to `limit`) until `check` holds, polling.
async fn until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what} (after {limit:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_running_task_is_stopped() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    // The agent starts a child whose command line carries a token the host
    // can find, then sleeps itself: the child's parent is the agent's own
    // process.
    let token = format!("p38-cancel-token-{}", std::process::id());
    let code = format!(
        "import subprocess, sys, time\ndef run(ctx):\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {token:?}])\n    time.sleep(120)\n"
    );
    let a = rig.agent("sleeper", &code, |_| {}).await;
    let id = rig.enqueue(a).await;
    until(
        "the agent's child is not running",
        Duration::from_secs(30),
        || pids_with(&token).len() == 1,
    )
    .await;
    let child = pids_with(&token)[0];
    let agent = parent_of(child).unwrap();
    let processes: Vec<(u32, String)> = [child, agent]
        .into_iter()
        .map(|p| process_identity(p).unwrap())
        .collect();
    assert!(
        std::fs::read(format!("/proc/{agent}/cmdline"))
            .unwrap()
            .windows(7)
            .any(|w| w == b"python3"),
        "the child's parent is the agent's Python"
    );
    assert_eq!(
        rig.store.get_task(id).await.unwrap().unwrap().status,
        TaskStatus::Running
    );
    let audit = NewAudit {
        actor: "test".into(),
        action: "task.cancel".into(),
        target: String::new(),
        detail: None,
    };
    rig.store.cancel_task(id, audit).await.unwrap();
    // The worker notices at its next heartbeat and kills the run: the
    // agent's process and its child are gone.
    until(
        "the cancelled run's processes are still alive",
        Duration::from_secs(20),
        || {
            processes
                .iter()
                .all(|(pid, started)| process_identity(*pid).is_none_or(|p| &p.1 != started))
        },
    )
    .await;
    assert_eq!(
        rig.store.get_task(id).await.unwrap().unwrap().status,
        TaskStatus::Cancelled
    );
    // The agent can run again right after.
    let next = rig.enqueue(a).await;
    wait_for(
        &rig,
        next,
        "the cancelled run still blocks the agent",
        |t| t.status == TaskStatus::Running,
    )
    .await;
    let audit = NewAudit {
        actor: "test".into(),
        action: "task.cancel".into(),
        target: String::new(),
        detail: None,
    };
    rig.store.cancel_task(next, audit).await.unwrap();
    rig.wait(next, Duration::from_secs(20)).await;
    rig.stop().await;
}

/// Polls task `id` until `ok` holds for it, up to 30 s.
async fn wait_for(rig: &Rig, id: i64, what: &str, ok: impl Fn(&Task) -> bool) -> Task {
    let start = Instant::now();
    loop {
        let t = rig.store.get_task(id).await.unwrap().unwrap();
        if ok(&t) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: task {id} is {:?}, stdout {:?}, stderr {:?}, logs {:?}",
            t.status,
            t.stdout,
            t.stderr,
            t.logs
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_shows_its_output_so_far_and_a_cancel_keeps_it() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    // Prints, logs, then waits to be stopped; told to stop (SIGTERM, which
    // the sandbox's init passes on), it says so and leaves at once.
    let code = r#"
import os, signal, sys, time
def run(ctx):
    def stopping(*_):
        print("stopping")
        ctx.log.warning("stopping")
        os._exit(3)
    signal.signal(signal.SIGTERM, stopping)
    for i in range(3):
        print("line %d" % i)
    print("to stderr", file=sys.stderr)
    ctx.log.info("logged")
    time.sleep(60)
"#;
    let a = rig.agent("talker", code, |_| {}).await;
    let id = rig.enqueue(a).await;
    let shown = |t: &Task| {
        t.status == TaskStatus::Running
            && t.stdout.as_deref() == Some("line 0\nline 1\nline 2\n")
            && t.stderr.as_deref() == Some("to stderr\n")
            && t.logs.as_ref().and_then(|l| l.as_array()).map(Vec::len) == Some(1)
    };
    let running = wait_for(&rig, id, "the output so far", shown).await;
    assert_eq!(running.logs.unwrap()[0]["message"], "logged");
    assert_eq!(running.completed_at, None);

    let audit = NewAudit {
        actor: "test".into(),
        action: "task.cancel".into(),
        target: String::new(),
        detail: None,
    };
    rig.store.cancel_task(id, audit).await.unwrap();
    // What the run wrote up to the cancel, and while it was being stopped.
    let kept = wait_for(&rig, id, "the output up to the cancel", |t| {
        t.stdout
            .as_deref()
            .is_some_and(|s| s.ends_with("stopping\n"))
    })
    .await;
    assert_eq!(kept.status, TaskStatus::Cancelled);
    assert_eq!(kept.error.as_deref(), Some("cancelled by user"));
    assert_eq!(
        kept.stdout.as_deref(),
        Some("line 0\nline 1\nline 2\nstopping\n")
    );
    assert_eq!(kept.stderr.as_deref(), Some("to stderr\n"));
    let logs = kept.logs.unwrap();
    let messages: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["logged", "stopping"]);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_an_unapproved_or_disabled_agent_is_not_run() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = "def run(ctx):\n    open('/workspace/ran', 'w').write('x')\n";
    let t = rig.run("unapproved", code, |a| a.approved_by = None).await;
    assert_eq!(t.status, TaskStatus::Cancelled);
    assert!(
        t.error.as_deref().unwrap().contains("not approved"),
        "{:?}",
        t.error
    );
    let t = rig
        .run("off", code, |a| a.status = AgentStatus::Disabled)
        .await;
    assert_eq!(t.status, TaskStatus::Cancelled);
    assert!(t.error.as_deref().unwrap().contains("disabled"));
    for id in [
        t.target.agent_id().unwrap() - 1,
        t.target.agent_id().unwrap(),
    ] {
        assert!(
            !rig.dir
                .path()
                .join("workspaces")
                .join(id.to_string())
                .join("ran")
                .exists(),
            "the code never ran"
        );
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_code_version_is_missing_fails_instead_of_running_other_code() {
    if !have_bwrap() {
        return;
    }
    let rig = Rig::new().await;
    let code = "def run(ctx):\n    open('/workspace/ran', 'w').write('x')\n";
    let a = rig.agent("versioned", code, |_| {}).await;
    // Queued for a version no row holds (the agent is at version 1).
    let t = NewTask {
        agent_id: a,
        agent_version: 7,
        trigger: Trigger::Manual,
        kind: TaskKind::Agent,
        attempt: 1,
        retry_of: None,
        scheduled_at: now(),
    };
    let id = rig.store.enqueue(t, None).await.unwrap().id;
    rig.wake.tasks.notify_one();
    let t = rig.wait(id, Duration::from_secs(60)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    let error = t.error.unwrap();
    assert!(
        error.contains("version 7 of agent versioned is not stored") && error.contains("version 1"),
        "{error}"
    );
    assert!(
        !rig.dir
            .path()
            .join("workspaces")
            .join(a.to_string())
            .join("ran")
            .exists(),
        "the current code did not run"
    );
    rig.stop().await;
}
