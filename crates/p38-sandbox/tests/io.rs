//! Input/reply pipes, output capture, insecure mode, cancellation, probe errors.

mod common;

use std::time::{Duration, Instant};

use common::*;
use p38_sandbox::{Sandbox, SandboxError};

const ECHO: &str = r#"
import json, os, sys
data = json.loads(os.read(3, 1 << 20) or b"null")
assert os.read(3, 10) == b"", "fd 3 must be at EOF"
with open(4, "w") as f:
    json.dump({"got": data, "cwd": os.getcwd(), "home": os.environ.get("HOME")}, f)
print("to stdout")
print("to stderr", file=sys.stderr)
"#;

#[test]
fn reply_roundtrip_and_streams_apart() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(ECHO);
    req.input = br#"{"secret": "s3cr3t", "n": 42}"#.to_vec();
    let out = env.run(req);
    assert_eq!(
        out.exit_code,
        Some(0),
        "stderr: {}",
        text(&out.stderr.bytes)
    );
    assert!(out.sandboxed);
    let reply: serde_json::Value = serde_json::from_slice(&out.reply.bytes).expect("reply is JSON");
    assert_eq!(reply["got"]["n"], 42);
    assert_eq!(reply["got"]["secret"], "s3cr3t");
    assert_eq!(reply["cwd"], "/workspace");
    assert_eq!(reply["home"], "/workspace");
    assert_eq!(text(&out.stdout.bytes), "to stdout\n");
    assert_eq!(text(&out.stderr.bytes), "to stderr\n");
    assert!(!out.stdout.truncated && !out.stderr.truncated && !out.reply.truncated);
    assert!(!out.timed_out && !out.cancelled);
}

#[test]
fn large_input_is_delivered_whole() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(
        "import os\nn = 0\nwhile True:\n    b = os.read(3, 65536)\n    if not b: break\n    n += len(b)\nos.write(4, str(n).encode())\n",
    );
    req.input = vec![b'x'; 3 << 20];
    let out = env.run(req);
    assert_eq!(
        text(&out.reply.bytes),
        (3 << 20).to_string(),
        "stderr: {}",
        text(&out.stderr.bytes)
    );
}

#[test]
fn stdout_over_cap_is_truncated_and_marked() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request("import sys\nsys.stdout.write('a' * 300000)\nsys.stdout.flush()\nprint('done', file=sys.stderr)\n");
    req.limits.output_bytes = 1000;
    let out = env.run(req);
    assert_eq!(
        out.exit_code,
        Some(0),
        "child must not block on a full pipe"
    );
    assert_eq!(out.stdout.bytes.len(), 1000);
    assert!(out.stdout.truncated);
    assert_eq!(text(&out.stderr.bytes), "done\n");
    assert!(!out.stderr.truncated);
}

#[test]
fn exit_code_and_signal_are_reported() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    assert_eq!(
        env.run_script("import sys\nsys.exit(7)\n").exit_code,
        Some(7)
    );
    let out = env.run_script("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n");
    assert_eq!(out.signal, Some(9));
    assert_eq!(out.exit_code, None);
}

#[test]
fn cancel_ends_the_run_and_is_reported() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let req = env.request(
        "import time\nopen('/workspace/started', 'w').close()\nwhile True: time.sleep(0.05)\n",
    );
    let cancel = req.cancel.clone();
    // Cancelled once the run is under way, not before it starts.
    let started = env.workspace().join("started");
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !started.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        cancel.cancel();
    });
    let out = env.run(req);
    assert!(
        env.workspace().join("started").exists(),
        "the run did not start in 20 s: {out:?}"
    );
    assert!(out.cancelled);
    assert!(!out.timed_out);
    assert!(out.wall < Duration::from_secs(10), "{:?}", out.wall);
}

#[test]
fn a_run_cancelled_before_it_starts_never_starts() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let req = env.request("open('started', 'w').write('yes')\n");
    req.cancel.cancel();
    let out = env.run(req);
    assert!(out.cancelled);
    assert_eq!(out.exit_code, None);
    assert!(
        !env.workspace().join("started").exists(),
        "the cancelled run started anyway"
    );
}

#[tokio::test]
async fn async_run_works() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let out = env
        .sandbox
        .run(env.request("print(6*7)\n"))
        .await
        .expect("run");
    assert_eq!(text(&out.stdout.bytes), "42\n");
    assert!(out.cpu > Duration::ZERO);
    assert!(out.peak_memory_kb > 0);
}

#[test]
fn insecure_mode_runs_unsandboxed() {
    if !std::path::Path::new(PYTHON).exists() {
        return p38_testkit::missing(&format!("{PYTHON} is missing"));
    }
    let env = Env::with_config(|c| c.insecure_no_sandbox = true);
    assert!(!env.sandbox.is_sandboxed());
    let mut req = env.request(ECHO);
    req.input = b"[1, 2]".to_vec();
    let out = env.run(req);
    assert!(!out.sandboxed);
    assert_eq!(
        out.exit_code,
        Some(0),
        "stderr: {}",
        text(&out.stderr.bytes)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.reply.bytes).unwrap();
    assert_eq!(reply["got"], serde_json::json!([1, 2]));
    assert_eq!(
        reply["cwd"].as_str().map(std::path::PathBuf::from),
        Some(env.workspace())
    );
}

#[test]
fn missing_bwrap_is_unavailable_and_named() {
    let mut c = config(fresh_uid());
    c.bwrap = "/nonexistent/bwrap".into();
    let err = Sandbox::new(c).expect_err("must fail");
    assert!(matches!(err, SandboxError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("bubblewrap"), "{err}");
    let mut c = config(fresh_uid());
    c.bwrap = "no-such-bwrap-binary".into();
    let err = Sandbox::new(c).expect_err("must fail");
    assert!(
        err.to_string()
            .contains("install the Debian package bubblewrap"),
        "{err}"
    );
}

#[test]
fn interpreter_outside_usr_is_refused() {
    if !bwrap_available() {
        return;
    }
    // A real interpreter (a copy of the host's, which runs) in a folder
    // the sandbox does not mount: the /usr rule, not a missing file, must
    // be what refuses it.
    let dir = tempfile::tempdir().unwrap();
    let python = dir.path().join("python3");
    std::fs::copy(std::fs::canonicalize(PYTHON).unwrap(), &python).unwrap();
    let runs = std::process::Command::new(&python)
        .args(["-c", "pass"])
        .status()
        .unwrap();
    assert!(runs.success(), "the copied interpreter runs on the host");
    let mut c = config(fresh_uid());
    c.python = python.clone();
    let err = Sandbox::new(c).expect_err("must fail");
    assert!(err.to_string().contains("is outside /usr"), "{err}");
    assert!(
        err.to_string().contains(python.to_str().unwrap()),
        "names the interpreter: {err}"
    );
}

#[test]
fn cpu_and_memory_of_the_whole_tree_are_measured() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    // The busy work happens in a forked child, so only a tree-wide rusage sees it.
    let out = env.run_script(
        "import os, time\nif os.fork() == 0:\n    held = b'x' * (32 << 20)\n    t = time.time()\n    while time.time() - t < 0.6: pass\n    os._exit(0)\nos.wait()\n",
    );
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr.bytes));
    assert!(out.cpu >= Duration::from_millis(400), "cpu {:?}", out.cpu);
    // The child's 32 MiB count (the run's cgroup, or the child's ru_maxrss).
    assert!(
        out.peak_memory_kb > 32 * 1024,
        "peak {} KiB",
        out.peak_memory_kb
    );
}

#[test]
fn unreachable_init_program_makes_the_sandbox_unavailable() {
    if !bwrap_available() {
        return;
    }
    let mut c = config(fresh_uid());
    c.init = vec!["/nonexistent/p38-init".into()];
    let err = Sandbox::new(c).expect_err("must fail");
    assert!(matches!(err, SandboxError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/p38-init"), "{err}");
}

#[test]
fn multiprocessing_locks_and_queues_work() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let out = env.run_script(
        r#"
import multiprocessing as mp
lock = mp.Lock()
with lock:
    q = mp.Queue()
    q.put(41)
    print(q.get() + 1)
"#,
    );
    assert_eq!(
        text(&out.stdout.bytes).trim(),
        "42",
        "stderr: {}",
        text(&out.stderr.bytes)
    );
}
