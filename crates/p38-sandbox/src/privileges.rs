//! What the init shim does with the two capabilities bubblewrap leaves it
//! (`--cap-add CAP_SYS_ADMIN --cap-add CAP_SETPCAP`, held only inside the
//! sandbox's own user namespace): make every writable mount `noexec`, then
//! give up every capability before landlock, seccomp and Python.
//!
//! Why the shim and not bubblewrap: bubblewrap 0.8 cannot mount noexec, and
//! its mounts belong to an outer user namespace (it nests a second one for
//! `--disable-userns` and the uid map), where the shim holds nothing. So the
//! shim first enters a mount namespace of its own (owned by its user
//! namespace); the copied mounts come with their flags locked (they cannot
//! be made writable, suid or dev again), and adding `noexec` is allowed.
//! Without exec rights on the writable mounts, neither `execve` nor
//! `mmap(PROT_EXEC)` of a file written by the agent can work, whatever
//! landlock allows.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn statvfs_flags(path: &Path) -> Result<(CString, u64), String> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} holds a NUL byte", path.display()))?;
    // SAFETY: statvfs fills a plain struct; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(os_err(&format!("cannot stat the mount {}", path.display())));
    }
    Ok((c, st.f_flag as u64))
}

/// statvfs's flag for nosymfollow (Linux 5.10+; not in the libc crate).
const ST_NOSYMFOLLOW: libc::c_ulong = 0x2000;

/// Enters a new mount namespace and remounts each path (a mount point)
/// `noexec,nosuid,nodev`, keeping the flags it has (read-only, atime
/// handling), which are locked and must be repeated on a remount.
pub(crate) fn make_noexec(paths: &[PathBuf]) -> Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    // SAFETY: unshare of the mount namespace only affects this process.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(os_err(
            "cannot create the sandbox's own mount namespace (bubblewrap must give CAP_SYS_ADMIN)",
        ));
    }
    for path in paths {
        let (c, flags) = statvfs_flags(path)?;
        let mut mount_flags =
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV;
        for (st, ms) in [
            (libc::ST_RDONLY, libc::MS_RDONLY),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
            (ST_NOSYMFOLLOW, libc::MS_NOSYMFOLLOW),
        ] {
            if flags & st != 0 {
                mount_flags |= ms;
            }
        }
        // SAFETY: a remount of an existing mount point; null source, type
        // and data are allowed for MS_REMOUNT|MS_BIND.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                c.as_ptr(),
                std::ptr::null(),
                mount_flags,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(os_err(&format!("cannot remount {} noexec", path.display())));
        }
        let (_, after) = statvfs_flags(path)?;
        if after & libc::ST_NOEXEC == 0 {
            return Err(format!(
                "{} is still executable after the remount",
                path.display()
            ));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// Drops every capability: locks the securebits (root in a user namespace
/// gets nothing back on exec), empties the bounding and ambient sets, then
/// the effective, permitted and inheritable sets; checks that all are empty.
pub(crate) fn drop_all_capabilities() -> Result<(), String> {
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY (all prctl calls here): integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(os_err(
            "cannot lock the securebits (bubblewrap must give CAP_SETPCAP)",
        ));
    }
    for cap in 0..64 {
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(os_err(&format!(
                "cannot drop capability {cap} from the bounding set"
            )));
        }
    }
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong;
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) } != 0 {
        return Err(os_err("cannot clear the ambient capabilities"));
    }
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let empty = [CapData::default(); 2];
    // SAFETY: capset reads a v3 header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, empty.as_ptr()) } != 0 {
        return Err(os_err("cannot drop the capabilities"));
    }
    let mut now = [CapData::default(); 2];
    // SAFETY: capget writes two data structs for a v3 header.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, now.as_mut_ptr()) } != 0 {
        return Err(os_err("cannot read the capabilities back"));
    }
    let left = now
        .iter()
        .any(|d| d.effective | d.permitted | d.inheritable != 0);
    let bounding = (0..64).any(|cap| unsafe {
        libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) == 1
    });
    if left || bounding {
        return Err("capabilities are left after dropping them all".into());
    }
    Ok(())
}
