//! The workspace quota. `RLIMIT_FSIZE` caps each file, not their sum, so a
//! run could fill the host's disk with many files below the cap. The
//! watchdog measures the workspace every [`CHECK_EVERY`] and ends a run
//! that has grown it past the quota.
//!
//! Measured by walking the folder rather than with filesystem quotas or a
//! size-capped mount per agent: those need a filesystem set up for them (or
//! loop devices) on every host, which a self-hosted tool cannot assume.
//! The walk overshoots by at most what a run writes between two checks,
//! each file still capped by `RLIMIT_FSIZE`. It runs on the watchdog
//! thread, so a deadline or a cancel waits for at most one walk, which the
//! entry limit bounds. Files deleted while still open are not seen; they
//! are bounded by the open-file and file-size limits, and freed when the
//! run ends.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a running workspace is measured.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(250);

/// What a workspace uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes of disk (allocated blocks), so sparse files count as stored.
    pub bytes: u64,
    /// Files, folders and links.
    pub entries: u64,
}

/// The workspace and its limits for one run. The limits are strict: a
/// workspace already over them (a lowered quota, or the overshoot of the
/// run that was stopped) does not run until the quota is raised, so no
/// sequence of runs can grow it further.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    pub path: PathBuf,
    pub bytes: u64,
    pub entries: u64,
}

impl Quota {
    /// A quota for `path`; `None` without limits.
    pub fn new(path: &Path, bytes: u64, entries: u64) -> Option<Quota> {
        if bytes == 0 && entries == 0 {
            return None;
        }
        Some(Quota {
            path: path.to_path_buf(),
            bytes,
            entries,
        })
    }

    /// Whether the workspace is over the quota, or holds a folder the
    /// server cannot read (which would hide what is in it).
    pub fn exceeded(&self) -> bool {
        let limit = |l: u64| if l == 0 { u64::MAX } else { l };
        let (bytes, entries) = (limit(self.bytes), limit(self.entries));
        match measure(&self.path, bytes, entries) {
            Some(u) => u.bytes > bytes || u.entries > entries,
            None => true,
        }
    }
}

/// Walks `root` without following links or leaving its filesystem,
/// stopping early once either total passes its bound. `None` when a folder
/// inside cannot be read. Each folder is opened relative to the root with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`, so
/// a folder the agent swaps for a link while the walk goes on cannot lead
/// it (running as root) anywhere else on the host.
pub(crate) fn measure(root: &Path, max_bytes: u64, max_entries: u64) -> Option<Usage> {
    let mut used = Usage::default();
    let Ok(root_dir) = std::fs::File::open(root) else {
        return Some(used); // not created yet: empty
    };
    let root_fd: OwnedFd = root_dir.into();
    let mut stack = vec![PathBuf::from(".")];
    while let Some(rel) = stack.pop() {
        let dir = match open_beneath(&root_fd, &rel) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => return None,
            Err(_) => continue, // gone, or swapped for a link or a mount
        };
        let listing = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        let entries = match std::fs::read_dir(&listing) {
            Ok(e) => e,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => return None,
            Err(_) => continue,
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Ok(meta) = std::fs::symlink_metadata(listing.join(&name)) else {
                continue;
            };
            used.entries += 1;
            used.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(rel.join(&name));
            }
            if used.bytes > max_bytes || used.entries > max_entries {
                return Some(used);
            }
        }
    }
    Some(used)
}

/// Opens the folder `rel` beneath `root` without crossing links or mounts.
fn open_beneath(root: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    let path = CString::new(rel.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: open_how is plain data.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV;
    // SAFETY: a valid fd, a NUL-terminated path and an open_how of the
    // size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // Kernels before 5.6: the last component is still not followed.
        // SAFETY: as above.
        unsafe { libc::openat(root.as_raw_fd(), path.as_ptr(), flags) as libc::c_long }
    } else {
        fd
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_files_without_following_links_and_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("y"), b"hi").unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let u = measure(dir.path(), u64::MAX, u64::MAX).unwrap();
        assert_eq!(u.entries, 4, "a, a/x, y, link (not followed)");
        assert!(u.bytes >= 100_000, "{u:?}");
        assert!(u.bytes < 10_000_000, "the link was followed: {u:?}");
        assert!(measure(dir.path(), u64::MAX, 1).unwrap().entries <= 2);
        assert_eq!(
            measure(&dir.path().join("missing"), 1, 1),
            Some(Usage::default())
        );
    }

    #[test]
    fn the_quota_is_strict() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), vec![1u8; 200_000]).unwrap();
        assert!(Quota::new(dir.path(), 100_000, 0).unwrap().exceeded());
        assert!(!Quota::new(dir.path(), 1_000_000, 0).unwrap().exceeded());
        assert!(Quota::new(dir.path(), 0, 1).is_some_and(|q| !q.exceeded()));
        assert!(Quota::new(dir.path(), 0, 0).is_none());
    }

    #[test]
    fn an_unreadable_folder_counts_as_over_the_quota() {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            eprintln!("SKIP: root reads every folder");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hidden = dir.path().join("hidden");
        std::fs::create_dir(&hidden).unwrap();
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o300)).unwrap();
        assert!(Quota::new(dir.path(), 1 << 30, 0).unwrap().exceeded());
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
