//! Plain data types: how the sandbox is configured, what one run asks for, and
//! what it produced.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Host-wide sandbox configuration, fixed when the [`crate::Sandbox`] is built.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The Python interpreter to run. It must be reachable (every parent
    /// directory searchable, the file executable) by `sandbox_uid` when the
    /// caller is root, because bubblewrap then runs as that uid: an
    /// interpreter under `/root` (mode 0700, e.g. pyenv) does not work.
    pub python: PathBuf,
    /// An extra directory bound read-only (and allowed read+execute by
    /// landlock) when the interpreter and its standard library live outside
    /// `/usr`, e.g. `/opt/python3.11`. Bound at the same path inside.
    pub python_prefix: Option<PathBuf>,
    /// Program and leading arguments of the in-sandbox init shim, e.g.
    /// `[current_exe, "__sandbox-init"]`. The program is opened by the host
    /// and executed inside through that fd (`/proc/self/fd/N`, nothing of
    /// its host path is mounted) with the remaining words followed by the
    /// shim's own arguments (see [`crate::init`]). Only the file itself must
    /// be executable by the sandbox uid; its folders need not be reachable.
    pub init: Vec<OsString>,
    /// The bubblewrap executable: a path, or a bare name looked up on `PATH`.
    /// Default `bwrap`.
    pub bwrap: PathBuf,
    /// Unprivileged uid the process tree switches to before bubblewrap runs,
    /// used only when the caller is root (root is exempt from
    /// `RLIMIT_NPROC`). Default 65534. Note that `RLIMIT_NPROC` counts every
    /// process of this uid on the host, so concurrent runs share the budget.
    pub sandbox_uid: u32,
    /// Unprivileged gid used together with `sandbox_uid`. Default 65534.
    pub sandbox_gid: u32,
    /// Operator override: run Python directly (wiped environment, rlimits,
    /// own process group, cwd = workspace, still the unprivileged uid when
    /// the caller is root) with NO namespaces, landlock or seccomp. Skips the
    /// host probe. Outcomes then report `sandboxed: false`.
    pub insecure_no_sandbox: bool,
    /// A delegated cgroup directory to create each run's memory (and pids)
    /// group in, instead of a `p38` subtree under this process's own cgroup:
    /// on cgroup v2 a group whose `cgroup.controllers` has `memory` and
    /// that holds no processes; on v1 a directory of the memory hierarchy
    /// (the pids group goes at the same place in the pids hierarchy). The
    /// sandbox refuses to start when it is set but unusable. Default `None`.
    pub cgroup_root: Option<PathBuf>,
    /// Make each workspace its own ext4 image file (`<workspace>.img`,
    /// sparse, sized to the quota) loop-mounted at the workspace folder,
    /// so the kernel enforces the quota and checking it costs O(1). Used
    /// only when the caller is root and loop devices work (else a warning
    /// at start, and the quota is measured by walking the folder). Default
    /// `false`: images stay mounted after the run, until
    /// [`crate::remove_workspace`].
    pub workspace_images: bool,
}

impl SandboxConfig {
    /// A configuration with the defaults above for the given interpreter and
    /// init shim command.
    pub fn new(python: impl Into<PathBuf>, init: Vec<OsString>) -> Self {
        SandboxConfig {
            python: python.into(),
            python_prefix: None,
            init,
            bwrap: PathBuf::from("bwrap"),
            sandbox_uid: 65534,
            sandbox_gid: 65534,
            insecure_no_sandbox: false,
            cgroup_root: None,
            workspace_images: false,
        }
    }
}

/// Resource limits of one run. A value of 0 for an rlimit means "no limit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget; at the deadline the run is ended (default 300 s).
    pub wall: Duration,
    /// Time between SIGTERM and SIGKILL when ending a run (default 2 s).
    pub grace: Duration,
    /// `RLIMIT_CPU` seconds (soft; hard is one more) (default 300).
    pub cpu_seconds: u64,
    /// Memory of the whole run, in bytes (default 1 GiB): the limit of its
    /// memory cgroup, which charges every page the tree holds (anonymous
    /// memory, memfd, SysV and POSIX shared memory, tmpfs files in `/tmp`
    /// and `/dev/shm`, kernel memory); also each process's `RLIMIT_AS`, so
    /// that an ordinary allocation past it is a clean `MemoryError`.
    pub memory_bytes: u64,
    /// `RLIMIT_FSIZE` bytes: the largest file that may be written (default 64 MiB).
    pub file_size_bytes: u64,
    /// `RLIMIT_NOFILE` (default 256).
    pub open_files: u64,
    /// `RLIMIT_NPROC`: processes of the sandbox uid (default 64); also the
    /// run's `pids.max` (plus bubblewrap and the init shim) where a pids
    /// cgroup controller is available.
    pub processes: u64,
    /// Size of the private `/tmp` tmpfs in bytes (default 64 MiB).
    pub tmp_bytes: u64,
    /// Total size of the workspace, in bytes of disk used (default 1 GiB;
    /// 0: no limit). A run that grows its workspace past it is ended (or
    /// flagged, when it ended before a check); a workspace over it does not
    /// run at all.
    pub workspace_bytes: u64,
    /// Files and folders in the workspace (default 100,000; 0: no limit),
    /// enforced the same way.
    pub workspace_entries: u64,
    /// Cap on captured bytes per output stream (stdout, stderr) (default 1 MiB).
    pub output_bytes: usize,
    /// Cap on captured reply bytes (fd 4) (default 16 MiB).
    pub reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(300),
            grace: Duration::from_secs(2),
            cpu_seconds: 300,
            memory_bytes: 1 << 30,
            file_size_bytes: 64 << 20,
            open_files: 256,
            processes: 64,
            tmp_bytes: 64 << 20,
            workspace_bytes: 1 << 30,
            workspace_entries: 100_000,
            output_bytes: 1 << 20,
            reply_bytes: 16 << 20,
        }
    }
}

/// A shareable flag that asks a running run to end. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A new, unset flag.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the run to end; it is then reported with `cancelled: true`.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One Python run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Host path of the Python file; bound read-only at `/p38/main.py` and run
    /// as `python -I -S /p38/main.py`.
    pub script: PathBuf,
    /// Bytes written to fd 3 of the Python process, then fd 3 is closed (EOF).
    /// May hold secrets: it is never put in argv, the environment or a file.
    pub input: Vec<u8>,
    /// Host directory (created if missing) bound read-write at `/workspace`;
    /// also the cwd and `HOME`. When the caller is root it is chowned
    /// (recursively, symlinks not followed) to the sandbox uid/gid.
    pub workspace: PathBuf,
    /// `false`: an own, empty network namespace (loopback only). `true`: the
    /// host network plus read-only resolver and CA files from `/etc`.
    pub network: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Set to end the run early (reported as cancelled).
    pub cancel: CancelFlag,
    /// When the caller is root: the unprivileged uid/gid for this run
    /// instead of the configured one. The process limit counts per uid, so
    /// giving each agent its own uid keeps one agent's processes from
    /// eating another's budget.
    pub run_as: Option<(u32, u32)>,
}

/// Bytes captured from one stream, capped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, up to the cap.
    pub bytes: Vec<u8>,
    /// Whether more bytes were written than the cap (the rest was discarded).
    pub truncated: bool,
    /// For the reply stream only: when each line of `bytes` arrived, on the
    /// host's clock, as (offset just past its newline, time since the run
    /// started), for at most [`MAX_TIMED_LINES`] lines. What a line says
    /// about its own time is the program's claim; this is the host's.
    pub line_times: Vec<(usize, Duration)>,
}

/// What a run has written so far, readable while it runs (see
/// [`crate::Sandbox::run_live`]): the I/O thread keeps the captured
/// streams here as it reads them, under the same caps, so looking costs
/// one lock and a copy of what is new. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct LiveOutput(Arc<LiveShared>);

#[derive(Debug, Default)]
struct LiveShared {
    /// Bumped each time a stream grows (or is found cut).
    changes: AtomicU64,
    /// stdout, stderr, reply.
    streams: Mutex<[Captured; 3]>,
}

/// What one stream gained since an earlier look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gained {
    /// The new bytes.
    pub bytes: Vec<u8>,
    /// Whether the stream went past its cap (the rest is discarded).
    pub truncated: bool,
    /// For the reply: arrival times of the new lines, offsets counted from
    /// the start of the stream (see [`Captured::line_times`]).
    pub line_times: Vec<(usize, Duration)>,
}

impl LiveOutput {
    /// A new, empty view.
    pub fn new() -> LiveOutput {
        LiveOutput::default()
    }

    /// How many times the output changed so far: when it is what it was
    /// at the last look, there is nothing new to read.
    pub fn changes(&self) -> u64 {
        self.0.changes.load(Ordering::SeqCst)
    }

    /// What stdout, stderr and the reply gained past the `seen` bytes of
    /// each; `seen` moves past them. Once the run ended (its outcome holds
    /// the streams), nothing more.
    pub fn read(&self, seen: &mut [usize; 3]) -> [Gained; 3] {
        let streams = self.0.streams.lock().unwrap_or_else(|e| e.into_inner());
        std::array::from_fn(|i| {
            let c = &streams[i];
            let from = seen[i].min(c.bytes.len());
            seen[i] = seen[i].max(c.bytes.len());
            Gained {
                bytes: c.bytes[from..].to_vec(),
                truncated: c.truncated,
                line_times: c
                    .line_times
                    .iter()
                    .filter(|(off, _)| *off > from)
                    .copied()
                    .collect(),
            }
        })
    }

    /// Runs `f` on one stream (0 stdout, 1 stderr, 2 reply) and counts a
    /// change.
    pub(crate) fn update(&self, stream: usize, f: impl FnOnce(&mut Captured)) {
        let mut streams = self.0.streams.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut streams[stream]);
        self.0.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The captured streams, taken out when the run ended.
    pub(crate) fn take(&self) -> [Captured; 3] {
        let mut streams = self.0.streams.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *streams)
    }
}

/// Lines of the reply stream whose arrival is timed (the rest are not:
/// the record of times must not grow with what the program writes).
pub const MAX_TIMED_LINES: usize = 4096;

/// The result of one run that started.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Everything Python wrote to fd 4 (capped at `reply_bytes`), with the
    /// arrival time of each line.
    pub reply: Captured,
    /// Standard output (capped at `output_bytes`).
    pub stdout: Captured,
    /// Standard error (capped at `output_bytes`).
    pub stderr: Captured,
    /// Exit status when the program exited normally. In sandboxed mode
    /// bubblewrap reports a child killed by signal N as status 128+N; such
    /// statuses are reported as `signal: Some(N)` instead.
    pub exit_code: Option<i32>,
    /// The signal that ended the program, if any.
    pub signal: Option<i32>,
    /// The wall-clock deadline was reached and the run was ended.
    pub timed_out: bool,
    /// The cancel flag was set and the run was ended.
    pub cancelled: bool,
    /// The workspace went past `workspace_bytes` or `workspace_entries`
    /// (the run was ended, or not started when it already was).
    pub workspace_full: bool,
    /// Wall-clock duration of the run.
    pub wall: Duration,
    /// User + system CPU of the reaped process tree (from `wait4` rusage).
    pub cpu: Duration,
    /// Peak memory in KiB: with a memory cgroup, the most the whole tree
    /// held at once (`memory.peak`, v1 `memory.max_usage_in_bytes`,
    /// including memfd, shared memory and tmpfs pages); without one, the
    /// resident set of the largest process (`ru_maxrss`).
    pub peak_memory_kb: u64,
    /// The memory cgroup's limit was reached and the kernel killed the run
    /// (or a process of it).
    pub memory_exceeded: bool,
    /// Whether a memory cgroup bounded the run. `false`: memory was bounded
    /// only per process by `RLIMIT_AS` (and memfd_create and shmget were
    /// refused).
    pub memory_cgroup: bool,
    /// Whether the run was sandboxed (false only with `insecure_no_sandbox`).
    pub sandboxed: bool,
}
