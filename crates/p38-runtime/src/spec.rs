//! What one run needs: the code, the permissions and limits it runs
//! under, the names of the secrets to resolve, the state and history it
//! starts from, and what it learns about itself (`ctx.run`). A queued task
//! and a one-off run (`p38 run`, the factory's dry run) both describe their
//! run with it, so the executor never needs a stored agent, and one-off
//! runs need not make one up.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use p38_core::agent::{AgentId, AgentSettings};
use p38_core::task::{TaskId, Trigger};
use p38_sandbox::CancelFlag;

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The code to run (for a task, the version it was queued for).
    pub code: String,
    /// `ctx.config`.
    pub config: serde_json::Value,
    /// Names of the secrets to resolve and hand to the run (`ctx.secrets`).
    pub secrets: Vec<String>,
    /// Tools the run may call (`ctx.tools`).
    pub tools: Vec<String>,
    /// Whether the run has the host's network.
    pub network: bool,
    /// Limits (over the server's defaults).
    pub settings: AgentSettings,
    /// `ctx.state`: what the last successful run left.
    pub state: serde_json::Value,
    /// `ctx.history`: summaries of the last runs.
    pub history: Vec<serde_json::Value>,
    /// `ctx.run`.
    pub facts: RunFacts,
    /// Host folder bound at /workspace.
    pub workspace: PathBuf,
    /// Set to stop the run.
    pub cancel: CancelFlag,
}

impl RunSpec {
    /// A one-off run of `code` named `name`: empty config, state and
    /// history, no secrets, tools or network, default limits, due now.
    /// Callers set what they give on top (`RunSpec { secrets, ..one_off }`).
    pub fn one_off(origin: RunOrigin, name: &str, code: &str, workspace: PathBuf) -> RunSpec {
        RunSpec {
            code: code.to_string(),
            config: serde_json::json!({}),
            secrets: Vec::new(),
            tools: Vec::new(),
            network: false,
            settings: AgentSettings::default(),
            state: serde_json::json!({}),
            history: Vec::new(),
            facts: RunFacts {
                origin,
                agent_name: name.to_string(),
                scheduled_at: Utc::now(),
            },
            workspace,
            cancel: CancelFlag::new(),
        }
    }
}

/// What the agent learns about the run it is in (`ctx.run`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    /// What the run is a run of.
    pub origin: RunOrigin,
    /// The agent's name (for a one-off run, the name it was given).
    pub agent_name: String,
    /// When the run was due.
    pub scheduled_at: DateTime<Utc>,
}

/// What a run is a run of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrigin {
    /// A queued task of a stored agent.
    Task {
        /// The task.
        task_id: TaskId,
        /// Its agent (whose id also picks the uid the run has).
        agent_id: AgentId,
        /// 1 for the first attempt, 2 for the first retry, ...
        attempt: i64,
        /// Why the task was queued.
        trigger: Trigger,
    },
    /// `p38 run FILE.py` (or a benchmark's run): nothing is stored.
    Try,
    /// The factory's dry run of code it generated.
    DryRun,
}

impl RunOrigin {
    /// The task id the runner is told: 0 for a one-off run.
    pub fn task_id(self) -> TaskId {
        match self {
            RunOrigin::Task { task_id, .. } => task_id,
            RunOrigin::Try | RunOrigin::DryRun => 0,
        }
    }

    /// The agent id the runner is told, and whose uid the run has: 0 for a
    /// one-off run (no stored agent).
    pub fn agent_id(self) -> AgentId {
        match self {
            RunOrigin::Task { agent_id, .. } => agent_id,
            RunOrigin::Try | RunOrigin::DryRun => 0,
        }
    }

    /// The attempt number: 1 for a one-off run.
    pub fn attempt(self) -> i64 {
        match self {
            RunOrigin::Task { attempt, .. } => attempt,
            RunOrigin::Try | RunOrigin::DryRun => 1,
        }
    }

    /// `ctx.run.trigger`: manual, schedule or retry for a task, manual for
    /// `p38 run`, dry_run for the factory's dry run.
    pub fn trigger(self) -> &'static str {
        match self {
            RunOrigin::Task { trigger, .. } => trigger.as_str(),
            RunOrigin::Try => Trigger::Manual.as_str(),
            RunOrigin::DryRun => "dry_run",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_off_runs_tell_the_runner_what_they_always_did() {
        assert_eq!(
            (
                RunOrigin::Try.task_id(),
                RunOrigin::Try.agent_id(),
                RunOrigin::Try.attempt(),
                RunOrigin::Try.trigger()
            ),
            (0, 0, 1, "manual")
        );
        assert_eq!(RunOrigin::DryRun.trigger(), "dry_run");
        let task = RunOrigin::Task {
            task_id: 7,
            agent_id: 3,
            attempt: 2,
            trigger: Trigger::Retry,
        };
        assert_eq!(
            (
                task.task_id(),
                task.agent_id(),
                task.attempt(),
                task.trigger()
            ),
            (7, 3, 2, "retry")
        );
    }
}
