//! Overhead of a sandboxed agent run against a bare Python start, measured
//! in the same run (release build):
//!
//! ```sh
//! cargo bench -p p38-cli --bench sandbox -- all        # both, 200 runs each
//! cargo bench -p p38-cli --bench sandbox -- overhead   # executor vs python3 -c pass
//! cargo bench -p p38-cli --bench sandbox -- api 200    # POST execute to finished task
//! ```
//!
//! `overhead` interleaves five kinds of run so machine noise hits them
//! alike: bare `python3 -c pass`; bubblewrap alone (its namespaces and a
//! minimal mount table around `python3 -c pass`); a sandbox run of an empty file (bwrap,
//! the init shim `p38-init`, Python; no runner), and the same with the whole
//! `p38` binary as the shim; and a full executor run of
//! `def run(ctx): return {"ok": True}` (runner, JSON in and out, masking).
//! `api` starts a real `p38 up` on SQLite and times POST
//! /api/agents/{id}/execute, then GET /api/tasks/{id}?wait=30, which
//! answers when the run has ended.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p38_core::task::TaskStatus;
use p38_runtime::{Executor, RunOrigin, RunSpec, RuntimeConfig};
use p38_sandbox::{CancelFlag, Limits, RunRequest, Sandbox, SandboxConfig};

use common::Server;

use common::TRIVIAL_AGENT as AGENT;

fn main() {
    let Some((what, runs)) = common::sandbox_bench_args(200) else {
        return;
    };
    let what = what.as_str();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let python = python();
    let bare = if matches!(what, "all" | "overhead" | "api") {
        Some(rt.block_on(overhead(&python, runs, what != "api")))
    } else {
        None
    };
    if matches!(what, "all" | "api") {
        api(runs, bare.expect("measured above"));
    }
}

/// The Python the platform would pick (`resolve_python`), so bare and
/// sandboxed runs start the same interpreter.
fn python() -> PathBuf {
    let (p, _) = p38_runtime::resolve_python(None).expect("python3");
    p
}

struct Stats {
    median: f64,
    p95: f64,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p95: at(0.95),
    }
}

fn row(name: &str, s: &Stats, bare: &Stats) {
    println!(
        "{name:<44} median {:>7.2} ms  p95 {:>7.2} ms   overhead median {:>6.2} ms  p95 {:>6.2} ms",
        s.median,
        s.p95,
        s.median - bare.median,
        s.p95 - bare.p95
    );
}

/// Bare Python vs the sandbox alone vs a full executor run. Returns the
/// bare-Python statistics, the baseline for the API measurement.
async fn overhead(python: &PathBuf, runs: usize, print: bool) -> Stats {
    let dir = tempfile::tempdir().unwrap();
    let (py, prefix) = p38_runtime::resolve_python(Some(python)).unwrap();
    // As `p38 up` does: the small p38-init as the shim. The same sandbox
    // with the whole p38 binary as its shim shows what that choice saves.
    let init = PathBuf::from(env!("CARGO_BIN_EXE_p38-init"));
    let mut sc = SandboxConfig::new(py.clone(), vec![init.into_os_string()]);
    sc.python_prefix = prefix.clone();
    let sandbox = Sandbox::new(sc).expect("sandbox available");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_p38"));
    let mut sc = SandboxConfig::new(py, vec![exe.into_os_string(), "__sandbox-init".into()]);
    sc.python_prefix = prefix;
    let big_init = Sandbox::new(sc).expect("sandbox available");
    let cfg = RuntimeConfig::new(dir.path());
    let exec = Executor::new(
        sandbox.clone(),
        Arc::new(p38_secrets::EnvResolver),
        cfg.clone(),
    )
    .unwrap()
    .precompile_runner();
    let empty = dir.path().join("empty.py");
    std::fs::write(&empty, "").unwrap();
    let ws = dir.path().join("ws");

    let bwrap = p38_sandbox::find_bubblewrap(std::path::Path::new("bwrap")).unwrap();
    let (mut bare, mut sandboxed, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut namespaces = Vec::new();
    let mut big = Vec::new();
    // Warm-up: page caches, the first namespace set-up.
    for i in 0..(runs + 10) {
        let t = Instant::now();
        let st = Command::new(python)
            .args(["-c", "pass"])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let b = t.elapsed();

        // bubblewrap alone: the namespaces and a minimal mount table, no
        // shim, no cgroup, no seccomp or landlock.
        let t = Instant::now();
        let st = Command::new(&bwrap)
            .args(["--unshare-all", "--unshare-user", "--die-with-parent"])
            .args(["--ro-bind", "/usr", "/usr"])
            .args([
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
            ])
            .args(["--symlink", "usr/bin", "/bin"])
            .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--"])
            .arg(python)
            .args(["-c", "pass"])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let n = t.elapsed();

        // The two shims take turns going first: the first sandbox run after
        // the plain processes above measures slower, whichever it is.
        let (s, g) = if i % 2 == 0 {
            let s = time_empty(&sandbox, &empty, &ws).await;
            (s, time_empty(&big_init, &empty, &ws).await)
        } else {
            let g = time_empty(&big_init, &empty, &ws).await;
            (time_empty(&sandbox, &empty, &ws).await, g)
        };

        let spec = RunSpec::one_off(RunOrigin::Try, "bench", AGENT, cfg.workspace(0));
        let t = Instant::now();
        let o = exec.run(spec).await;
        let f = t.elapsed();
        assert_eq!(o.outcome.status(), TaskStatus::Succeeded, "{o:?}");
        if i >= 10 {
            bare.push(ms(b));
            namespaces.push(ms(n));
            big.push(ms(g));
            sandboxed.push(ms(s));
            full.push(ms(f));
        }
    }
    let bare = stats(bare);
    if print {
        println!(
            "{runs} runs each, interleaved; python: {}",
            python.display()
        );
        println!(
            "{:<44} median {:>7.2} ms  p95 {:>7.2} ms",
            "python3 -c pass (bare, baseline)", bare.median, bare.p95
        );
        row(
            "bwrap alone: namespaces, 6 mounts, python",
            &stats(namespaces),
            &bare,
        );
        row(
            "sandbox: empty file (bwrap + init + python)",
            &stats(sandboxed),
            &bare,
        );
        row("same, the whole p38 binary as the shim", &stats(big), &bare);
        row("executor: run(ctx) -> {\"ok\": True}", &stats(full), &bare);
    }
    bare
}

/// One sandbox run of the empty file, timed.
async fn time_empty(sandbox: &Sandbox, empty: &std::path::Path, ws: &std::path::Path) -> Duration {
    let t = Instant::now();
    let out = sandbox
        .run(RunRequest {
            script: empty.to_path_buf(),
            input: b"{}".to_vec(),
            workspace: ws.to_path_buf(),
            network: false,
            limits: Limits::default(),
            cancel: CancelFlag::new(),
            run_as: None,
        })
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    t.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// End to end through the HTTP API: execute, then wait for the end.
fn api(runs: usize, bare: Stats) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(None, &dir.path().join("p38-data"));
    let agent = s.post(
        "/api/agents",
        serde_json::json!({"name": "bench", "code": AGENT}),
    );
    if agent["status"] == "pending_approval" {
        s.post("/api/agents/bench/approve", serde_json::json!({}));
    }
    let mut times = Vec::new();
    for i in 0..(runs + 10) {
        let t = Instant::now();
        let task = s.post("/api/agents/bench/execute", serde_json::json!({}));
        let id = task["id"].as_i64().unwrap();
        // A long poll: the server answers when the run has ended.
        let v: serde_json::Value = s.get(&format!("/api/tasks/{id}?wait=30")).json().unwrap();
        assert_eq!(v["status"], "succeeded", "task {id}: {v}");
        if i >= 10 {
            times.push(ms(t.elapsed()));
        }
    }
    drop(s);
    row("API: POST execute .. task succeeded", &stats(times), &bare);
}
