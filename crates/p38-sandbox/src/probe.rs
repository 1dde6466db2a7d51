//! Host checks run once by [`crate::Sandbox::new`]: each failure names what
//! is missing and how to get it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{CancelFlag, Limits, SandboxConfig};
use crate::{Sandbox, SandboxError};

/// Resolves the bwrap executable (a path, or a bare name searched on PATH).
pub(crate) fn find_bwrap(configured: &Path) -> Result<PathBuf, SandboxError> {
    let missing = || {
        SandboxError::Unavailable(format!(
            "bubblewrap ({}) not found on PATH: install the Debian package bubblewrap",
            configured.display()
        ))
    };
    if configured.components().count() > 1 || configured.is_absolute() {
        return if is_executable(configured) {
            Ok(configured.to_path_buf())
        } else {
            Err(missing())
        };
    }
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(configured))
        .find(|p| is_executable(p))
        .ok_or_else(missing)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Static sysctl checks; the probe run catches everything else (e.g. an
/// AppArmor policy that forbids unprivileged user namespaces).
pub(crate) fn check_user_namespaces() -> Result<(), SandboxError> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err(SandboxError::Unavailable(
            "user namespaces are disabled: user.max_user_namespaces is 0 (run: sysctl -w user.max_user_namespaces=15000)".into(),
        ));
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Err(SandboxError::Unavailable(
            "user namespaces are disabled: kernel.unprivileged_userns_clone is 0 (run: sysctl -w kernel.unprivileged_userns_clone=1)".into(),
        ));
    }
    Ok(())
}

/// The interpreter must exist and live under a directory that is bound into
/// the sandbox: `/usr` or the configured `python_prefix`.
pub(crate) fn check_interpreter(config: &SandboxConfig) -> Result<(), SandboxError> {
    let real = std::fs::canonicalize(&config.python).map_err(|e| {
        SandboxError::Unavailable(format!(
            "python interpreter {} not usable: {e}",
            config.python.display()
        ))
    })?;
    let prefix_ok = config
        .python_prefix
        .as_deref()
        .is_some_and(|p| real.starts_with(p));
    if !real.starts_with("/usr") && !prefix_ok {
        return Err(SandboxError::Unavailable(format!(
            "python interpreter {} (really {}) is outside /usr: set python_prefix to its installation directory",
            config.python.display(),
            real.display()
        )));
    }
    Ok(())
}

/// Runs the init shim in probe mode inside bubblewrap (it applies rlimits,
/// landlock and seccomp, checks they bite, then runs `python -I -S -c pass`).
pub(crate) fn run_probe(sandbox: &Sandbox) -> Result<(), SandboxError> {
    let limits = Limits {
        wall: Duration::from_secs(30),
        ..Limits::default()
    };
    let outcome = sandbox
        .launch(
            sandbox.inner.drop_to,
            None,
            None,
            false,
            &limits,
            Vec::new(),
            &CancelFlag::new(),
            crate::config::LiveOutput::new(),
        )
        .map_err(|e| SandboxError::Unavailable(explain(&e.to_string())))?;
    if outcome.exit_code == Some(0) {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&outcome.stderr.bytes);
    let detail = stderr.lines().next().unwrap_or("").trim().to_string();
    Err(SandboxError::Unavailable(explain(&format!(
        "the sandbox probe failed (exit {:?}, signal {:?}, timed out {}): {detail}",
        outcome.exit_code, outcome.signal, outcome.timed_out
    ))))
}

/// Adds a hint for the common causes.
fn explain(msg: &str) -> String {
    let lower = msg.to_lowercase();
    if lower.contains("landlock") || lower.contains("seccomp") {
        msg.to_string()
    } else if lower.contains("namespace") || lower.contains("uid map") || lower.contains("uid_map")
    {
        format!("user namespaces are not usable: {msg}")
    } else if lower.contains("can't find source path") || lower.contains("permission denied") {
        format!(
            "{msg} (the interpreter, its prefix and the init program must be readable by the sandbox uid; /root is not)"
        )
    } else {
        msg.to_string()
    }
}

/// Finds where run cgroups go. A delegated root the operator named must
/// work; without one, a host with no writable memory controller still runs
/// agents, bounded only by `RLIMIT_AS` (warned here, shown by
/// [`Sandbox::layers`]).
pub(crate) fn cgroups(root: Option<&Path>) -> Result<Option<crate::cgroup::Host>, SandboxError> {
    match crate::cgroup::Host::detect(root) {
        Ok(host) => Ok(Some(host)),
        Err(why) if root.is_some() => Err(SandboxError::Unavailable(format!(
            "{why} (P38_CGROUP_ROOT / --cgroup-root must name a writable, delegated cgroup; unset it to use this process's own cgroup)"
        ))),
        Err(why) => {
            tracing::warn!(
                "p38-sandbox: no memory cgroup for runs ({why}): memory is bounded per process by RLIMIT_AS only, so memfd_create and shmget are refused; run as root on a host with a writable memory controller, or set P38_CGROUP_ROOT to a delegated cgroup"
            );
            Ok(None)
        }
    }
}
