//! Builds the command lines: bubblewrap's argv and the init shim's argv.
//!
//! Pure functions (apart from looking at the host's root layout) so the exact
//! flags can be unit-tested. Flags were checked against `bwrap --help` of
//! bubblewrap 0.8: `--size` must come right before `--tmpfs`, and
//! `--disable-userns` needs `--unshare-user`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::config::Limits;

/// Fd number the shim moves the input pipe's read end to before exec'ing
/// Python. The pipes are inherited at arbitrary numbers (passed on the shim's
/// argv) because only the single-threaded shim can safely rearrange fds.
pub(crate) const CHILD_INPUT_FD: i32 = 3;
/// Fd number the shim moves the reply pipe's write end to.
pub(crate) const CHILD_REPLY_FD: i32 = 4;

/// Where the script and the workspace appear inside the sandbox (the shim
/// is executed through its fd and appears nowhere).
pub(crate) const INNER_SCRIPT: &str = "/p38/main.py";
pub(crate) const INNER_WORKSPACE: &str = "/workspace";

/// Files from `/etc` exposed only when the network is shared, so name
/// resolution and TLS work.
const NETWORK_ETC: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
];

/// Top-level directories that are symlinks into /usr on merged-/usr hosts and
/// real directories on others.
const ROOT_DIRS: &[&str] = &["bin", "lib", "lib64", "lib32", "libx32", "sbin"];

/// Everything needed to lay out one sandbox.
pub(crate) struct Layout<'a> {
    pub python: &'a Path,
    pub python_prefix: Option<&'a Path>,
    /// Extra leading args of the init shim (e.g. `__sandbox-init`).
    pub init_args: &'a [OsString],
    /// `None` in probe mode: no script, no workspace.
    pub script: Option<&'a Path>,
    pub workspace: Option<&'a Path>,
    /// Fds (in bwrap's fd table) of the script (opened for reading, its
    /// bytes copied in), the init program (`O_PATH`) and the workspace
    /// (its folder), opened by the server before the uid switch. Note that
    /// bubblewrap 0.8 `realpath`s a `--bind-fd` source and resolves that
    /// path again as the sandbox uid, so the init program and the
    /// workspace must still be reachable by that uid.
    pub script_fd: Option<i32>,
    pub init_fd: i32,
    pub workspace_fd: Option<i32>,
    pub network: bool,
    pub limits: &'a Limits,
    /// Fds (in bwrap's fd table) the shim must move to 3 and 4.
    pub input_fd: i32,
    pub reply_fd: i32,
    /// Fd (in bwrap's fd table) for `--info-fd`.
    pub info_fd: i32,
    /// Fd (in bwrap's fd table) of the shim's status pipe: where it reports
    /// a setup failure, or that the program started (see `init.rs`).
    pub status_fd: i32,
    /// Whether the agent may create memory that is not address space
    /// (memfd_create, shmget). False when no memory cgroup bounds the run:
    /// `RLIMIT_AS` alone would not count those pages.
    pub memory_sinks: bool,
}

fn os(s: impl AsRef<OsStr>) -> OsString {
    s.as_ref().to_owned()
}

/// The arguments of bwrap (without the program name itself).
pub(crate) fn bwrap_args(l: &Layout<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&OsStr]| a.extend(items.iter().map(os));
    push(&[
        "--unshare-user".as_ref(),
        "--unshare-pid".as_ref(),
        "--unshare-ipc".as_ref(),
        "--unshare-uts".as_ref(),
        "--unshare-cgroup-try".as_ref(),
    ]);
    if !l.network {
        push(&["--unshare-net".as_ref()]);
    }
    // bwrap reports the host pid of the sandbox's PID 1 there; the watchdog
    // signals that process (see process.rs).
    let info_fd = l.info_fd.to_string();
    push(&["--info-fd".as_ref(), info_fd.as_ref()]);
    push(&[
        "--die-with-parent".as_ref(),
        // The init shim is PID 1 and reaps (see reaper.rs).
        "--as-pid-1".as_ref(),
        "--new-session".as_ref(),
        "--clearenv".as_ref(),
        "--disable-userns".as_ref(),
        // Held only inside the sandbox's user namespace, by the init shim,
        // which uses them to remount the writable mounts noexec and then
        // drops every capability before Python (see privileges.rs).
        "--cap-add".as_ref(),
        "CAP_SYS_ADMIN".as_ref(),
        "--cap-add".as_ref(),
        "CAP_SETPCAP".as_ref(),
        "--hostname".as_ref(),
        "p38-sandbox".as_ref(),
        "--ro-bind".as_ref(),
        "/usr".as_ref(),
        "/usr".as_ref(),
    ]);
    for name in ROOT_DIRS {
        let host = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    push(&["--symlink".as_ref(), target.as_os_str(), host.as_os_str()]);
                }
            }
            Ok(m) if m.is_dir() => {
                push(&["--ro-bind".as_ref(), host.as_os_str(), host.as_os_str()]);
            }
            _ => {}
        }
    }
    if let Some(prefix) = l.python_prefix {
        push(&["--ro-bind".as_ref(), prefix.as_os_str(), prefix.as_os_str()]);
    }
    if l.network {
        for p in NETWORK_ETC {
            push(&["--ro-bind-try".as_ref(), p.as_ref(), p.as_ref()]);
        }
    }
    let tmp_size = l.limits.tmp_bytes.max(4096).to_string();
    let shm_size = (l.limits.tmp_bytes / 4).max(1 << 20).to_string();
    push(&[
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--size".as_ref(),
        tmp_size.as_ref(),
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
        // POSIX shared memory and semaphores (Python's multiprocessing
        // locks and queues): a private tmpfs, a quarter of /tmp's size,
        // since tmpfs pages are memory outside the agent's RLIMIT_AS.
        "--size".as_ref(),
        shm_size.as_ref(),
        "--tmpfs".as_ref(),
        "/dev/shm".as_ref(),
    ]);
    if let Some(fd) = l.script_fd {
        // A copy of the script's bytes (it is small): read from the fd, so
        // the sandbox uid never resolves its host path, and the mount
        // table inside names a file on bwrap's own tmpfs, not the data dir.
        let fd = fd.to_string();
        push(&[
            "--perms".as_ref(),
            "0444".as_ref(),
            "--ro-bind-data".as_ref(),
            fd.as_ref(),
            INNER_SCRIPT.as_ref(),
        ]);
    }
    match l.workspace_fd {
        Some(fd) => {
            let fd = fd.to_string();
            push(&[
                "--bind-fd".as_ref(),
                fd.as_ref(),
                INNER_WORKSPACE.as_ref(),
                "--chdir".as_ref(),
                INNER_WORKSPACE.as_ref(),
            ])
        }
        None => push(&["--chdir".as_ref(), "/".as_ref()]),
    }
    for (k, v) in inner_env() {
        push(&["--setenv".as_ref(), k.as_ref(), v.as_ref()]);
    }
    // The init program is executed through its inherited fd rather than
    // bound in: a bind mount would put the binary's host path in the
    // sandbox's /proc/self/mountinfo. Through /proc's magic link nothing of
    // the host's layout is mounted, and PID 1 makes itself non-dumpable so
    // its /proc/1/exe cannot be read either (see reaper.rs).
    let init = format!("/proc/self/fd/{}", l.init_fd);
    push(&["--".as_ref(), init.as_ref()]);
    a.extend(l.init_args.iter().cloned());
    a.extend(init_args(l, true));
    a
}

/// The only environment Python sees.
pub(crate) fn inner_env() -> [(&'static str, &'static str); 6] {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", INNER_WORKSPACE),
        ("TMPDIR", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONUNBUFFERED", "1"),
    ]
}

/// The shim's own arguments: limits, fds, landlock paths, then `--` and the
/// Python command. `sandboxed == false` produces the insecure-mode form
/// (no landlock/seccomp, Python runs the host script path).
pub(crate) fn init_args(l: &Layout<'_>, sandboxed: bool) -> Vec<OsString> {
    let lim = l.limits;
    let mut a: Vec<OsString> = Vec::new();
    let mut kv = |k: &str, v: String| {
        a.push(os(k));
        a.push(os(v));
    };
    kv("--input-fd", l.input_fd.to_string());
    kv("--reply-fd", l.reply_fd.to_string());
    kv("--status-fd", l.status_fd.to_string());
    kv("--cpu", lim.cpu_seconds.to_string());
    kv("--as", lim.memory_bytes.to_string());
    kv("--fsize", lim.file_size_bytes.to_string());
    kv("--nofile", lim.open_files.to_string());
    kv("--nproc", lim.processes.to_string());
    if !l.memory_sinks {
        a.push(os("--no-memory-sinks"));
    }
    if !sandboxed {
        a.push(os("--insecure"));
    } else {
        for p in landlock_rx(l) {
            a.push(os("--rx"));
            a.push(p.into_os_string());
        }
        // /etc holds only what the sandbox puts there: the resolver and CA
        // files with the network, a localhost-only hosts file without.
        for p in ["/proc", "/dev", "/p38", "/etc"] {
            a.push(os("--ro"));
            a.push(os(p));
        }
        let mut rw = vec![
            "/tmp",
            "/dev/shm",
            "/dev/null",
            "/dev/zero",
            "/dev/urandom",
            "/dev/random",
        ];
        if l.workspace.is_some() {
            rw.insert(0, INNER_WORKSPACE);
        }
        for p in rw {
            a.push(os("--rw"));
            a.push(os(p));
        }
        // Every writable mount: nothing written in the run can be executed
        // or mapped executable (see privileges.rs).
        let mut noexec = vec!["/tmp", "/dev/shm"];
        if l.workspace.is_some() {
            noexec.push(INNER_WORKSPACE);
        }
        for p in noexec {
            a.push(os("--noexec"));
            a.push(os(p));
        }
        if !l.memory_sinks {
            a.push(os("--no-memory-sinks"));
        }
        a.push(os("--profile"));
        a.push(os(crate::seccomp::Profile::Agent.name()));
    }
    if l.script.is_none() {
        a.push(os("--probe"));
    }
    a.push(os("--"));
    a.push(os(l.python));
    a.push(os("-I"));
    a.push(os("-S"));
    match (sandboxed, l.script) {
        // Probe: prove the interpreter starts inside the sandbox.
        (_, None) => a.extend([os("-c"), os("pass")]),
        (true, Some(_)) => a.push(os(INNER_SCRIPT)),
        (false, Some(s)) => a.push(os(s)),
    }
    a
}

/// Read+execute paths for landlock: the read-only system (`/usr`, and the
/// top-level directories that are real directories on hosts without merged
/// `/usr`) and the interpreter prefix. Nothing writable. (The init program
/// is already running when the rules apply and never executes again.)
fn landlock_rx(l: &Layout<'_>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["/usr", "/bin", "/lib", "/lib64", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(p) = l.python_prefix {
        v.push(p.to_path_buf());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout<'a>(limits: &'a Limits, network: bool) -> Layout<'a> {
        Layout {
            python: Path::new("/usr/bin/python3"),
            python_prefix: None,
            init_args: &[],
            script: Some(Path::new("/srv/a.py")),
            workspace: Some(Path::new("/srv/ws")),
            script_fd: Some(11),
            init_fd: 12,
            workspace_fd: Some(13),
            network,
            limits,
            input_fd: 7,
            reply_fd: 8,
            info_fd: 9,
            status_fd: 10,
            memory_sinks: true,
        }
    }

    fn joined(v: &[OsString]) -> String {
        v.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn offline_args_unshare_net_and_size_precedes_tmpfs() {
        let limits = Limits::default();
        let s = joined(&bwrap_args(&layout(&limits, false)));
        assert!(s.contains("--unshare-net"), "{s}");
        assert!(
            s.contains(&format!("--size {} --tmpfs /tmp", 64 << 20)),
            "{s}"
        );
        assert!(
            s.contains(&format!("--size {} --tmpfs /dev/shm", 16 << 20)),
            "{s}"
        );
        assert!(s.contains("--rw /dev/shm"), "{s}");
        assert!(s.contains("--ro-bind-data 11 /p38/main.py"), "{s}");
        assert!(
            !s.contains("--ro-bind-fd 12"),
            "the init is not mounted: {s}"
        );
        assert!(s.contains("-- /proc/self/fd/12 "), "{s}");
        assert!(
            s.contains("--bind-fd 13 /workspace --chdir /workspace"),
            "{s}"
        );
        assert!(
            !s.contains("/srv"),
            "no host path is resolved by bwrap: {s}"
        );
        assert!(!s.contains("--ro-bind-try /etc"), "{s}");
        assert!(s.ends_with("-- /usr/bin/python3 -I -S /p38/main.py"), "{s}");
    }

    #[test]
    fn without_a_memory_cgroup_the_shim_is_told_to_refuse_memory_sinks() {
        let limits = Limits::default();
        let mut l = layout(&limits, false);
        assert!(!joined(&bwrap_args(&l)).contains("--no-memory-sinks"));
        l.memory_sinks = false;
        let s = joined(&init_args(&l, true));
        assert!(s.contains("--no-memory-sinks"), "{s}");
    }

    #[test]
    fn network_args_share_net_and_resolver_files() {
        let limits = Limits::default();
        let s = joined(&bwrap_args(&layout(&limits, true)));
        assert!(!s.contains("--unshare-net"), "{s}");
        assert!(
            s.contains("--ro-bind-try /etc/resolv.conf /etc/resolv.conf"),
            "{s}"
        );
        assert!(s.contains("--ro /etc"), "{s}");
        assert!(!s.contains("--rx /etc"), "{s}");
    }

    #[test]
    fn writable_mounts_are_noexec_and_only_the_system_executes() {
        let limits = Limits::default();
        let mut l = layout(&limits, false);
        let s = joined(&bwrap_args(&l));
        assert!(
            s.contains("--cap-add CAP_SYS_ADMIN --cap-add CAP_SETPCAP"),
            "{s}"
        );
        for p in ["/tmp", "/dev/shm", "/workspace"] {
            assert!(s.contains(&format!("--noexec {p}")), "{s}");
            assert!(!s.contains(&format!("--rx {p}")), "{s}");
        }
        assert!(!s.contains("/p38/init"), "{s}");
        assert!(s.contains("--ro /p38 "), "{s}");
        assert!(s.contains("--status-fd 10"), "{s}");
        assert!(!s.contains("--no-memory-sinks"), "{s}");
        l.memory_sinks = false;
        let s = joined(&bwrap_args(&l));
        assert!(s.contains("--no-memory-sinks"), "{s}");
    }
}
