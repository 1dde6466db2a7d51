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
/// host file planted in the workspace must not be chowned. It runs while no
/// process of the sandbox is alive, so the tree cannot change under it.
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
        chown_tree(dir, uid, gid)?;
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
