//! One memory cgroup (and pids cgroup) per run, so that every page the run
//! can hold counts against its memory limit.
//!
//! `RLIMIT_AS` only bounds each process's address space: pages behind a
//! memfd, SysV or POSIX shared memory and tmpfs files (`/tmp`, `/dev/shm`)
//! are not address space until mapped, and several processes each get the
//! whole limit. A memory cgroup charges all of them, for the whole tree.
//!
//! Where the groups live: a `p38` subtree under this process's OWN cgroup
//! (found through `/proc/self/cgroup` and `/proc/self/mountinfo`, never a
//! hard-coded path), or a delegated directory the operator names
//! ([`crate::SandboxConfig::cgroup_root`]). Each run gets a child
//! `run-<server pid>-<n>`; its first process (the launcher stub, see
//! `launcher.rs`) is moved in by the server before bubblewrap or the agent
//! runs anything; the group is removed once the run is reaped. Groups left
//! by a server that died are removed when the next one starts.
//!
//! Moving a process into a group waits for an RCU grace period of the
//! kernel (`cgroup_threadgroup_rwsem`), several milliseconds. On v1 the
//! group is therefore made and entered ahead of its run, as
//! `ready-<server pid>-<n>`, and renamed `run-...` when a run takes it
//! (its limits are written then, and its peak reset). v2 cannot rename
//! groups, so there the group is made and entered when the run starts.
//!
//! cgroup v2 (`memory.max`, `memory.swap.max`, `memory.oom.group`,
//! `pids.max`, `memory.peak`, `memory.events`) is used where the host's v2
//! hierarchy has the memory controller; the v1 memory controller
//! (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` where swap is
//! accounted, `memory.max_usage_in_bytes`, `memory.oom_control`) and the v1
//! pids controller otherwise (hybrid layouts mix both).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Name of the subtree created under the server's own cgroup.
const SUBTREE: &str = "p38";
/// cgroup v2: the leaf of its own group the server moves itself into.
const SERVER_LEAF: &str = "p38-server";
/// Prefix of the per-run groups.
const RUN_PREFIX: &str = "run-";
/// Prefix of a group entered ahead of its run (v1, see above).
const READY_PREFIX: &str = "ready-";
/// How long removing a run group is retried while its last tasks exit.
const REMOVE_FOR: Duration = Duration::from_secs(2);
/// Processes of the run's tree that are not the agent's: the outer
/// bubblewrap and the init shim, so `pids.max` grants the agent what
/// `RLIMIT_NPROC` grants it.
const PIDS_OVERHEAD: u64 = 2;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// Which memory controller bounds the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryCgroup {
    /// cgroup v2 (`memory.max`, no swap).
    V2,
    /// cgroup v1; `memsw`: swap is accounted and limited too
    /// (`memory.memsw.limit_in_bytes`).
    V1 {
        /// Whether swap accounting exists (and so is limited to the same value).
        memsw: bool,
    },
}

/// The controllers found usable, and where the run groups go.
#[derive(Debug)]
pub(crate) struct Host {
    memory: MemoryCgroup,
    /// The subtree holding run groups in the memory hierarchy (on v2 the
    /// pids controller lives in the same directories).
    memory_dir: PathBuf,
    /// v1: the subtree in the pids hierarchy; v2: `Some(memory_dir)` when
    /// the pids controller is enabled there.
    pids_dir: Option<PathBuf>,
}

impl Host {
    /// Finds a writable memory controller. `root`: a delegated directory
    /// (an error when it is unusable: the operator asked for it); `None`:
    /// the `p38` subtree under this process's own cgroup (an `Err` with the
    /// reason when there is none, and runs go without).
    pub(crate) fn detect(root: Option<&Path>) -> Result<Host, String> {
        let host = match root {
            Some(r) => delegated(r)?,
            None => own()?,
        };
        host.remove_stale();
        // Prove it works once, with the same code every run uses.
        let trial = host
            .create(false)
            .and_then(|mut g| g.begin(64 << 20, 16).map(|()| g))
            .map_err(|e| format!("cannot create a run cgroup: {e}"))?;
        trial.remove();
        Ok(host)
    }

    /// The memory controller in use.
    pub(crate) fn memory(&self) -> MemoryCgroup {
        self.memory
    }

    /// Whether a pids controller limits the run's tasks too.
    pub(crate) fn has_pids(&self) -> bool {
        self.pids_dir.is_some()
    }

    /// The subtrees run groups are created in.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.memory_dir.clone()];
        if let Some(p) = &self.pids_dir
            && p != &self.memory_dir
        {
            v.push(p.clone());
        }
        v
    }

    /// Whether groups are made and entered ahead of their run (v1, where
    /// a group can be renamed; see above).
    pub(crate) fn prepares_ahead(&self) -> bool {
        matches!(self.memory, MemoryCgroup::V1 { .. })
    }

    /// Creates the group of one run, without its limits (see
    /// [`RunGroup::begin`]), and opens the `cgroup.procs` files its first
    /// process is written into. `ahead`: named `ready-...` until a run
    /// takes it (v1 only).
    pub(crate) fn create(&self, ahead: bool) -> io::Result<RunGroup> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let prefix = if ahead { READY_PREFIX } else { RUN_PREFIX };
        let name = format!(
            "{prefix}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut group = RunGroup {
            memory: self.memory,
            memory_dir: self.memory_dir.join(&name),
            pids_dir: None,
            procs: Vec::new(),
            pids_limit: self.pids_dir.is_some(),
        };
        fs::create_dir(&group.memory_dir)?;
        // From here on, dropping `group` on an error removes what exists.
        let mem = &group.memory_dir;
        if self.memory == MemoryCgroup::V2 {
            // Swap would be memory outside memory.max; one OOM kills the
            // whole group rather than one process of it.
            write_if_present(mem, "memory.swap.max", "0")?;
            write_if_present(mem, "memory.oom.group", "1")?;
        }
        group.procs.push(open_procs(mem)?);
        if let (MemoryCgroup::V1 { .. }, Some(pids)) = (self.memory, &self.pids_dir) {
            let dir = pids.join(&name);
            fs::create_dir(&dir)?;
            group.pids_dir = Some(dir.clone());
            group.procs.push(open_procs(&dir)?);
        }
        Ok(group)
    }

    /// Removes empty run groups whose server process is gone (a crash, a
    /// kill -9); a group that still holds tasks stays.
    fn remove_stale(&self) {
        for dir in self.dirs() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(owner) = name
                    .to_str()
                    .and_then(|n| {
                        n.strip_prefix(RUN_PREFIX)
                            .or_else(|| n.strip_prefix(READY_PREFIX))
                    })
                    .and_then(|n| n.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                let alive =
                    owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists();
                if !alive && fs::remove_dir(e.path()).is_ok() {
                    tracing::info!(group = %e.path().display(), "removed a stale run cgroup");
                }
            }
        }
    }
}

/// The group of one run. Dropping it removes it (see [`RunGroup::remove`]).
#[derive(Debug)]
pub(crate) struct RunGroup {
    memory: MemoryCgroup,
    memory_dir: PathBuf,
    /// v1 only: the run's group in the pids hierarchy.
    pids_dir: Option<PathBuf>,
    /// Open `cgroup.procs` files (memory, then v1 pids) until the run's
    /// first process is in.
    procs: Vec<OwnedFd>,
    /// Whether a pids controller limits the group's tasks.
    pids_limit: bool,
}

/// What the group saw of a finished run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// Highest memory charged to the group, in bytes (`None`: the kernel
    /// does not record it).
    pub peak_bytes: Option<u64>,
    /// The kernel's OOM killer ended a process of the group.
    pub oom_killed: bool,
}

impl RunGroup {
    /// Moves process `pid` (the run's stub, a child of this process that
    /// runs nothing of the agent yet) into the group: every page and task
    /// of the run is charged to it from its exec of bubblewrap on.
    pub(crate) fn enter(&mut self, pid: libc::pid_t) -> io::Result<()> {
        let text = pid.to_string();
        for fd in &self.procs {
            // SAFETY: a write of a buffer we own to an open fd.
            let n = unsafe { libc::write(fd.as_raw_fd(), text.as_ptr().cast(), text.len()) };
            if n != text.len() as isize {
                return Err(io::Error::last_os_error());
            }
        }
        self.procs.clear();
        Ok(())
    }

    /// Makes the group the run's: named `run-...` (when it was made ahead),
    /// its limits written (0: no limit), its peak reset so that it is the
    /// run's own.
    pub(crate) fn begin(&mut self, memory_bytes: u64, processes: u64) -> io::Result<()> {
        let rename = |dir: &mut PathBuf| -> io::Result<()> {
            let Some(rest) = dir
                .file_name()
                .and_then(OsStr::to_str)
                .and_then(|n| n.strip_prefix(READY_PREFIX))
            else {
                return Ok(());
            };
            let to = dir.with_file_name(format!("{RUN_PREFIX}{rest}"));
            fs::rename(&*dir, &to)?;
            *dir = to;
            Ok(())
        };
        rename(&mut self.memory_dir)?;
        if let Some(p) = &mut self.pids_dir {
            rename(p)?;
        }
        let mem = &self.memory_dir;
        let pids_max = (processes + PIDS_OVERHEAD).to_string();
        match self.memory {
            MemoryCgroup::V2 => {
                if memory_bytes > 0 {
                    write(mem, "memory.max", &memory_bytes.to_string())?;
                }
                if self.pids_limit && processes > 0 {
                    write(mem, "pids.max", &pids_max)?;
                }
            }
            MemoryCgroup::V1 { memsw } => {
                if memory_bytes > 0 {
                    let v = memory_bytes.to_string();
                    // memsw may never be below the memory limit: memory first.
                    write(mem, "memory.limit_in_bytes", &v)?;
                    if memsw {
                        write(mem, "memory.memsw.limit_in_bytes", &v)?;
                    }
                }
                // What the stub touched while it waited is not the run's.
                write(mem, "memory.max_usage_in_bytes", "0")?;
                if let Some(dir) = &self.pids_dir
                    && processes > 0
                {
                    write(dir, "pids.max", &pids_max)?;
                }
            }
        }
        Ok(())
    }

    /// Reads the peak and the OOM kills (call after the run is reaped).
    pub(crate) fn usage(&self) -> Usage {
        let mem = &self.memory_dir;
        match self.memory {
            MemoryCgroup::V2 => Usage {
                peak_bytes: read_u64(mem, "memory.peak"),
                oom_killed: keyed(mem, "memory.events", "oom_kill").unwrap_or(0) > 0
                    || keyed(mem, "memory.events", "oom_group_kill").unwrap_or(0) > 0,
            },
            MemoryCgroup::V1 { .. } => Usage {
                peak_bytes: read_u64(mem, "memory.max_usage_in_bytes"),
                // Kernels before 4.13 have no oom_kill count: a hit limit
                // (failcnt) is then the best evidence there is.
                oom_killed: match keyed(mem, "memory.oom_control", "oom_kill") {
                    Some(n) => n > 0,
                    None => read_u64(mem, "memory.failcnt").unwrap_or(0) > 0,
                },
            },
        }
    }

    /// Something that tells, cheaply and while the run goes on, whether the
    /// kernel has OOM-killed a process of the group (`None`: this kernel
    /// does not count OOM kills).
    pub(crate) fn oom_watch(&self) -> Option<OomWatch> {
        let file = match self.memory {
            MemoryCgroup::V2 => "memory.events",
            MemoryCgroup::V1 { .. } => "memory.oom_control",
        };
        let path = self.memory_dir.join(file);
        keyed(&self.memory_dir, file, "oom_kill").map(|_| OomWatch { path })
    }

    /// Kills whatever is still in the group (an insecure run's daemons;
    /// sandboxed runs die with their PID namespace) and removes it,
    /// retrying briefly while the last tasks finish exiting.
    pub(crate) fn remove(mut self) {
        self.procs.clear();
        let dirs: Vec<PathBuf> = [Some(self.memory_dir.clone()), self.pids_dir.clone()]
            .into_iter()
            .flatten()
            .collect();
        let until = Instant::now() + REMOVE_FOR;
        for dir in &dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= until => {
                        tracing::warn!(group = %dir.display(), error = %e, "could not remove a run cgroup; the next start removes it once empty");
                        break;
                    }
                    Err(_) => {
                        kill_members(dir, self.memory);
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        }
        // Nothing left for Drop to do.
        self.memory_dir = PathBuf::new();
        self.pids_dir = None;
    }
}

impl Drop for RunGroup {
    fn drop(&mut self) {
        // Only on an error path before the run (remove() empties the paths).
        self.procs.clear();
        if !self.memory_dir.as_os_str().is_empty() {
            let _ = fs::remove_dir(&self.memory_dir);
        }
        if let Some(p) = &self.pids_dir {
            let _ = fs::remove_dir(p);
        }
    }
}

/// Reads a group's OOM kill count (see [`RunGroup::oom_watch`]).
#[derive(Debug)]
pub(crate) struct OomWatch {
    path: PathBuf,
}

impl OomWatch {
    /// Whether the kernel has OOM-killed a process of the group. One OOM
    /// kill ends the whole run: v1 (and v2 without `memory.oom.group`)
    /// kills a single process, and the rest of the tree would go on
    /// holding what it has.
    pub(crate) fn fired(&self) -> bool {
        let (Some(dir), Some(file)) = (self.path.parent(), self.path.file_name()) else {
            return false;
        };
        keyed(dir, &file.to_string_lossy(), "oom_kill").unwrap_or(0) > 0
    }
}

/// SIGKILLs every task left in a group: through `cgroup.kill` on v2; on v1
/// through a pidfd per listed pid, checked to still be in this group after
/// it was opened, so a reused pid is never signalled.
fn kill_members(dir: &Path, memory: MemoryCgroup) {
    if memory == MemoryCgroup::V2 && write_if_present(dir, "cgroup.kill", "1").unwrap_or(false) {
        return;
    }
    let Ok(list) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    let Some(name) = dir.file_name().and_then(OsStr::to_str) else {
        return;
    };
    let suffix = format!("/{name}");
    for pid in list
        .lines()
        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
    {
        // SAFETY: pidfd_open returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            continue;
        }
        // SAFETY: fd is a fresh pidfd that we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let ours = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|s| s.lines().any(|l| l.ends_with(&suffix)));
        if ours {
            // SAFETY: signalling through a pidfd we own.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<()>(),
                    0,
                )
            };
        }
    }
}

/// The `p38` subtree under this process's own cgroup: v2 when its
/// hierarchy has the memory controller, else v1.
fn own() -> Result<Host, String> {
    let cgroups = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = parse_mountinfo(&mountinfo);
    let own = parse_cgroups(&cgroups);
    let v2 = match own_dir(&own, &mounts, None) {
        Some(dir) => v2_own(&dir),
        None => Err("no cgroup v2 hierarchy".to_string()),
    };
    let v2_why = match v2 {
        Ok(h) => return Ok(h),
        Err(why) => why,
    };
    let Some(mem) = own_dir(&own, &mounts, Some("memory")) else {
        return Err(format!(
            "no memory cgroup controller ({v2_why}; no cgroup v1 memory hierarchy is mounted)"
        ));
    };
    let memory_dir = mem.join(SUBTREE);
    mkdir(&memory_dir).map_err(|e| {
        format!(
            "the cgroup v1 memory controller is not writable ({}: {e}); set P38_CGROUP_ROOT to a delegated cgroup",
            memory_dir.display()
        )
    })?;
    let pids_dir = own_dir(&own, &mounts, Some("pids"))
        .map(|d| d.join(SUBTREE))
        .filter(|d| mkdir(d).is_ok());
    Ok(Host {
        memory: MemoryCgroup::V1 {
            memsw: mem.join("memory.memsw.limit_in_bytes").exists(),
        },
        memory_dir,
        pids_dir,
    })
}

/// The `p38` subtree of the server's own v2 group. v2 gives controllers to
/// the children of a group only while it holds no processes, so the server
/// first moves itself into a leaf of its own group (as systemd's
/// `Delegate=` expects of a service).
fn v2_own(dir: &Path) -> Result<Host, String> {
    // A server that moved itself earlier (another Sandbox of this process)
    // starts from the group above its leaf.
    let dir = match dir.file_name() {
        Some(n) if n == SERVER_LEAF => dir.parent().unwrap_or(dir),
        _ => dir,
    };
    let first = match v2_host(dir, &dir.join(SUBTREE)) {
        Ok(h) => return Ok(h),
        Err(why) => why,
    };
    let has_memory = fs::read_to_string(dir.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
    let leaf = dir.join(SERVER_LEAF);
    if !has_memory
        || mkdir(&leaf)
            .and_then(|()| write(&leaf, "cgroup.procs", "0"))
            .is_err()
    {
        return Err(first);
    }
    v2_host(dir, &dir.join(SUBTREE))
}

/// A directory the operator delegated: its filesystem says which version.
fn delegated(root: &Path) -> Result<Host, String> {
    let bad = |why: String| format!("P38_CGROUP_ROOT {}: {why}", root.display());
    let magic = fs_magic(root).map_err(|e| bad(format!("{e}")))?;
    if magic == CGROUP2_SUPER_MAGIC {
        return v2_host(root, root).map_err(bad);
    }
    if magic != CGROUP_SUPER_MAGIC {
        return Err(bad("not a directory of a cgroup filesystem".into()));
    }
    if !root.join("memory.limit_in_bytes").exists() {
        return Err(bad(
            "not in the cgroup v1 memory hierarchy (no memory.limit_in_bytes)".into(),
        ));
    }
    // The pids group goes at the same place in the pids hierarchy.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse_mountinfo(&mountinfo);
    let pids_dir = mounts
        .iter()
        .filter(|m| m.fstype == "cgroup" && root.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .and_then(|m| root.strip_prefix(&m.point).ok())
        .and_then(|rel| {
            mounts
                .iter()
                .find(|m| m.fstype == "cgroup" && m.has_option("pids"))
                .map(|p| p.point.join(rel))
        })
        .filter(|d| mkdir(d).is_ok());
    Ok(Host {
        memory: MemoryCgroup::V1 {
            memsw: root.join("memory.memsw.limit_in_bytes").exists(),
        },
        memory_dir: root.to_path_buf(),
        pids_dir,
    })
}

/// A v2 subtree `dir` under `parent`: the memory controller must be
/// available to `parent`'s children, and then to `dir`'s (v2 gives
/// controllers to children only of groups that hold no processes).
fn v2_host(parent: &Path, dir: &Path) -> Result<Host, String> {
    let available = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| available.split_whitespace().any(|x| x == c);
    if !has("memory") {
        return Err(format!(
            "the cgroup v2 group {} has no memory controller",
            parent.display()
        ));
    }
    let wanted: &[&str] = if has("pids") {
        &["memory", "pids"]
    } else {
        &["memory"]
    };
    let enable = |group: &Path| -> io::Result<()> {
        let on = fs::read_to_string(group.join("cgroup.subtree_control")).unwrap_or_default();
        for c in wanted {
            if !on.split_whitespace().any(|x| x == *c) {
                write(group, "cgroup.subtree_control", &format!("+{c}"))?;
            }
        }
        Ok(())
    };
    if parent != dir {
        enable(parent).map_err(|e| {
            format!(
                "cannot give the memory controller to the children of {} ({e}; a cgroup v2 group that holds processes cannot): set P38_CGROUP_ROOT to a delegated, empty cgroup",
                parent.display()
            )
        })?;
        mkdir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    enable(dir).map_err(|e| {
        format!(
            "cannot give the memory controller to the children of {}: {e}",
            dir.display()
        )
    })?;
    Ok(Host {
        memory: MemoryCgroup::V2,
        memory_dir: dir.to_path_buf(),
        pids_dir: wanted.contains(&"pids").then(|| dir.to_path_buf()),
    })
}

/// One line of `/proc/self/cgroup`: `id:controllers:path`.
#[derive(Debug, PartialEq, Eq)]
struct Membership {
    /// Empty for the v2 hierarchy (id 0).
    controllers: Vec<String>,
    path: String,
}

fn parse_cgroups(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// A cgroup mount from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    /// The mount's root within its hierarchy.
    root: String,
    point: PathBuf,
    fstype: String,
    options: String,
}

impl Mount {
    fn has_option(&self, o: &str) -> bool {
        self.options.split(',').any(|x| x == o)
    }
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let fstype = *r.first()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Mount {
                root: unescape(f.get(3)?),
                point: PathBuf::from(unescape(f.get(4)?)),
                fstype: fstype.to_string(),
                options: r.get(2).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's directory in the hierarchy holding `controller` (`None`:
/// the v2 hierarchy).
fn own_dir(own: &[Membership], mounts: &[Mount], controller: Option<&str>) -> Option<PathBuf> {
    let member = own.iter().find(|m| match controller {
        None => m.controllers.is_empty(),
        Some(c) => m.controllers.iter().any(|x| x == c),
    })?;
    mounts
        .iter()
        .filter(|m| match controller {
            None => m.fstype == "cgroup2",
            Some(c) => m.fstype == "cgroup" && m.has_option(c),
        })
        .find_map(|m| {
            let root = m.root.trim_end_matches('/');
            let rel = member.path.strip_prefix(root)?;
            // "/a" is the root of "/a/b", not of "/ab".
            if !rel.is_empty() && !rel.starts_with('/') {
                return None;
            }
            Some(m.point.join(rel.trim_start_matches('/')))
        })
}

fn fs_magic(p: &Path) -> io::Result<i64> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs fills a plain struct; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

fn mkdir(p: &Path) -> io::Result<()> {
    match fs::create_dir(p) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(file).display())))
}

/// Writes when the file exists (controllers and kernels differ); returns
/// whether it did.
fn write_if_present(dir: &Path, file: &str, value: &str) -> io::Result<bool> {
    if !dir.join(file).exists() {
        return Ok(false);
    }
    write(dir, file, value).map(|()| true)
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// The number after `key` in a `key value` per line file.
fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

fn open_procs(dir: &Path) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open with a NUL-terminated path; the fd is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/api/cb50\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_own_groups_in_a_hybrid_layout() {
        let own = parse_cgroups(HYBRID_CGROUP);
        let mounts = parse_mountinfo(HYBRID_MOUNTS);
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            own_dir(&own, &mounts, Some("memory")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/api/cb50"))
        );
        assert_eq!(
            own_dir(&own, &mounts, Some("pids")),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(
            own_dir(&own, &mounts, None),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(own_dir(&own, &mounts, Some("cpu")), None);
    }

    #[test]
    fn a_mount_of_a_subtree_maps_paths_below_its_root() {
        let own = parse_cgroups("0::/system.slice/p38.service\n");
        let mounts =
            parse_mountinfo("50 1 0:40 /system.slice /mnt/cg\\040x rw - cgroup2 cgroup2 rw\n");
        assert_eq!(
            own_dir(&own, &mounts, None),
            Some(PathBuf::from("/mnt/cg x/p38.service"))
        );
        let elsewhere = parse_cgroups("0::/user.slice\n");
        assert_eq!(own_dir(&elsewhere, &mounts, None), None);
    }

    #[test]
    fn keyed_files_are_read_by_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .unwrap();
        assert_eq!(keyed(dir.path(), "memory.oom_control", "oom_kill"), Some(3));
        assert_eq!(keyed(dir.path(), "memory.oom_control", "missing"), None);
    }
}
