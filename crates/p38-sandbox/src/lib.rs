//! Runs one Python program, written by a language model, unattended, in a
//! Linux sandbox.
//!
//! Layers, outermost first:
//! - **bubblewrap** (`bwrap`): new user, mount, PID, IPC, UTS and cgroup
//!   namespaces (and network unless requested); only `/usr` (+ the
//!   `/bin`-style links), an optional interpreter prefix, the script, the init
//!   shim and the workspace are visible; private `/proc`, `/dev`, size-capped
//!   `/tmp`; an environment built from scratch.
//! - **uid drop**: when the caller is root the tree first switches to an
//!   unprivileged uid/gid (default 65534), because root is exempt from
//!   `RLIMIT_NPROC` even inside a user namespace. The workspace is chowned to
//!   that uid, and the interpreter, script and init program must be
//!   reachable by it.
//! - **memory and pids cgroup**: each run gets its own group (v2, or the v1
//!   memory and pids controllers), entered by the forked child before
//!   bubblewrap starts. Its memory limit charges every page the tree holds
//!   (memfd, SysV/POSIX shared memory, tmpfs files too, which `RLIMIT_AS`
//!   does not see); a run the kernel OOM-kills is reported as
//!   `memory_exceeded`, and the group's peak is the run's peak. Without a
//!   writable memory controller runs still work, bounded per process by
//!   `RLIMIT_AS`, with memfd_create and shmget refused ([`Sandbox::layers`]
//!   says which).
//! - **init shim** ([`init`]): rlimits; the writable mounts (`/workspace`,
//!   `/tmp`, `/dev/shm`) remounted noexec, nosuid, nodev, then every
//!   capability dropped (`privileges.rs`; bubblewrap grants CAP_SYS_ADMIN and
//!   CAP_SETPCAP inside the user namespace only for this); landlock (execute
//!   only `/usr`, the prefix and the shim); a seccomp allow list per kind of
//!   process (`seccomp.rs`, EPERM for the rest); then exec Python. It reports
//!   its start or its setup failure on a status pipe Python never has, so
//!   stderr is the program's own once it started.
//! - **watchdog**: wall-clock deadline and cancellation kill the whole
//!   process group; the PID namespace guarantees nothing survives.
//!
//! Python is run as `python -I -S /p38/main.py`; it reads its input from fd 3
//! and writes its reply to fd 4. The host process must ignore `SIGPIPE`
//! (Rust programs do by default).

#![deny(missing_docs)]

mod bwrap;
mod cgroup;
mod config;
mod error;
pub mod init;
mod iopump;
mod landlock;
mod layers;
mod privileges;
mod probe;
mod process;
mod quota;
mod reaper;
mod seccomp;
mod watchdog;
mod workspace;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{
    CancelFlag, Captured, Limits, MAX_TIMED_LINES, RunOutcome, RunRequest, SandboxConfig,
};
pub use error::SandboxError;
pub use layers::{Layers, MemoryCgroup};

/// Finds bubblewrap as [`Sandbox::new`] does: `configured` is a path, or a
/// bare name (`bwrap`) looked up on `PATH`. The error says how to install it.
pub fn find_bubblewrap(configured: &Path) -> Result<PathBuf, SandboxError> {
    probe::find_bwrap(configured)
}

/// A probed, ready-to-use sandbox. Cheap to clone; runs may be concurrent.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    /// Absolute path of bwrap (unused in insecure mode).
    bwrap: PathBuf,
    /// `Some((uid, gid))` when the caller is root.
    drop_to: Option<(u32, u32)>,
    /// Where run cgroups go; `None`: no writable memory controller.
    cgroups: Option<cgroup::Host>,
}

impl Sandbox {
    /// Checks the configuration and probes the host once: bubblewrap present,
    /// user namespaces usable, landlock and seccomp applicable (by running the
    /// init shim in probe mode inside bubblewrap). When something is missing
    /// the [`SandboxError::Unavailable`] message names it. With
    /// `insecure_no_sandbox` the probe is skipped. Blocks for the duration of
    /// the probe (typically well under a second).
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if config.init.is_empty() {
            return Err(SandboxError::Unavailable(
                "no init shim configured (SandboxConfig::init is empty)".into(),
            ));
        }
        // SAFETY: getuid cannot fail.
        let root = unsafe { libc::getuid() } == 0;
        let drop_to = root.then_some((config.sandbox_uid, config.sandbox_gid));
        if root && config.sandbox_uid == 0 {
            return Err(SandboxError::Unavailable(
                "sandbox_uid must not be 0 (root is exempt from the process limit)".into(),
            ));
        }
        let bwrap = if config.insecure_no_sandbox {
            PathBuf::new()
        } else {
            let bwrap = probe::find_bwrap(&config.bwrap)?;
            probe::check_user_namespaces()?;
            probe::check_interpreter(&config)?;
            bwrap
        };
        let cgroups = probe::cgroups(config.cgroup_root.as_deref())?;
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                config,
                bwrap,
                drop_to,
                cgroups,
            }),
        };
        if !sandbox.inner.config.insecure_no_sandbox {
            probe::run_probe(&sandbox)?;
        } else {
            tracing::warn!("p38-sandbox: insecure_no_sandbox is set: agents run WITHOUT a sandbox");
        }
        Ok(sandbox)
    }

    /// Whether runs are sandboxed (false only with `insecure_no_sandbox`).
    pub fn is_sandboxed(&self) -> bool {
        !self.inner.config.insecure_no_sandbox
    }

    /// The layers every run gets on this host.
    pub fn layers(&self) -> Layers {
        let sandboxed = self.is_sandboxed();
        let cg = self.inner.cgroups.as_ref();
        Layers {
            namespaces: sandboxed,
            landlock: sandboxed,
            seccomp: sandboxed,
            memory: cg.map(cgroup::Host::memory),
            pids: cg.is_some_and(cgroup::Host::has_pids),
        }
    }

    /// The cgroup directories run groups (`run-<pid>-<n>`, `<pid>` this
    /// process's) are created in, one per hierarchy; empty without cgroups.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.inner
            .cgroups
            .as_ref()
            .map(cgroup::Host::dirs)
            .unwrap_or_default()
    }

    /// Runs one program to completion on a blocking thread. `Ok` whenever the
    /// program started, whatever its exit status (including timeouts and
    /// cancellation); `Err` when it could not be started or sandbox setup
    /// failed for this run.
    pub async fn run(&self, req: RunRequest) -> Result<RunOutcome, SandboxError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run_blocking(req))
            .await
            .map_err(|e| SandboxError::Spawn(format!("the run's thread failed: {e}")))?
    }

    /// The synchronous form of [`Sandbox::run`] (blocks the calling thread).
    pub fn run_blocking(&self, req: RunRequest) -> Result<RunOutcome, SandboxError> {
        let script = std::path::absolute(&req.script)?;
        if !script.is_file() {
            return Err(SandboxError::Spawn(format!(
                "script {} is not a file",
                script.display()
            )));
        }
        let workspace = std::path::absolute(&req.workspace)?;
        let drop_to = match (self.inner.drop_to, req.run_as) {
            (Some(_), Some((0, _))) => {
                return Err(SandboxError::Spawn("run_as uid must not be 0".into()));
            }
            (Some(_), Some(ids)) => Some(ids),
            (d, _) => d,
        };
        workspace::prepare(&workspace, drop_to)?;
        self.launch(
            drop_to,
            Some(&script),
            Some(&workspace),
            req.network,
            &req.limits,
            req.input,
            &req.cancel,
        )
    }

    /// Builds the command line and runs it (also used by the probe, with no
    /// script and no workspace).
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        drop_to: Option<(u32, u32)>,
        script: Option<&Path>,
        workspace: Option<&Path>,
        network: bool,
        limits: &Limits,
        input: Vec<u8>,
        cancel: &CancelFlag,
    ) -> Result<RunOutcome, SandboxError> {
        let cfg = &self.inner.config;
        // Before the process exists, so it can enter the group before it
        // runs anything.
        let group = match &self.inner.cgroups {
            Some(host) => Some(host.create(limits.memory_bytes, limits.processes).map_err(
                |e| SandboxError::Spawn(format!("cannot create the run's cgroup: {e}")),
            )?),
            None => None,
        };
        let pipes = process::Pipes::new()?;
        use std::os::fd::AsRawFd;
        let layout = bwrap::Layout {
            python: &cfg.python,
            python_prefix: cfg.python_prefix.as_deref(),
            init_program: Path::new(&cfg.init[0]),
            init_args: &cfg.init[1..],
            script,
            workspace,
            network,
            limits,
            input_fd: pipes.child_input.as_raw_fd(),
            reply_fd: pipes.child_reply.as_raw_fd(),
            info_fd: pipes.child_info.as_raw_fd(),
            status_fd: pipes.child_status.as_raw_fd(),
            memory_sinks: group.is_some(),
        };
        let launch = if cfg.insecure_no_sandbox {
            let ws = workspace.unwrap_or(Path::new("/"));
            let mut args: Vec<OsString> = cfg.init[1..].to_vec();
            args.extend(bwrap::init_args(&layout, false));
            let env = bwrap::inner_env()
                .into_iter()
                .map(|(k, v)| {
                    let v = if k == "HOME" {
                        ws.as_os_str().to_owned()
                    } else {
                        v.into()
                    };
                    (OsString::from(k), v)
                })
                .collect();
            process::Launch {
                program: PathBuf::from(&cfg.init[0]),
                args,
                env,
                cwd: ws.to_path_buf(),
                drop_to,
                sandboxed: false,
            }
        } else {
            process::Launch {
                program: self.inner.bwrap.clone(),
                args: bwrap::bwrap_args(&layout),
                env: Vec::new(),
                cwd: PathBuf::from("/"),
                drop_to,
                sandboxed: true,
            }
        };
        let quota = workspace
            .and_then(|w| quota::Quota::new(w, limits.workspace_bytes, limits.workspace_entries));
        process::run(launch, pipes, input, limits, cancel, quota, group)
    }
}
