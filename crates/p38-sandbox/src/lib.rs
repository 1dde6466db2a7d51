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
//!   memory and pids controllers), entered before bubblewrap starts: the
//!   run's first process is a stub of the init program, spawned without
//!   forking the server and (v1) moved into a fresh group ahead of the run
//!   (`launcher.rs`), which then execs bubblewrap. Its memory limit charges every page the tree holds
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
mod fdwalk;
mod image;
pub mod init;
mod iopump;
mod landlock;
mod launcher;
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
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{
    CancelFlag, Captured, Gained, Limits, LiveOutput, MAX_TIMED_LINES, RunOutcome, RunRequest,
    SandboxConfig,
};
pub use error::SandboxError;
pub use layers::{Layers, MemoryCgroup};

/// Finds bubblewrap as [`Sandbox::new`] does: `configured` is a path, or a
/// bare name (`bwrap`) looked up on `PATH`. The error says how to install it.
pub fn find_bubblewrap(configured: &Path) -> Result<PathBuf, SandboxError> {
    probe::find_bwrap(configured)
}
pub use quota::WorkspaceUsage;

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
    cgroups: Option<Arc<cgroup::Host>>,
    /// Starts each run's first process (see launcher.rs).
    launcher: launcher::Launcher,
    /// Workspaces are ext4 images (asked for, and the host can).
    images: bool,
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
        let cgroups = probe::cgroups(config.cgroup_root.as_deref())?.map(Arc::new);
        let launcher = launcher::Launcher::new(&config.init, cgroups.clone());
        let images = config.workspace_images
            && match image::probe() {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(
                        "p38-sandbox: workspaces are plain folders whose quota is measured by walking them, not ext4 images: {why}"
                    );
                    false
                }
            };
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                config,
                bwrap,
                drop_to,
                cgroups,
                launcher,
                images,
            }),
        };
        if !sandbox.inner.config.insecure_no_sandbox {
            probe::run_probe(&sandbox)?;
        } else {
            tracing::warn!("p38-sandbox: insecure_no_sandbox is set: agents run WITHOUT a sandbox");
        }
        Ok(sandbox)
    }

    /// Whether each workspace is its own ext4 image (see
    /// [`SandboxConfig::workspace_images`]); `false` when it was not asked
    /// for or the host cannot (a warning at start said why).
    pub fn workspace_images(&self) -> bool {
        self.inner.images
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
            memory: cg.map(|h| h.memory()),
            pids: cg.is_some_and(|h| h.has_pids()),
        }
    }

    /// The cgroup directories run groups (`run-<pid>-<n>`, `<pid>` this
    /// process's) are created in, one per hierarchy; empty without cgroups.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.inner
            .cgroups
            .as_ref()
            .map(|h| h.dirs())
            .unwrap_or_default()
    }

    /// Runs one program to completion on a blocking thread. `Ok` whenever the
    /// program started, whatever its exit status (including timeouts and
    /// cancellation); `Err` when it could not be started or sandbox setup
    /// failed for this run.
    pub async fn run(&self, req: RunRequest) -> Result<RunOutcome, SandboxError> {
        self.run_live(req, LiveOutput::new()).await
    }

    /// [`Sandbox::run`], with what the program writes readable in `live`
    /// while it runs.
    pub async fn run_live(
        &self,
        req: RunRequest,
        live: LiveOutput,
    ) -> Result<RunOutcome, SandboxError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run_blocking_live(req, live))
            .await
            .map_err(|e| SandboxError::Spawn(format!("the run's thread failed: {e}")))?
    }

    /// The synchronous form of [`Sandbox::run`] (blocks the calling thread).
    pub fn run_blocking(&self, req: RunRequest) -> Result<RunOutcome, SandboxError> {
        self.run_blocking_live(req, LiveOutput::new())
    }

    /// The synchronous form of [`Sandbox::run_live`].
    pub fn run_blocking_live(
        &self,
        req: RunRequest,
        live: LiveOutput,
    ) -> Result<RunOutcome, SandboxError> {
        let script = std::path::absolute(&req.script)?;
        if !script.is_file() {
            return Err(SandboxError::Spawn(format!(
                "script {} is not a file",
                script.display()
            )));
        }
        let workspace = std::path::absolute(&req.workspace)?;
        let drop_to = self.drop_to(req.run_as)?;
        let prepared = workspace::prepare(&workspace, drop_to, self.image_quota(&req.limits))?;
        self.launch(
            drop_to,
            Some(&script),
            Some((&workspace, &prepared)),
            req.network,
            &req.limits,
            req.input,
            &req.cancel,
            live,
        )
    }

    /// Makes the workspace at `path` ready as a run does, without running
    /// anything: its image mounted (when workspaces are images here) or its
    /// folder created. For a caller that fills the workspace itself before
    /// the run (a workspace carried from another host), and then calls
    /// [`Sandbox::hand_over_workspace`].
    pub fn open_workspace(
        &self,
        path: &Path,
        limits: &Limits,
        run_as: Option<(u32, u32)>,
    ) -> Result<(), SandboxError> {
        let path = std::path::absolute(path)?;
        workspace::prepare(&path, self.drop_to(run_as)?, self.image_quota(limits))?;
        Ok(())
    }

    /// Gives everything in the workspace at `path` to the uid that runs of
    /// `run_as` use, as a run does on a workspace's first use, without
    /// following links or touching multiply-linked files: for files the
    /// host wrote into it. A no-op when runs keep the caller's uid.
    pub fn hand_over_workspace(
        &self,
        path: &Path,
        run_as: Option<(u32, u32)>,
    ) -> Result<(), SandboxError> {
        if let Some((uid, gid)) = self.drop_to(run_as)? {
            workspace::hand_over(&std::path::absolute(path)?, uid, gid)?;
        }
        Ok(())
    }

    /// The uid/gid a run of `run_as` gets: `run_as` when the caller is
    /// root, else none (the run keeps the caller's).
    fn drop_to(&self, run_as: Option<(u32, u32)>) -> Result<Option<(u32, u32)>, SandboxError> {
        match (self.inner.drop_to, run_as) {
            (Some(_), Some((0, _))) => Err(SandboxError::Spawn("run_as uid must not be 0".into())),
            (Some(_), Some(ids)) => Ok(Some(ids)),
            (d, _) => Ok(d),
        }
    }

    /// The image a workspace of `limits` is, when workspaces are images here.
    fn image_quota(&self, limits: &Limits) -> Option<workspace::ImageQuota> {
        (self.inner.images && limits.workspace_bytes > 0).then_some(workspace::ImageQuota {
            bytes: limits.workspace_bytes,
            entries: limits.workspace_entries,
        })
    }

    /// Builds the command line and runs it (also used by the probe, with no
    /// script and no workspace).
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        drop_to: Option<(u32, u32)>,
        script: Option<&Path>,
        workspace: Option<(&Path, &workspace::Prepared)>,
        network: bool,
        limits: &Limits,
        input: Vec<u8>,
        cancel: &CancelFlag,
        live: LiveOutput,
    ) -> Result<RunOutcome, SandboxError> {
        let cfg = &self.inner.config;
        let pipes = process::Pipes::new()?;
        use std::os::fd::AsRawFd;
        // Opened as root, before the uid switch (see bwrap::Layout).
        let script_fd = script.map(open_read).transpose()?;
        let init_fd = open_path(Path::new(&cfg.init[0]))?;
        let workspace_fd = workspace
            .map(|(_, p)| process::high_fd(p.dir.try_clone()?))
            .transpose()?;
        let raw = |fd: &std::os::fd::OwnedFd| fd.as_raw_fd();
        let layout = bwrap::Layout {
            python: &cfg.python,
            python_prefix: cfg.python_prefix.as_deref(),
            init_args: &cfg.init[1..],
            script,
            workspace: workspace.map(|(p, _)| p),
            script_fd: script_fd.as_ref().map(raw),
            init_fd: raw(&init_fd),
            workspace_fd: workspace_fd.as_ref().map(raw),
            network,
            limits,
            input_fd: pipes.child_input.as_raw_fd(),
            reply_fd: pipes.child_reply.as_raw_fd(),
            info_fd: pipes.child_info.as_raw_fd(),
            status_fd: pipes.child_status.as_raw_fd(),
            memory_sinks: self.inner.cgroups.is_some(),
        };
        let launch = if cfg.insecure_no_sandbox {
            let ws = workspace.map(|(p, _)| p).unwrap_or(Path::new("/"));
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
                pass_fds: Vec::new(),
            }
        } else {
            process::Launch {
                program: self.inner.bwrap.clone(),
                args: bwrap::bwrap_args(&layout),
                env: Vec::new(),
                cwd: PathBuf::from("/"),
                drop_to,
                sandboxed: true,
                pass_fds: [script_fd, Some(init_fd), workspace_fd]
                    .into_iter()
                    .flatten()
                    .collect(),
            }
        };
        let quota = workspace.and_then(|(_, p)| {
            quota::Quota::new(
                p.dir.clone(),
                p.measure,
                limits.workspace_bytes,
                limits.workspace_entries,
            )
        });
        process::run(
            launch,
            pipes,
            input,
            limits,
            cancel,
            quota,
            &self.inner.launcher,
            live,
        )
    }
}

/// An `O_PATH` fd of `path` above 10 (see process.rs), for `--ro-bind-fd`.
fn open_path(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    open_fd(path, libc::O_PATH)
}

/// A readable fd of `path` above 10, for `--ro-bind-data`.
fn open_read(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    open_fd(path, 0)
}

fn open_fd(path: &Path, flags: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
    process::high_fd(file.into())
}

/// Removes the workspace at `path`: unmounts and deletes its image when it
/// has one, then deletes the folder (without following links). `Ok(false)`
/// when there was nothing to remove. A run still using it keeps its view
/// until it ends. Needs no [`Sandbox`], so a server without one can call it.
pub fn remove_workspace(path: &Path) -> Result<bool, SandboxError> {
    Ok(image::remove(&std::path::absolute(path)?)?)
}

/// What the workspace at `path` holds now: one `fstatfs` when it is a
/// mounted image, else a walk of the folder (`None` then when something in
/// it cannot be read).
pub fn workspace_usage(path: &Path) -> Result<Option<WorkspaceUsage>, SandboxError> {
    Ok(quota::usage(&std::path::absolute(path)?)?)
}
