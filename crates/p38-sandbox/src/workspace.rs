//! Preparing the workspace on the host: its image mounted (see
//! [`crate::image`]) or its folder created, opened once by fd, and handed
//! over to the agent's uid.
//!
//! The run gets the opened fd (bubblewrap's `--bind-fd`), not the path, so
//! the sandbox uid never has to traverse the data folder (which may be
//! under a mode-0700 folder such as `/root`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::fdwalk;
use crate::quota::Measure;

/// A workspace ready for a run.
pub(crate) struct Prepared {
    /// Its root folder, opened with `O_NOFOLLOW | O_DIRECTORY`.
    pub dir: Arc<OwnedFd>,
    /// How its quota is measured.
    pub measure: Measure,
}

/// The image's size, when the workspace is an image.
pub(crate) struct ImageQuota {
    pub bytes: u64,
    pub entries: u64,
}

/// Mounts the image (when `image` is given) or creates the folder, opens it
/// and, when `owner` is given (the caller is root and the sandbox runs as an
/// unprivileged uid), hands it over to that uid/gid so the sandboxed
/// program can write to it.
///
/// The handover walks the tree through directory fds without following
/// links ([`chown_tree`]) and leaves multiply-linked files alone: a hard
/// link to a host file planted in the workspace must not be chowned. It
/// runs only when the workspace's root is not yet owned by the agent's uid:
/// on first use of a folder, or after `P38_SANDBOX_UID_BASE` changed.
pub(crate) fn prepare(
    dir: &Path,
    owner: Option<(u32, u32)>,
    image: Option<ImageQuota>,
) -> io::Result<Prepared> {
    let measure = match image {
        Some(q) => {
            crate::image::ensure(dir, q.bytes, q.entries, owner)?;
            Measure::Image
        }
        None => {
            std::fs::create_dir_all(dir)?;
            Measure::Walk
        }
    };
    let fd = open_root(dir)?;
    if let Some((uid, gid)) = owner {
        let st = fdwalk::fstat(fd.as_fd())?;
        if st.st_uid != uid || st.st_gid != gid {
            chown_tree(fd.as_fd(), uid, gid)?;
        }
        // Only the agent's uid (and root) may look inside.
        // SAFETY: a valid fd.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Prepared {
        dir: Arc::new(fd),
        measure,
    })
}

/// Gives the workspace at `dir` and everything in it to `uid:gid` (see
/// [`chown_tree`]), whoever owns its root now, and closes it to others.
pub(crate) fn hand_over(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let fd = open_root(dir)?;
    chown_tree(fd.as_fd(), uid, gid)?;
    // SAFETY: a valid fd.
    if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the workspace folder itself, refusing a link in its place.
fn open_root(dir: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(dir.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("workspace {} is not a directory", dir.display()),
            ),
            _ => e,
        });
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Gives the folder `root` and everything in it to `uid:gid`. Each entry is
/// opened with `O_PATH | O_NOFOLLOW` relative to its parent's fd, checked
/// on that fd (a folder, or a file with one link) and changed through it
/// (`fchownat(fd, "", AT_EMPTY_PATH)`), so an entry the agent swaps for a
/// link to a host file between the check and the change is the one checked,
/// not the host file. Entries that vanish meanwhile are skipped.
pub(crate) fn chown_tree(root: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    chown_fd(root, uid, gid)?;
    fdwalk::walk(root, |e| {
        let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid fd and a NUL-terminated name.
        let fd = unsafe { libc::openat(e.parent.as_raw_fd(), e.name.as_ptr(), flags) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return if fdwalk::vanished(&err) {
                Ok(true)
            } else {
                Err(err)
            };
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fdwalk::fstat(fd.as_fd())?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if (is_dir || st.st_nlink == 1) && (st.st_uid != uid || st.st_gid != gid) {
            chown_fd(fd.as_fd(), uid, gid)?;
        }
        Ok(true)
    })
}

fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid fd and an empty, NUL-terminated path.
    let rc = unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
