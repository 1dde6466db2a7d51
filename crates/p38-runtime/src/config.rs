//! Runtime settings and per-run limits.

use std::path::PathBuf;
use std::time::Duration;

use p38_core::agent::AgentSettings;
use p38_sandbox::Limits;

use crate::reply::Caps;

/// Limits applied when an agent does not override them.
#[derive(Debug, Clone)]
pub struct DefaultLimits {
    /// Wall-clock limit of one run.
    pub timeout: Duration,
    /// CPU seconds.
    pub cpu_seconds: u64,
    /// Address space, MiB.
    pub memory_mb: u64,
    /// Largest file written, MiB.
    pub max_file_mb: u64,
    /// Open files.
    pub open_files: u64,
    /// Processes and threads.
    pub processes: u64,
    /// Private /tmp size, MiB.
    pub tmp_mb: u64,
    /// Workspace quota, MiB of disk over all its files.
    pub workspace_mb: u64,
}

impl Default for DefaultLimits {
    fn default() -> Self {
        DefaultLimits {
            timeout: Duration::from_secs(300),
            cpu_seconds: 300,
            memory_mb: 1024,
            max_file_mb: 64,
            open_files: 256,
            processes: 64,
            tmp_mb: 64,
            workspace_mb: 1024,
        }
    }
}

impl DefaultLimits {
    /// The sandbox limits for one agent: its overrides, else these defaults.
    pub(crate) fn for_agent(&self, s: &AgentSettings, output_cap: usize, caps: Caps) -> Limits {
        const MIB: u64 = 1024 * 1024;
        let timeout = s
            .timeout_seconds
            .map(|t| Duration::from_secs(t.into()))
            .unwrap_or(self.timeout);
        Limits {
            wall: timeout,
            grace: Duration::from_secs(2),
            cpu_seconds: s.cpu_seconds.map(u64::from).unwrap_or(self.cpu_seconds),
            memory_bytes: s.memory_mb.map(u64::from).unwrap_or(self.memory_mb) * MIB,
            file_size_bytes: s.max_file_mb.map(u64::from).unwrap_or(self.max_file_mb) * MIB,
            open_files: s.open_files.map(u64::from).unwrap_or(self.open_files),
            processes: s.processes.map(u64::from).unwrap_or(self.processes),
            tmp_bytes: self.tmp_mb * MIB,
            workspace_bytes: self.workspace_bytes(s),
            workspace_entries: WORKSPACE_ENTRIES,
            // Keep a margin past the stored cap: masking runs on the whole
            // capture, so a secret cut by the sandbox's cap lies beyond the
            // point where the stored text is truncated.
            output_bytes: output_cap + 64 * 1024,
            // The reply holds the result and the state (each checked
            // against its cap on the host, see reply.rs) and at most 1000
            // log lines of 4000 characters: room for all of them, and no
            // more, since the pump holds the reply in memory.
            reply_bytes: caps.result_bytes + caps.state_bytes + 8 * MIB as usize,
        }
    }
}

/// Files and folders a workspace may hold.
pub(crate) const WORKSPACE_ENTRIES: u64 = 100_000;

impl DefaultLimits {
    /// An agent's workspace quota, bytes: its own, else the default.
    pub(crate) fn workspace_bytes(&self, s: &AgentSettings) -> u64 {
        s.workspace_mb.map(u64::from).unwrap_or(self.workspace_mb) * 1024 * 1024
    }
}

/// Where agents' workspaces live between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkspaceHome {
    /// In the data folder of the host that ran the agent, only: right for
    /// one host (SQLite).
    #[default]
    Host,
    /// Also in the database, as a versioned archive saved after each run
    /// that changed it and restored where the next run lands, so workers
    /// on several hosts see one workspace.
    Carried,
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Data folder: workspaces live in `workspaces/{agent_id}`, the runner in `runtime/`.
    pub data_dir: PathBuf,
    /// Name recorded on the tasks this worker runs.
    pub worker_id: String,
    /// Tasks run at once by this worker (default 5).
    pub concurrency: usize,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// How often running tasks' leases are extended and cancellations noticed.
    pub heartbeat: Duration,
    /// Poll interval when no wake-up signal arrives.
    pub poll: Duration,
    /// Default limits.
    pub limits: DefaultLimits,
    /// Stored stdout and stderr cap, bytes each (default 1 MiB).
    pub output_cap: usize,
    /// Largest state an agent may keep, bytes (default 1 MiB).
    pub max_state_bytes: usize,
    /// First of the unprivileged uids agents run as when the server is root
    /// (agent N runs as `uid_base + N % 60000`).
    pub uid_base: u32,
    /// Finished runs summarised in `ctx.history`.
    pub history_runs: u32,
    /// Whether workspaces are carried between hosts.
    pub workspace_home: WorkspaceHome,
}

impl RuntimeConfig {
    /// Defaults for a data folder.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            data_dir: data_dir.into(),
            worker_id: default_worker_id(),
            concurrency: 5,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_secs(1),
            limits: DefaultLimits::default(),
            output_cap: 1024 * 1024,
            max_state_bytes: 1024 * 1024,
            uid_base: 200_000,
            history_runs: 5,
            workspace_home: WorkspaceHome::Host,
        }
    }

    /// Where an agent's workspace is.
    pub fn workspace(&self, agent_id: i64) -> PathBuf {
        self.workspaces_dir().join(agent_id.to_string())
    }

    /// The folder of the workspaces: `DATA_DIR/workspaces`, or, when that
    /// folder was bound at [`RuntimeConfig::staging_dir`] (a data folder
    /// under one the sandbox uid cannot enter, see `Executor::new`), that
    /// bind, which every process of the host then uses.
    pub fn workspaces_dir(&self) -> PathBuf {
        let real = self.data_dir.join("workspaces");
        let staged = self.staging_dir();
        if same_folder(&real, &staged) {
            staged
        } else {
            real
        }
    }

    /// Where `DATA_DIR/workspaces` is bound when the sandbox uid cannot
    /// reach it: `/run/p38/workspaces-<hash of the data folder>`.
    pub fn staging_dir(&self) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let real = std::fs::canonicalize(&self.data_dir).unwrap_or(self.data_dir.clone());
        // Fixed keys: every process of the host computes the same name.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        real.hash(&mut h);
        PathBuf::from(format!("/run/p38/workspaces-{:016x}", h.finish()))
    }

    /// The uid/gid an agent runs as when the server is root.
    pub fn agent_ids(&self, agent_id: i64) -> (u32, u32) {
        let n = self.uid_base + (agent_id.rem_euclid(60_000) as u32);
        (n, n)
    }
}

/// `hostname:pid`, unique enough to tell workers apart in task rows.
fn default_worker_id() -> String {
    p38_core::host::process_name()
}

/// Whether two paths are the same folder (a bind mount shows the same one).
pub(crate) fn same_folder(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.is_dir() && (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}
