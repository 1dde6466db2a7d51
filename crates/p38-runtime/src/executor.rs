//! Runs one agent once: resolves its declared secrets, sends the runner its
//! input over a pipe, runs the sandbox, masks every secret in what came
//! back and turns it into a task outcome.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use p38_core::agent::DEFAULT_RESULT_KB;
use p38_core::task::{FinishedRun, RunFigures, TaskOutcome};
use p38_sandbox::{LiveOutput, RunOutcome, RunRequest, Sandbox};
use p38_secrets::{Masker, SecretResolver};

use crate::config::RuntimeConfig;
use crate::live::{Follower, LiveSink, SAVE_EVERY};
use crate::python::RUNNER_SOURCE;
use crate::reply::{self, Caps, Reported, Window};
use crate::spec::RunSpec;

/// Runs agents in the sandbox.
pub struct Executor {
    sandbox: Sandbox,
    secrets: Arc<dyn SecretResolver>,
    runner: PathBuf,
    cfg: RuntimeConfig,
}

impl Executor {
    /// Writes the runner into `DATA_DIR/runtime/` and keeps the sandbox and
    /// secret resolver. The runner's bytes are handed to each run through
    /// an fd, but workspaces are bound by path, which bubblewrap resolves as
    /// the sandbox uid: when the data folder lies under a folder that uid
    /// cannot enter (e.g. `/root`, mode 0700), `DATA_DIR/workspaces` is
    /// bound at [`RuntimeConfig::staging_dir`] (root-owned, mode 0711), and
    /// runs use that. Fails, naming the folder and the fix, when that bind
    /// cannot be made.
    pub fn new(
        sandbox: Sandbox,
        secrets: Arc<dyn SecretResolver>,
        cfg: RuntimeConfig,
    ) -> std::io::Result<Executor> {
        use std::os::unix::fs::PermissionsExt;
        let dir = cfg.data_dir.join("runtime");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(cfg.data_dir.join("workspaces"))?;
        // The sandbox user must traverse these folders to reach its own
        // workspace and the runner; 0711 lets it pass without listing them.
        for d in [&cfg.data_dir, &cfg.data_dir.join("workspaces")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        stage_workspaces(&cfg)?;
        let runner = dir.join("runner.py");
        let tmp = dir.join(format!("runner.py.{}", std::process::id()));
        std::fs::write(&tmp, RUNNER_SOURCE)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &runner)?;
        Ok(Executor {
            sandbox,
            secrets,
            runner,
            cfg,
        })
    }

    /// Compiles the runner once, so that no run pays for compiling it
    /// (worth it for a worker, which runs many agents; not for one run).
    /// On failure, runs keep compiling it and a warning says why.
    pub fn precompile_runner(mut self) -> Executor {
        let dir = self.cfg.data_dir.join("runtime");
        match crate::python::compile_runner(&self.sandbox, &dir) {
            Ok(pyc) => self.runner = pyc,
            Err(e) => {
                tracing::warn!(error = %e, "could not precompile the agent runner; every run compiles it")
            }
        }
        self
    }

    /// Whether runs are sandboxed.
    pub fn sandboxed(&self) -> bool {
        self.sandbox.is_sandboxed()
    }

    /// The sandbox layers every run gets on this host.
    pub fn sandbox_layers(&self) -> p38_sandbox::Layers {
        self.sandbox.layers()
    }

    /// The sandbox runs go through.
    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The runtime settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// Runs what `spec` describes once. Never fails: every problem becomes
    /// a failed outcome with a message for the user.
    pub async fn run(&self, spec: RunSpec) -> FinishedRun {
        self.run_saving(spec, None).await
    }

    /// [`Executor::run`], storing the output so far on the task of `sink`
    /// while the run goes on (see `live.rs`).
    pub(crate) async fn run_saving(&self, spec: RunSpec, sink: Option<LiveSink>) -> FinishedRun {
        let secrets = match self.secrets.resolve(&spec.secrets).await {
            Ok(s) => s,
            Err(e) => return failed(format!("secrets: {e}"), !self.sandboxed()),
        };
        let masker = Masker::new(secrets.values());
        let exposed: BTreeMap<&str, &str> = secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let origin = spec.facts.origin;
        let result_bytes = spec.settings.max_result_kb.unwrap_or(DEFAULT_RESULT_KB) as usize * 1024;
        let input = serde_json::json!({
            "code": spec.code,
            "state": spec.state,
            "config": spec.config,
            "secrets": exposed,
            "tools": spec.tools,
            "run": {
                "task_id": origin.task_id(),
                "attempt": origin.attempt(),
                "trigger": origin.trigger(),
                "scheduled_at": spec.facts.scheduled_at.to_rfc3339(),
                "agent_id": origin.agent_id(),
                "agent_name": spec.facts.agent_name,
            },
            "history": spec.history,
            "max_state_bytes": self.cfg.max_state_bytes,
            "max_result_bytes": result_bytes,
        });
        // The only copy of the secret values outside this process is this
        // buffer, written to the runner's pipe.
        let input = input.to_string().into_bytes();
        let caps = Caps {
            result_bytes,
            state_bytes: self.cfg.max_state_bytes,
        };
        let limits = self
            .cfg
            .limits
            .for_agent(&spec.settings, self.cfg.output_cap, caps);
        let shown = Shown::of(&limits, caps);
        let req = RunRequest {
            script: self.runner.clone(),
            input,
            workspace: spec.workspace,
            network: spec.network,
            limits,
            cancel: spec.cancel,
            run_as: Some(self.cfg.agent_ids(origin.agent_id())),
        };
        let start = chrono::Utc::now();
        let live = LiveOutput::new();
        let run = self.sandbox.run_live(req, live.clone());
        let ran = match sink {
            None => run.await,
            Some(sink) => {
                tokio::pin!(run);
                let mut follower = Follower::new(live, start);
                let mut pause = SAVE_EVERY;
                loop {
                    tokio::select! {
                        ran = &mut run => break ran,
                        _ = tokio::time::sleep(pause) => {
                            pause = match follower.look(&masker, self.cfg.output_cap) {
                                Some(out) => sink.save(out).await,
                                None => SAVE_EVERY,
                            };
                        }
                    }
                }
            }
        };
        let window = Window {
            start,
            end: chrono::Utc::now(),
        };
        match ran {
            Ok(out) => outcome(out, &masker, self.cfg.output_cap, &shown, window),
            Err(e) => failed(masker.mask(&format!("sandbox: {e}")), !self.sandboxed()),
        }
    }
}

/// The first folder at or above `dir` that users other than its owner
/// cannot enter (mode without `o+x`), if any.
fn closed_ancestor(dir: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let real = std::fs::canonicalize(dir).ok()?;
    real.ancestors()
        .find(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(|a| a.to_path_buf())
}

/// Binds `DATA_DIR/workspaces` where the sandbox uid can reach it, when
/// it cannot reach the folder itself (see [`Executor::new`]).
fn stage_workspaces(cfg: &RuntimeConfig) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = nix::unistd::geteuid().is_root();
    let real = cfg.data_dir.join("workspaces");
    let Some(closed) = closed_ancestor(&real).filter(|_| root) else {
        return Ok(());
    };
    let staged = cfg.staging_dir();
    if crate::config::same_folder(&real, &staged) {
        return Ok(()); // bound by an earlier start (or another process)
    }
    let fail = |why: String| {
        std::io::Error::other(format!(
            "the data folder {} is inside {}, which the agents' uids cannot enter (mode 0700), and binding its workspaces at {} failed: {why}; fix: `chmod o+x {}` (entering, not listing), or put P38_DATA_DIR elsewhere",
            cfg.data_dir.display(),
            closed.display(),
            staged.display(),
            closed.display()
        ))
    };
    std::fs::create_dir_all(&staged).map_err(|e| fail(e.to_string()))?;
    for d in [std::path::Path::new("/run/p38"), &staged] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&real)
        .arg(&staged)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    tracing::info!(data_dir = %cfg.data_dir.display(), staged = %staged.display(), closed = %closed.display(),
        "the sandbox uids cannot enter the data folder: workspaces are reached through a bind mount");
    Ok(())
}

/// A run that failed before its process started: no figures.
fn failed(error: String, unsandboxed: bool) -> FinishedRun {
    FinishedRun {
        outcome: TaskOutcome::failed(error),
        figures: RunFigures {
            unsandboxed,
            ..Default::default()
        },
    }
}

/// The limits of a run, as error messages and the reply checks use them.
struct Shown {
    wall: std::time::Duration,
    memory_mb: u64,
    workspace_mb: u64,
    workspace_entries: u64,
    reply_mb: usize,
    caps: Caps,
}

impl Shown {
    fn of(l: &p38_sandbox::Limits, caps: Caps) -> Shown {
        Shown {
            wall: l.wall,
            memory_mb: l.memory_bytes / (1024 * 1024),
            workspace_mb: l.workspace_bytes / (1024 * 1024),
            workspace_entries: l.workspace_entries,
            reply_mb: l.reply_bytes / (1024 * 1024),
            caps,
        }
    }
}

fn outcome(out: RunOutcome, m: &Masker, cap: usize, shown: &Shown, window: Window) -> FinishedRun {
    let stream = |c: &p38_sandbox::Captured| {
        let text = String::from_utf8_lossy(&c.bytes);
        let masked = if c.truncated {
            m.mask_cut(&text)
        } else {
            m.mask(&text)
        };
        capped(&masked, cap, c.truncated)
    };
    // The log lines stay even when the run was stopped, or its reply cut.
    let (logs, reported) = reply::read(&out.reply, shown.caps, window);
    let figures = RunFigures {
        stdout: Some(stream(&out.stdout)),
        stderr: Some(stream(&out.stderr)),
        logs: Some(m.mask_json(&serde_json::Value::Array(logs))),
        exit_code: out.exit_code.map(i64::from),
        signal: out.signal.map(i64::from),
        duration_ms: Some(out.wall.as_millis() as i64),
        cpu_ms: Some(out.cpu.as_millis() as i64),
        peak_memory_kb: Some(out.peak_memory_kb as i64),
        unsandboxed: !out.sandboxed,
    };
    let reported = reported.filter(|_| !out.reply.truncated);
    FinishedRun {
        outcome: ended(&out, reported, m, shown),
        figures,
    }
}

/// How a run ended: the kernel's and the sandbox's verdicts first, then
/// what the agent reported.
fn ended(out: &RunOutcome, reported: Option<Reported>, m: &Masker, shown: &Shown) -> TaskOutcome {
    let memory_mb = shown.memory_mb;
    if out.cancelled {
        return TaskOutcome::Cancelled {
            reason: "cancelled".into(),
        };
    }
    if out.workspace_full {
        return TaskOutcome::failed(format!(
            "workspace quota exceeded: the agent's workspace holds more than {} MiB or {} files, so the run was stopped (or not started); its files are kept, and no run starts until the quota is raised (settings.workspace_mb), after which the agent can delete what it no longer needs",
            shown.workspace_mb, shown.workspace_entries
        ));
    }
    // The kernel's verdict, whatever the agent managed to write to its
    // reply pipe before it was killed.
    if out.memory_exceeded {
        return TaskOutcome::failed(format!(
            "memory limit exceeded ({memory_mb} MiB): the run's processes together held more memory than that (their own, shared memory, memfd and /tmp files count too), so the kernel stopped it; raise settings.memory_mb or use less"
        ));
    }
    if out.timed_out {
        return TaskOutcome::TimedOut {
            limit: shown.wall,
            retry_at: None,
        };
    }
    let exited_cleanly = out.exit_code == Some(0) && out.signal.is_none();
    TaskOutcome::failed(match reported {
        // Success is what the reply says AND how the process ended: a
        // reply written before the process failed does not count.
        Some(Reported::Returned { result, state }) if exited_cleanly => {
            return TaskOutcome::Succeeded {
                result: Some(m.mask_json(&result)),
                new_state: Some(m.mask_json(&state)),
            };
        }
        Some(Reported::Returned { .. }) => format!(
            "run(ctx) returned, but then {}; a run succeeds only when its process ends cleanly",
            how_it_ended(out, memory_mb)
        ),
        Some(Reported::Raised {
            error,
            memory: true,
        }) => m.mask(&format!("memory limit exceeded ({memory_mb} MiB): {error}")),
        Some(Reported::Raised { error, .. }) => m.mask(&error),
        Some(Reported::Refused(why)) => why,
        None if out.reply.truncated => format!(
            "the agent's reply (result, state and logs) was larger than {} MiB",
            shown.reply_mb
        ),
        None => died_without_reply(out, memory_mb),
    })
}

/// How a process that did not end cleanly ended, in words.
fn how_it_ended(out: &RunOutcome, memory_mb: u64) -> String {
    match (out.signal, out.exit_code) {
        (Some(9), _) => format!(
            "the agent's process was killed (SIGKILL; a resource limit, memory {memory_mb} MiB?)"
        ),
        (Some(s), _) => format!("the agent's process was killed by signal {s}"),
        (None, Some(c)) => format!("the agent's process exited with code {c}"),
        (None, None) => "the agent's process ended without an exit status".into(),
    }
}

fn died_without_reply(out: &RunOutcome, memory_mb: u64) -> String {
    match (out.signal, out.exit_code) {
        (Some(24), _) => "CPU time limit exceeded (SIGXCPU)".into(),
        // With a memory cgroup an OOM kill is reported as such (above), so
        // SIGKILL has another cause; without one it is likely memory.
        (Some(9), _) if out.memory_cgroup => {
            "the agent was killed (SIGKILL) before it reported a result".into()
        }
        (Some(9), _) => format!(
            "the agent was killed (SIGKILL): it probably exceeded a resource limit (memory {memory_mb} MiB)"
        ),
        (Some(s), _) => format!("the agent was killed by signal {s} before it reported a result"),
        (None, Some(c)) => format!(
            "the agent process exited with code {c} before it reported a result (os._exit or a crash)"
        ),
        (None, None) => "the agent ended without reporting a result".into(),
    }
}

/// Cuts text to `cap` bytes at a character boundary and marks truncation.
pub(crate) fn capped(s: &str, cap: usize, was_truncated: bool) -> String {
    if s.len() <= cap && !was_truncated {
        return s.to_string();
    }
    let mut end = cap.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[... output truncated at {} KiB]",
        &s[..end],
        cap / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown() -> Shown {
        Shown {
            wall: std::time::Duration::from_secs(60),
            memory_mb: 256,
            workspace_mb: 1024,
            workspace_entries: 100,
            reply_mb: 10,
            caps: Caps {
                result_bytes: 1 << 20,
                state_bytes: 1 << 20,
            },
        }
    }

    #[test]
    fn an_oom_kill_is_a_memory_error_whatever_the_reply_says() {
        let out = RunOutcome {
            reply: p38_sandbox::Captured {
                bytes: br#"{"ok": true, "result": 1, "state": {}}"#.to_vec(),
                ..Default::default()
            },
            signal: Some(9),
            memory_exceeded: true,
            memory_cgroup: true,
            sandboxed: true,
            ..Default::default()
        };
        let now = chrono::Utc::now();
        let window = Window {
            start: now,
            end: now,
        };
        let o = outcome(out, &Masker::new([]), 1024, &shown(), window).outcome;
        assert_eq!(o.status(), p38_core::task::TaskStatus::Failed);
        let error = o.error().unwrap();
        assert!(
            error.starts_with("memory limit exceeded (256 MiB)"),
            "{error}"
        );
        assert!(!matches!(o, TaskOutcome::Succeeded { .. }), "no result");
    }

    #[test]
    fn capping_marks_truncation_on_char_boundaries() {
        assert_eq!(capped("abc", 10, false), "abc");
        let s = capped("ééé", 3, false);
        assert!(s.starts_with('é') && s.contains("truncated"));
        assert!(capped("abc", 10, true).contains("truncated"));
    }
}
