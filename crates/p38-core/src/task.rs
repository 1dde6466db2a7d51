//! Tasks: one job on the queue, from queued to a final outcome: a run of
//! an agent, or a generation writing one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::AgentId;
use crate::{Error, Result};
use chrono::{DateTime, Utc};

/// A task's numeric identifier.
pub type TaskId = i64;

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker and running.
    Running,
    /// `run(ctx)` returned.
    Succeeded,
    /// The agent raised, crashed or hit a limit.
    Failed,
    /// The wall-clock limit ended it.
    TimedOut,
    /// Cancelled by a user.
    Cancelled,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::TimedOut,
        TaskStatus::Cancelled,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::TimedOut => "timed_out",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the task has reached its end.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Queued | TaskStatus::Running)
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "status",
                    format!("unknown task status {s:?}; expected one of queued, running, succeeded, failed, timed_out, cancelled"),
                )
            })
    }
}

/// Why a task was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A user asked for it.
    Manual,
    /// The agent's schedule fired.
    Schedule,
    /// A retry of a failed run.
    Retry,
}

impl Trigger {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
        }
    }
}

impl std::str::FromStr for Trigger {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "manual" => Ok(Trigger::Manual),
            "schedule" => Ok(Trigger::Schedule),
            "retry" => Ok(Trigger::Retry),
            _ => Err(Error::internal(format!("unknown trigger {s:?} in store"))),
        }
    }
}

/// What a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// The agent's code, in the sandbox.
    Agent,
    /// Nothing: completes at once without starting a process. Measures the
    /// queue itself.
    Noop,
    /// A generation's repair loop: the model writes an agent from a
    /// description (the task's target is the generation). Runs in a
    /// worker's generation slots, apart from agent runs.
    Generation,
}

impl TaskKind {
    /// The stored spelling (the store's SQL writes `agent`, `noop` and
    /// `generation` literally).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Agent => "agent",
            TaskKind::Noop => "noop",
            TaskKind::Generation => "generation",
        }
    }
}

/// What a task is for: a run of one version of an agent, or a generation
/// (which has no agent until it has written one). In JSON its fields stand
/// beside the task's own: `agent_id` and `agent_version`, or
/// `generation_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TaskTarget {
    /// A run of an agent (kind `agent` or `noop`).
    Agent {
        /// The agent it runs.
        agent_id: AgentId,
        /// The agent version it runs.
        agent_version: i64,
    },
    /// A generation (kind `generation`).
    Generation {
        /// The generation it runs (`GET /api/generations/{id}`).
        generation_id: i64,
    },
}

impl TaskTarget {
    /// The agent, for a run of one.
    pub fn agent_id(&self) -> Option<AgentId> {
        match self {
            TaskTarget::Agent { agent_id, .. } => Some(*agent_id),
            TaskTarget::Generation { .. } => None,
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "agent" => Ok(TaskKind::Agent),
            "noop" => Ok(TaskKind::Noop),
            "generation" => Ok(TaskKind::Generation),
            _ => Err(Error::validation(
                "kind",
                format!("unknown task kind {s:?}; expected agent, noop or generation"),
            )),
        }
    }
}

/// A stored task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Identifier.
    pub id: TaskId,
    /// What it is for: an agent's run or a generation.
    #[serde(flatten)]
    pub target: TaskTarget,
    /// Status.
    pub status: TaskStatus,
    /// Why it was created.
    pub trigger: Trigger,
    /// What it runs.
    pub kind: TaskKind,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: i64,
    /// The first attempt this one retries, if any.
    pub retry_of: Option<TaskId>,
    /// When it became (or becomes) eligible to run.
    pub scheduled_at: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// The value `run(ctx)` returned.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Captured standard output (capped, secrets masked). While the task
    /// runs, the output so far: the worker stores it about every second
    /// while it grows (less often once it is large), so it lags the run by
    /// about that much and may end short of a secret's length, held back
    /// until the run ends. A cancelled run keeps what it wrote up to the
    /// cancel.
    pub stdout: Option<String>,
    /// Captured standard error (capped, secrets masked); while the task
    /// runs, the output so far, like `stdout`.
    pub stderr: Option<String>,
    /// Log lines the agent wrote through `ctx.log`, each
    /// `{"level", "message", "at"}`; while the task runs, the lines so far,
    /// like `stdout`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub logs: Option<serde_json::Value>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Process exit code.
    pub exit_code: Option<i64>,
    /// Signal that ended the process, if one did.
    pub signal: Option<i64>,
    /// Wall time in milliseconds.
    pub duration_ms: Option<i64>,
    /// CPU time (user + system) in milliseconds.
    pub cpu_ms: Option<i64>,
    /// Peak resident memory in KiB.
    pub peak_memory_kb: Option<i64>,
    /// Whether it ran without the sandbox (operator override).
    pub unsandboxed: bool,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Characters of a result's JSON text, or of an error, that a
/// [`TaskSummary`] keeps.
pub const SUMMARY_CHARS: usize = 500;

/// A task as listings show it: everything but the captured output, with
/// the result and the error cut to [`SUMMARY_CHARS`] characters, so that a
/// page's size is bounded by its `limit` whatever the agents returned
/// (`GET /api/tasks/{id}` has the whole task).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskSummary {
    /// Identifier.
    pub id: TaskId,
    /// What it is for: an agent's run or a generation.
    #[serde(flatten)]
    pub target: TaskTarget,
    /// Status.
    pub status: TaskStatus,
    /// Why it was created.
    pub trigger: Trigger,
    /// What it runs.
    pub kind: TaskKind,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: i64,
    /// The first attempt this one retries, if any.
    pub retry_of: Option<TaskId>,
    /// When it became (or becomes) eligible to run.
    pub scheduled_at: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// The start of the JSON text of the value `run(ctx)` returned.
    pub result_preview: Option<Excerpt>,
    /// The start of what went wrong, if anything.
    pub error: Option<Excerpt>,
    /// Process exit code.
    pub exit_code: Option<i64>,
    /// Signal that ended the process, if one did.
    pub signal: Option<i64>,
    /// Wall time in milliseconds.
    pub duration_ms: Option<i64>,
    /// CPU time (user + system) in milliseconds.
    pub cpu_ms: Option<i64>,
    /// Peak memory in KiB.
    pub peak_memory_kb: Option<i64>,
    /// Whether it ran without the sandbox (operator override).
    pub unsandboxed: bool,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The first [`SUMMARY_CHARS`] characters of a longer text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Excerpt {
    /// The text, cut at a character boundary.
    pub text: String,
    /// Whether the whole text is longer.
    pub truncated: bool,
}

impl Excerpt {
    /// The excerpt of `text`: the whole of it when it is short enough.
    pub fn of(text: &str) -> Excerpt {
        match text.char_indices().nth(SUMMARY_CHARS) {
            Some((end, _)) => Excerpt {
                text: text[..end].to_string(),
                truncated: true,
            },
            None => Excerpt {
                text: text.to_string(),
                truncated: false,
            },
        }
    }
}

/// What is needed to queue a run of an agent (a generation's task is
/// queued with its generation, see
/// [`crate::store::GenerationStore::create_generation`]).
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Agent to run.
    pub agent_id: AgentId,
    /// Version to run.
    pub agent_version: i64,
    /// Why.
    pub trigger: Trigger,
    /// What it runs: [`TaskKind::Agent`] or [`TaskKind::Noop`].
    pub kind: TaskKind,
    /// Attempt number.
    pub attempt: i64,
    /// The first attempt, for retries.
    pub retry_of: Option<TaskId>,
    /// Earliest start.
    pub scheduled_at: DateTime<Utc>,
}

/// What a run has written so far: stored while it runs, so that the task
/// shows its output before it ends, and once more when it was cancelled,
/// so that it keeps what it wrote up to the cancel. Masked and capped like
/// the final output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutput {
    /// Standard output so far.
    pub stdout: String,
    /// Standard error so far.
    pub stderr: String,
    /// Log lines so far (a JSON array).
    pub logs: serde_json::Value,
}

/// How a run ended, as the worker records it. Each status carries what
/// only it has: a result and state only for a success, a retry time only
/// for a failure or a timeout, a reason for a cancel.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// `run(ctx)` returned and its process ended cleanly.
    Succeeded {
        /// The returned value (none for a task that runs no code).
        result: Option<serde_json::Value>,
        /// State for the next run; none leaves the stored state as it is.
        new_state: Option<serde_json::Value>,
    },
    /// The agent raised, crashed or hit a limit, or the run could not start.
    Failed {
        /// What went wrong, for the user.
        error: String,
        /// When set, a retry is queued for this time in the same
        /// transaction that records the failure, so it cannot be lost.
        retry_at: Option<DateTime<Utc>>,
    },
    /// The wall-clock limit ended it.
    TimedOut {
        /// The limit it ran into.
        limit: std::time::Duration,
        /// As for [`TaskOutcome::Failed`].
        retry_at: Option<DateTime<Utc>>,
    },
    /// Stopped before it ended (a user's cancel), or not run at all.
    Cancelled {
        /// Why, for the user.
        reason: String,
    },
}

impl TaskOutcome {
    /// A failure that is not retried.
    pub fn failed(error: impl Into<String>) -> TaskOutcome {
        TaskOutcome::Failed {
            error: error.into(),
            retry_at: None,
        }
    }

    /// The final status it records.
    pub fn status(&self) -> TaskStatus {
        match self {
            TaskOutcome::Succeeded { .. } => TaskStatus::Succeeded,
            TaskOutcome::Failed { .. } => TaskStatus::Failed,
            TaskOutcome::TimedOut { .. } => TaskStatus::TimedOut,
            TaskOutcome::Cancelled { .. } => TaskStatus::Cancelled,
        }
    }

    /// The task's `error` text: what went wrong, or why it was cancelled.
    pub fn error(&self) -> Option<String> {
        match self {
            TaskOutcome::Succeeded { .. } => None,
            TaskOutcome::Failed { error, .. } => Some(error.clone()),
            TaskOutcome::TimedOut { limit, .. } => Some(format!(
                "timed out: the run exceeded its wall-clock limit of {} s and was stopped",
                limit.as_secs()
            )),
            TaskOutcome::Cancelled { reason } => Some(reason.clone()),
        }
    }

    /// When the retry of a failed or timed-out run is queued, if it is.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            TaskOutcome::Failed { retry_at, .. } | TaskOutcome::TimedOut { retry_at, .. } => {
                *retry_at
            }
            _ => None,
        }
    }

    /// Sets the retry time of a failed or timed-out run; any other outcome
    /// is never retried and stays as it is.
    pub fn retried_at(mut self, at: Option<DateTime<Utc>>) -> TaskOutcome {
        if let TaskOutcome::Failed { retry_at, .. } | TaskOutcome::TimedOut { retry_at, .. } =
            &mut self
        {
            *retry_at = at;
        }
        self
    }
}

/// What a run measured and wrote, whatever its outcome: none of it for a
/// run that never started a process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFigures {
    /// Standard output (capped, secrets masked).
    pub stdout: Option<String>,
    /// Standard error (capped, secrets masked).
    pub stderr: Option<String>,
    /// Agent log lines (a JSON array).
    pub logs: Option<serde_json::Value>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Signal that ended the process.
    pub signal: Option<i64>,
    /// Wall time in milliseconds.
    pub duration_ms: Option<i64>,
    /// CPU time in milliseconds.
    pub cpu_ms: Option<i64>,
    /// Peak memory in KiB.
    pub peak_memory_kb: Option<i64>,
    /// Ran (or would have run) without the sandbox.
    pub unsandboxed: bool,
}

/// A run that ended: how, and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedRun {
    /// How it ended.
    pub outcome: TaskOutcome,
    /// What it measured and wrote.
    pub figures: RunFigures,
}

impl FinishedRun {
    /// An outcome without figures (no process ran).
    pub fn bare(outcome: TaskOutcome) -> FinishedRun {
        FinishedRun {
            outcome,
            figures: RunFigures::default(),
        }
    }
}
