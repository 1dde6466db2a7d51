//! The embedded runner and finding a Python interpreter.

use std::path::{Path, PathBuf};

/// The runner every sandbox executes (see `python/runner.py`).
pub const RUNNER_SOURCE: &str = include_str!("python/runner.py");

/// Picks the interpreter: the configured one, else Debian's
/// `/usr/bin/python3` (fast to start, readable by the sandbox user), else
/// whatever `python3` on PATH really is (resolving shims such as pyenv's,
/// which cost ~100 ms a start). Returns the interpreter and, when it lives
/// outside /usr, its prefix to bind into the sandbox.
pub fn resolve_python(configured: Option<&Path>) -> Result<(PathBuf, Option<PathBuf>), String> {
    let candidate = match configured {
        Some(p) => p.to_path_buf(),
        None if Path::new("/usr/bin/python3").exists() => PathBuf::from("/usr/bin/python3"),
        None => PathBuf::from("python3"),
    };
    let out = std::process::Command::new(&candidate)
        .args([
            "-I",
            "-S",
            "-c",
            "import sys; print(sys.executable); print(sys.base_prefix)",
        ])
        .output()
        .map_err(|e| {
            format!(
                "cannot start Python at {}: {e}; install python3 or set P38_PYTHON",
                candidate.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "{} -c failed: {}",
            candidate.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let exe = PathBuf::from(lines.next().unwrap_or_default());
    let prefix = PathBuf::from(lines.next().unwrap_or_default());
    if exe.as_os_str().is_empty() {
        return Err(format!(
            "{} did not report sys.executable",
            candidate.display()
        ));
    }
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let prefix = (!prefix.starts_with("/usr")).then_some(prefix);
    Ok((exe, prefix))
}
