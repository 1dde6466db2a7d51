//! Starting the process tree, feeding/capturing its pipes, enforcing the
//! wall-clock deadline and reaping it with `wait4` (for rusage), inside the
//! run's cgroup when there is one.
//!
//! The first process is started through a launcher stub (see
//! `launcher.rs`), not a fork of this process.
//!
//! Threads: the calling (blocking) thread spawns, waits and reaps; one I/O
//! thread polls all pipes (non-blocking, so a leftover writer can never hang
//! the run); one watchdog thread ends the run at the deadline or on cancel.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cgroup::{self, RunGroup};
use crate::config::{CancelFlag, Captured, Limits, LiveOutput, RunOutcome};
use crate::error::SandboxError;
use crate::iopump;
use crate::launcher::{self, Launcher};

/// The two extra pipes; `child_*` are the ends the child inherits (their fd
/// numbers go on the init shim's argv).
pub(crate) struct Pipes {
    pub child_input: OwnedFd,
    pub child_reply: OwnedFd,
    /// Write end for bwrap's `--info-fd` (unused in insecure mode).
    pub child_info: OwnedFd,
    /// Write end of the init shim's status pipe (see `init.rs`).
    pub child_status: OwnedFd,
    parent_input: OwnedFd,
    parent_reply: OwnedFd,
    parent_info: OwnedFd,
    parent_status: OwnedFd,
}

impl Pipes {
    pub(crate) fn new() -> io::Result<Pipes> {
        let (in_r, in_w) = pipe()?;
        let (rep_r, rep_w) = pipe()?;
        let (info_r, info_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        Ok(Pipes {
            // Child ends are moved above 10 so std's stdio setup (dup2 onto
            // 0..2 in the child) can never clobber them even when the
            // server runs with a closed stdin/stdout.
            child_input: high_fd(in_r)?,
            child_reply: high_fd(rep_w)?,
            child_info: high_fd(info_w)?,
            child_status: high_fd(status_w)?,
            parent_input: in_w,
            parent_reply: rep_r,
            parent_info: info_r,
            parent_status: status_r,
        })
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array; checked below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(crate) fn high_fd(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd we then own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: n is a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// What to execute.
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment (the server's is never inherited).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// Switch to this uid/gid before exec (caller is root).
    pub drop_to: Option<(u32, u32)>,
    pub sandboxed: bool,
    /// Further fds the child inherits (bwrap's `--bind-fd` sources, see
    /// workspace.rs), above 10 like the pipes' ends.
    pub pass_fds: Vec<OwnedFd>,
}

use crate::quota::Quota;
use crate::watchdog::{self, END_CANCEL, END_MEMORY, END_NONE, END_TIMEOUT, END_WORKSPACE_FULL};

/// Runs to completion. Returns `Err` only when the process could not be
/// started or the init shim / bubblewrap reported a setup failure.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    launch: Launch,
    pipes: Pipes,
    input: Vec<u8>,
    limits: &Limits,
    cancel: &CancelFlag,
    quota: Option<Quota>,
    launcher: &Launcher,
    live: LiveOutput,
) -> Result<RunOutcome, SandboxError> {
    // A run cancelled before it started (its task was cancelled, or its
    // agent deleted, while the worker was loading it) never starts. A
    // cancel after this check is the watchdog's to handle.
    if cancel.is_cancelled() {
        return Ok(RunOutcome {
            cancelled: true,
            sandboxed: launch.sandboxed,
            memory_cgroup: launcher.has_cgroups(),
            ..Default::default()
        });
    }
    // A workspace already over its quota does not run until the quota is
    // raised: otherwise every run could add to it.
    if quota.as_ref().is_some_and(Quota::exceeded) {
        return Ok(RunOutcome {
            workspace_full: true,
            sandboxed: launch.sandboxed,
            memory_cgroup: launcher.has_cgroups(),
            ..Default::default()
        });
    }
    // The watchdog checks while the run goes on; this copy checks once more
    // at the end, for runs shorter than one check interval.
    let final_quota = quota.clone();
    let start = Instant::now();
    let (stdout, stdout_w) = pipe()?;
    let (stderr, stderr_w) = pipe()?;
    let mut fds = vec![(stdout_w.as_raw_fd(), 1), (stderr_w.as_raw_fd(), 2)];
    // The pipe ends and the bind sources keep their numbers (above 10; the
    // command line names them).
    fds.extend(
        [
            &pipes.child_input,
            &pipes.child_reply,
            &pipes.child_info,
            &pipes.child_status,
        ]
        .into_iter()
        .chain(&launch.pass_fds)
        .map(|fd| (fd.as_raw_fd(), fd.as_raw_fd())),
    );
    let exec = launcher::Exec {
        program: &launch.program,
        args: &launch.args,
        env: &launch.env,
        cwd: &launch.cwd,
        drop_to: launch.drop_to,
        fds,
    };
    let started = launcher.start(&exec, limits.memory_bytes, limits.processes)?;
    let pid = started.pid;
    let group = started.group;
    drop(stdout_w);
    drop(stderr_w);
    drop(pipes.child_input);
    drop(pipes.child_reply);
    drop(pipes.child_info);
    drop(pipes.child_status);
    let status_pipe = pipes.parent_status;
    let info = launch.sandboxed.then_some(pipes.parent_info);

    let exited = Arc::new(AtomicBool::new(false));
    let io_thread = iopump::spawn(
        iopump::Streams {
            input: pipes.parent_input,
            input_bytes: input,
            stdout,
            stderr,
            reply: pipes.parent_reply,
        },
        limits.output_bytes,
        limits.reply_bytes,
        exited.clone(),
        start,
        live,
    );
    let io_thread = match io_thread {
        Ok(t) => t,
        Err(e) => {
            // Without the pump nobody would drain the pipes: end the child.
            // SAFETY: our own, not yet reaped, process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = reap(pid);
            return Err(SandboxError::Io(e));
        }
    };

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let deadline = start + limits.wall;
    let grace = limits.grace;
    let cancel = cancel.clone();
    let oom = group.as_ref().and_then(RunGroup::oom_watch);
    let watchdog = std::thread::Builder::new()
        .name("p38-sandbox-watchdog".into())
        .spawn(move || watchdog::run(pid, info, deadline, grace, cancel, quota, oom, done_rx));
    let watchdog = match watchdog {
        Ok(t) => t,
        Err(e) => {
            // SAFETY: our own, not yet reaped, process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = reap(pid);
            exited.store(true, Ordering::SeqCst);
            let _ = io_thread.join();
            return Err(SandboxError::Io(e));
        }
    };

    // Wait for exit WITHOUT reaping: while the zombie exists its pid and
    // process group id cannot be reused, so the watchdog's kill(-pgid) can
    // never hit an unrelated process.
    wait_exit_nowait(pid);
    let _ = done_tx.send(());
    let mut ended = watchdog.join().unwrap_or(END_NONE);
    if ended == END_NONE && final_quota.as_ref().is_some_and(Quota::exceeded) {
        ended = END_WORKSPACE_FULL;
    }
    // Anything left in the group (insecure mode: children of Python) goes too.
    // SAFETY: signalling our own, not yet reaped, process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let (status, usage) = reap(pid)?;
    let wall = start.elapsed();
    // Read once every task is gone (the PID namespace died with its init),
    // then the group goes.
    let memory = group.as_ref().map(RunGroup::usage);
    if let Some(g) = group {
        g.remove();
    }
    exited.store(true, Ordering::SeqCst);
    let (stdout, stderr, reply) = io_thread.join().unwrap_or_default();
    let report = read_report(&status_pipe);

    outcome(OutcomeParts {
        launch: &launch,
        report,
        status,
        usage,
        memory,
        ended,
        wall,
        stdout,
        stderr,
        reply,
    })
}

fn wait_exit_nowait(pid: libc::pid_t) {
    loop {
        // SAFETY: siginfo is plain data filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

fn reap(pid: libc::pid_t) -> Result<(i32, libc::rusage), SandboxError> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data filled by the kernel.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(SandboxError::Io(err));
        }
    }
}

struct OutcomeParts<'a> {
    launch: &'a Launch,
    /// What the init shim wrote on its status pipe.
    report: Vec<u8>,
    status: i32,
    usage: libc::rusage,
    /// What the run's cgroup saw (`None`: no cgroup).
    memory: Option<cgroup::Usage>,
    ended: u8,
    wall: Duration,
    stdout: Captured,
    stderr: Captured,
    reply: Captured,
}

fn outcome(p: OutcomeParts<'_>) -> Result<RunOutcome, SandboxError> {
    let ended_by_us = p.ended != END_NONE;
    let (mut exit_code, mut signal) = if libc::WIFEXITED(p.status) {
        (Some(libc::WEXITSTATUS(p.status)), None)
    } else {
        (None, Some(libc::WTERMSIG(p.status)))
    };
    if !ended_by_us && let Some(msg) = setup_failure(&p.report, exit_code, &p.stderr.bytes) {
        return Err(SandboxError::Spawn(msg));
    }
    // bwrap's pid 1 reports a child killed by signal N as status 128+N.
    if p.launch.sandboxed
        && let Some(code @ 129..=192) = exit_code
    {
        exit_code = None;
        signal = Some(code - 128);
    }
    let tv =
        |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    Ok(RunOutcome {
        reply: p.reply,
        stdout: p.stdout,
        stderr: p.stderr,
        exit_code,
        signal,
        timed_out: p.ended == END_TIMEOUT,
        cancelled: p.ended == END_CANCEL,
        workspace_full: p.ended == END_WORKSPACE_FULL,
        wall: p.wall,
        cpu: tv(p.usage.ru_utime) + tv(p.usage.ru_stime),
        // The group's peak covers the whole tree and every kind of page;
        // ru_maxrss only the largest process's resident set.
        peak_memory_kb: match p.memory.and_then(|m| m.peak_bytes) {
            Some(bytes) => bytes / 1024,
            None => p.usage.ru_maxrss.max(0) as u64,
        },
        memory_exceeded: p.ended == END_MEMORY || p.memory.is_some_and(|m| m.oom_killed),
        memory_cgroup: p.memory.is_some(),
        sandboxed: p.launch.sandboxed,
    })
}

/// Everything the init shim wrote on its status pipe, read once the whole
/// tree is gone (the report is a few bytes, so it always fits in the pipe).
/// Non-blocking: a write end left open somewhere cannot hang the run.
fn read_report(pipe: &OwnedFd) -> Vec<u8> {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while out.len() < 4096 {
        // SAFETY: read into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            out.extend_from_slice(&buf[..n as usize]);
        } else if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            break; // EOF or EAGAIN: nothing more was written
        }
    }
    out
}

/// Tells a sandbox setup failure from a run of the program. `report` is
/// what the init shim wrote on its status pipe, which the program cannot
/// write to (it is closed before the program runs):
/// - a failure report: setup failed, whatever else happened;
/// - a start report: the program ran, and everything on stderr is its own
///   (a program printing the shim's or bubblewrap's messages and exiting
///   125 or 1 is a failed run, not a setup failure);
/// - nothing: the program never ran, so stderr holds bubblewrap's error
///   (exit 1, "bwrap: ...") or the shim's from before it could report
///   (exit 125 and its marker).
fn setup_failure(report: &[u8], exit_code: Option<i32>, stderr: &[u8]) -> Option<String> {
    if let Some(at) = report.iter().position(|&b| b == crate::init::STATUS_FAILED) {
        let line = String::from_utf8_lossy(&report[at + 1..]);
        let line = line.lines().next().unwrap_or("").trim().to_string();
        return Some(format!("sandbox setup failed: {line}"));
    }
    if report.contains(&crate::init::STATUS_STARTED) {
        return None;
    }
    let text = String::from_utf8_lossy(stderr);
    let first = text.lines().next().unwrap_or("").trim();
    match exit_code {
        Some(crate::init::FAILURE_EXIT) if first.starts_with(crate::init::FAILURE_MARKER) => {
            Some(format!(
                "sandbox setup failed: {}",
                &first[crate::init::FAILURE_MARKER.len()..]
            ))
        }
        Some(1) if first.starts_with("bwrap: ") => Some(format!(
            "bubblewrap could not set up the sandbox: {}",
            &first[7..]
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::setup_failure;

    #[test]
    fn a_started_program_owns_its_stderr() {
        let forged = b"p38-sandbox-init: landlock could not be applied\n";
        assert_eq!(setup_failure(b"S", Some(125), forged), None);
        assert_eq!(setup_failure(b"S", Some(1), b"bwrap: x\n"), None);
    }

    #[test]
    fn failure_reports_and_unreported_setup_errors_are_setup_failures() {
        let msg = setup_failure(b"SFcannot execute /x: ENOENT\n", Some(125), b"").unwrap();
        assert_eq!(msg, "sandbox setup failed: cannot execute /x: ENOENT");
        let msg = setup_failure(b"", Some(1), b"bwrap: No permissions\n").unwrap();
        assert!(msg.contains("No permissions"), "{msg}");
        assert!(setup_failure(b"", Some(125), b"p38-sandbox-init: bad\n").is_some());
        assert_eq!(setup_failure(b"", Some(3), b"whatever"), None);
    }
}
