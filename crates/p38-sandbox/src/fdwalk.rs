//! Walking a workspace the agent may be changing at the same time.
//!
//! Everything goes through directory fds: each folder is opened relative
//! to its parent's fd (`openat` with `O_NOFOLLOW | O_DIRECTORY`), listed
//! through its own fd and its entries looked at with `fstatat(...,
//! AT_SYMLINK_NOFOLLOW)`. No path is ever resolved from the root, so a
//! folder the agent swaps for a link to `/etc` fails to open instead of
//! leading the walk (which runs as root) out of the workspace, and depth is
//! not bounded by `PATH_MAX` (a path-based walk skips what lies deeper,
//! which let an agent hide tens of MiB from the quota).
//!
//! At most [`MAX_OPEN`] folder fds are held: deeper folders close the fds
//! of the shallowest ones, which are opened again through `..` on the way
//! back up and checked to be the same folder (device and inode), so a tree
//! of any depth costs a bounded number of fds.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Folder fds held at once by one walk.
const MAX_OPEN: usize = 64;

/// What the visitor sees of one entry.
pub(crate) struct Entry<'a> {
    /// The folder holding it.
    pub parent: BorrowedFd<'a>,
    /// Its name in `parent`.
    pub name: &'a CStr,
    /// `fstatat(parent, name, AT_SYMLINK_NOFOLLOW)`.
    pub stat: &'a libc::stat,
}

/// Whether an error means "the entry went away or was swapped while we
/// looked", which a walk of a changing tree skips.
pub(crate) fn vanished(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
    )
}

struct Frame {
    /// `None` while closed to stay under [`MAX_OPEN`].
    fd: Option<OwnedFd>,
    id: (u64, u64),
    subdirs: Vec<CString>,
}

/// Calls `visit` for every entry below `root` (not for `root` itself),
/// never leaving `root`'s filesystem. `visit` returns `Ok(false)` to stop
/// the walk. Entries that vanish while the walk looks at them are skipped;
/// any other failure (a folder it may not open or list, a folder moved
/// under it) is returned.
pub(crate) fn walk(
    root: BorrowedFd<'_>,
    mut visit: impl FnMut(Entry<'_>) -> io::Result<bool>,
) -> io::Result<()> {
    let root_st = fstat(root)?;
    let dev = root_st.st_dev;
    let mut stack = vec![Frame {
        fd: Some(dup(root)?),
        id: (root_st.st_dev, root_st.st_ino),
        subdirs: Vec::new(),
    }];
    if !scan(&mut stack[0], dev, &mut visit)? {
        return Ok(());
    }
    // Frames 1..closed have their fd closed (always the shallowest ones).
    let mut closed = 1;
    loop {
        let top = stack.len() - 1;
        if let Some(name) = stack[top].subdirs.pop() {
            let parent = stack[top].fd.as_ref().expect("the top frame is open");
            let fd = match open_dir(parent.as_fd(), &name) {
                Ok(fd) => fd,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(e),
            };
            let st = fstat(fd.as_fd())?;
            if st.st_dev != dev {
                continue; // a mount point: not ours to count
            }
            let mut frame = Frame {
                fd: Some(fd),
                id: (st.st_dev, st.st_ino),
                subdirs: Vec::new(),
            };
            if !scan(&mut frame, dev, &mut visit)? {
                return Ok(());
            }
            stack.push(frame);
            if stack.len() - closed > MAX_OPEN {
                stack[closed].fd = None;
                closed += 1;
            }
        } else {
            let done = stack.pop().expect("the stack is not empty");
            let Some(parent) = stack.last_mut() else {
                return Ok(());
            };
            if parent.fd.is_none() {
                let child = done.fd.as_ref().expect("the top frame is open");
                let fd = open_dir(child.as_fd(), c"..")?;
                let st = fstat(fd.as_fd())?;
                if (st.st_dev, st.st_ino) != parent.id {
                    return Err(io::Error::other("a folder was moved during the walk"));
                }
                parent.fd = Some(fd);
                closed -= 1;
            }
        }
    }
}

/// Lists one folder: visits each entry, remembers its subfolders.
fn scan(
    frame: &mut Frame,
    dev: u64,
    visit: &mut impl FnMut(Entry<'_>) -> io::Result<bool>,
) -> io::Result<bool> {
    let fd = frame.fd.as_ref().expect("a scanned frame is open");
    // fdopendir takes the fd over, so it gets its own: a fresh open of "."
    // rather than a dup, which would share (and move) the read position of
    // an fd that is listed again later (the quota's root).
    let listing = open_dir(fd.as_fd(), c".")?;
    // SAFETY: a valid fd we own and hand over to the DIR.
    let dir = unsafe { libc::fdopendir(listing.as_raw_fd()) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(listing); // now owned by `dir`
    let result = (|| {
        loop {
            // readdir signals the end and errors alike by NULL; errno tells.
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: a valid DIR, used by this thread only.
            let ent = unsafe { libc::readdir64(dir) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(0) | None => Ok(true),
                    _ => Err(e),
                };
            }
            // SAFETY: readdir returned a valid entry with a NUL-terminated name.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            if name == c"." || name == c".." {
                continue;
            }
            let st = match fstatat(fd.as_fd(), name) {
                Ok(st) => st,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(e),
            };
            if !visit(Entry {
                parent: fd.as_fd(),
                name,
                stat: &st,
            })? {
                return Ok(false);
            }
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR && st.st_dev == dev {
                frame.subdirs.push(name.to_owned());
            }
        }
    })();
    // SAFETY: the DIR from fdopendir above, closed once.
    unsafe { libc::closedir(dir) };
    result
}

/// Opens the folder `name` in `parent`, never through a link.
pub(crate) fn open_dir(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid fd and a NUL-terminated name.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat` of an fd.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn fstatat(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, a NUL-terminated name and a stat buffer.
    let rc = unsafe {
        libc::fstatat(
            parent.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested deeper than PATH_MAX and than MAX_OPEN folders.
    #[test]
    fn walks_past_path_max_with_a_bounded_number_of_fds() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let mut fd: OwnedFd = root.try_clone().unwrap().into();
        let name = CString::new("d".repeat(200)).unwrap();
        for _ in 0..100 {
            // SAFETY: a valid fd and a NUL-terminated name.
            assert_eq!(
                unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o700) },
                0
            );
            fd = open_dir(fd.as_fd(), &name).unwrap();
        }
        // SAFETY: as above.
        let leaf = unsafe {
            libc::openat(
                fd.as_raw_fd(),
                c"leaf".as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            )
        };
        assert!(leaf >= 0);
        // SAFETY: a fresh fd.
        drop(unsafe { OwnedFd::from_raw_fd(leaf) });
        let mut seen = 0;
        let mut leaves = 0;
        walk(root.as_fd(), |e| {
            seen += 1;
            leaves += usize::from(e.name == c"leaf");
            Ok(true)
        })
        .unwrap();
        assert_eq!((seen, leaves), (101, 1));
    }
}
