//! One thread that writes the input pipe and drains stdout, stderr and the
//! reply pipe with `poll`, all fds non-blocking.
//!
//! Reading continues (discarding) past each cap so the child never blocks on
//! a full pipe. Once the main thread has reaped the child it sets `exited`;
//! from then on the pump stops at EOF on every stream or after
//! [`DRAIN_AFTER_EXIT`], whichever comes first, so a stray process that
//! still holds a pipe (possible only in insecure mode) cannot hang the run.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Captured, LiveOutput, MAX_TIMED_LINES};

const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// The parent's ends of the child's pipes.
pub(crate) struct Streams {
    pub input: OwnedFd,
    pub input_bytes: Vec<u8>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub reply: OwnedFd,
}

/// (stdout, stderr, reply)
pub(crate) type Collected = (Captured, Captured, Captured);

struct Reader {
    fd: Option<OwnedFd>,
    cap: usize,
    /// Bytes kept so far (the bytes themselves are in the live view).
    kept: usize,
    truncated: bool,
    /// Which stream of the live view (0 stdout, 1 stderr, 2 reply).
    stream: usize,
    /// Record when each line arrives (the reply stream).
    timed: bool,
}

/// Starts the pump; `started` is when the run started (line times count
/// from it). What it reads is kept in `live`, readable while the run goes
/// on, and taken out of it at the end.
pub(crate) fn spawn(
    s: Streams,
    output_cap: usize,
    reply_cap: usize,
    exited: Arc<AtomicBool>,
    started: Instant,
    live: LiveOutput,
) -> std::io::Result<JoinHandle<Collected>> {
    std::thread::Builder::new()
        .name("p38-sandbox-io".into())
        .spawn(move || pump(s, output_cap, reply_cap, &exited, started, &live))
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl flag manipulation on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn pump(
    s: Streams,
    output_cap: usize,
    reply_cap: usize,
    exited: &AtomicBool,
    started: Instant,
    live: &LiveOutput,
) -> Collected {
    let reader = |fd, cap, stream, timed| Reader {
        fd: Some(fd),
        cap,
        kept: 0,
        truncated: false,
        stream,
        timed,
    };
    let mut readers = [
        reader(s.stdout, output_cap, 0, false),
        reader(s.stderr, output_cap, 1, false),
        reader(s.reply, reply_cap, 2, true),
    ];
    let mut input = if s.input_bytes.is_empty() {
        None
    } else {
        Some(s.input)
    };
    let data = s.input_bytes;
    let mut written = 0usize;
    for r in &readers {
        if let Some(fd) = &r.fd {
            set_nonblocking(fd);
        }
    }
    if let Some(fd) = &input {
        set_nonblocking(fd);
    }
    let mut exit_seen: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if exit_seen.is_none() && exited.load(Ordering::SeqCst) {
            exit_seen = Some(Instant::now());
            input = None; // nobody will read it any more
        }
        if readers.iter().all(|r| r.fd.is_none()) && input.is_none() {
            break;
        }
        if exit_seen.is_some_and(|t| t.elapsed() >= DRAIN_AFTER_EXIT) {
            break;
        }
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(4);
        for r in &readers {
            if let Some(fd) = &r.fd {
                pfds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if let Some(fd) = &input {
            pfds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        // SAFETY: pfds is a valid array of pollfd for the given length.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
        for r in readers.iter_mut() {
            drain_some(r, &mut buf, started, live);
        }
        if let Some(fd) = &input {
            match write_some(fd, &data[written..]) {
                Ok(n) => {
                    written += n;
                    if written >= data.len() {
                        input = None; // close: Python sees EOF on fd 3
                    }
                }
                Err(()) => input = None,
            }
        }
    }
    let [a, b, c] = live.take();
    (a, b, c)
}

/// Reads what is available now; closes the reader at EOF or on error.
fn drain_some(r: &mut Reader, buf: &mut [u8], started: Instant, live: &LiveOutput) {
    let Some(fd) = &r.fd else { return };
    // Bound the work per wake-up so one busy stream cannot starve the others.
    for _ in 0..16 {
        // SAFETY: reading into a buffer we own, of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let n = n as usize;
            let room = r.cap.saturating_sub(r.kept);
            let cut = n > room && !r.truncated;
            let kept = &buf[..n.min(room)];
            // Past the cap (and once it was noted) nothing changes.
            if !kept.is_empty() || cut {
                let at = started.elapsed();
                live.update(r.stream, |out| {
                    if r.timed {
                        time_lines(out, kept, at);
                    }
                    out.bytes.extend_from_slice(kept);
                    out.truncated |= cut;
                });
                r.kept += kept.len();
                r.truncated |= cut;
            }
            continue;
        }
        if n == 0 {
            r.fd = None; // EOF
            return;
        }
        let err = std::io::Error::last_os_error().raw_os_error();
        if err == Some(libc::EINTR) {
            continue;
        }
        if err != Some(libc::EAGAIN) {
            r.fd = None;
        }
        return;
    }
}

/// Notes the arrival of every line that `chunk` (about to be appended)
/// ends, up to [`MAX_TIMED_LINES`].
fn time_lines(out: &mut Captured, chunk: &[u8], at: Duration) {
    let base = out.bytes.len();
    for (i, _) in chunk.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        if out.line_times.len() >= MAX_TIMED_LINES {
            return;
        }
        out.line_times.push((base + i + 1, at));
    }
}

/// Writes what fits now. `Err` when the reader went away (EPIPE) or on error.
/// (The host process must ignore SIGPIPE, as Rust programs do by default.)
fn write_some(fd: &OwnedFd, data: &[u8]) -> Result<usize, ()> {
    if data.is_empty() {
        return Ok(0);
    }
    // SAFETY: writing from a slice we own, of the given length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n >= 0 {
        return Ok(n as usize);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
        _ => Err(()),
    }
}
