//! Runs one agent once: resolves its declared secrets, sends the runner its
//! input over a pipe, runs the sandbox, masks every secret in what came
//! back and turns it into a task outcome.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use p38_core::agent::{Agent, DEFAULT_RESULT_KB};
use p38_core::task::{TaskOutcome, TaskStatus};
use p38_sandbox::{CancelFlag, LiveOutput, RunOutcome, RunRequest, Sandbox};
use p38_secrets::{Masker, SecretResolver};

use crate::config::RuntimeConfig;
use crate::live::{Follower, LiveSink, SAVE_EVERY};
use crate::python::RUNNER_SOURCE;
use crate::reply::{self, Caps, Reported, Window};

/// What the agent learns about the run it is in (`ctx.run`).
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// Task id (0 for an unstored `p38 run`).
    pub task_id: i64,
    /// Attempt number.
    pub attempt: i64,
    /// manual, schedule or retry.
    pub trigger: String,
    /// When the run was due, RFC 3339.
    pub scheduled_at: String,
}

/// Everything one run needs besides the agent.
#[derive(Debug, Clone)]
pub struct Job {
    /// The code to run (the task's version of the agent).
    pub code: String,
    /// `ctx.run`.
    pub facts: RunFacts,
    /// `ctx.state`: what the last successful run left.
    pub state: serde_json::Value,
    /// `ctx.history`: summaries of the last runs.
    pub history: Vec<serde_json::Value>,
    /// Host folder bound at /workspace.
    pub workspace: PathBuf,
    /// Set to stop the run.
    pub cancel: CancelFlag,
}

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

    /// Runs `agent` once in `workspace`. Never fails: every problem becomes
    /// a failed outcome with a message for the user.
    pub async fn run(&self, agent: &Agent, job: Job) -> TaskOutcome {
        self.run_saving(agent, job, None).await
    }

    /// [`Executor::run`], storing the output so far on the task of `sink`
    /// while the run goes on (see `live.rs`).
    pub(crate) async fn run_saving(
        &self,
        agent: &Agent,
        job: Job,
        sink: Option<LiveSink>,
    ) -> TaskOutcome {
        let secrets = match self.secrets.resolve(&agent.secrets).await {
            Ok(s) => s,
            Err(e) => return failed(format!("secrets: {e}"), !self.sandboxed()),
        };
        let masker = Masker::new(secrets.values());
        let exposed: BTreeMap<&str, &str> = secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let input = serde_json::json!({
            "code": job.code,
            "state": job.state,
            "config": agent.config,
            "secrets": exposed,
            "tools": agent.tools,
            "run": {
                "task_id": job.facts.task_id,
                "attempt": job.facts.attempt,
                "trigger": job.facts.trigger,
                "scheduled_at": job.facts.scheduled_at,
                "agent_id": agent.id,
                "agent_name": agent.name,
            },
            "history": job.history,
            "max_state_bytes": self.cfg.max_state_bytes,
            "max_result_bytes": agent.settings.max_result_kb.unwrap_or(DEFAULT_RESULT_KB) as usize * 1024,
        });
        // The only copy of the secret values outside this process is this
        // buffer, written to the runner's pipe.
        let input = input.to_string().into_bytes();
        let caps = Caps {
            result_bytes: agent.settings.max_result_kb.unwrap_or(DEFAULT_RESULT_KB) as usize * 1024,
            state_bytes: self.cfg.max_state_bytes,
        };
        let limits = self
            .cfg
            .limits
            .for_agent(&agent.settings, self.cfg.output_cap, caps);
        let shown = Shown::of(&limits, caps);
        let req = RunRequest {
            script: self.runner.clone(),
            input,
            workspace: job.workspace,
            network: agent.network,
            limits,
            cancel: job.cancel,
            run_as: Some(self.cfg.agent_ids(agent.id)),
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

fn failed(error: String, unsandboxed: bool) -> TaskOutcome {
    TaskOutcome {
        status: Some(TaskStatus::Failed),
        error: Some(error),
        unsandboxed,
        ..Default::default()
    }
}

/// The limits of a run, as error messages and the reply checks use them.
struct Shown {
    timeout_s: u64,
    memory_mb: u64,
    workspace_mb: u64,
    workspace_entries: u64,
    reply_mb: usize,
    caps: Caps,
}

impl Shown {
    fn of(l: &p38_sandbox::Limits, caps: Caps) -> Shown {
        Shown {
            timeout_s: l.wall.as_secs(),
            memory_mb: l.memory_bytes / (1024 * 1024),
            workspace_mb: l.workspace_bytes / (1024 * 1024),
            workspace_entries: l.workspace_entries,
            reply_mb: l.reply_bytes / (1024 * 1024),
            caps,
        }
    }
}

fn outcome(out: RunOutcome, m: &Masker, cap: usize, shown: &Shown, window: Window) -> TaskOutcome {
    let (timeout_s, memory_mb) = (shown.timeout_s, shown.memory_mb);
    let stream = |c: &p38_sandbox::Captured| {
        let text = String::from_utf8_lossy(&c.bytes);
        let masked = if c.truncated {
            m.mask_cut(&text)
        } else {
            m.mask(&text)
        };
        capped(&masked, cap, c.truncated)
    };
    let mut o = TaskOutcome {
        stdout: Some(stream(&out.stdout)),
        stderr: Some(stream(&out.stderr)),
        exit_code: out.exit_code.map(i64::from),
        signal: out.signal.map(i64::from),
        duration_ms: Some(out.wall.as_millis() as i64),
        cpu_ms: Some(out.cpu.as_millis() as i64),
        peak_memory_kb: Some(out.peak_memory_kb as i64),
        unsandboxed: !out.sandboxed,
        ..Default::default()
    };
    // The log lines stay even when the run was stopped, or its reply cut.
    let (logs, reported) = reply::read(&out.reply, shown.caps, window);
    o.logs = Some(m.mask_json(&serde_json::Value::Array(logs)));
    let reported = reported.filter(|_| !out.reply.truncated);
    if out.cancelled {
        o.status = Some(TaskStatus::Cancelled);
        o.error = Some("cancelled".into());
        return o;
    }
    if out.workspace_full {
        o.status = Some(TaskStatus::Failed);
        o.error = Some(format!(
            "workspace quota exceeded: the agent's workspace holds more than {} MiB or {} files, so the run was stopped (or not started); its files are kept, and no run starts until the quota is raised (settings.workspace_mb), after which the agent can delete what it no longer needs",
            shown.workspace_mb, shown.workspace_entries
        ));
        return o;
    }
    // The kernel's verdict, whatever the agent managed to write to its
    // reply pipe before it was killed.
    if out.memory_exceeded {
        o.status = Some(TaskStatus::Failed);
        o.error = Some(format!(
            "memory limit exceeded ({memory_mb} MiB): the run's processes together held more memory than that (their own, shared memory, memfd and /tmp files count too), so the kernel stopped it; raise settings.memory_mb or use less"
        ));
        return o;
    }
    if out.timed_out {
        o.status = Some(TaskStatus::TimedOut);
        o.error = Some(format!(
            "timed out: the run exceeded its wall-clock limit of {timeout_s} s and was stopped"
        ));
        return o;
    }
    o.status = Some(TaskStatus::Failed);
    let exited_cleanly = out.exit_code == Some(0) && out.signal.is_none();
    o.error = Some(match reported {
        // Success is what the reply says AND how the process ended: a
        // reply written before the process failed does not count.
        Some(Reported::Returned { result, state }) if exited_cleanly => {
            o.status = Some(TaskStatus::Succeeded);
            o.result = Some(m.mask_json(&result));
            o.new_state = Some(m.mask_json(&state));
            return o;
        }
        Some(Reported::Returned { .. }) => format!(
            "run(ctx) returned, but then {}; a run succeeds only when its process ends cleanly",
            how_it_ended(&out, memory_mb)
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
        None => died_without_reply(&out, memory_mb),
    });
    o
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
            timeout_s: 60,
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
        let o = outcome(out, &Masker::new([]), 1024, &shown(), window);
        assert_eq!(o.status, Some(TaskStatus::Failed));
        let error = o.error.unwrap();
        assert!(
            error.starts_with("memory limit exceeded (256 MiB)"),
            "{error}"
        );
        assert_eq!(o.result, None);
    }

    #[test]
    fn capping_marks_truncation_on_char_boundaries() {
        assert_eq!(capped("abc", 10, false), "abc");
        let s = capped("ééé", 3, false);
        assert!(s.starts_with('é') && s.contains("truncated"));
        assert!(capped("abc", 10, true).contains("truncated"));
    }
}
