//! The lint stage: ruff over the code on stdin.
//!
//! `ruff check --select E,F,B,S,D --ignore D203,D213 --output-format json
//! --stdin-filename agent.py -`, run `--isolated` so that a `ruff.toml` in
//! the server's working directory cannot change the verdict. Ruff exits 1
//! when it finds problems; that is a result, not a failure. If ruff cannot be
//! found the stage is skipped with a note, never reported as passed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::OnceCell;

use super::{Finding, Severity, Stage};

/// Ruff codes (prefixes) that block an agent by default: syntax errors,
/// undefined names, `exec`/`eval` and subprocess use, and the module and
/// function docstrings the agent contract asks for. Everything else (style,
/// unused imports, likely bugs) is a warning.
pub const DEFAULT_LINT_ERROR_CODES: &[&str] = &[
    "invalid-syntax",
    "E9",
    "F63",
    "F7",
    "F82",
    "S102",
    "S307",
    "S60",
    "D100",
    "D103",
];

const ARGS: &[&str] = &[
    "check",
    "--isolated",
    "--select",
    "E,F,B,S,D",
    "--ignore",
    "D203,D213",
    "--output-format",
    "json",
    "--stdin-filename",
    "agent.py",
    "-",
];

/// How to find ruff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuffCommand {
    /// `ruff` on `PATH`, else `python3 -m ruff`.
    Auto,
    /// This executable.
    Path(PathBuf),
}

/// A ruff runner that finds the executable once.
pub(crate) struct Ruff {
    command: RuffCommand,
    resolved: OnceCell<Option<(PathBuf, Vec<String>)>>,
}

/// One diagnostic of ruff's JSON output.
#[derive(Debug, Deserialize)]
pub(crate) struct Diagnostic {
    code: Option<String>,
    #[serde(default)]
    name: Option<String>,
    message: String,
    location: Option<Location>,
}

#[derive(Debug, Deserialize)]
struct Location {
    row: u32,
}

impl Ruff {
    pub(crate) fn new(command: RuffCommand) -> Self {
        Ruff {
            command,
            resolved: OnceCell::new(),
        }
    }

    /// The program and its leading arguments, or `None` when there is no ruff.
    async fn resolve(&self) -> &Option<(PathBuf, Vec<String>)> {
        self.resolved
            .get_or_init(|| async {
                match &self.command {
                    RuffCommand::Path(p) => Some((p.clone(), Vec::new())),
                    RuffCommand::Auto => {
                        if let Some(p) = find_on_path("ruff") {
                            return Some((p, Vec::new()));
                        }
                        let ok = Command::new("python3")
                            .args(["-m", "ruff", "--version"])
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .await
                            .is_ok_and(|s| s.success());
                        ok.then(|| (PathBuf::from("python3"), vec!["-m".into(), "ruff".into()]))
                    }
                }
            })
            .await
    }

    /// Runs ruff over `code`; `Err` holds the note of a skipped stage.
    pub(crate) async fn check(
        &self,
        code: &str,
        timeout: Duration,
    ) -> Result<Vec<Diagnostic>, String> {
        let Some((program, lead)) = self.resolve().await else {
            return Err("ruff not installed (not on PATH, and `python3 -m ruff` failed)".into());
        };
        let spawned = Command::new(program)
            .args(lead)
            .args(ARGS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "ruff not installed ({} not found)",
                    program.display()
                ));
            }
            Err(e) => return Err(format!("ruff could not start: {e}")),
        };
        let mut stdin = child.stdin.take().ok_or("ruff has no stdin")?;
        let code = code.to_string();
        // Write while ruff reads: a large file would fill the pipe otherwise.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(code.as_bytes()).await;
        });
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| format!("ruff did not finish within {}s", timeout.as_secs()))?
            .map_err(|e| format!("ruff failed: {e}"))?;
        let _ = writer.await;
        match out.status.code() {
            Some(0 | 1) => serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("ruff printed output that is not its JSON format: {e}")),
            _ => Err(format!(
                "ruff failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Maps ruff's diagnostics. Ruff's own syntax errors are dropped when the
/// syntax stage already failed (they would say the same thing twice) and
/// kept when it passed (CPython-only errors tree-sitter lets through).
pub(crate) fn findings(
    diags: Vec<Diagnostic>,
    error_codes: &[String],
    syntax_ok: bool,
) -> Vec<Finding> {
    diags
        .into_iter()
        .filter_map(|d| {
            let rule = d
                .code
                .filter(|c| !c.is_empty())
                .or(d.name)
                .unwrap_or_else(|| "invalid-syntax".to_string());
            if rule == "invalid-syntax" && !syntax_ok {
                return None;
            }
            let severity = if error_codes.iter().any(|c| rule.starts_with(c.as_str())) {
                Severity::Error
            } else {
                Severity::Warning
            };
            Some(Finding {
                stage: Stage::Lint,
                line: d.location.map(|l| l.row),
                rule,
                message: d.message,
                severity,
            })
        })
        .collect()
}
