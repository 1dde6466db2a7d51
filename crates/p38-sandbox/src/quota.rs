//! The workspace quota. `RLIMIT_FSIZE` caps each file, not their sum, so a
//! run could fill the host's disk with many files below the cap. The
//! watchdog measures the workspace every [`CHECK_EVERY`] and ends a run
//! that has grown it past the quota.
//!
//! Measured by walking the folder rather than with filesystem quotas or a
//! size-capped mount per agent: those need a filesystem set up for them (or
//! loop devices) on every host, which a self-hosted tool cannot assume.
//! The walk overshoots by at most what a run writes between two checks,
//! each file still capped by `RLIMIT_FSIZE`.

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

/// The workspace and its limits for one run.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    pub path: PathBuf,
    pub bytes: u64,
    pub entries: u64,
    /// The use when the run started: a workspace already over the quota
    /// (a lowered limit) may still run; only growing past it ends a run.
    pub start: Usage,
}

impl Quota {
    /// A quota for `path`, measured now; `None` without limits.
    pub fn new(path: &Path, bytes: u64, entries: u64) -> Option<Quota> {
        if bytes == 0 && entries == 0 {
            return None;
        }
        let start = measure(path, u64::MAX, u64::MAX);
        Some(Quota {
            path: path.to_path_buf(),
            bytes,
            entries,
            start,
        })
    }

    /// Whether the run has grown the workspace past the quota.
    pub fn exceeded(&self) -> bool {
        let cap = |limit: u64, start: u64| {
            if limit == 0 {
                u64::MAX
            } else {
                limit.max(start)
            }
        };
        let (bytes, entries) = (
            cap(self.bytes, self.start.bytes),
            cap(self.entries, self.start.entries),
        );
        let now = measure(&self.path, bytes, entries);
        now.bytes > bytes || now.entries > entries
    }
}

/// Walks `root` without following links, stopping early once either
/// total passes its bound. Unreadable entries count as nothing: the run's
/// own files are readable by the server, and a folder the agent made
/// unreadable to it still has its size counted by its parent's entry.
pub(crate) fn measure(root: &Path, max_bytes: u64, max_entries: u64) -> Usage {
    let mut used = Usage::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            used.entries += 1;
            used.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(e.path());
            }
            if used.bytes > max_bytes || used.entries > max_entries {
                return used;
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_files_and_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("y"), b"hi").unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let u = measure(dir.path(), u64::MAX, u64::MAX);
        assert_eq!(u.entries, 4, "a, a/x, y, link (not followed)");
        assert!(u.bytes >= 100_000, "{u:?}");
        assert!(u.bytes < 10_000_000, "the link was followed: {u:?}");
        assert!(measure(dir.path(), u64::MAX, 1).entries <= 2);
    }

    #[test]
    fn only_growth_past_the_quota_counts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), vec![1u8; 200_000]).unwrap();
        // Already over a 100 kB quota before the run: not exceeded yet.
        let q = Quota::new(dir.path(), 100_000, 0).unwrap();
        assert!(!q.exceeded());
        std::fs::write(dir.path().join("new"), vec![1u8; 200_000]).unwrap();
        assert!(q.exceeded());
        assert!(Quota::new(dir.path(), 0, 0).is_none());
    }
}
