//! Each workspace as its own ext4 filesystem: a sparse image file
//! (`<workspace>.img`, root-only) loop-mounted `nosuid,nodev,noexec` at the
//! workspace folder and kept mounted between runs.
//!
//! Why: a quota that is measured by walking the folder can be walked
//! around (paths deeper than `PATH_MAX`, folders it cannot read, renames
//! while it walks) and costs the server CPU that grows with what the agent
//! stores. A filesystem of the quota's size is enforced by the kernel, its
//! inode count (`mkfs.ext4 -N`) is the entry limit, and measuring it is one
//! `fstatfs`. It also makes the workspace the root of its own filesystem,
//! so the sandbox's `/proc/self/mountinfo` names nothing of the host.
//!
//! Built with the host's own tools (`mkfs.ext4`, `e2fsck`, `resize2fs`,
//! `mount`, `umount`, `losetup` from e2fsprogs and util-linux) rather than
//! the mount syscalls and loop ioctls: making an ext4 filesystem is
//! e2fsprogs' job, `mount -o loop` picks and frees loop devices race-free
//! (`LOOP_CTL_GET_FREE` + autoclear), and these run only on a workspace's
//! first use and on changes, never during a run.
//!
//! Needs root and working loop devices; [`probe`] says once at start when
//! they are missing, and the quota then falls back to walking the folder.
//! The image has no journal (it would cost a few MiB per agent); a mount
//! runs `e2fsck -p` first, which repairs one left unclean by a crash.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::quota::EXT4_RESERVED_INODES;

const MIB: u64 = 1 << 20;

/// The image file of the workspace at `ws`: `ws` + `.img`, beside it.
pub(crate) fn image_path(ws: &Path) -> PathBuf {
    let mut s: OsString = ws.as_os_str().to_owned();
    s.push(".img");
    PathBuf::from(s)
}

/// Bytes of image for a quota: the quota, a margin past it (so that the
/// watchdog sees the quota passed, instead of the agent only seeing a full
/// disk), the inode tables and ext4's own reserve.
pub(crate) fn image_size(bytes: u64, entries: u64) -> u64 {
    let data = bytes + (bytes / 16).max(512 * 1024);
    let inodes = (entries + EXT4_RESERVED_INODES + 1) * 256;
    (data + data / 32 + inodes + MIB).next_multiple_of(MIB)
}

/// Finds a tool on PATH or in the sbin folders (a server's PATH often
/// lacks them).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(name: &str, args: &[&OsStr]) -> io::Result<()> {
    let program = tool(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name} not found (install e2fsprogs and util-linux)"),
        )
    })?;
    let out = Command::new(&program)
        .args(args)
        .env("LC_ALL", "C")
        .output()?;
    // e2fsck: 1 = errors fixed, 2 = fixed, reboot advised (not for us).
    let ok = out.status.success() || (name == "e2fsck" && matches!(out.status.code(), Some(1 | 2)));
    if ok {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!(
        "{name} {} failed ({}): {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        out.status,
        err.trim()
    )))
}

/// Whether images can be used here; `Err` says what is missing.
pub(crate) fn probe() -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the server is not root (mounting needs it)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("there is no /dev/loop-control (loop devices)".into());
    }
    for t in [
        "mkfs.ext4",
        "e2fsck",
        "resize2fs",
        "mount",
        "umount",
        "losetup",
    ] {
        if tool(t).is_none() {
            return Err(format!("{t} is missing (install e2fsprogs and util-linux)"));
        }
    }
    // A real mount: a container may have the device but not the right.
    let dir = std::env::temp_dir().join(format!(
        "p38-image-probe-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ws = dir.join("ws");
    let result = ensure(&ws, MIB, 16, None).and_then(|()| remove(&ws).map(|_| ()));
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| e.to_string())
}

/// An exclusive `flock` on the image file, held while it is changed, so
/// two runs (or a run and a deletion, in this or another process) never
/// mount, grow or remove one image at once.
struct Locked(std::fs::File);

fn lock(img: &Path, create: bool) -> io::Result<Locked> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(img)?;
    // SAFETY: a valid fd.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Locked(f))
}

/// Whether something is mounted at `dir`: its device differs from its
/// parent's. Two `lstat`s, so the check before every run costs the same
/// however many workspaces are mounted (the mount table grows with them).
pub(crate) fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::symlink_metadata(dir),
        std::fs::symlink_metadata(dir.join("..")),
    ) {
        (Ok(d), Ok(parent)) => d.is_dir() && d.dev() != parent.dev(),
        _ => false,
    }
}

/// The device mounted at `dir`, from this process's mount table (the last
/// one wins, as the kernel stacks them). Reads the whole table: only for
/// the rare growth of an image.
pub(crate) fn mounted_source(dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = unescape(left.split(' ').nth(4)?);
        let source = right.split(' ').nth(1)?;
        (Path::new(&point) == dir).then(|| source.to_string())
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        if b[i] == b'\\'
            && let Some(v) = octal
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes `ws` the mount of its image, sized for `bytes` and `entries`:
/// creates the image on first use, mounts it after a restart, grows it when
/// the quota was raised. A lowered quota leaves the image as it is; the
/// quota check enforces it.
pub(crate) fn ensure(
    ws: &Path,
    bytes: u64,
    entries: u64,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    std::fs::create_dir_all(ws)?;
    let img = image_path(ws);
    let locked = lock(&img, true)?;
    let have = locked.0.metadata()?.len();
    let want = image_size(bytes, entries);
    let img_os = img.as_os_str();
    if is_mount_point(ws) {
        if want > have
            && let Some(dev) = mounted_source(ws)
        {
            grow(&locked, ws, &img, &dev, have, want)?;
        }
        return Ok(());
    }
    if have == 0 {
        locked.0.set_len(want)?;
        let inodes = (entries + EXT4_RESERVED_INODES + 1).to_string();
        let (uid, gid) = owner.unwrap_or((0, 0));
        let opts = format!("root_owner={uid}:{gid}");
        let made = run(
            "mkfs.ext4",
            &[
                "-q".as_ref(),
                "-F".as_ref(),
                "-b".as_ref(),
                "4096".as_ref(),
                "-m".as_ref(),
                "0".as_ref(),
                "-N".as_ref(),
                inodes.as_ref(),
                "-O".as_ref(),
                "^has_journal".as_ref(),
                "-E".as_ref(),
                opts.as_ref(),
                img_os,
            ],
        );
        if let Err(e) = made {
            // Leave no half-made image behind for the next run to mount.
            locked.0.set_len(0)?;
            return Err(e);
        }
    } else {
        run("e2fsck", &["-p".as_ref(), img_os])?;
        if want > have {
            offline_grow(&locked, &img, want)?;
        }
    }
    mount(&img, ws)
}

/// Mounts the image and takes away the `lost+found` that mkfs and e2fsck
/// make, so the workspace looks as a plain folder would (only an empty one
/// owned by root: the agent's own are its uid's).
fn mount(img: &Path, ws: &Path) -> io::Result<()> {
    mount_only(img, ws)?;
    let lf = ws.join("lost+found");
    if std::fs::symlink_metadata(&lf).is_ok_and(|m| m.is_dir() && m.uid() == 0) {
        let _ = std::fs::remove_dir(&lf);
    }
    Ok(())
}

fn mount_only(img: &Path, ws: &Path) -> io::Result<()> {
    run(
        "mount",
        &[
            "-t".as_ref(),
            "ext4".as_ref(),
            "-o".as_ref(),
            "loop,nosuid,nodev,noexec,noatime".as_ref(),
            img.as_os_str(),
            ws.as_os_str(),
        ],
    )
}

/// Grows a mounted image: online when the kernel lets us (it needs
/// `CAP_SYS_RESOURCE`, which containers often drop), else unmounted, which
/// only works while no run uses it; otherwise a later run grows it.
fn grow(locked: &Locked, ws: &Path, img: &Path, dev: &str, have: u64, want: u64) -> io::Result<()> {
    locked.0.set_len(want)?;
    let online = run("losetup", &["-c".as_ref(), dev.as_ref()])
        .and_then(|()| run("resize2fs", &[dev.as_ref()]));
    if online.is_ok() {
        return Ok(());
    }
    if run("umount", &[ws.as_os_str()]).is_err() {
        tracing::debug!(workspace = %ws.display(), "workspace image in use; it grows at a later run");
        locked.0.set_len(have)?;
        let _ = run("losetup", &["-c".as_ref(), dev.as_ref()]);
        return Ok(());
    }
    run("e2fsck", &["-p".as_ref(), img.as_os_str()])?;
    offline_grow(locked, img, want)?;
    mount(img, ws)
}

fn offline_grow(locked: &Locked, img: &Path, want: u64) -> io::Result<()> {
    locked.0.set_len(want)?;
    run("e2fsck", &["-f".as_ref(), "-p".as_ref(), img.as_os_str()])?;
    run("resize2fs", &[img.as_os_str()])
}

/// Unmounts and deletes the workspace at `ws` with its image; `Ok(false)`
/// when there was nothing to remove. A run still using the mount keeps it
/// until it ends (lazy unmount); its files are gone once it has.
pub(crate) fn remove(ws: &Path) -> io::Result<bool> {
    let img = image_path(ws);
    let locked = match lock(&img, false) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut found = locked.is_some();
    if is_mount_point(ws) {
        found = true;
        if run("umount", &[ws.as_os_str()]).is_err() {
            run("umount", &["-l".as_ref(), ws.as_os_str()])?;
        }
    }
    if locked.is_some() {
        std::fs::remove_file(&img)?;
    }
    match std::fs::remove_dir_all(ws) {
        Ok(()) => found = true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\"), r"/end\");
    }

    #[test]
    fn an_image_holds_the_quota_and_a_margin() {
        let s = image_size(2 * MIB, 300);
        assert!((2 * MIB + 512 * 1024..=4 * MIB).contains(&s), "{s}");
        assert_eq!(s % MIB, 0);
    }
}
