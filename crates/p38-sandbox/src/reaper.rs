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
//! The status pipe (see `init.rs`) is closed by PID 1 right after the fork;
//! the child waits until that is done before it reports the start and
//! execs, so no process the program can reach (PID 1 is of the same uid)
//! holds the pipe once the program runs.
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
    let mut sync = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds; checked.
    if unsafe { libc::pipe2(sync.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe failed: {}", std::io::Error::last_os_error()));
    }
    let [sync_read, sync_write] = sync;
    // SAFETY: the shim is single-threaded, so the child may allocate.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: plain fd operations on the pipe made above.
        unsafe {
            libc::close(sync_write);
            // EOF once PID 1 has closed its end (after its status fd).
            let mut b = 0u8;
            while libc::read(sync_read, (&mut b as *mut u8).cast(), 1) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
            libc::close(sync_read);
        }
        crate::init::report_started();
        let err = std::process::Command::new(prog).args(rest).exec();
        let msg = format!("cannot execute {}: {err}", prog.to_string_lossy());
        crate::init::report_failure(&msg);
        eprintln!("{}{msg}", crate::init::FAILURE_MARKER);
        // SAFETY: leave the forked child without running any destructors.
        unsafe { libc::_exit(crate::init::FAILURE_EXIT) };
    }
    crate::init::close_status();
    // PID 1 shares the program's uid: non-dumpable, its /proc/1 entries
    // (exe, maps, environ, mem) belong to root, so the program can neither
    // read the host path of this binary nor touch this process's memory.
    // SAFETY: a prctl on this process only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: closing the pipe made above; this releases the child.
    unsafe {
        libc::close(sync_read);
        libc::close(sync_write);
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
