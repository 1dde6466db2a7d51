//! Ends a run at its deadline, on cancellation, when it grows its
//! workspace past the quota, or at once when the kernel OOM-killed a process
//! of its memory cgroup.
//!
//! Sandboxed runs: bwrap writes the host pid of the sandbox's PID 1 (the init
//! shim) to its `--info-fd`; the watchdog opens a pidfd for it (race-free
//! signalling), sends SIGTERM (the shim forwards it to every process in the
//! namespace), waits `grace`, then SIGKILLs it, which tears the whole PID
//! namespace down while keeping the rusage chain to the server intact.
//! Anything still alive after that (or insecure runs, which have no PID 1)
//! gets SIGTERM/SIGKILL on the whole process group. The group leader is not
//! reaped before this thread is joined, so its pgid cannot be reused.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cgroup::OomWatch;
use crate::config::CancelFlag;
use crate::quota::{CHECK_EVERY, Quota, next_check as pace};

/// The watchdog did nothing.
pub(crate) const END_NONE: u8 = 0;
/// The wall-clock deadline was reached.
pub(crate) const END_TIMEOUT: u8 = 1;
/// The cancel flag was set.
pub(crate) const END_CANCEL: u8 = 2;
/// The run grew its workspace past the quota.
pub(crate) const END_WORKSPACE_FULL: u8 = 3;
/// The run's memory cgroup reached its limit and the kernel OOM-killed a
/// process of it.
pub(crate) const END_MEMORY: u8 = 4;

const TICK: Duration = Duration::from_millis(25);

/// Learns the sandbox's PID 1 from bwrap's info JSON.
struct Info {
    fd: Option<OwnedFd>,
    bytes: Vec<u8>,
    pidfd: Option<OwnedFd>,
}

impl Info {
    /// Waits up to `timeout` for info data or the launched process's exit
    /// (its pidfd turns readable); returns whether it has exited. Without
    /// the pidfd the end is seen only through `done`, at the next tick.
    fn poll(&mut self, timeout: Duration, bwrap_pid: libc::pid_t, child: Option<&OwnedFd>) -> bool {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
        for fd in [self.fd.as_ref(), child].into_iter().flatten() {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if fds.is_empty() {
            std::thread::sleep(timeout);
            return false;
        }
        // SAFETY: a valid array of pollfd of the given length.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as libc::c_int,
            )
        };
        let exited = child.is_some() && fds.last().is_some_and(|p| p.revents != 0);
        if self.fd.is_some() && fds[0].revents != 0 {
            self.read_info(bwrap_pid);
        }
        exited
    }

    fn read_info(&mut self, bwrap_pid: libc::pid_t) {
        let Some(fd) = &self.fd else { return };
        let mut buf = [0u8; 1024];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 && self.bytes.len() < 16 * 1024 {
            self.bytes.extend_from_slice(&buf[..n as usize]);
            self.try_open(bwrap_pid);
        } else if n <= 0 {
            self.fd = None; // EOF or error: no (more) info
        }
    }

    fn try_open(&mut self, bwrap_pid: libc::pid_t) {
        if self.pidfd.is_some() {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.bytes) else {
            return;
        };
        let Some(pid) = v.get("child-pid").and_then(|p| p.as_i64()) else {
            return;
        };
        // SAFETY: pidfd_open returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return;
        }
        // SAFETY: fd is a fresh pidfd.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Guard against pid reuse between bwrap writing the pid and the open:
        // the process must still be bwrap's child.
        let parent = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("PPid:")
                        .and_then(|v| v.trim().parse::<i32>().ok())
                })
            });
        if parent == Some(bwrap_pid) {
            self.pidfd = Some(pidfd);
        }
    }

    fn signal(&self, sig: libc::c_int) -> bool {
        let Some(fd) = &self.pidfd else { return false };
        // SAFETY: pidfd_send_signal on a pidfd we own.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<()>(),
                0,
            )
        };
        rc == 0
    }
}

/// Returns why it ended the run (or [`END_NONE`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    pid: libc::pid_t,
    info_fd: Option<OwnedFd>,
    deadline: Instant,
    grace: Duration,
    cancel: CancelFlag,
    quota: Option<Quota>,
    oom: Option<OomWatch>,
    done: mpsc::Receiver<()>,
) -> u8 {
    let mut info = Info {
        fd: info_fd,
        bytes: Vec::new(),
        pidfd: None,
    };
    // Readable once the launched process has exited, so the watchdog ends
    // with the run instead of at its next tick (which would add up to a
    // tick to every run). The process is not reaped before this thread is
    // joined, so the pid is still its own.
    // SAFETY: pidfd_open returns a new fd or -1.
    let child = match unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } {
        fd if fd >= 0 => Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        _ => None,
    };
    let finished =
        |done: &mpsc::Receiver<()>| !matches!(done.try_recv(), Err(mpsc::TryRecvError::Empty));
    let mut next_check = Instant::now() + CHECK_EVERY;
    let reason = loop {
        let exited = info.poll(TICK, pid, child.as_ref());
        if exited || finished(&done) {
            return END_NONE;
        }
        if cancel.is_cancelled() {
            break END_CANCEL;
        }
        if Instant::now() >= deadline {
            break END_TIMEOUT;
        }
        if oom.as_ref().is_some_and(OomWatch::fired) {
            break END_MEMORY;
        }
        if let Some(q) = &quota
            && Instant::now() >= next_check
        {
            // A walk's cost grows with the workspace: pace the checks by
            // what the last one cost (an image's check costs next to nothing).
            let started = Instant::now();
            if q.exceeded() {
                break END_WORKSPACE_FULL;
            }
            next_check = Instant::now() + pace(started.elapsed());
        }
    };
    let group = |sig| {
        // SAFETY: our own, not yet reaped, process group.
        unsafe { libc::kill(-pid, sig) };
    };
    // SIGTERM (to the sandbox's init, which passes it on, or to bwrap's
    // group while the init's pid is not known yet), then after `grace`
    // SIGKILL, repeated until the run is reaped. Keep reading the info fd
    // meanwhile: a cancel can come before bwrap has reported the init's pid,
    // and a signal sent then may reach a process that is still setting up.
    // Out of memory: no grace (there is nothing left to finish with).
    let kill_at = if reason == END_MEMORY {
        Instant::now()
    } else {
        Instant::now() + grace
    };
    let (mut termed_init, mut termed_group) = (false, false);
    let mut exited = false;
    loop {
        if exited || finished(&done) {
            return reason;
        }
        if Instant::now() < kill_at {
            if !termed_init && info.signal(libc::SIGTERM) {
                termed_init = true;
            } else if !termed_init && !termed_group {
                group(libc::SIGTERM);
                termed_group = true;
            }
        } else {
            info.signal(libc::SIGKILL);
            group(libc::SIGKILL);
        }
        exited = info.poll(TICK, pid, child.as_ref());
    }
}
