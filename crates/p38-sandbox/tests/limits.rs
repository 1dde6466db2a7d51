//! Wall-clock timeout, memory, processes, file size and /tmp size limits.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Spawns a forked child and a setsid'd (daemonized) grandchild that keep
/// appending to files in the workspace, then spins forever.
const RUNAWAY: &str = r#"
import os, time
def ticker(name):
    while True:
        with open(name, "a") as f:
            f.write("x")
        time.sleep(0.05)
if os.fork() == 0:
    ticker("child.tick")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ticker("daemon.tick")
    os._exit(0)
while True:
    pass
"#;

#[test]
fn runaway_tree_is_killed_at_the_deadline() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(RUNAWAY);
    req.limits.wall = Duration::from_millis(1500);
    req.limits.grace = Duration::from_millis(500);
    let start = Instant::now();
    let out = env.run(req);
    assert!(out.timed_out, "{out:?}");
    assert!(!out.cancelled);
    // Killed at the deadline (2 s with the grace), not left running: the
    // bound leaves room for a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let ws = env.workspace();
    let size = |n: &str| std::fs::metadata(ws.join(n)).map(|m| m.len()).unwrap_or(0);
    let (child, daemon) = (size("child.tick"), size("daemon.tick"));
    assert!(
        child > 0 && daemon > 0,
        "the children did run: {child} {daemon}"
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(size("child.tick"), child, "forked child still running");
    assert_eq!(
        size("daemon.tick"),
        daemon,
        "daemonized grandchild still running"
    );
    if running_as_root() {
        assert_eq!(
            processes_of_uid(env.uid),
            Vec::<u32>::new(),
            "leftover processes"
        );
    }
}

#[test]
fn memory_bomb_is_stopped() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request("chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n");
    req.limits.memory_bytes = 256 << 20;
    let start = Instant::now();
    let out = env.run(req);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!out.timed_out);
    let stderr = text(&out.stderr.bytes);
    assert!(
        stderr.contains("MemoryError") || out.signal.is_some(),
        "neither MemoryError nor a signal: {out:?}"
    );
    assert_ne!(out.exit_code, Some(0));
    assert!(
        out.peak_memory_kb < 300 * 1024,
        "peak {} KiB",
        out.peak_memory_kb
    );
}

#[test]
fn fork_bomb_is_stopped_by_nproc() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(
        r#"
import os, sys, time
pids = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("fork failed after", len(pids), e.errno, flush=True)
    sys.exit(3)
"#,
    );
    req.limits.processes = 16;
    req.limits.wall = Duration::from_secs(20);
    let out = env.run(req);
    assert!(!out.timed_out, "{out:?}");
    let stdout = text(&out.stdout.bytes);
    assert!(
        stdout.contains("fork failed after"),
        "stdout {stdout:?} stderr {:?}",
        text(&out.stderr.bytes)
    );
    assert_eq!(out.exit_code, Some(3));
    let n: usize = stdout
        .split_whitespace()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(999);
    assert!(n < 16, "forked {n} children with a limit of 16");
    if running_as_root() {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            processes_of_uid(env.uid),
            Vec::<u32>::new(),
            "leftover processes"
        );
    }
}

#[test]
fn file_larger_than_fsize_fails_with_efbig() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(
        r#"
import errno, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
try:
    with open("big", "wb") as f:
        for _ in range(64):
            f.write(b"x" * 65536)
    print("wrote it all")
except OSError as e:
    print("errno", errno.errorcode[e.errno])
"#,
    );
    req.limits.file_size_bytes = 1 << 20;
    let out = env.run(req);
    assert_eq!(
        text(&out.stdout.bytes),
        "errno EFBIG\n",
        "stderr {}",
        text(&out.stderr.bytes)
    );
    let len = std::fs::metadata(env.workspace().join("big"))
        .unwrap()
        .len();
    assert!(len <= 1 << 20, "{len}");
}

#[test]
fn filling_tmp_fails_with_enospc() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(
        r#"
import errno
try:
    for i in range(100):
        with open(f"/tmp/fill{i}", "wb") as f:
            f.write(b"x" * (1 << 20))
    print("filled")
except OSError as e:
    print("errno", errno.errorcode[e.errno])
"#,
    );
    req.limits.tmp_bytes = 4 << 20;
    let out = env.run(req);
    assert_eq!(
        text(&out.stdout.bytes),
        "errno ENOSPC\n",
        "stderr {}",
        text(&out.stderr.bytes)
    );
}

#[test]
fn cpu_limit_stops_a_spinner() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request("while True:\n    pass\n");
    req.limits.cpu_seconds = 1;
    let out = env.run(req);
    assert!(
        !out.timed_out,
        "CPU limit should end it before the 30 s wall: {out:?}"
    );
    assert!(out.signal.is_some(), "{out:?}");
    assert!(out.cpu >= Duration::from_millis(900), "{:?}", out.cpu);
}

#[test]
fn deadline_sends_sigterm_before_sigkill() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(
        "import signal, sys, time\ndef term(*_):\n    open('/workspace/got-term', 'w').write('yes')\n    sys.exit(0)\nsignal.signal(signal.SIGTERM, term)\nwhile True: time.sleep(0.05)\n",
    );
    // The deadline leaves Python time to install its handler on a busy
    // machine; the handler's exit comes well before the SIGKILL at 6.5 s.
    req.limits.wall = Duration::from_millis(1500);
    req.limits.grace = Duration::from_secs(5);
    let out = env.run(req);
    assert!(out.timed_out);
    assert!(
        env.workspace().join("got-term").exists(),
        "no SIGTERM seen: {out:?}"
    );
    assert!(out.wall < Duration::from_secs(4), "{:?}", out.wall);
}

#[test]
fn many_files_below_the_file_cap_cannot_fill_the_disk() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    // 1 MiB files, each below the file-size cap, 40 of them in 2 s.
    let mut req = env.request(
        r#"
import time
for i in range(40):
    with open(f"part-{i}", "wb") as f:
        f.write(b"x" * (1 << 20))
    time.sleep(0.05)
print("wrote it all")
"#,
    );
    req.limits.workspace_bytes = 4 << 20;
    let out = env.run(req);
    assert!(out.workspace_full, "{out:?}");
    assert!(!out.timed_out && !out.cancelled);
    assert_eq!(text(&out.stdout.bytes), "", "the run went on to the end");
    let files = std::fs::read_dir(env.workspace()).unwrap().count();
    assert!(files < 40, "{files} files written");

    // The files stay, and the workspace, now over its quota, does not run
    // again until the quota is raised; then the agent can clean up.
    let mut req = env.request("import os\nprint(len(os.listdir('.')))\n");
    req.limits.workspace_bytes = 4 << 20;
    let out = env.run(req);
    assert!(out.workspace_full);
    assert_eq!(text(&out.stdout.bytes), "", "it ran");
    let mut req = env.request("import os\nprint(len(os.listdir('.')))\n");
    req.limits.workspace_bytes = 64 << 20;
    let out = env.run(req);
    assert!(!out.workspace_full);
    assert_eq!(text(&out.stdout.bytes).trim(), files.to_string());
}

#[test]
fn a_short_run_past_the_quota_is_caught_at_its_end() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request("open('blob', 'wb').write(b'x' * (8 << 20))\nprint('done')\n");
    req.limits.workspace_bytes = 4 << 20;
    let out = env.run(req);
    assert!(out.workspace_full, "{out:?}");
}

#[test]
fn many_empty_files_count_against_the_entry_limit() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let mut req = env.request(
        r#"
import time
for i in range(2000):
    open(f"f{i}", "w").close()
    if i % 100 == 0:
        time.sleep(0.05)
print("wrote it all")
"#,
    );
    req.limits.workspace_entries = 300;
    let out = env.run(req);
    assert!(out.workspace_full, "{out:?}");
    assert_eq!(text(&out.stdout.bytes), "");
}
