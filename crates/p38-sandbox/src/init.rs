//! The init shim: the first program run inside the sandbox (and, in insecure
//! mode, right before Python). It is single-threaded, so unlike a `pre_exec`
//! hook it may allocate and rearrange fds freely. It:
//!
//! 1. moves the input pipe to fd 3 and the reply pipe to fd 4, the status
//!    pipe to fd 5 (close-on-exec: Python never has it) and closes every
//!    other fd above 2 (nothing of the server leaks into Python);
//! 2. sets rlimits (CPU, AS, FSIZE, NOFILE, NPROC, CORE=0);
//! 3. unless `--insecure`: remounts the writable mounts given with
//!    `--noexec` noexec and drops every capability (see `privileges.rs`),
//!    applies landlock (refusing to continue when the kernel does not
//!    enforce it) and the seccomp filter (which also sets no_new_privs);
//! 4. runs the command after `--`: sandboxed, as PID 1 that forks it and
//!    reaps the namespace (see `reaper.rs`); insecure, by plain exec. With
//!    `--probe` it first checks that the restrictions bite (and without a
//!    command exits 0).
//!
//! The status pipe (`--status-fd`) is the channel the agent cannot write
//! to: right before the final exec the shim writes [`STATUS_STARTED`] on
//! it; on any failure it writes [`STATUS_FAILED`] and one line of text
//! (and, for people running it by hand, the same line after
//! [`FAILURE_MARKER`] on stderr) and exits with [`FAILURE_EXIT`]. The caller
//! turns a failure report into [`crate::SandboxError::Spawn`], and once the
//! start is reported treats all of stderr as the program's own output.
//!
//! Arguments (all produced by this crate, never by users):
//! `[--input-fd N] [--reply-fd N] [--status-fd N] --cpu S --as B --fsize B
//! --nofile N --nproc N [--rx PATH]... [--ro PATH]... [--rw PATH]...
//! [--noexec PATH]... [--no-memory-sinks] [--profile agent] [--insecure]
//! [--probe] -- PROGRAM ARGS...`. A limit of 0 means "no limit".

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use std::sync::atomic::{AtomicI32, Ordering};

use crate::bwrap::{CHILD_INPUT_FD, CHILD_REPLY_FD};
use crate::landlock::Rules;
use crate::seccomp::{Options, Profile};

/// Prefix of the shim's one-line failure message on stderr (for people;
/// the caller reads the status pipe, which the program cannot forge).
pub const FAILURE_MARKER: &str = "p38-sandbox-init: ";
/// Exit status of the shim when setting up the sandbox failed.
pub const FAILURE_EXIT: i32 = 125;
/// Byte written on the status pipe right before the program is executed.
pub const STATUS_STARTED: u8 = b'S';
/// Byte that starts a failure report on the status pipe (a line of text
/// follows).
pub const STATUS_FAILED: u8 = b'F';
/// Fd number of the status pipe in the shim (close-on-exec).
const STATUS_FD: i32 = 5;
/// The status pipe once it is at [`STATUS_FD`]; -1 before (and without one).
static STATUS: AtomicI32 = AtomicI32::new(-1);
/// The subcommand word the `p38` binary dispatches on; tolerated (skipped)
/// as the first argument of [`main`].
pub const SUBCOMMAND: &str = "__sandbox-init";
/// The id of the sources this shim was built from (see build.rs).
pub const BUILD_ID: &str = env!("SANDBOX_SOURCE_ID");
/// The argument that makes [`main`] print [`BUILD_ID`] and exit.
pub const BUILD_ID_ARG: &str = "--build-id";

#[derive(Debug, Default)]
struct Args {
    input_fd: Option<i32>,
    reply_fd: Option<i32>,
    status_fd: Option<i32>,
    limits: Vec<(libc::__rlimit_resource_t, u64, &'static str)>,
    rules: Rules,
    noexec: Vec<PathBuf>,
    no_memory_sinks: bool,
    profile: Option<Profile>,
    insecure: bool,
    probe: bool,
    command: Vec<OsString>,
}

/// Entry point of the shim. `args` are the arguments AFTER the program name
/// (a leading `__sandbox-init` is skipped). Never returns: it execs the
/// command, or exits (0 after a successful probe, 125 on any failure).
pub fn main(args: &[OsString]) -> ! {
    let args = match args.first() {
        Some(first) if first == SUBCOMMAND => &args[1..],
        _ => args,
    };
    if args.first().is_some_and(|a| a == crate::launcher::STUB_ARG) {
        crate::launcher::stub_main(&args[1..]);
    }
    if args.len() == 1 && args[0] == BUILD_ID_ARG {
        println!("{BUILD_ID}");
        std::process::exit(0);
    }
    match run(args) {
        Ok(()) => std::process::exit(0),
        Err(msg) => fail(&msg),
    }
}

/// Reports a setup failure (status pipe and stderr) and exits 125.
pub(crate) fn fail(msg: &str) -> ! {
    report_failure(msg);
    eprintln!("{FAILURE_MARKER}{msg}");
    std::process::exit(FAILURE_EXIT)
}

/// Writes a failure report on the status pipe, if there is one. Async-signal
/// safe apart from the formatting done by the caller.
pub(crate) fn report_failure(msg: &str) {
    // One short line: the pipe buffer always holds it, so the write never
    // blocks even though nobody reads before the run ends.
    let mut line = Vec::with_capacity(msg.len().min(400) + 2);
    line.push(STATUS_FAILED);
    line.extend(msg.bytes().filter(|&b| b != b'\n').take(400));
    line.push(b'\n');
    write_status(&line);
}

/// Reports that the program is about to be executed.
pub(crate) fn report_started() {
    write_status(&[STATUS_STARTED]);
}

fn write_status(bytes: &[u8]) {
    let fd = STATUS.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: a write of a valid buffer; errors are ignored (the host
        // then sees no report, which it treats as "never started").
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    }
}

/// Closes this process's copy of the status pipe (PID 1 after forking).
pub(crate) fn close_status() {
    let fd = STATUS.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: closing the fd this module owns.
        unsafe { libc::close(fd) };
    }
}

fn run(raw: &[OsString]) -> Result<(), String> {
    // Started as /proc/self/fd/N, the kernel would name this process "N"
    // in ps and top; give it a name that says what it is.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"p38-init".as_ptr(), 0, 0, 0) };
    let args = parse(raw)?;
    setup_fds(&args)?;
    for (res, value, name) in &args.limits {
        set_limit(*res, *value, name)?;
    }
    set_limit(libc::RLIMIT_CORE, 0, "core")?;
    if !args.insecure {
        write_offline_hosts()?;
        crate::privileges::make_noexec(&args.noexec)?;
        crate::privileges::drop_all_capabilities()?;
        crate::landlock::restrict(&args.rules)?;
        let opts = Options {
            memory_sinks: !args.no_memory_sinks,
        };
        crate::seccomp::apply(args.profile.unwrap_or(Profile::Agent), opts)?;
    }
    if args.probe {
        probe_checks(args.insecure)?;
        if args.command.is_empty() {
            return Ok(());
        }
    }
    if !args.insecure {
        // Sandboxed: the shim is PID 1 of the namespace (see reaper.rs).
        crate::reaper::run(&args.command)?;
    }
    let (prog, rest) = args
        .command
        .split_first()
        .ok_or("no command given after --")?;
    report_started();
    let err = std::process::Command::new(prog).args(rest).exec();
    Err(format!("cannot execute {}: {err}", prog.to_string_lossy()))
}

/// Without the network nothing binds the host's `/etc/hosts`, and then
/// "localhost" does not resolve (glibc has no built-in name for it): code
/// that serves or connects on localhost (asyncio, multiprocessing
/// managers, test servers) would fail. The root is the sandbox's own tmpfs,
/// writable by the shim until landlock is applied.
fn write_offline_hosts() -> Result<(), String> {
    let hosts = std::path::Path::new("/etc/hosts");
    if hosts.exists() {
        return Ok(());
    }
    std::fs::create_dir_all("/etc")
        .and_then(|()| std::fs::write(hosts, "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"))
        .map_err(|e| format!("cannot write the sandbox's /etc/hosts: {e}"))
}

fn parse(raw: &[OsString]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = raw.iter();
    let value = |it: &mut std::slice::Iter<'_, OsString>, flag: &str| -> Result<OsString, String> {
        it.next()
            .cloned()
            .ok_or_else(|| format!("missing value after {flag}"))
    };
    let number = |v: OsString, flag: &str| -> Result<u64, String> {
        v.to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad number after {flag}"))
    };
    while let Some(flag) = it.next() {
        let f = flag.to_str().unwrap_or("");
        match f {
            "--" => {
                a.command = it.by_ref().cloned().collect();
                break;
            }
            "--insecure" => a.insecure = true,
            "--no-memory-sinks" => a.no_memory_sinks = true,
            "--noexec" => a.noexec.push(PathBuf::from(value(&mut it, f)?)),
            "--profile" => {
                let v = value(&mut it, f)?;
                let name = v.to_str().unwrap_or("");
                a.profile = Some(
                    Profile::from_name(name)
                        .ok_or_else(|| format!("unknown seccomp profile {name:?}"))?,
                );
            }
            "--probe" => a.probe = true,
            "--input-fd" | "--reply-fd" | "--status-fd" => {
                let n = number(value(&mut it, f)?, f)?;
                let fd = i32::try_from(n).map_err(|_| format!("bad fd after {f}"))?;
                match f {
                    "--input-fd" => a.input_fd = Some(fd),
                    "--reply-fd" => a.reply_fd = Some(fd),
                    _ => a.status_fd = Some(fd),
                }
            }
            "--rx" => a.rules.rx.push(PathBuf::from(value(&mut it, f)?)),
            "--ro" => a.rules.ro.push(PathBuf::from(value(&mut it, f)?)),
            "--rw" => a.rules.rw.push(PathBuf::from(value(&mut it, f)?)),
            "--cpu" | "--as" | "--fsize" | "--nofile" | "--nproc" => {
                let n = number(value(&mut it, f)?, f)?;
                let (res, name) = match f {
                    "--cpu" => (libc::RLIMIT_CPU, "cpu"),
                    "--as" => (libc::RLIMIT_AS, "address space"),
                    "--fsize" => (libc::RLIMIT_FSIZE, "file size"),
                    "--nofile" => (libc::RLIMIT_NOFILE, "open files"),
                    _ => (libc::RLIMIT_NPROC, "processes"),
                };
                a.limits.push((res, n, name));
            }
            _ => return Err(format!("unknown argument {:?}", OsStr::new(flag))),
        }
    }
    if a.command.is_empty() && !a.probe {
        return Err("no command given after --".into());
    }
    Ok(a)
}

/// Moves the pipes to 3 and 4 (dup2 leaves the new fds without CLOEXEC) and
/// the status pipe to 5 (close-on-exec), and closes everything else above
/// stderr.
fn setup_fds(a: &Args) -> Result<(), String> {
    let targets = [
        (a.input_fd, CHILD_INPUT_FD),
        (a.reply_fd, CHILD_REPLY_FD),
        (a.status_fd, STATUS_FD),
    ];
    // First copy both out of the way so that moving one cannot clobber the
    // other (e.g. input inherited at 4).
    let mut temps = Vec::new();
    for (src, dst) in targets {
        if let Some(src) = src {
            // SAFETY: plain fcntl on an fd number; failure is checked.
            let tmp = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 10) };
            if tmp < 0 {
                return Err(format!(
                    "fd {src} is not open: {}",
                    std::io::Error::last_os_error()
                ));
            }
            temps.push((tmp, dst));
        }
    }
    for (tmp, dst) in &temps {
        let flags = if *dst == STATUS_FD {
            libc::O_CLOEXEC
        } else {
            0
        };
        // SAFETY: dup3 onto a fixed number we own in this single-threaded process.
        if unsafe { libc::dup3(*tmp, *dst, flags) } < 0 {
            return Err(format!("dup3 failed: {}", std::io::Error::last_os_error()));
        }
    }
    let first_extra = if a.status_fd.is_some() {
        STATUS_FD + 1
    } else if temps.is_empty() {
        3
    } else {
        STATUS_FD
    };
    close_from(first_extra as u32);
    if a.status_fd.is_some() {
        STATUS.store(STATUS_FD, Ordering::SeqCst);
    }
    Ok(())
}

fn close_from(first: u32) {
    // SAFETY: close_range only closes fds; nothing in this process holds
    // Rust-owned fds at this point.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    if rc != 0 {
        // Kernels before 5.9: close one by one up to the fd limit.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as i32;
        for fd in first as i32..max {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

fn set_limit(res: libc::__rlimit_resource_t, value: u64, name: &str) -> Result<(), String> {
    if value == 0 && res != libc::RLIMIT_CORE {
        return Ok(()); // 0 = no limit: keep what was inherited
    }
    // RLIMIT_CPU: the soft limit sends SIGXCPU, the hard one a second later SIGKILL.
    let hard = if res == libc::RLIMIT_CPU {
        value.saturating_add(1)
    } else {
        value
    };
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: hard,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(res, &lim) } != 0 {
        return Err(format!(
            "cannot set the {name} limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// In probe mode, make sure the restrictions actually bite.
fn probe_checks(insecure: bool) -> Result<(), String> {
    if insecure {
        return Ok(());
    }
    // SAFETY: unshare(0) changes nothing even when allowed.
    if unsafe { libc::unshare(0) } == 0 {
        return Err("seccomp filter is not effective (unshare was allowed)".into());
    }
    if std::fs::read_dir("/").is_ok() {
        return Err("landlock is not effective (reading / was allowed)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_limits_paths_and_command() {
        let a = parse(&os(&[
            "--input-fd",
            "7",
            "--cpu",
            "5",
            "--rx",
            "/usr",
            "--rw",
            "/tmp",
            "--",
            "py",
            "-I",
        ]))
        .unwrap();
        assert_eq!(a.input_fd, Some(7));
        assert_eq!(a.limits.len(), 1);
        assert_eq!(a.rules.rx, vec![PathBuf::from("/usr")]);
        assert_eq!(a.command, os(&["py", "-I"]));
    }

    #[test]
    fn rejects_unknown_and_missing_command() {
        assert!(parse(&os(&["--bogus", "--", "x"])).is_err());
        assert!(parse(&os(&["--cpu", "1"])).is_err());
        assert!(parse(&os(&["--cpu", "x", "--", "y"])).is_err());
        assert!(parse(&os(&["--no-memory-sinks", "--", "y"])).is_ok());
    }
}
