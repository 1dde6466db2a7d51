//! Preparing the workspace directory on the host.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Creates the workspace if missing and, when `owner` is given (the caller
/// is root and the sandbox runs as an unprivileged uid), hands it over to
/// that uid/gid so the sandboxed program can write to it.
///
/// The walk never follows symlinks (`lchown`, no descent into symlinked
/// directories) and leaves multiply-linked files alone: a hard link to a
/// host file planted in the workspace must not be chowned. It runs only
/// when the workspace is not yet owned by the agent's uid (see `prepare`).
pub(crate) fn prepare(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("workspace {} is not a directory", dir.display()),
        ));
    }
    if let Some((uid, gid)) = owner {
        // A workspace already owned by its uid was handed over before and
        // everything in it was written by that uid: no walk. Walking only on
        // first use (or after a uid change) also means no walk ever runs
        // while another run of the same agent, with the same uid, is alive
        // and could swap a directory for a symlink under it.
        if meta.uid() != uid || meta.gid() != gid {
            chown_tree(dir, uid, gid)?;
        }
        // Only the agent's uid (and root) may look inside.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let is_dir = meta.file_type().is_dir();
    if (is_dir || meta.nlink() == 1) && (meta.uid() != uid || meta.gid() != gid) {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    if is_dir {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
