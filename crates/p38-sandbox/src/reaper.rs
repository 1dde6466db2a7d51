//! PID 1 of the sandbox (bubblewrap runs with `--as-pid-1`, so the init shim
//! itself is the namespace's init).
//!
//! Why not bubblewrap's own reaper: it reports the exit status through a
//! side channel and the outer bwrap exits without `wait`ing for it, so the
//! CPU time and peak memory of the whole tree never reach the server's
//! `wait4`. As PID 1 that is waited for by bwrap, the shim's rusage carries
//! every process it reaped (including processes killed when the namespace
//! is torn down).
//!
//! Behaviour: fork; the child execs the program; PID 1 forwards SIGTERM,
//! SIGINT and SIGHUP to every process of the namespace (`kill(-1, sig)`),
//! reaps everything, and when the program exits kills what is left (daemons
//! do not outlive the run), reaps it, and exits with the program's status
//! (128+N when it was killed by signal N).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

extern "C" fn forward(sig: libc::c_int) {
    // SAFETY: kill is async-signal-safe; -1 from PID 1 means "every other
    // process in this PID namespace".
    unsafe { libc::kill(-1, sig) };
}

/// Forks and execs `command`; returns only on failure to fork. Never returns
/// otherwise (exits with the program's status).
pub(crate) fn run(command: &[OsString]) -> Result<std::convert::Infallible, String> {
    let (prog, rest) = command.split_first().ok_or("no command given after --")?;
    // SAFETY: the shim is single-threaded, so the child may allocate.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let err = std::process::Command::new(prog).args(rest).exec();
        eprintln!(
            "{}cannot execute {}: {err}",
            crate::init::FAILURE_MARKER,
            prog.to_string_lossy()
        );
        // SAFETY: leave the forked child without running any destructors.
        unsafe { libc::_exit(crate::init::FAILURE_EXIT) };
    }
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installing a handler that only calls kill.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let mut exit_code: Option<i32> = None;
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break, // ECHILD: nothing left
            }
        }
        if got == pid {
            exit_code = Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
            // The run is over: end every remaining process (e.g. daemons).
            // SAFETY: see `forward`.
            unsafe { libc::kill(-1, libc::SIGKILL) };
        }
    }
    std::process::exit(exit_code.unwrap_or(crate::init::FAILURE_EXIT))
}
