//! A workspace as a gzip-compressed tar, as the host packs it after a run
//! and unpacks it before one (see `workspace_carry.rs` for when).
//!
//! The tree is the agent's, so it is read and written as untrusted:
//! - packing never follows a link: folders, regular files and links are
//!   packed (a file as it is when it is opened, `O_NOFOLLOW`), links only
//!   when they point inside the workspace; sockets, pipes and devices are
//!   skipped. Entries come parents first and each folder's by name, with
//!   owner 0 and no set-id bits, so one tree always packs to the same bytes.
//! - unpacking accepts only plain relative paths, bounds the bytes it
//!   writes by the quota, creates every folder and file before any link
//!   (so nothing it writes can pass through one), and creates a link only
//!   in a real folder.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// What one workspace entry is.
enum Kind {
    Dir,
    File,
    Link(PathBuf),
}

struct Entry {
    /// Path inside the workspace.
    rel: PathBuf,
    kind: Kind,
    meta: fs::Metadata,
}

/// The workspace's entries in archive order (parents first, each folder's
/// by name), without following links; special files and links out of the
/// workspace left out. A missing workspace has none.
fn list(root: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    // Paths still to visit, the next on top: a folder's entries are pushed
    // in reverse, so they come out in order right after the folder (depth
    // first, without a recursive walk's stack depth).
    let mut todo: Vec<PathBuf> = Vec::new();
    push_entries(root, Path::new(""), &mut todo)?;
    while let Some(rel) = todo.pop() {
        let meta = match fs::symlink_metadata(root.join(&rel)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            push_entries(root, &rel, &mut todo)?;
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            let target = fs::read_link(root.join(&rel))?;
            if !stays_inside(rel.parent().unwrap_or(Path::new("")), &target) {
                continue;
            }
            Kind::Link(target)
        } else {
            continue;
        };
        out.push(Entry { rel, kind, meta });
    }
    Ok(out)
}

/// Pushes the entries of the folder `dir` (relative to `root`) on `todo`,
/// last name first.
fn push_entries(root: &Path, dir: &Path, todo: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut names: Vec<OsString> = match fs::read_dir(root.join(dir)) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    todo.extend(names.into_iter().map(|n| dir.join(n)));
    Ok(())
}

/// Whether a link in the folder `dir` (relative to the workspace) to
/// `target` resolves inside the workspace, judged on the path alone (the
/// folders it passes are real ones: packing descends into no link).
fn stays_inside(dir: &Path, target: &Path) -> bool {
    let mut depth = dir.components().count() as i64;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// What a workspace holds, cheaply: a hash of every entry's path, kind,
/// size, modification time and mode, without reading a file. Equal hashes
/// mean nothing changed, so the workspace need not be packed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// SHA-256 over the entries, hex.
    pub hash: String,
    /// How many entries there are.
    pub entries: usize,
}

/// The [`Manifest`] of the workspace at `root`.
pub(crate) fn manifest(root: &Path) -> io::Result<Manifest> {
    let entries = list(root)?;
    let mut h = Sha256::new();
    for e in &entries {
        h.update(e.rel.as_os_str().as_bytes());
        h.update([0]);
        let mode = e.meta.mode() & 0o7777;
        match &e.kind {
            Kind::Dir => h.update(format!("d {mode}\n")),
            Kind::File => h.update(format!(
                "f {mode} {} {} {}\n",
                e.meta.size(),
                e.meta.mtime(),
                e.meta.mtime_nsec()
            )),
            Kind::Link(t) => {
                h.update(b"l ");
                h.update(t.as_os_str().as_bytes());
                h.update([b'\n']);
            }
        }
    }
    Ok(Manifest {
        hash: hex::encode(h.finalize()),
        entries: entries.len(),
    })
}

/// A packed workspace.
#[derive(Debug)]
pub(crate) enum Packed {
    /// The archive's bytes.
    Archive(Vec<u8>),
    /// The files, or their archive, hold more than the limit.
    TooLarge,
}

/// Collects the archive, refusing to grow past `limit` bytes.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("the workspace archive exceeds its limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Packs the workspace at `root`, unless its files hold more than `limit`
/// bytes, or their archive would.
pub(crate) fn pack(root: &Path, limit: u64) -> io::Result<Packed> {
    let entries = list(root)?;
    let contents: u64 = entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File))
        .map(|e| e.meta.size())
        .sum();
    if contents > limit {
        return Ok(Packed::TooLarge);
    }
    let out = Bounded {
        buf: Vec::new(),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        exceeded: false,
    };
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let written = entries
        .iter()
        .try_for_each(|e| append(&mut tar, root, e))
        .and_then(|()| tar.finish());
    if tar.get_ref().get_ref().exceeded {
        return Ok(Packed::TooLarge);
    }
    written?;
    let mut gz = tar.into_inner()?;
    let finished = gz.try_finish();
    if gz.get_ref().exceeded {
        return Ok(Packed::TooLarge);
    }
    finished?;
    Ok(Packed::Archive(gz.finish()?.buf))
}

fn header(kind: EntryType, meta: &fs::Metadata, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(meta.mode() & 0o777);
    h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: Write>(tar: &mut tar::Builder<W>, root: &Path, e: &Entry) -> io::Result<()> {
    match &e.kind {
        Kind::Dir => {
            let mut h = header(EntryType::Directory, &e.meta, 0);
            tar.append_data(&mut h, &e.rel, io::empty())
        }
        Kind::Link(target) => {
            let mut h = header(EntryType::Symlink, &e.meta, 0);
            tar.append_link(&mut h, &e.rel, target)
        }
        Kind::File => {
            // O_NONBLOCK: a pipe swapped in since the listing must not
            // block the worker; fstat below turns it away.
            let opened = OpenOptions::new()
                .read(true)
                .custom_flags(libc_flags())
                .open(root.join(&e.rel));
            let file = match opened {
                Ok(f) => f,
                // Gone, or a link now: skipped, as at the listing.
                Err(err) if err.kind() == io::ErrorKind::NotFound || is_loop(&err) => {
                    return Ok(());
                }
                Err(err) => return Err(err),
            };
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(());
            }
            let size = meta.len();
            let mut h = header(EntryType::Regular, &meta, size);
            // Exactly `size` bytes, even if the file changes meanwhile.
            let data = file.take(size).chain(io::repeat(0)).take(size);
            tar.append_data(&mut h, &e.rel, data)
        }
    }
}

/// `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`.
fn libc_flags() -> i32 {
    use nix::fcntl::OFlag;
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()
}

fn is_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32)
}

/// SHA-256 of an archive, hex: how the store tells versions apart.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deletes everything inside the folder `root` (not the folder itself, which
/// may be a mount point), without following links.
pub(crate) fn empty(root: &Path) -> io::Result<()> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let removed = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())
        } else {
            fs::remove_file(entry.path())
        };
        if let Err(e) = removed
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(e);
        }
    }
    Ok(())
}

fn unsafe_archive(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// A path of the archive made of plain names only.
fn plain(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(unsafe_archive(format!(
                    "the workspace archive holds the path {}, which leaves the workspace",
                    path.display()
                )));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(unsafe_archive(
            "the workspace archive holds an empty path".into(),
        ));
    }
    Ok(out)
}

/// Whether every folder from `root` down to `root/rel` is a real folder
/// (no link on the way).
fn real_folders(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    rel.components().all(|c| {
        at.push(c);
        fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir())
    })
}

/// Unpacks `archive` into the empty folder `root`, writing at most
/// `limit` bytes of file contents; modes without set-id bits, owned by
/// the caller (the agent's uid is given afterwards).
pub(crate) fn unpack(root: &Path, archive: &[u8], limit: u64) -> io::Result<()> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut written: u64 = 0;
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let rel = plain(&entry.path()?)?;
        let dest = root.join(&rel);
        let mode = entry.header().mode()? & 0o777;
        match entry.header().entry_type() {
            EntryType::Directory => {
                // No link exists yet: every folder on the way is real.
                fs::create_dir_all(&dest)?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o700))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                written += entry.size();
                if written > limit {
                    return Err(unsafe_archive(format!(
                        "the workspace archive holds more than the quota of {} MiB",
                        limit / (1024 * 1024)
                    )));
                }
                if let Some(parent) = dest.parent() {
                    // No link exists yet: every folder on the way is real.
                    fs::create_dir_all(parent)?;
                }
                let mut f: File = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_flags())
                    .open(&dest)?;
                let size = entry.size();
                io::copy(&mut (&mut entry).take(size), &mut f)?;
                let mtime = entry.header().mtime().unwrap_or(0);
                f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))?;
                f.set_permissions(fs::Permissions::from_mode(mode))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| unsafe_archive("a link without a target".into()))?
                    .into_owned();
                let dir = rel.parent().unwrap_or(Path::new(""));
                if !stays_inside(dir, &target) {
                    return Err(unsafe_archive(format!(
                        "the workspace archive links {} out of the workspace",
                        rel.display()
                    )));
                }
                links.push((rel, target));
            }
            // Nothing else is packed; an archive from elsewhere loses it.
            _ => {}
        }
    }
    for (rel, target) in links {
        let dir = rel.parent().unwrap_or(Path::new(""));
        if !real_folders(root, dir) {
            return Err(unsafe_archive(format!(
                "the workspace archive puts the link {} under another link",
                rel.display()
            )));
        }
        std::os::unix::fs::symlink(&target, root.join(&rel))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("b/deep")).unwrap();
        fs::write(r.join("a.txt"), "alpha").unwrap();
        fs::write(r.join("b/deep/c.bin"), vec![7u8; 10_000]).unwrap();
        fs::write(r.join("b/z"), "").unwrap();
        std::os::unix::fs::symlink("deep/c.bin", r.join("b/inside")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("out-abs")).unwrap();
        std::os::unix::fs::symlink("../../x", r.join("b/out-rel")).unwrap();
        nix::unistd::mkfifo(&r.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        t
    }

    fn names(root: &Path) -> Vec<String> {
        list(root)
            .unwrap()
            .iter()
            .map(|e| e.rel.display().to_string())
            .collect()
    }

    fn archive(root: &Path) -> Vec<u8> {
        match pack(root, 1 << 30).unwrap() {
            Packed::Archive(b) => b,
            Packed::TooLarge => panic!("too large"),
        }
    }

    #[test]
    fn the_listing_is_ordered_and_leaves_out_links_out_and_special_files() {
        let t = tree();
        assert_eq!(
            names(t.path()),
            ["a.txt", "b", "b/deep", "b/deep/c.bin", "b/inside", "b/z"]
        );
        assert!(list(&t.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn a_tree_round_trips_and_packs_to_the_same_bytes() {
        let t = tree();
        let bytes = archive(t.path());
        assert_eq!(bytes, archive(t.path()), "deterministic");
        let dest = tempfile::tempdir().unwrap();
        unpack(dest.path(), &bytes, 1 << 30).unwrap();
        assert_eq!(
            names(dest.path()),
            ["a.txt", "b", "b/deep", "b/deep/c.bin", "b/inside", "b/z"]
        );
        assert_eq!(
            fs::read(dest.path().join("b/inside")).unwrap(),
            vec![7u8; 10_000]
        );
        assert_eq!(
            fs::read_to_string(dest.path().join("a.txt")).unwrap(),
            "alpha"
        );
        // What was unpacked packs to the same archive (mtimes in seconds).
        assert_eq!(
            manifest(dest.path()).unwrap(),
            manifest(dest.path()).unwrap()
        );
        let again = archive(dest.path());
        assert_eq!(again, archive(dest.path()));
    }

    #[test]
    fn the_manifest_changes_with_contents_and_not_otherwise() {
        let t = tree();
        let m = manifest(t.path()).unwrap();
        assert_eq!(m, manifest(t.path()).unwrap());
        assert_eq!(m.entries, 6);
        fs::write(t.path().join("b/z"), "now longer").unwrap();
        assert_ne!(m, manifest(t.path()).unwrap());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(manifest(empty.path()).unwrap().entries, 0);
    }

    #[test]
    fn packing_stops_at_the_limit() {
        let t = tempfile::tempdir().unwrap();
        // Incompressible: 2 MiB from a simple generator.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let noise: Vec<u8> = (0..2 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(t.path().join("noise"), noise).unwrap();
        assert!(matches!(pack(t.path(), 1 << 20).unwrap(), Packed::TooLarge));
        let Packed::Archive(b) = pack(t.path(), 4 << 20).unwrap() else {
            panic!("fits in 4 MiB")
        };
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(dest.path(), &b, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("quota"), "{err}");
    }

    #[test]
    fn unpacking_refuses_paths_and_links_out_of_the_workspace() {
        fn one(path: &str, kind: EntryType, link: Option<&str>) -> Vec<u8> {
            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            let mut h = Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(0);
            h.set_mode(0o644);
            // Written by hand: the builder itself refuses `..`.
            h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
            b.into_inner().unwrap().finish().unwrap()
        }
        let dest = tempfile::tempdir().unwrap();
        for bad in [
            one("../escape", EntryType::Regular, None),
            one("/abs", EntryType::Regular, None),
            one("l", EntryType::Symlink, Some("/etc")),
            one("d/l", EntryType::Symlink, Some("../../etc")),
        ] {
            let err = unpack(dest.path(), &bad, 1 << 20).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
        assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn emptying_removes_everything_but_follows_no_link() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "x").unwrap();
        let t = tree();
        std::os::unix::fs::symlink(outside.path(), t.path().join("to-outside")).unwrap();
        empty(t.path()).unwrap();
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
        assert!(outside.path().join("keep").exists());
    }
}
