//! Generations: a plain-language description on its way to becoming a
//! validated agent, with every iteration of the repair loop kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Attempts a generation gets in all: when the worker running it stops
/// (a crash, a kill) this many times, it fails saying so rather than being
/// run again, since it may be what takes its workers down.
pub const GENERATION_ATTEMPTS: i64 = 3;

/// Where a generation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    /// The repair loop is working.
    Running,
    /// An agent was saved (pending approval, or active when auto-approved).
    Succeeded,
    /// The loop gave up; `error` says why and `report` holds the last findings.
    Failed,
    /// A user stopped it (`POST /api/generations/{id}/cancel`); `report`
    /// holds the iterations that ended before.
    Cancelled,
}

impl GenerationStatus {
    /// Every status, in the order of a generation's life.
    pub const ALL: [GenerationStatus; 4] = [
        GenerationStatus::Running,
        GenerationStatus::Succeeded,
        GenerationStatus::Failed,
        GenerationStatus::Cancelled,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStatus::Running => "running",
            GenerationStatus::Succeeded => "succeeded",
            GenerationStatus::Failed => "failed",
            GenerationStatus::Cancelled => "cancelled",
        }
    }
}

/// What a generation is doing, within its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStage {
    /// Waiting for a worker to run it (new, or after the worker running it
    /// stopped).
    #[default]
    Queued,
    /// Waiting for the model's first answer.
    Generating,
    /// Checking an answer.
    Validating,
    /// Waiting for a repaired answer.
    Repairing,
    /// A clean agent is being saved.
    Saving,
    /// The loop gave up; the outcome is being recorded.
    Failing,
    /// An agent was saved.
    Done,
    /// It failed.
    Failed,
    /// A user stopped it.
    Cancelled,
}

impl GenerationStage {
    /// Every stage.
    pub const ALL: [GenerationStage; 9] = [
        GenerationStage::Queued,
        GenerationStage::Generating,
        GenerationStage::Validating,
        GenerationStage::Repairing,
        GenerationStage::Saving,
        GenerationStage::Failing,
        GenerationStage::Done,
        GenerationStage::Failed,
        GenerationStage::Cancelled,
    ];

    /// The stored spelling (the store's SQL writes `queued`, `failed` and
    /// `cancelled` literally; a test holds them to this list).
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStage::Queued => "queued",
            GenerationStage::Generating => "generating",
            GenerationStage::Validating => "validating",
            GenerationStage::Repairing => "repairing",
            GenerationStage::Saving => "saving",
            GenerationStage::Failing => "failing",
            GenerationStage::Done => "done",
            GenerationStage::Failed => "failed",
            GenerationStage::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for GenerationStage {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        GenerationStage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                crate::Error::internal(format!("unknown generation stage {s:?} in the store"))
            })
    }
}

impl std::str::FromStr for GenerationStatus {
    type Err = crate::Error;
    /// A status as a client spells it (`?status=`); an unknown one is a
    /// validation error naming the field and the statuses there are.
    fn from_str(s: &str) -> crate::Result<Self> {
        GenerationStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                crate::Error::validation(
                    "status",
                    format!(
                        "unknown generation status {s:?}; expected one of running, succeeded, failed, cancelled"
                    ),
                )
            })
    }
}

/// A stored generation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Generation {
    /// Identifier.
    pub id: i64,
    /// The user's description.
    pub description: String,
    /// Status.
    pub status: GenerationStatus,
    /// What it is doing now.
    pub stage: GenerationStage,
    /// Current iteration of the repair loop (1-based).
    pub iteration: i64,
    /// Findings of the last validation.
    pub findings: i64,
    /// Cost so far, USD.
    pub cost_usd: f64,
    /// Input tokens so far.
    pub input_tokens: i64,
    /// Output tokens so far.
    pub output_tokens: i64,
    /// The model used.
    pub model: String,
    /// Every iteration: code, findings, tokens, cost, latency; while the
    /// generation runs, `{"iterations": [...]}` with those that ended.
    /// Secrets detected in an iteration's code or answer are masked.
    /// Absent in listings.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The agent it produced.
    pub agent_id: Option<i64>,
    /// The task on the queue that runs it (`GET /api/tasks/{id}`: which
    /// worker, which attempt, since when); none for a generation recorded
    /// before generations ran as tasks.
    pub task_id: Option<crate::task::TaskId>,
    /// Who asked.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last progress.
    pub updated_at: DateTime<Utc>,
    /// What the user fixed in the request; it wins over what the model
    /// proposes.
    pub overrides: GenerationOverrides,
}

/// The fields of `POST /api/agents` given along with a description: the
/// saved agent has them instead of what the model proposed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenerationOverrides {
    /// The agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Its `ctx.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// Its runtime settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::agent::AgentSettings>,
}

/// Progress of a running generation.
#[derive(Debug, Clone, Default)]
pub struct GenerationProgress {
    /// The stage.
    pub stage: GenerationStage,
    /// Iteration.
    pub iteration: i64,
    /// Findings of the last validation.
    pub findings: i64,
    /// Cost so far.
    pub cost_usd: f64,
    /// Input tokens so far.
    pub input_tokens: i64,
    /// Output tokens so far.
    pub output_tokens: i64,
    /// The iterations that ended so far (`{"iterations": [...]}`), when
    /// they changed; `None` keeps the stored one.
    pub report: Option<serde_json::Value>,
}

/// How a generation ended, as the worker running it records it (a
/// cancel is recorded by whoever cancels it).
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationFinish {
    /// An agent was saved.
    Succeeded {
        /// Every iteration and the outcome.
        report: serde_json::Value,
        /// The agent written.
        agent_id: i64,
    },
    /// The loop gave up, or saving the agent failed.
    Failed {
        /// The iterations there were (`{}` when none ran).
        report: serde_json::Value,
        /// Why, for the user.
        error: String,
    },
}
