//! Starting a run's first process without forking the server, in a cgroup
//! entered ahead of time.
//!
//! Why not `fork` + `pre_exec`: forking copies the server's page tables
//! only for the child to drop them at exec (milliseconds of CPU per run for
//! a big server), and moving the child into its cgroup waits for an RCU
//! grace period of the kernel (see `cgroup.rs`), several milliseconds of
//! every run's latency.
//!
//! Instead a run's first process is a *stub*: the init program in launcher
//! mode ([`stub_main`]), started with `posix_spawn` (std's `Command`
//! without `pre_exec` hooks: nothing of the server is copied), in a session
//! of its own, waiting on a socket. A pool thread keeps [`READY`] stubs,
//! each already moved into a fresh run group where the host allows it (v1;
//! see `cgroup.rs`). A run takes one, writes its group's limits, and sends
//! it the command line and the fds to keep (`SCM_RIGHTS`, with the numbers
//! each must have); the stub puts them in place, drops to the agent's uid,
//! sets its death signal, checks its parent, and execs bubblewrap: what
//! `pre_exec` did, in the same order, in a process that never ran anything
//! of the server. Its end of the socket is close-on-exec, so the server
//! reads end-of-file once the exec happened, or the reason it failed.
//!
//! The stub stays the server's child (the server `wait4`s it for the run's
//! status and rusage); its death signal belongs to the thread that spawned
//! it, so pool stubs are spawned by the pool thread, which lives as long as
//! the sandbox.

use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::cgroup::{Host, RunGroup};
use crate::error::SandboxError;

/// The argument that starts the init program as a stub.
pub(crate) const STUB_ARG: &str = "--launcher";
/// Stubs kept ready: a worker starting several runs at once takes several.
const READY: usize = 4;
/// The largest message a stub accepts (a command line is a few KiB).
const MAX_MESSAGE: usize = 256 << 10;
/// The most fds one run hands over.
const MAX_FDS: usize = 16;

/// What a run's first process executes, and with what.
pub(crate) struct Exec<'a> {
    pub program: &'a Path,
    pub args: &'a [OsString],
    /// The complete environment.
    pub env: &'a [(OsString, OsString)],
    pub cwd: &'a Path,
    /// Switch to this uid/gid before exec.
    pub drop_to: Option<(u32, u32)>,
    /// Fds of this process, and the number each gets in the new one.
    pub fds: Vec<(RawFd, RawFd)>,
}

/// A run's first process, started and in its group.
pub(crate) struct Started {
    pub pid: libc::pid_t,
    pub group: Option<RunGroup>,
}

/// Hands out stubs; dropping it ends the pool thread and its stubs.
#[derive(Debug)]
pub(crate) struct Launcher {
    shared: Arc<Shared>,
    /// Joined on drop, so that no group of the pool outlives the sandbox.
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The init program and its arguments that start a stub.
    program: PathBuf,
    args: Vec<OsString>,
    cgroups: Option<Arc<Host>>,
    pool: Mutex<Pool>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Pool {
    ready: VecDeque<Stub>,
    closed: bool,
}

impl Launcher {
    /// `init`: the init program and its leading arguments (as in
    /// [`crate::SandboxConfig::init`]). Starts the pool thread; without it
    /// (a thread could not be made) every run spawns its own stub.
    pub(crate) fn new(init: &[OsString], cgroups: Option<Arc<Host>>) -> Launcher {
        let mut args: Vec<OsString> = init[1..].to_vec();
        args.push(STUB_ARG.into());
        args.push(std::process::id().to_string().into());
        let shared = Arc::new(Shared {
            program: PathBuf::from(&init[0]),
            args,
            cgroups,
            pool: Mutex::new(Pool::default()),
            wake: Condvar::new(),
        });
        let pool = shared.clone();
        let thread = std::thread::Builder::new()
            .name("p38-sandbox-launcher".into())
            .spawn(move || refill(&pool))
            .map_err(|e| {
                tracing::warn!("p38-sandbox: no launcher thread ({e}); each run starts its own")
            })
            .ok();
        Launcher { shared, thread }
    }

    /// Whether runs get a cgroup.
    pub(crate) fn has_cgroups(&self) -> bool {
        self.shared.cgroups.is_some()
    }

    /// Starts `exec` in a stub whose group gets these limits (0: none).
    pub(crate) fn start(
        &self,
        exec: &Exec<'_>,
        memory_bytes: u64,
        processes: u64,
    ) -> Result<Started, SandboxError> {
        let message = encode(exec)?;
        let ready = {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            let stub = pool.ready.pop_front();
            self.shared.wake.notify_one();
            stub
        };
        let mut stub = match ready {
            Some(stub) => stub,
            // This thread waits for the run, so it may own the death signal.
            None => self.shared.stub().and_then(|mut s| {
                s.enter()?;
                Ok(s)
            })?,
        };
        let cgroups = self.shared.cgroups.as_deref();
        if let (Some(host), None) = (cgroups, &stub.group) {
            // v2: the group is made now (see cgroup.rs).
            let mut group = host.create(false).map_err(cgroup_error)?;
            group.enter(stub.pid).map_err(cgroup_error)?;
            stub.group = Some(group);
        }
        if let Some(g) = &mut stub.group {
            g.begin(memory_bytes, processes).map_err(cgroup_error)?;
        }
        stub.send(&message, &exec.fds)
            .map_err(|e| spawn_error(exec.program, e))?;
        let why = stub.outcome();
        let started = stub.into_started();
        if let Some(why) = why {
            // Its exit status is of no interest; reap it, drop the group.
            let _ = wait(started.pid);
            return Err(SandboxError::Spawn(format!(
                "cannot start {}: {why}",
                exec.program.display()
            )));
        }
        Ok(started)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let stubs = {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.closed = true;
            self.shared.wake.notify_all();
            std::mem::take(&mut pool.ready)
        };
        // Each is ended and reaped, its group removed.
        drop(stubs);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cgroup_error(e: io::Error) -> SandboxError {
    SandboxError::Spawn(format!("cannot set up the run's cgroup: {e}"))
}

fn spawn_error(program: &Path, e: io::Error) -> SandboxError {
    SandboxError::Spawn(format!("cannot start {}: {e}", program.display()))
}

/// The pool thread: keeps [`READY`] stubs, made in a batch so that their
/// moves into their groups follow each other and share one grace period.
fn refill(shared: &Shared) {
    let mut failing = false;
    loop {
        let missing = {
            let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if pool.closed {
                    pool.ready.clear();
                    return;
                }
                if pool.ready.len() < READY {
                    break READY - pool.ready.len();
                }
                pool = shared.wake.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let made: io::Result<Vec<Stub>> = (0..missing)
            .map(|_| shared.stub())
            .collect::<io::Result<Vec<Stub>>>()
            .and_then(|mut stubs| {
                for s in &mut stubs {
                    s.enter()?;
                }
                Ok(stubs)
            });
        match made {
            Ok(stubs) => {
                failing = false;
                let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
                pool.ready.extend(stubs);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "p38-sandbox: cannot prepare a run's process ahead ({e}); runs start their own"
                    );
                }
                failing = true;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

impl Shared {
    /// Spawns a stub (not yet in a group).
    fn stub(&self) -> io::Result<Stub> {
        let (ours, theirs) = socket_pair()?;
        let ahead = self.cgroups.as_deref().filter(|h| h.prepares_ahead());
        let group = ahead.map(|h| h.create(true)).transpose()?;
        // No pre_exec hook, uid or groups: std uses posix_spawn.
        let child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {}: {e}", self.program.display()),
                )
            })?;
        Ok(Stub {
            pid: child.id() as libc::pid_t,
            socket: Some(ours),
            group,
            live: true,
        })
    }
}

/// A spawned stub, waiting for its run.
#[derive(Debug)]
struct Stub {
    pid: libc::pid_t,
    socket: Option<OwnedFd>,
    group: Option<RunGroup>,
    /// Not yet handed to a run: dropping it ends and reaps it.
    live: bool,
}

impl Stub {
    /// Moves the stub into its group, when it has one.
    fn enter(&mut self) -> io::Result<()> {
        match &mut self.group {
            Some(g) => g.enter(self.pid),
            None => Ok(()),
        }
    }

    fn send(&self, message: &[u8], fds: &[(RawFd, RawFd)]) -> io::Result<()> {
        let sock = self.socket.as_ref().expect("a live stub has its socket");
        let raw: Vec<RawFd> = fds.iter().map(|&(ours, _)| ours).collect();
        send_with_fds(sock.as_raw_fd(), message, &raw)
    }

    /// `None` once the stub exec'd (its end closed on exec), else what it
    /// said went wrong.
    fn outcome(&self) -> Option<String> {
        let sock = self.socket.as_ref().expect("a live stub has its socket");
        let mut buf = [0u8; 1024];
        loop {
            // SAFETY: a read into a buffer we own.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return match n {
                0 => None,
                n if n > 0 => Some(String::from_utf8_lossy(&buf[..n as usize]).into_owned()),
                _ => Some(io::Error::last_os_error().to_string()),
            };
        }
    }

    fn into_started(mut self) -> Started {
        self.live = false;
        self.socket = None;
        Started {
            pid: self.pid,
            group: self.group.take(),
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if self.live {
            // SAFETY: our own child, not yet reaped: its pid is not reused.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = wait(self.pid);
        }
        // The group (if any) is removed by its own Drop, now empty.
    }
}

fn wait(pid: libc::pid_t) -> io::Result<()> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair fills two fds; checked.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other("too many fds for one run"));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer has room for one header and the fds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
    }
    loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n == data.len() as isize {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if n >= 0 || err.raw_os_error() != Some(libc::EINTR) {
            return Err(if n >= 0 {
                io::Error::other("short send to the run's process")
            } else {
                err
            });
        }
    }
}

// The message: numbers are little-endian u32, byte strings a u32 length
// then the bytes. drop flag, uid, gid; fd count, the target numbers;
// program; cwd; arg count, args; env count, `KEY=VALUE` entries.

fn encode(e: &Exec<'_>) -> Result<Vec<u8>, SandboxError> {
    let mut m = Vec::with_capacity(4096);
    let num = |m: &mut Vec<u8>, n: u32| m.extend_from_slice(&n.to_le_bytes());
    let bytes = |m: &mut Vec<u8>, b: &[u8]| {
        m.extend_from_slice(&(b.len() as u32).to_le_bytes());
        m.extend_from_slice(b);
    };
    let (uid, gid) = e.drop_to.unwrap_or((0, 0));
    num(&mut m, e.drop_to.is_some() as u32);
    num(&mut m, uid);
    num(&mut m, gid);
    num(&mut m, e.fds.len() as u32);
    for &(_, target) in &e.fds {
        num(&mut m, target as u32);
    }
    bytes(&mut m, e.program.as_os_str().as_bytes());
    bytes(&mut m, e.cwd.as_os_str().as_bytes());
    num(&mut m, e.args.len() as u32);
    for a in e.args {
        bytes(&mut m, a.as_bytes());
    }
    num(&mut m, e.env.len() as u32);
    for (k, v) in e.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        bytes(&mut m, &kv);
    }
    if m.len() > MAX_MESSAGE {
        return Err(SandboxError::Spawn(
            "the run's command line is too long".into(),
        ));
    }
    Ok(m)
}

/// What a stub received.
#[derive(Debug, PartialEq)]
struct Message {
    drop_to: Option<(u32, u32)>,
    targets: Vec<RawFd>,
    program: CString,
    cwd: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// Reads the message format of [`encode`].
struct Reader<'a> {
    m: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let b = self
            .m
            .get(self.at..self.at + n)
            .ok_or("the message is cut short")?;
        self.at += n;
        Ok(b)
    }

    fn num(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn text(&mut self) -> Result<CString, String> {
        let n = self.num()? as usize;
        CString::new(self.take(n)?).map_err(|_| "a NUL byte in the command line".to_string())
    }

    fn texts(&mut self) -> Result<Vec<CString>, String> {
        let n = self.num()? as usize;
        (0..n).map(|_| self.text()).collect()
    }
}

fn decode(m: &[u8]) -> Result<Message, String> {
    let mut r = Reader { m, at: 0 };
    let switch = r.num()? != 0;
    let (uid, gid) = (r.num()?, r.num()?);
    let n = r.num()? as usize;
    if n > MAX_FDS {
        return Err("too many fds".into());
    }
    let targets = (0..n)
        .map(|_| r.num().map(|t| t as RawFd))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        drop_to: switch.then_some((uid, gid)),
        targets,
        program: r.text()?,
        cwd: r.text()?,
        args: r.texts()?,
        env: r.texts()?,
    })
}

/// The stub (the init program started with [`STUB_ARG`] and the server's
/// pid): waits for one run's message on fd 0, then execs it. Never returns.
pub(crate) fn stub_main(args: &[OsString]) -> ! {
    // SAFETY (whole fn): process-wide calls on plain values; the stub is
    // single-threaded.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"p38-launch".as_ptr(), 0, 0, 0) };
    let parent: Option<libc::pid_t> = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(|a| a.parse().ok());
    let Some(parent) = parent else {
        eprintln!(
            "{}: usage: {STUB_ARG} SERVER_PID",
            crate::init::FAILURE_MARKER
        );
        std::process::exit(crate::init::FAILURE_EXIT);
    };
    // Dies with the server's thread that spawned it; the check catches a
    // server that died before the death signal was set.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if unsafe { libc::getppid() } != parent {
        std::process::exit(crate::init::FAILURE_EXIT);
    }
    // Its own session and process group, now: the server's terminal's
    // signals do not reach a waiting stub, and the run's process group
    // (which the watchdog kills) is this process's.
    unsafe { libc::setsid() };
    let (message, fds) = match receive(0) {
        Ok(Some(got)) => got,
        // The server closed the pool.
        Ok(None) => std::process::exit(0),
        Err(e) => std::process::exit(reply(0, &format!("cannot receive the run: {e}"))),
    };
    let why = match decode(&message) {
        Ok(m) => exec(m, fds, parent),
        Err(e) => e,
    };
    // `exec` moved the socket above every fd it placed.
    let sock = SOCKET.load(std::sync::atomic::Ordering::SeqCst);
    std::process::exit(reply(sock, &why))
}

/// Where the stub's socket is once [`exec`] moved it.
static SOCKET: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Tells the server why the run did not start; returns the exit status.
fn reply(sock: RawFd, why: &str) -> i32 {
    // SAFETY: a send of a buffer we own.
    unsafe { libc::send(sock, why.as_ptr().cast(), why.len(), libc::MSG_NOSIGNAL) };
    crate::init::FAILURE_EXIT
}

/// Puts the fds in place, leaves root and execs; returns only the reason
/// it could not.
fn exec(m: Message, fds: Vec<OwnedFd>, parent: libc::pid_t) -> String {
    let last_os = || io::Error::last_os_error();
    if fds.len() != m.targets.len() {
        return format!("{} fds for {} places", fds.len(), m.targets.len());
    }
    // Everything is first moved above every target, so that placing one
    // fd can never close another.
    let above = m.targets.iter().copied().max().unwrap_or(2).max(2) + 1;
    // SAFETY (whole fn): fd and credential calls on plain integers in this
    // single-threaded process.
    let sock = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, above) };
    if sock < 0 {
        return format!("cannot move the socket: {}", last_os());
    }
    SOCKET.store(sock, std::sync::atomic::Ordering::SeqCst);
    let mut moved = Vec::with_capacity(fds.len());
    for fd in fds {
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) };
        if n < 0 {
            return format!("cannot move an fd: {}", last_os());
        }
        moved.push(n);
    }
    // dup2 leaves the placed fds without close-on-exec.
    for (&from, &to) in moved.iter().zip(&m.targets) {
        if unsafe { libc::dup2(from, to) } < 0 {
            return format!("cannot place fd {to}: {}", last_os());
        }
    }
    for from in moved {
        unsafe { libc::close(from) };
    }
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    if null < 0 || unsafe { libc::dup2(null, 0) } < 0 {
        return format!("cannot open /dev/null: {}", last_os());
    }
    if null != 0 {
        unsafe { libc::close(null) };
    }
    if unsafe { libc::chdir(m.cwd.as_ptr()) } != 0 {
        return format!("cannot enter {}: {}", m.cwd.to_string_lossy(), last_os());
    }
    unsafe {
        if let Some((uid, gid)) = m.drop_to {
            // Root is exempt from RLIMIT_NPROC (also inside bwrap's user
            // namespace, whose uid maps to outer 0), so leave root first.
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return format!("cannot switch to uid {uid}: {}", last_os());
            }
        }
        // After the uid change: changing credentials clears the death signal.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return format!("cannot set the death signal: {}", last_os());
        }
        if libc::getppid() != parent {
            return "the server has gone".into();
        }
    }
    let mut argv: Vec<*const libc::c_char> = std::iter::once(m.program.as_ptr())
        .chain(m.args.iter().map(|a| a.as_ptr()))
        .collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = m.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NUL-terminated strings in NULL-terminated arrays, alive here.
    unsafe { libc::execve(m.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    last_os().to_string()
}

/// One message and its fds from `sock`; `None` at end-of-file.
fn receive(sock: RawFd) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut data = vec![0u8; MAX_MESSAGE];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    let mut control = vec![0u8; space as usize];
    // SAFETY: msghdr is plain data; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    let n = loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::other("the message was cut short"));
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    data.truncate(n);
    Ok(Some((data, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_decodes_to_what_was_encoded() {
        let args = vec![OsString::from("--unshare-user"), OsString::from("")];
        let env = vec![(OsString::from("HOME"), OsString::from("/workspace"))];
        let e = Exec {
            program: Path::new("/usr/bin/bwrap"),
            args: &args,
            env: &env,
            cwd: Path::new("/"),
            drop_to: Some((1000, 1001)),
            fds: vec![(7, 1), (8, 2), (12, 12)],
        };
        let m = decode(&encode(&e).unwrap()).unwrap();
        assert_eq!(m.drop_to, Some((1000, 1001)));
        assert_eq!(m.targets, vec![1, 2, 12]);
        assert_eq!(m.program.as_bytes(), b"/usr/bin/bwrap");
        assert_eq!(m.cwd.as_bytes(), b"/");
        assert_eq!(m.args.len(), 2);
        assert_eq!(m.env[0].as_bytes(), b"HOME=/workspace");
        let e = Exec {
            drop_to: None,
            fds: vec![],
            ..e
        };
        assert_eq!(decode(&encode(&e).unwrap()).unwrap().drop_to, None);
    }

    #[test]
    fn a_cut_message_is_refused() {
        let e = Exec {
            program: Path::new("/x"),
            args: &[],
            env: &[],
            cwd: Path::new("/"),
            drop_to: None,
            fds: vec![],
        };
        let m = encode(&e).unwrap();
        assert!(decode(&m[..m.len() - 1]).is_err());
    }
}
