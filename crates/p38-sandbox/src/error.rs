//! The crate's error type.

/// Why a run (or the sandbox itself) could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The host lacks something the sandbox needs; the message names it and
    /// says how to fix it. Agents must not run until it is fixed (or the
    /// operator explicitly sets `insecure_no_sandbox`).
    #[error("sandbox unavailable: {0}")]
    Unavailable(String),
    /// The process could not be started, or setting up the sandbox for this
    /// run failed (bubblewrap or the init shim reported an error; the
    /// message carries their one-line reason).
    #[error("could not start the sandboxed program: {0}")]
    Spawn(String),
    /// An I/O error on the host side (e.g. creating the workspace).
    #[error("sandbox I/O error: {0}")]
    Io(#[from] std::io::Error),
}
