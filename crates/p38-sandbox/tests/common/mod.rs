//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use p38_sandbox::{CancelFlag, Limits, RunOutcome, RunRequest, Sandbox, SandboxConfig};

pub const PYTHON: &str = "/usr/bin/python3";

/// False (after recording the skip, a failure under CI) when the host
/// cannot run sandboxed tests.
pub fn bwrap_available() -> bool {
    p38_testkit::sandbox_available()
}

/// A fresh uid per sandbox, so tests running in parallel do not share one
/// RLIMIT_NPROC budget and leftover-process checks are unambiguous.
pub fn fresh_uid() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    61000 + (std::process::id() % 200) * 20 + NEXT.fetch_add(1, Ordering::SeqCst) % 20
}

pub fn config(uid: u32) -> SandboxConfig {
    let mut c = SandboxConfig::new(PYTHON, vec![env!("CARGO_BIN_EXE_p38-sandbox-init").into()]);
    c.sandbox_uid = uid;
    c.sandbox_gid = uid;
    c
}

/// A sandbox with its own uid, plus a world-traversable temp dir holding
/// the workspace and the script (bwrap runs as that uid and must reach them).
pub struct Env {
    pub sandbox: Sandbox,
    pub uid: u32,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Self::with_config(|_| {})
    }

    pub fn with_config(f: impl FnOnce(&mut SandboxConfig)) -> Env {
        let uid = fresh_uid();
        let mut c = config(uid);
        f(&mut c);
        let sandbox = Sandbox::new(c).expect("sandbox available");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Env { sandbox, uid, dir }
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    pub fn request(&self, script: &str) -> RunRequest {
        let path = self.dir.path().join("main.py");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        RunRequest {
            script: path,
            input: Vec::new(),
            workspace: self.workspace(),
            network: false,
            limits: Limits {
                wall: Duration::from_secs(30),
                ..Limits::default()
            },
            cancel: CancelFlag::new(),
            run_as: None,
        }
    }

    pub fn run(&self, req: RunRequest) -> RunOutcome {
        self.sandbox.run_blocking(req).expect("run starts")
    }

    /// Runs `script` with default limits and returns the outcome.
    pub fn run_script(&self, script: &str) -> RunOutcome {
        self.run(self.request(script))
    }
}

/// Runs a script that prints one verdict line and returns it (the
/// script must exit 0).
pub fn verdict(env: &Env, script: &str) -> String {
    let out = env.run_script(script);
    assert_eq!(
        out.exit_code,
        Some(0),
        "script failed: {}",
        text(&out.stderr.bytes)
    );
    text(&out.stdout.bytes).trim().to_string()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pids of host processes whose real uid is `uid`.
pub fn processes_of_uid(uid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let real = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if real == Some(uid) {
            out.push(pid);
        }
    }
    out
}

pub fn running_as_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}
