//! The memory limit holds for every kind of page a run can hold: hostile
//! agents that park memory outside their address space (memfd, /dev/shm,
//! /tmp, SysV shared memory) or spread it over several processes are
//! stopped by the run's memory cgroup, the outcome says so, and the
//! recorded peak is the cgroup's (the whole tree's) peak.
//!
//! The bombs run one at a time (each may hold 256 MiB) so that "no run
//! group is left behind" can be checked by name: groups are named after
//! the server's pid, and other test binaries have other pids.

mod common;

use std::sync::Mutex;

use common::*;
use p38_sandbox::{MemoryCgroup, RunOutcome};

const LIMIT: u64 = 256 << 20;
/// One at a time: the host's memory, and the leftover-group check.
static SERIAL: Mutex<()> = Mutex::new(());

/// Keeps files of 32 MiB (under RLIMIT_FSIZE, 64 MiB) until 1 GiB is held:
/// `open_file(i)` returns a writable binary file object or raw fd.
const FILES_BOMB: &str = r#"
CHUNK = b"x" * (1 << 20)
held = []
for i in range(32):
    f = open_file(i)
    held.append(f)
    for _ in range(32):
        write(f, CHUNK)
print("held 1 GiB", flush=True)
"#;

fn bomb(prelude: &str) -> String {
    format!("import os\n{prelude}\n{FILES_BOMB}")
}

/// Runs `script` with memory_bytes = 256 MiB (and `tmp_bytes`), checks the
/// layers, and that the run's group is gone afterwards.
fn run_bomb(script: &str, tmp_bytes: u64) -> Option<RunOutcome> {
    if !bwrap_available() {
        return None;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    if env.sandbox.layers().memory.is_none() {
        p38_testkit::missing("no writable memory cgroup on this host");
        return None;
    }
    let mut req = env.request(script);
    req.limits.memory_bytes = LIMIT;
    req.limits.tmp_bytes = tmp_bytes;
    let out = env.run(req);
    assert_no_run_groups(&env);
    Some(out)
}

fn assert_no_run_groups(env: &Env) {
    let ours = format!("run-{}-", std::process::id());
    for dir in env.sandbox.cgroup_dirs() {
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&ours))
            .collect();
        assert!(
            left.is_empty(),
            "run groups left in {}: {left:?}",
            dir.display()
        );
    }
}

/// Stopped by the cgroup, with the truth as its peak: at least 200 MiB
/// were held, and at most a little above the limit.
fn assert_stopped(out: &RunOutcome) {
    let all = format!(
        "{out:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout.bytes),
        text(&out.stderr.bytes)
    );
    eprintln!(
        "peak {} KiB, exit {:?}, signal {:?}, wall {:?}",
        out.peak_memory_kb, out.exit_code, out.signal, out.wall
    );
    assert!(out.memory_cgroup, "{all}");
    assert!(out.memory_exceeded, "{all}");
    assert!(!text(&out.stdout.bytes).contains("held 1 GiB"), "{all}");
    assert!(out.exit_code != Some(0), "{all}");
    let peak = out.peak_memory_kb * 1024;
    assert!(peak >= 200 << 20, "peak {} KiB: {all}", out.peak_memory_kb);
    assert!(
        peak <= LIMIT + (8 << 20),
        "peak {} KiB: {all}",
        out.peak_memory_kb
    );
}

#[test]
fn memfd_bomb_is_stopped() {
    // A seccomp filter may refuse plain memfds and allow only sealed
    // non-executable ones: the agent then uses those.
    let prelude = r#"
def open_file(i):
    try:
        return os.memfd_create(f"m{i}")
    except PermissionError:
        return os.memfd_create(f"m{i}", 0x0008)  # MFD_NOEXEC_SEAL
def write(fd, b):
    os.write(fd, b)
"#;
    let Some(out) = run_bomb(&bomb(prelude), 64 << 20) else {
        return;
    };
    assert_stopped(&out);
}

#[test]
fn dev_shm_bomb_is_stopped() {
    let prelude = r#"
def open_file(i):
    return open(f"/dev/shm/s{i}", "wb", buffering=0)
def write(f, b):
    f.write(b)
"#;
    // /dev/shm is a quarter of tmp_bytes: 1 GiB.
    let Some(out) = run_bomb(&bomb(prelude), 4 << 30) else {
        return;
    };
    assert_stopped(&out);
}

#[test]
fn tmp_tmpfs_bomb_is_stopped() {
    let prelude = r#"
def open_file(i):
    return open(f"/tmp/t{i}", "wb", buffering=0)
def write(f, b):
    f.write(b)
"#;
    let Some(out) = run_bomb(&bomb(prelude), 2 << 30) else {
        return;
    };
    assert_stopped(&out);
}

#[test]
fn sysv_shm_bomb_is_stopped() {
    // Each segment is attached only while it is filled, so the address
    // space stays small while the segments (kept after detaching) add up.
    let script = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
SEG = 32 << 20
for i in range(32):
    sid = libc.shmget(0, SEG, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if sid < 0:
        raise OSError(ctypes.get_errno(), "shmget")
    addr = libc.shmat(sid, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "shmat")
    ctypes.memset(addr, 120, SEG)
    libc.shmdt(ctypes.c_void_p(addr))
print("held 1 GiB", flush=True)
"#;
    let Some(out) = run_bomb(script, 64 << 20) else {
        return;
    };
    assert_stopped(&out);
}

#[test]
fn bytes_spread_over_processes_are_stopped() {
    // Each process stays under its RLIMIT_AS (no MemoryError): only the
    // cgroup sees the sum.
    let script = r#"
import os, time
def hold():
    chunks = [bytes([i % 256]) * (16 << 20) for i in range(10)]  # 160 MiB
    os.write(1, b".")
    time.sleep(30)
kids = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        hold()
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
print("held 1 GiB", flush=True)
"#;
    let Some(out) = run_bomb(script, 64 << 20) else {
        return;
    };
    assert_stopped(&out);
}

#[test]
fn a_single_process_bomb_gets_a_clean_memory_error() {
    // RLIMIT_AS bites first for ordinary allocations in one process.
    let script = "chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))\n";
    let Some(out) = run_bomb(script, 64 << 20) else {
        return;
    };
    let stderr = text(&out.stderr.bytes);
    assert!(stderr.contains("MemoryError"), "{out:?} {stderr}");
    assert!(!out.memory_exceeded, "{out:?}");
    let peak = out.peak_memory_kb * 1024;
    assert!((150 << 20..=LIMIT + (8 << 20)).contains(&peak), "{out:?}");
}

#[test]
fn a_normal_run_reports_a_plausible_peak() {
    // Written, not only reserved: zeroed allocations are not yet memory.
    let script = "data = b'x' * (48 << 20)\nprint(len(data))\n";
    let Some(out) = run_bomb(script, 64 << 20) else {
        return;
    };
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(!out.memory_exceeded, "{out:?}");
    assert!(out.memory_cgroup, "{out:?}");
    let peak = out.peak_memory_kb * 1024;
    assert!(
        (48 << 20..=128 << 20).contains(&peak),
        "peak {} KiB",
        out.peak_memory_kb
    );
}

#[test]
fn layers_name_the_memory_cgroup_of_this_host() {
    if !bwrap_available() {
        return;
    }
    let env = Env::new();
    let layers = env.sandbox.layers();
    assert!(
        layers.namespaces && layers.landlock && layers.seccomp,
        "{layers}"
    );
    if !running_as_root() {
        p38_testkit::not_applicable(&format!("the cgroup layers need root here: {layers}"));
        return;
    }
    // This machine: v1 memory (with swap accounting) and v1 pids.
    assert!(
        matches!(
            layers.memory,
            Some(MemoryCgroup::V1 { .. } | MemoryCgroup::V2)
        ),
        "{layers}"
    );
    assert!(layers.pids, "{layers}");
    assert!(layers.to_string().contains("memory cgroup v"), "{layers}");
}

#[test]
fn the_run_group_holds_the_pids_limit_while_it_runs() {
    if !bwrap_available() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    if !env.sandbox.layers().pids {
        p38_testkit::missing("no pids cgroup on this host");
        return;
    }
    let mut req = env
        .request("import time\nopen('started', 'w').close()\nwhile True:\n    time.sleep(0.05)\n");
    req.limits.processes = 12;
    let cancel = req.cancel.clone();
    let sandbox = env.sandbox.clone();
    let run = std::thread::spawn(move || sandbox.run_blocking(req).expect("run starts"));
    let started = env.workspace().join("started");
    while !started.exists() {
        assert!(!run.is_finished(), "the run ended before it started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ours = format!("run-{}-", std::process::id());
    let mut limits = Vec::new();
    for dir in env.sandbox.cgroup_dirs() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&ours)
                && let Ok(max) = std::fs::read_to_string(e.path().join("pids.max"))
            {
                limits.push(max.trim().to_string());
            }
        }
    }
    cancel.cancel();
    let out = run.join().unwrap();
    assert!(out.cancelled, "{out:?}");
    // The agent's 12, plus bubblewrap and the init shim.
    assert_eq!(limits, vec!["14".to_string()]);
    assert_no_run_groups(&env);
}

#[test]
fn stale_empty_run_groups_of_dead_servers_are_removed_at_start() {
    if !bwrap_available() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let dirs = env.sandbox.cgroup_dirs();
    if dirs.is_empty() {
        p38_testkit::missing("no cgroups on this host");
        return;
    }
    // A pid above pid_max never belongs to a live process.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stale: Vec<_> = dirs
        .iter()
        .map(|d| d.join(format!("run-{}-7", pid_max + 1)))
        .collect();
    for s in &stale {
        std::fs::create_dir(s).unwrap();
    }
    let _next = Env::new();
    for s in &stale {
        assert!(!s.exists(), "{} was not removed", s.display());
    }
}

#[test]
fn a_delegated_cgroup_root_holds_the_run_groups() {
    if !bwrap_available() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let probe = Env::new();
    let Some(own) = probe
        .sandbox
        .cgroup_dirs()
        .first()
        .and_then(|d| d.parent().map(|p| p.to_path_buf()))
    else {
        p38_testkit::missing("no cgroups on this host");
        return;
    };
    let root = own.join(format!("p38-delegated-{}", std::process::id()));
    std::fs::create_dir(&root).unwrap();
    let env = Env::with_config(|c| c.cgroup_root = Some(root.clone()));
    assert_eq!(env.sandbox.cgroup_dirs().first(), Some(&root));
    let mut req = env.request(&bomb(
        "def open_file(i):\n    return open(f'/tmp/t{i}', 'wb', buffering=0)\ndef write(f, b):\n    f.write(b)\n",
    ));
    req.limits.memory_bytes = LIMIT;
    req.limits.tmp_bytes = 2 << 30;
    let out = env.run(req);
    assert_stopped(&out);
    assert_no_run_groups(&env);
    drop(env);
    std::fs::remove_dir(&root).unwrap();
}

#[test]
fn a_cgroup_root_that_is_not_a_cgroup_is_refused() {
    if !bwrap_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(fresh_uid());
    c.cgroup_root = Some(dir.path().to_path_buf());
    let err = p38_sandbox::Sandbox::new(c).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("P38_CGROUP_ROOT"), "{msg}");
    assert!(
        msg.contains("not a directory of a cgroup filesystem"),
        "{msg}"
    );
}
