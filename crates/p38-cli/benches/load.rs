//! What agents cost the platform under load, on a real `p38 up` (SQLite,
//! release build):
//!
//! ```sh
//! cargo bench -p p38-cli --bench load -- all              # both
//! cargo bench -p p38-cli --bench load -- throughput 500   # runs/s over 50 agents vs the interpreter floor
//! cargo bench -p p38-cli --bench load -- idle-cpu         # server CPU while a 99,000-file agent sleeps
//! ```
//!
//! `throughput` starts `seq N | xargs -P5 -I{} python3 -I -S -c pass` (the
//! floor: five interpreter starts at a time, as the worker's default
//! concurrency of five runs at a time) and then N trivial runs spread over
//! 50 agents, all queued through `POST /api/agents/{id}/execute` and timed
//! from the first request to the last run's end, in the same process.
//!
//! `idle-cpu` gives an agent 99,000 empty files in its workspace (its first
//! run), then lets a second run sleep and reads the server's CPU time
//! (`/proc/PID/stat`, utime + stime) over a window in the middle of that
//! sleep, once per workspace quota mode (`image`, `walk`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

use common::TRIVIAL_AGENT as TRIVIAL;

fn main() {
    let Some((what, runs)) = common::sandbox_bench_args(500) else {
        return;
    };
    let what = what.as_str();
    if matches!(what, "all" | "throughput") {
        throughput(runs, 50);
    }
    if matches!(what, "all" | "idle-cpu") {
        for mode in ["image", "walk"] {
            idle_cpu(mode);
        }
    }
}

/// An agent created and approved through the API.
fn agent(s: &Server, name: &str, code: &str) {
    let a = s.post(
        "/api/agents",
        serde_json::json!({"name": name, "code": code}),
    );
    if a["status"] == "pending_approval" {
        s.post(
            &format!("/api/agents/{name}/approve"),
            serde_json::json!({}),
        );
    }
}

/// Waits for task `id` to end and returns its status.
fn finished(s: &Server, id: i64) -> String {
    loop {
        let v: serde_json::Value = s.get(&format!("/api/tasks/{id}?wait=30")).json().unwrap();
        let status = v["status"].as_str().unwrap_or_default().to_string();
        if !matches!(status.as_str(), "queued" | "running") {
            return status;
        }
    }
}

fn throughput(runs: usize, agents: usize) {
    let (python, _) = p38_runtime::resolve_python(None).expect("python3");
    let t = Instant::now();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq {runs} | xargs -P5 -I{{}} {} -I -S -c pass",
            python.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let floor = runs as f64 / t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(None, &dir.path().join("p38-data"));
    for a in 0..agents {
        agent(&s, &format!("load-{a}"), TRIVIAL);
    }
    // One run each first: workspaces made, caches warm, as in steady state.
    let warm: Vec<i64> = (0..agents)
        .map(|a| execute(&s, &format!("load-{a}")))
        .collect();
    for id in warm {
        assert_eq!(finished(&s, id), "succeeded");
    }
    let t = Instant::now();
    let ids: Vec<i64> = (0..runs)
        .map(|i| execute(&s, &format!("load-{}", i % agents)))
        .collect();
    let queued = t.elapsed();
    for id in ids {
        assert_eq!(finished(&s, id), "succeeded", "task {id}");
    }
    let rate = runs as f64 / t.elapsed().as_secs_f64();
    println!("python: {}", python.display());
    println!("floor: seq {runs} | xargs -P5 python3 -I -S -c pass    {floor:>7.1} starts/s");
    println!(
        "p38 up: {runs} runs over {agents} agents (queued in {:.2} s)   {rate:>7.1} runs/s = {:.0} % of the floor",
        queued.as_secs_f64(),
        100.0 * rate / floor
    );
}

fn execute(s: &Server, name: &str) -> i64 {
    let task = s.post(
        &format!("/api/agents/{name}/execute"),
        serde_json::json!({}),
    );
    task["id"].as_i64().unwrap()
}

const MANY_FILES: &str = r#"
import os, time

def run(ctx):
    if not os.path.exists("f/98999"):
        os.makedirs("f", exist_ok=True)
        for i in range(99000):
            open(f"f/{i}", "w").close()
        return {"files": 99000}
    time.sleep(ctx.config.get("sleep", 20))
    return {"slept": True}
"#;

fn idle_cpu(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        None,
        &dir.path().join("p38-data"),
        &[("P38_WORKSPACE_QUOTA", mode), ("P38_RUN_TIMEOUT", "120")],
    );
    let a = s.post(
        "/api/agents",
        serde_json::json!({"name": "many", "code": MANY_FILES, "config": {"sleep": 20}}),
    );
    if a["status"] == "pending_approval" {
        s.post("/api/agents/many/approve", serde_json::json!({}));
    }
    let first = execute(&s, "many");
    assert_eq!(finished(&s, first), "succeeded");
    let second = execute(&s, "many");
    // Into the sleep: the run has started and its set-up is behind it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = s.get(&format!("/api/tasks/{second}")).json().unwrap();
        if v["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the second run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let window = Duration::from_secs(12);
    let before = cpu_seconds(s.pid());
    let t = Instant::now();
    std::thread::sleep(window);
    let used = cpu_seconds(s.pid()) - before;
    let share = 100.0 * used / t.elapsed().as_secs_f64();
    assert_eq!(finished(&s, second), "succeeded");
    println!(
        "quota {mode:<5}: server CPU while a 99,000-file agent sleeps: {share:.2} % of a core ({used:.3} s in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
        .expect("server process");
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}
