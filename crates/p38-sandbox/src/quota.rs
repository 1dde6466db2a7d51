//! The workspace quota. `RLIMIT_FSIZE` caps each file, not their sum, so a
//! run could fill the host's disk with many files below the cap. The
//! watchdog measures the workspace while the run goes on and ends a run
//! that has grown it past the quota; the run's end measures it once more.
//!
//! Two ways to measure, picked per sandbox (see [`crate::image`]):
//! - **image**: the workspace is its own ext4 filesystem, sized to the
//!   quota, so the kernel stops writes past it and a check is one `fstatfs`
//!   of the mount, whatever the agent stores. Nothing can be hidden from it.
//! - **walk** (no root, or no loop devices): the folder is walked through
//!   directory fds ([`crate::fdwalk`]), counting every entry at any depth;
//!   a folder the walk may not open or list counts as over the quota. Its
//!   cost grows with what the agent stores, so the watchdog waits 50 times
//!   the last walk's duration before the next one ([`next_check`]): at most
//!   2 % of a core per running agent. It overshoots by what a run writes
//!   between two checks (each file still capped by `RLIMIT_FSIZE`); the
//!   check at the end of the run sees everything, and a workspace over the
//!   quota does not run again. Files deleted while still open are not seen;
//!   they are bounded by the open-file and file-size limits and freed when
//!   the run ends.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::fdwalk;

/// The shortest time between two checks of a running workspace.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A walk may take this share of the watchdog's time (1/50 = 2 %).
const WALK_SHARE: u32 = 50;

/// When to check again after a check that took `took`: never sooner than
/// [`CHECK_EVERY`], and with at most a 1/50 share of one core.
pub(crate) fn next_check(took: Duration) -> Duration {
    CHECK_EVERY.max(took * WALK_SHARE)
}

/// Inodes an ext4 filesystem uses before anything is stored in it (the
/// reserved inodes 1 to 10, the root folder among them).
pub(crate) const EXT4_RESERVED_INODES: u64 = 10;

/// What a workspace uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes of disk (allocated blocks), so sparse files count as stored.
    pub bytes: u64,
    /// Files, folders and links.
    pub entries: u64,
    /// The filesystem has no room left for another file (image only).
    pub full: bool,
}

/// How a workspace is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// `fstatfs` of the workspace's own ext4 image.
    Image,
    /// A walk of the folder.
    Walk,
}

/// The workspace and its limits for one run. The limits are strict: a
/// workspace already over them (a lowered quota, or the overshoot of the
/// run that was stopped) does not run until the quota is raised, so no
/// sequence of runs can grow it further.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    /// The workspace's root folder, opened once by the server (never
    /// resolved again by path, so nothing the agent does can redirect it).
    dir: Arc<OwnedFd>,
    measure: Measure,
    bytes: u64,
    entries: u64,
}

impl Quota {
    /// A quota for the folder `dir`; `None` without limits.
    pub fn new(dir: Arc<OwnedFd>, measure: Measure, bytes: u64, entries: u64) -> Option<Quota> {
        if bytes == 0 && entries == 0 {
            return None;
        }
        Some(Quota {
            dir,
            measure,
            bytes,
            entries,
        })
    }

    /// Whether the workspace is over the quota, or could not be measured
    /// (a folder the server cannot read would hide what is in it).
    pub fn exceeded(&self) -> bool {
        let limit = |l: u64| if l == 0 { u64::MAX } else { l };
        let (bytes, entries) = (limit(self.bytes), limit(self.entries));
        let used = match self.measure {
            Measure::Image => measure_image(self.dir.as_fd()).ok(),
            Measure::Walk => measure_walk(self.dir.as_fd(), bytes, entries),
        };
        match used {
            Some(u) => u.full || u.bytes > bytes || u.entries > entries,
            None => true,
        }
    }
}

/// What a workspace holds, as [`crate::workspace_usage`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceUsage {
    /// Bytes of disk used by its files and folders.
    pub bytes: u64,
    /// Its files, folders and links.
    pub entries: u64,
    /// Whether it is its own ext4 image (measured in O(1)).
    pub image: bool,
}

/// See [`crate::workspace_usage`].
pub(crate) fn usage(path: &std::path::Path) -> std::io::Result<Option<WorkspaceUsage>> {
    let image = crate::image::is_mount_point(path) && crate::image::image_path(path).is_file();
    let dir: OwnedFd = std::fs::File::open(path)?.into();
    let used = if image {
        Some(measure_image(dir.as_fd())?)
    } else {
        measure_walk(dir.as_fd(), u64::MAX, u64::MAX)
    };
    Ok(used.map(|u| WorkspaceUsage {
        bytes: u.bytes,
        entries: u.entries,
        image,
    }))
}

/// What the filesystem of `dir` (a workspace image's root) uses: O(1).
pub(crate) fn measure_image(dir: BorrowedFd<'_>) -> std::io::Result<Usage> {
    // SAFETY: statfs is plain data filled by the kernel.
    let mut s: libc::statfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a statfs buffer.
    if unsafe { libc::fstatfs64(dir.as_raw_fd(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let used_inodes = s.f_files.saturating_sub(s.f_ffree);
    Ok(Usage {
        bytes: s.f_blocks.saturating_sub(s.f_bfree) * s.f_bsize as u64,
        entries: used_inodes.saturating_sub(EXT4_RESERVED_INODES),
        full: s.f_ffree == 0 || s.f_bavail == 0,
    })
}

/// Walks the folder `root` (an fd) without following links or leaving its
/// filesystem, stopping early once either total passes its bound. `None`
/// when something inside cannot be opened or read.
pub(crate) fn measure_walk(
    root: BorrowedFd<'_>,
    max_bytes: u64,
    max_entries: u64,
) -> Option<Usage> {
    let mut used = Usage::default();
    let walked = fdwalk::walk(root, |e| {
        used.entries += 1;
        used.bytes += e.stat.st_blocks as u64 * 512;
        Ok(used.bytes <= max_bytes && used.entries <= max_entries)
    });
    walked.ok().map(|()| used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(p: &std::path::Path) -> Arc<OwnedFd> {
        Arc::new(std::fs::File::open(p).unwrap().into())
    }

    #[test]
    fn counts_nested_files_without_following_links_and_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("y"), b"hi").unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let fd = open(dir.path());
        let u = measure_walk(fd.as_fd(), u64::MAX, u64::MAX).unwrap();
        assert_eq!(u.entries, 4, "a, a/x, y, link (not followed)");
        assert!(u.bytes >= 100_000, "{u:?}");
        assert!(u.bytes < 10_000_000, "the link was followed: {u:?}");
        assert!(measure_walk(fd.as_fd(), u64::MAX, 1).unwrap().entries <= 2);
    }

    #[test]
    fn the_quota_is_strict() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), vec![1u8; 200_000]).unwrap();
        let q = |b, e| Quota::new(open(dir.path()), Measure::Walk, b, e);
        assert!(q(100_000, 0).unwrap().exceeded());
        assert!(!q(1_000_000, 0).unwrap().exceeded());
        assert!(q(0, 1).is_some_and(|q| !q.exceeded()));
        assert!(q(0, 0).is_none());
    }

    #[test]
    fn a_walk_costs_at_most_a_fiftieth_of_the_time() {
        assert_eq!(next_check(Duration::from_millis(1)), CHECK_EVERY);
        assert_eq!(
            next_check(Duration::from_millis(100)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn an_unreadable_folder_counts_as_over_the_quota() {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            p38_testkit::not_applicable("root reads every folder");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hidden = dir.path().join("hidden");
        std::fs::create_dir(&hidden).unwrap();
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o300)).unwrap();
        let q = Quota::new(open(dir.path()), Measure::Walk, 1 << 30, 0).unwrap();
        assert!(q.exceeded());
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
