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

/// Compiles a script, read from fd 3, to the bytes of a `.pyc` on fd 4.
const COMPILE_SOURCE: &str = r#"
import importlib.util, marshal, os
chunks = []
while True:
    b = os.read(3, 65536)
    if not b:
        break
    chunks.append(b)
code = compile(b"".join(chunks), "/p38/main.py", "exec", dont_inherit=True)
with os.fdopen(4, "wb") as f:
    # Magic, then flags and the source's mtime and size, which Python does
    # not check for a .pyc run directly as the main script.
    f.write(importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code))
"#;

/// Compiles the runner once, in the sandbox and with the sandbox's own
/// Python (a `.pyc` only works for the interpreter that made it), into
/// `dir/runner.pyc`. Every run then skips compiling it, about a
/// millisecond each. Python recognises a compiled main script by its magic
/// number, so it runs under the same `/p38/main.py` name.
pub(crate) fn compile_runner(
    sandbox: &p38_sandbox::Sandbox,
    dir: &Path,
) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("compile.py");
    std::fs::write(&script, COMPILE_SOURCE).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| e.to_string())?;
    let limits = p38_sandbox::Limits {
        wall: std::time::Duration::from_secs(60),
        // Our own script writes nothing there: no quota, so no image.
        workspace_bytes: 0,
        workspace_entries: 0,
        ..Default::default()
    };
    let out = sandbox
        .run_blocking(p38_sandbox::RunRequest {
            script,
            input: RUNNER_SOURCE.as_bytes().to_vec(),
            workspace: dir.join("compile-workspace"),
            network: false,
            limits,
            cancel: p38_sandbox::CancelFlag::new(),
            run_as: None,
        })
        .map_err(|e| e.to_string())?;
    if out.exit_code != Some(0) || out.reply.truncated || out.reply.bytes.len() < 16 {
        return Err(format!(
            "exit {:?}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr.bytes).trim()
        ));
    }
    let pyc = dir.join("runner.pyc");
    let tmp = dir.join(format!("runner.pyc.{}", std::process::id()));
    std::fs::write(&tmp, &out.reply.bytes).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &pyc).map_err(|e| e.to_string())?;
    Ok(pyc)
}
